"""A small store network for ledger tests, built through the catalog services."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from logistics.clock import utcnow
from logistics.db import UnitOfWork
from logistics.services import catalog, stock

NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class Network:
    state: int
    district: int
    centre: int
    other_district: int
    state_ilr: int
    state_wic: int
    district_ilr: int
    centre_ilr: int
    covishield: int
    covaxin: int
    lot_early: int  # Covishield, expires first
    lot_late: int  # Covishield, expires later
    lot_covaxin: int


def build_network(uow: UnitOfWork, today: dt.date | None = None) -> Network:
    """State -> district -> centre (+ a 2nd district), ILRs, Covishield/Covaxin, three lots."""
    today = today or NOW.date()
    state = catalog.create_store(uow, code="SVS", name="State store", level_code="state")
    uow.commit()
    district = catalog.create_store(
        uow, code="DVS", name="District", level_code="district", parent_id=state.id
    )
    uow.commit()
    other = catalog.create_store(
        uow, code="DVS2", name="District 2", level_code="district", parent_id=state.id
    )
    uow.commit()
    centre = catalog.create_store(
        uow, code="PHC", name="Centre", level_code="centre", parent_id=district.id
    )
    uow.commit()
    units = {
        (s.id, code): catalog.create_unit(
            uow, store_id=s.id, code=code, kind=kind, min_temp_c=2, max_temp_c=8
        ).id
        for s, code, kind in (
            (state, "ILR-1", "ilr"),
            (state, "WIC-1", "walk_in_cooler"),
            (district, "ILR-1", "ilr"),
            (centre, "ILR-1", "ilr"),
        )
    }
    cs = catalog.create_product(
        uow,
        code="COVISHIELD",
        name="Covishield",
        doses_per_vial=10,
        min_temp_c=2,
        max_temp_c=8,
        gtin="08901234567890",
    )
    uow.commit()
    cx = catalog.create_product(
        uow, code="COVAXIN", name="Covaxin", doses_per_vial=20, min_temp_c=2, max_temp_c=8
    )
    uow.commit()

    def lot(product: int, number: str, days: int) -> int:
        return catalog.create_lot(
            uow,
            {
                "product_id": product,
                "lot_number": number,
                "manufacturer": "SII",
                "expiry_date": today + dt.timedelta(days),
            },
        ).id

    early, late, cx1 = lot(cs.id, "EARLY", 30), lot(cs.id, "LATE", 200), lot(cx.id, "CX1", 100)
    uow.commit()
    return Network(
        state.id,
        district.id,
        centre.id,
        other.id,
        units[(state.id, "ILR-1")],
        units[(state.id, "WIC-1")],
        units[(district.id, "ILR-1")],
        units[(centre.id, "ILR-1")],
        cs.id,
        cx.id,
        early,
        late,
        cx1,
    )


def rec(
    at: dt.datetime = NOW, client_id: str | None = None, now: dt.datetime | None = None
) -> stock.Recorded:
    """Who/when of a test movement (recorded now, or at `at` if the test clock is ahead)."""
    now = now or max(at, utcnow())
    return stock.recorded("tester", at, client_id or uuid.uuid4().hex, now=now)


def receive(
    uow: UnitOfWork,
    net: Network,
    unit: int,
    lot: int,
    doses: int,
    at: dt.datetime = NOW,
    store: int | None = None,
) -> None:
    """Receive doses from a supplier and commit."""
    stock.receive_stock(
        uow,
        store_id=store or net.state,
        unit_id=unit,
        doses=doses,
        rec=rec(at),
        lot={"lot_id": lot},
    )
    uow.commit()
