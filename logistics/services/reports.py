"""Use cases of the monthly paperwork: the stock report of a store (or subtree) and the
temperature log of a unit, with the officer's monthly sign-off.

Every stock figure is a sum of ledger entries by when the stock really moved (`occurred_at`), so
a movement synced late from an offline app lands in the month it happened in. Readings are read
in one function (`month_points`), so stored aggregates can replace raw readings there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from logistics.config import Settings
from logistics.db import UnitOfWork
from logistics.domain import reports as rules
from logistics.domain.errors import Conflict
from logistics.domain.stock import WASTAGE
from logistics.models.alerts import Excursion, QuarantineReview
from logistics.models.catalog import Lot, Product, StorageUnit, Store
from logistics.models.paperwork import TemperatureLogSignoff
from logistics.models.readings import Reading
from logistics.models.stock import LedgerEntry, Movement
from logistics.services import catalog, excursions, thermal
from logistics.services.lookup import in_subtree

# Wastage recorded by a quarantine review's discard carries this client id prefix
# (logistics/services/quarantine.py, discard_review).
REVIEW_DISCARD_PREFIX = "quarantine-review-"
Key = tuple[int, int]  # (store id, product id)


@dataclasses.dataclass(frozen=True)
class ReportLine:
    """The month of one product at one store (or, in totals, over the subtree)."""

    store: Store | None
    product: Product
    figures: rules.StockFigures


@dataclasses.dataclass(frozen=True)
class StockReport:
    """A monthly stock report: a line per store and product, and totals per product."""

    store: Store
    month: dt.date
    subtree: bool
    start: dt.datetime
    end: dt.datetime
    period_days: float
    generated_at: dt.datetime
    lines: list[ReportLine]
    totals: list[ReportLine]


def _scope(store: Store, subtree: bool) -> Any:
    """The ids of the stores reported on, as a subquery (a state's subtree has thousands)."""
    if not subtree:
        return select(Store.id).where(Store.id == store.id)
    return select(Store.id).where(in_subtree(Store.path, store.path))


def _stores(uow: UnitOfWork, ids: Iterable[int]) -> dict[int, Store]:
    ids = set(ids)
    return {s.id: s for s in uow.session.scalars(select(Store).where(Store.id.in_(ids)))}


def _entries(store_ids: Any, product_id: int | None) -> Any:
    query = (
        select(LedgerEntry.store_id, Lot.product_id)
        .join(Lot, Lot.id == LedgerEntry.lot_id)
        .where(LedgerEntry.store_id.in_(store_ids))
    )
    return query if product_id is None else query.where(Lot.product_id == product_id)


def _balances_before(
    uow: UnitOfWork, store_ids: Any, product_id: int | None, at: dt.datetime
) -> dict[Key, int]:
    query = (
        _entries(store_ids, product_id)
        .add_columns(func.sum(LedgerEntry.doses))
        .where(LedgerEntry.occurred_at < at)
        .group_by(LedgerEntry.store_id, Lot.product_id)
    )
    return {(s, p): int(total) for s, p, total in uow.session.execute(query).tuples().all()}


def _flows(
    uow: UnitOfWork,
    store_ids: Any,
    product_id: int | None,
    start: dt.datetime,
    end: dt.datetime,
) -> dict[Key, list[rules.Flow]]:
    """The month's signed doses per kind (and wastage reason); a reversal counts as its original."""
    original = aliased(Movement)
    reversal = Movement.kind == "reversal"
    kind = case((reversal, original.kind), else_=Movement.kind)
    reason = case((reversal, original.reason), else_=Movement.reason)
    query = (
        _entries(store_ids, product_id)
        .add_columns(kind, reason, func.sum(LedgerEntry.doses))
        .join(Movement, Movement.id == LedgerEntry.movement_id)
        .outerjoin(original, original.id == Movement.reverses_id)
        .where(LedgerEntry.occurred_at >= start, LedgerEntry.occurred_at < end)
        .group_by(LedgerEntry.store_id, Lot.product_id, kind, reason)
    )
    flows: dict[Key, list[rules.Flow]] = {}
    for store_id, prod, kind_, reason_, total in uow.session.execute(query).tuples().all():
        flows.setdefault((store_id, prod), []).append(rules.Flow(kind_, reason_, int(total)))
    return flows


def _review_doses(
    uow: UnitOfWork,
    store_ids: Any,
    product_id: int | None,
    column: Any,
    start: dt.datetime,
    end: dt.datetime,
    state: str | None = None,
) -> dict[Key, int]:
    query = (
        select(QuarantineReview.store_id, Lot.product_id, func.sum(QuarantineReview.doses))
        .join(Lot, Lot.id == QuarantineReview.lot_id)
        .where(QuarantineReview.store_id.in_(store_ids), column >= start, column < end)
        .group_by(QuarantineReview.store_id, Lot.product_id)
    )
    if state is not None:
        query = query.where(QuarantineReview.state == state)
    if product_id is not None:
        query = query.where(Lot.product_id == product_id)
    return {(s, p): int(d) for s, p, d in uow.session.execute(query).all()}


def _discarded_after_excursions(
    uow: UnitOfWork,
    store_ids: Any,
    product_id: int | None,
    start: dt.datetime,
    end: dt.datetime,
) -> dict[Key, int]:
    """Doses the ledger wrote off through quarantine reviews (net of any reversal)."""
    query = (
        _entries(store_ids, product_id)
        .add_columns(func.sum(LedgerEntry.doses))
        .join(Movement, Movement.id == LedgerEntry.movement_id)
        .where(
            Movement.kind == WASTAGE,
            Movement.client_id.startswith(REVIEW_DISCARD_PREFIX, autoescape=True),
            LedgerEntry.occurred_at >= start,
            LedgerEntry.occurred_at < end,
        )
        .group_by(LedgerEntry.store_id, Lot.product_id)
    )
    return {(s, p): -int(d) for s, p, d in uow.session.execute(query).tuples().all()}


def _excursion_figures(
    uow: UnitOfWork,
    store_ids: Any,
    product_id: int | None,
    start: dt.datetime,
    end: dt.datetime,
) -> dict[Key, rules.Excursions]:
    held = _review_doses(uow, store_ids, product_id, QuarantineReview.created_at, start, end)
    released = _review_doses(
        uow, store_ids, product_id, QuarantineReview.decided_at, start, end, "released"
    )
    discarded = _discarded_after_excursions(uow, store_ids, product_id, start, end)
    return {
        key: rules.Excursions(held.get(key, 0), released.get(key, 0), discarded.get(key, 0))
        for key in set(held) | set(released) | set(discarded)
    }


def _keys(store: Store, product_id: int | None, *maps: dict[Key, Any]) -> list[Key]:
    keys = {key for m in maps for key, value in m.items() if value}
    if product_id is not None:
        keys.add((store.id, product_id))
    return sorted(keys)


def _products(uow: UnitOfWork, ids: Iterable[int]) -> dict[int, Product]:
    ids = set(ids)
    if not ids:
        return {}
    return {p.id: p for p in uow.session.scalars(select(Product).where(Product.id.in_(ids)))}


def monthly_stock_report(
    uow: UnitOfWork,
    *,
    store_id: int,
    month: dt.date,
    product_id: int | None = None,
    subtree: bool = False,
    timezone: str,
    now: dt.datetime,
) -> StockReport:
    """The month's stock report of a store (or its subtree), per product, from the ledger."""
    store = catalog.get_store(uow, store_id)
    if product_id is not None:
        catalog.get_product(uow, product_id)
    start, end = rules.month_bounds(month, timezone)
    if start > now:
        raise Conflict(f"{month:%Y-%m} has not started yet", field="month")
    ids = _scope(store, subtree)
    opening = _balances_before(uow, ids, product_id, start)
    flows = _flows(uow, ids, product_id, start, end)
    held = _excursion_figures(uow, ids, product_id, start, end)
    period = rules.elapsed_days(start, end, now)
    keys = _keys(store, product_id, opening, flows, held)
    products = _products(uow, (p for _, p in keys))
    stores = _stores(uow, (s for s, _ in keys))
    lines = [
        ReportLine(
            stores[s],
            products[p],
            rules.stock_figures(
                opening.get((s, p), 0),
                flows.get((s, p), []),
                held.get((s, p), rules.Excursions()),
                period,
            ),
        )
        for s, p in sorted(keys, key=lambda k: (stores[k[0]].path, products[k[1]].code))
    ]
    return StockReport(
        store, month, subtree, start, end, period, now, lines, _totals(lines, period)
    )


def _totals(lines: list[ReportLine], period_days: float) -> list[ReportLine]:
    by_product: dict[int, list[ReportLine]] = {}
    for line in lines:
        by_product.setdefault(line.product.id, []).append(line)
    return [
        ReportLine(
            None, group[0].product, rules.add_figures([g.figures for g in group], period_days)
        )
        for _, group in sorted(by_product.items(), key=lambda item: item[1][0].product.code)
    ]


# --- temperature log ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExcursionEntry:
    """An excursion of the month with the reviews of the doses it held."""

    excursion: Excursion
    reviews: list[QuarantineReview]


@dataclasses.dataclass(frozen=True)
class TemperatureLog:
    """One unit's month: daily min/max, times outside, excursions and reviews, MKT, sign-off."""

    unit: StorageUnit
    store: Store
    month: dt.date
    start: dt.datetime
    end: dt.datetime
    days: list[rules.DayLog]
    outside: list[rules.OutsideSpan]
    excursions: list[ExcursionEntry]
    mkt: dict[str, Any]
    signoff: TemperatureLogSignoff | None
    generated_at: dt.datetime


def month_points(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, float]]:
    """(ts, temp_c) of a unit's readings over [start, end), oldest first.

    The one place the temperature log reads readings: plain tuples, not ORM rows (a month at a
    reading a minute is 44,640 of them). Stored aggregates (issue 16) can replace it here.
    """
    query = (
        select(Reading.ts, Reading.temp_c)
        .where(Reading.unit_id == unit_id, Reading.ts >= start, Reading.ts < end)
        .order_by(Reading.ts, Reading.sensor_id)
    )
    return [(ts, temp) for ts, temp in uow.session.execute(query).all()]


