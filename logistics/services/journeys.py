"""A lot's whole journey, and issues packed in carriers (issue 18).

These use cases sit above both the ledger and the carriers' monitoring: an issue in carriers is a
ledger issue (services/stock.py) plus the carriers' loads (services/transit.py), and a lot's
journey joins its stays in units (services/thermal.py) with its trips in carriers. Kept apart
from services/transit.py, which the ledger, the evaluation and the thermal history call into, so
that no service imports back the one that imports it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from logistics.config import Settings
from logistics.db import UnitOfWork
from logistics.domain import transit as rules
from logistics.domain.errors import Invalid
from logistics.models.alerts import Excursion
from logistics.models.catalog import StorageUnit
from logistics.models.stock import Movement, Shipment
from logistics.services import catalog, transit
from logistics.services.stock import issue_stock
from logistics.services.thermal import lot_stays


def issue_in_carriers(
    uow: UnitOfWork,
    *,
    carriers: Sequence[Mapping[str, Any]],
    issue: Mapping[str, Any],
    rec: Any,
) -> Movement:
    """Issue doses to a child store, packed in the named carriers; does not commit."""
    movement = issue_stock(uow, rec=rec, **issue)
    shipment = uow.session.get(Shipment, movement.shipment_id)
    assert shipment is not None
    transit.pack(uow, shipment, carriers, rec.actor, rec.recorded_at)
    return movement


def _trip_legs(
    uow: UnitOfWork, lot_id: int, start: dt.datetime, end: dt.datetime
) -> list[dict[str, Any]]:
    legs = []
    for line, shipment in transit.lot_shipments(uow, lot_id, start, end):
        frm = max(shipment.issued_at, start)
        to = min(shipment.received_at or end, end)
        base = {
            "kind": "trip",
            "from": frm,
            "to": to,
            "shipment_id": shipment.id,
            "from_store_id": shipment.from_store_id,
            "from_store_code": transit.store_code(uow, shipment.from_store_id),
            "to_store_id": shipment.to_store_id,
            "to_store_code": transit.store_code(uow, shipment.to_store_id),
            "store_id": shipment.from_store_id,
            "in_transit": shipment.status == "in_transit",
        }
        loads = transit.loads_of(uow, shipment.id, lot_id)
        if not loads:  # issued without naming a carrier: the trip is there, unmonitored
            legs.append(
                {
                    **base,
                    "unit_id": None,
                    "unit_code": None,
                    "unit_kind": None,
                    "doses": line.doses_issued,
                }
            )
        for load in loads:
            unit = uow.session.get(StorageUnit, load.carrier_unit_id)
            assert unit is not None
            legs.append(
                {
                    **base,
                    "unit_id": unit.id,
                    "unit_code": unit.code,
                    "unit_kind": unit.kind,
                    "doses": load.doses,
                }
            )
    return legs


def _stay_legs(
    uow: UnitOfWork, lot_id: int, start: dt.datetime, end: dt.datetime
) -> list[dict[str, Any]]:
    # lot_stays lists the trips in carriers too; here they are trip legs of their own.
    trips = {(u, max(a, start), min(b, end)) for u, a, b in transit.carrier_stays(uow, lot_id, end)}
    legs = []
    for unit_id, frm, to in lot_stays(uow, lot_id, start, end):
        if (unit_id, frm, to) in trips:
            continue
        unit = uow.session.get(StorageUnit, unit_id)
        assert unit is not None
        legs.append(
            {
                "kind": "stay",
                "from": frm,
                "to": to,
                "unit_id": unit.id,
                "unit_code": unit.code,
                "unit_kind": unit.kind,
                "store_id": unit.store_id,
                "store_code": transit.store_code(uow, unit.store_id),
            }
        )
    return legs


def lot_journey(
    uow: UnitOfWork, settings: Settings, *, lot_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """Every stay and trip of a lot over [start, end), each with MKT and minutes outside range.

    Minutes outside are counted against the product's storage range (the lot's own needs);
    times no leg covers are listed as gaps, and trips without a carrier as unmonitored legs.
    """
    if end <= start:
        raise Invalid("end must be after start", field="end")
    if end - start > dt.timedelta(days=400):
        raise Invalid("a range of at most 400 days", field="end")
    lot = catalog.get_lot(uow, lot_id)
    limits = (lot.product.min_temp_c, lot.product.max_temp_c)
    legs = sorted(
        _stay_legs(uow, lot_id, start, end) + _trip_legs(uow, lot_id, start, end),
        key=lambda leg: (leg["from"], leg["kind"] != "stay"),
    )
    figures = []
    for leg in legs:
        span = (leg["from"], leg["to"])
        leg.update(transit.leg_figures(uow, settings, leg["unit_id"], span, limits))
        leg["excursions"] = _leg_excursions(uow, leg)
        figures.append(
            rules.Leg(
                leg["kind"],
                leg["from"],
                leg["to"],
                leg["mkt_c"],
                leg["covered_min"],
                leg["minutes_outside"],
            )
        )
    return {
        "lot_id": lot.id,
        "lot_number": lot.lot_number,
        "start": start,
        "end": end,
        "min_temp_c": limits[0],
        "max_temp_c": limits[1],
        "legs": legs,
        "totals": rules.journey_totals(figures),
        "trips": rules.journey_totals([f for f in figures if f.kind == "trip"]),
        "gaps": [{"from": a, "to": b} for a, b in rules.gaps([(f.start, f.end) for f in figures])],
    }


def _leg_excursions(uow: UnitOfWork, leg: dict[str, Any]) -> list[Excursion]:
    if leg["unit_id"] is None:
        return []
    return list(
        uow.session.scalars(
            select(Excursion)
            .where(
                Excursion.unit_id == leg["unit_id"],
                Excursion.started_at < leg["to"],
                (Excursion.ended_at.is_(None)) | (Excursion.ended_at > leg["from"]),
            )
            .order_by(Excursion.started_at)
        )
    )


def journey_series(
    uow: UnitOfWork, journey: dict[str, Any], width_s: int
) -> list[dict[int, float]]:
    """Each leg's readings averaged per `width_s` bucket ({bucket start (epoch s): temp_c}).

    Legs without a carrier (unmonitored trips) have none.
    """
    out: list[dict[int, float]] = []
    for leg in journey["legs"]:
        sums: dict[int, list[float]] = {}
        if leg["unit_id"] is not None:
            for ts, temp in transit.unit_readings(uow, leg["unit_id"], leg["from"], leg["to"]):
                at = max(ts, leg["from"]).timestamp()
                sums.setdefault(int(at // width_s * width_s), []).append(temp)
        out.append({t: round(sum(v) / len(v), 2) for t, v in sums.items()})
    return out
