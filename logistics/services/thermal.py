"""Mean kinetic temperature (USP <1160>) of a unit, and a lot's thermal history across units."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from logistics.config import Settings
from logistics.db import UnitOfWork
from logistics.domain.errors import Invalid
from logistics.models.alerts import Excursion
from logistics.models.readings import Reading
from logistics.services.lookup import get_or_404
from logistics.services.temperature_rules import _unit

MINUTE = dt.timedelta(minutes=1)


# --- mean kinetic temperature and a lot's thermal history ---------------------------------------


def _check_span(start: dt.datetime, end: dt.datetime) -> None:
    if end <= start:
        raise Invalid("end must be after start", field="end")
    if end - start > dt.timedelta(days=400):
        raise Invalid("a range of at most 400 days", field="end")


def _unit_mkt(
    uow: UnitOfWork, settings: Settings, unit_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    from logistics.domain.mkt import mean_kinetic_temperature, mkt_of_sums, reading_weights
    from logistics.services.readings import unit_kinetic_sum

    # Long ranges: the same sums from the hourly aggregates (issue 14: 30 days is 43,200 readings).
    sums = None
    if end - start > dt.timedelta(days=settings.readings_aggregate_after_days):
        sums = unit_kinetic_sum(uow, unit_id, start, end, settings.alerts_max_gap_min * MINUTE)
    if sums is not None:
        return {
            "mkt_c": _round(mkt_of_sums(sums.kinetic_s, sums.covered_s)),
            "readings": sums.readings,
            "covered_min": round(sums.covered_s / 60, 1),
            "range_min": round((end - start).total_seconds() / 60, 1),
        }
    # The reading just before the range stands for the range's first minutes.
    before = uow.session.scalar(
        select(func.max(Reading.ts)).where(Reading.unit_id == unit_id, Reading.ts < start)
    )
    lower = before if before is not None else start
    rows = list(
        uow.session.execute(
            select(Reading.ts, Reading.temp_c)
            .where(Reading.unit_id == unit_id, Reading.ts >= lower, Reading.ts < end)
            .order_by(Reading.ts)
        )
    )
    times, temps = [r[0] for r in rows], [r[1] for r in rows]
    weights = reading_weights(times, start, end, settings.alerts_max_gap_min * MINUTE)
    covered = sum(weights)
    return {
        "mkt_c": _round(mean_kinetic_temperature(temps, weights)),
        "readings": len(rows),
        "covered_min": round(covered / 60, 1),
        "range_min": round((end - start).total_seconds() / 60, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def unit_mkt(
    uow: UnitOfWork, settings: Settings, *, unit_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """MKT (USP <1160>) of a unit over [start, end), each reading weighted by its time."""
    _check_span(start, end)
    _unit(uow, unit_id)
    return {
        "unit_id": unit_id,
        "start": start,
        "end": end,
        **_unit_mkt(uow, settings, unit_id, start, end),
    }


def lot_stays(
    uow: UnitOfWork, lot_id: int, start: dt.datetime, end: dt.datetime
) -> list[tuple[int, dt.datetime, dt.datetime]]:
    """Where the lot sat: (unit, from, to) spans with doses on hand, from the ledger's entries."""
    from logistics.models.stock import LedgerEntry

    entries = uow.session.execute(
        select(LedgerEntry.unit_id, LedgerEntry.occurred_at, LedgerEntry.doses)
        .where(LedgerEntry.lot_id == lot_id)
        .order_by(LedgerEntry.unit_id, LedgerEntry.occurred_at, LedgerEntry.id)
    )
    stays: list[tuple[int, dt.datetime, dt.datetime]] = []
    balance: dict[int, int] = {}
    since: dict[int, dt.datetime] = {}
    for unit_id, at, doses in entries:
        before = balance.get(unit_id, 0)
        balance[unit_id] = before + doses
        if before <= 0 < balance[unit_id]:
            since[unit_id] = at
        elif before > 0 >= balance[unit_id]:
            stays.append((unit_id, since.pop(unit_id), at))
    stays.extend((unit_id, at, end) for unit_id, at in since.items())
    # Vaccines in transit (issue 18): trips in carriers are stays too, so no trip is a blank.
    from logistics.services import transit

    stays.extend(transit.carrier_stays(uow, lot_id, end))
    clipped = [(u, max(a, start), min(b, end)) for u, a, b in stays if b > start and a < end]
    return sorted(clipped, key=lambda stay: stay[1])


def lot_thermal_history(
    uow: UnitOfWork, settings: Settings, *, lot_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """Every unit (and store) the lot sat in, every excursion it sat through there, and its MKT."""
    from logistics.domain.mkt import mean_kinetic_temperature
    from logistics.models.catalog import Lot as LotModel

    _check_span(start, end)
    lot = get_or_404(uow, LotModel, lot_id, f"lot {lot_id} does not exist")
    stays, temps, weights = [], [], []
    for unit_id, frm, to in lot_stays(uow, lot_id, start, end):
        unit = _unit(uow, unit_id)
        excursions = list(
            uow.session.scalars(
                select(Excursion)
                .where(
                    Excursion.unit_id == unit_id,
                    Excursion.started_at < to,
                    (Excursion.ended_at.is_(None)) | (Excursion.ended_at > frm),
                )
                .order_by(Excursion.started_at)
            )
        )
        mkt = _unit_mkt(uow, settings, unit_id, frm, to)
        if mkt["mkt_c"] is not None:
            temps.append(mkt["mkt_c"])
            weights.append(mkt["covered_min"])
        stays.append(
            {
                "unit_id": unit_id,
                "unit_code": unit.code,
                "store_id": unit.store_id,
                "from": frm,
                "to": to,
                "mkt_c": mkt["mkt_c"],
                "excursions": excursions,
            }
        )
    # The lot's MKT combines the stays' MKTs weighted by covered time (MKT of MKTs is exact:
    # each stay's MKT is the temperature giving that stay's mean Arrhenius factor).
    return {
        "lot_id": lot_id,
        "lot_number": lot.lot_number,
        "start": start,
        "end": end,
        "mkt_c": _round(mean_kinetic_temperature(temps, weights)),
        "stays": stays,
    }