def _excursion_entries(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime
) -> list[ExcursionEntry]:
    found = excursions.list_excursions(
        uow,
        store_path=None,
        unit_id=unit_id,
        kind=None,
        open_only=False,
        since=start,
        until=end,
        limit=1000,
    )
    found.sort(key=lambda e: (e.started_at, e.kind))
    reviews: dict[int, list[QuarantineReview]] = {}
    if found:
        query = (
            select(QuarantineReview)
            .where(QuarantineReview.excursion_id.in_([e.id for e in found]))
            .order_by(QuarantineReview.id)
        )
        for review in uow.session.scalars(query):
            reviews.setdefault(review.excursion_id, []).append(review)
    return [ExcursionEntry(e, reviews.get(e.id, [])) for e in found]


def _signoff(uow: UnitOfWork, unit_id: int, month: dt.date) -> TemperatureLogSignoff | None:
    query = select(TemperatureLogSignoff).where(
        TemperatureLogSignoff.unit_id == unit_id, TemperatureLogSignoff.month == month
    )
    return uow.session.scalars(query).first()


def temperature_log(
    uow: UnitOfWork, settings: Settings, *, unit_id: int, month: dt.date, now: dt.datetime
) -> TemperatureLog:
    """A unit's temperature log for a month, in the site's calendar days."""
    unit = catalog.get_unit(uow, unit_id)
    start, end = rules.month_bounds(month, settings.site_timezone)
    if start > now:
        raise Conflict(f"{month:%Y-%m} has not started yet", field="month")
    until = min(end, now)
    points = month_points(uow, unit_id, start, until)
    gap = dt.timedelta(minutes=settings.alerts_max_gap_min)
    spans = rules.outside_spans(points, unit.min_temp_c, unit.max_temp_c, until, gap)
    return TemperatureLog(
        unit=unit,
        store=unit.store,
        month=month,
        start=start,
        end=end,
        days=rules.daily_log(points, spans, month, settings.site_timezone),
        outside=spans,
        excursions=_excursion_entries(uow, unit_id, start, end),
        mkt=thermal.unit_mkt(uow, settings, unit_id=unit_id, start=start, end=until),
        signoff=_signoff(uow, unit_id, month),
        generated_at=now,
    )


