"""A district store issuing Covishield to a centre in a cold box with a logger (issue 18)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from logistics.db import UnitOfWork
from logistics.models.catalog import Lot, Product, StorageUnit, Store
from logistics.services import journeys, stock, transit
from tests.support.alerts_fixtures import ingest, readings
from tests.support.sessions_fixtures import add_store

UTC = dt.UTC


@dataclasses.dataclass
class Route:
    district: Store
    centre: Store
    dvs_ilr: StorageUnit
    centre_ilr: StorageUnit
    cold_box: StorageUnit
    lot: Lot


def make_route(uow: UnitOfWork, settings, *, doses: int = 1000, sensor_id: str = "CB-1-LOG"):
    """District (ILR with `doses` of one lot, a cold box with a logger) -> centre (empty ILR)."""
    state = add_store(uow, "AS", "state", None)
    district = add_store(uow, "AS-CAC", "district", state)
    centre = add_store(uow, "AS-CAC-SIL", "centre", district)
    dvs_ilr = StorageUnit(
        store_id=district.id, code="DVS-ILR", kind="ilr", min_temp_c=2.0, max_temp_c=8.0
    )
    centre_ilr = StorageUnit(
        store_id=centre.id, code="ILR-1", kind="ilr", min_temp_c=2.0, max_temp_c=8.0
    )
    product = Product(
        code="COVISHIELD",
        name="Covishield",
        doses_per_vial=10,
        min_temp_c=2.0,
        max_temp_c=8.0,
        freeze_sensitive=True,
        open_vial_life_min=240,
    )
    uow.session.add_all([dvs_ilr, centre_ilr, product])
    uow.session.flush()
    lot = Lot(
        product_id=product.id,
        lot_number="4121Z040",
        manufacturer="Serum Institute of India",
        expiry_date=dt.date(2099, 6, 30),
    )
    uow.session.add(lot)
    uow.session.commit()
    start = dt.datetime.now(UTC) - dt.timedelta(days=2)
    stock.receive_stock(
        uow,
        store_id=district.id,
        unit_id=dvs_ilr.id,
        doses=doses,
        rec=stock.recorded("test", start, "supply-1"),
        lot={"lot_id": lot.id},
    )
    uow.commit()
    cold_box = transit.register_carrier(
        uow,
        settings,
        store_id=district.id,
        code="CB-1",
        kind="cold_box",
        actor="test",
        now=start,
        sensor_id=sensor_id,
    )
    uow.commit()
    return Route(district, centre, dvs_ilr, centre_ilr, cold_box, lot)


def issue_in_box(uow: UnitOfWork, route: Route, doses: int, at: dt.datetime, client_id: str):
    """Issue doses of the lot to the centre in the cold box; commits; returns the shipment id."""
    movement = journeys.issue_in_carriers(
        uow,
        carriers=[{"unit_id": route.cold_box.id}],
        issue={
            "store_id": route.district.id,
            "to_store_id": route.centre.id,
            "doses": doses,
            "lot_id": route.lot.id,
        },
        rec=stock.recorded("test", at, client_id),
    )
    uow.commit()
    return movement.shipment_id


def receive(uow: UnitOfWork, route: Route, shipment_id: int, at: dt.datetime, client_id: str):
    """The centre receives the shipment into its ILR; commits."""
    stock.receive_shipment(
        uow,
        store_id=route.centre.id,
        unit_id=route.centre_ilr.id,
        shipment_id=shipment_id,
        rec=stock.recorded("test", at, client_id),
    )
    uow.commit()


def freeze_on_the_road(start: dt.datetime) -> list:
    """The cold box's logger over a 4 h trip, one reading a minute: 90 min at +5 C, 40 min at
    -3 C (an unconditioned ice pack against the vials), then +5 C to the end."""
    return readings(start, (90, 5.0), (40, -3.0), (110, 5.0), sensor_id="CB-1-LOG")


def frozen_trip_received(runtime: Any, uow: UnitOfWork) -> tuple[Route, dt.datetime, int]:
    """300 doses issued in the cold box 8 h ago (t0), frozen on the road, received after 4 h;
    returns the route, t0 and the shipment's id."""
    route = make_route(uow, runtime.settings)
    t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=8)
    shipment_id = issue_in_box(uow, route, 300, t0, "issue-1")
    ingest(runtime, freeze_on_the_road(t0), t0 + dt.timedelta(hours=4))
    receive(uow, route, shipment_id, t0 + dt.timedelta(hours=4), "receipt-1")
    return route, t0, shipment_id