def sign_off_temperature_log(
    uow: UnitOfWork,
    *,
    unit_id: int,
    month: dt.date,
    actor: str,
    comment: str | None,
    timezone: str,
    now: dt.datetime,
) -> TemperatureLogSignoff:
    """The officer signs a unit's month off: once, and only after the month has ended."""
    catalog.get_unit(uow, unit_id)
    _, end = rules.month_bounds(month, timezone)
    if now < end:
        raise Conflict(f"{month:%Y-%m} is not over yet; sign it off after it ends", field="month")
    if _signoff(uow, unit_id, month) is not None:
        raise Conflict(f"the log of {month:%Y-%m} is already signed off", field="month")
    signoff = TemperatureLogSignoff(
        unit_id=unit_id, month=month, signed_by=actor, signed_at=now, comment=comment
    )
    uow.session.add(signoff)
    try:
        uow.session.flush()
    except IntegrityError as exc:  # signed by someone else at the same moment
        raise Conflict(f"the log of {month:%Y-%m} is already signed off", field="month") from exc
    return signoff


# --- plain rows for JSON, CSV and PDF -----------------------------------------------------------


def figures_row(figures: rules.StockFigures) -> dict[str, Any]:
    """The figures of a report line as one flat record."""
    return {
        "opening_doses": figures.opening_doses,
        "receipts_doses": figures.receipts_doses,
        "issues_doses": figures.issues_doses,
        "consumption_doses": figures.consumption_doses,
        "wastage_doses": figures.wastage_doses,
        "wastage_by_reason": dict(figures.wastage_by_reason),
        "adjustments_doses": figures.adjustments_doses,
        "transfers_doses": figures.transfers_doses,
        "closing_doses": figures.closing_doses,
        "held_after_excursions_doses": figures.excursions.held_doses,
        "released_after_excursions_doses": figures.excursions.released_doses,
        "discarded_after_excursions_doses": figures.excursions.discarded_doses,
        "wastage_rate_pct": figures.wastage_rate_pct,
        "open_vial_wastage_doses": figures.open_vial_wastage_doses,
        "daily_consumption_doses": figures.daily_consumption_doses,
        "days_of_stock": figures.days_of_stock,
    }


def line_row(line: ReportLine) -> dict[str, Any]:
    """A report line: who, what, and its figures (closing vials shown next to doses)."""
    store = line.store
    return {
        "store_id": store.id if store else None,
        "store_code": store.code if store else None,
        "store_name": store.name if store else None,
        "product_id": line.product.id,
        "product_code": line.product.code,
        "product_name": line.product.name,
        "doses_per_vial": line.product.doses_per_vial,
        **figures_row(line.figures),
        "closing_vials": round(line.figures.closing_doses / line.product.doses_per_vial, 2),
    }


def stock_report_document(report: StockReport) -> dict[str, Any]:
    """The whole report as plain data (the JSON answer; CSV and PDF are drawn from it)."""
    return {
        "store": {"id": report.store.id, "code": report.store.code, "name": report.store.name},
        "month": f"{report.month:%Y-%m}",
        "subtree": report.subtree,
        "start": report.start,
        "end": report.end,
        "period_days": round(report.period_days, 2),
        "generated_at": report.generated_at,
        "lines": [line_row(line) for line in report.lines],
        "totals": [line_row(line) for line in report.totals],
    }


def consumed_doses(
    uow: UnitOfWork, store_id: int, product_id: int, start: dt.datetime, end: dt.datetime
) -> int:
    """Doses given at a store over [start, end), reversals netted (the ledger's consumption)."""
    scope = select(Store.id).where(Store.id == store_id)
    flows = _flows(uow, scope, product_id, start, end).get((store_id, product_id), [])
    return -sum(flow.doses for flow in flows if flow.kind == "consumption")
