"""Temperature monitoring: evaluate units as readings arrive, rules, quarantine reviews, MKT.

Evaluation re-reads a unit's readings from the database over the span that can still change
(so late and out-of-order readings, and one sensor's readings spread over several ingestion
processes, give the same result), holding the unit's state row locked (SELECT ... FOR UPDATE on
PostgreSQL) so two processes never evaluate one unit at the same time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update

from logistics.config import Settings
from logistics.db import UnitOfWork, insert_for, is_postgres
from logistics.domain.excursions import Finding, Rule, RuleSet, Sample, default_rules, detect
from logistics.errors import Conflict, Invalid, NotFound
from logistics.models.alerts import (
    Excursion,
    QuarantineReview,
    TemperatureRule,
    TemperatureRuleSet,
    UnitMonitorState,
)
from logistics.models.catalog import Lot, Product, StorageUnit
from logistics.models.readings import Reading
from logistics.models.stock import StockBalance
from logistics.runtime import Runtime
from logistics.services import holds
from logistics.services.alerts import check_sensors, clear_alert, raise_alert

log = logging.getLogger(__name__)
Touched = tuple[int, dt.datetime, dt.datetime]
MINUTE = dt.timedelta(minutes=1)
# How far back evaluation looks for the last reading in range before the changed span; beyond
# this an excursion is taken as starting at the first reading loaded.
MAX_LOOKBACK = dt.timedelta(days=7)
SEVERITY = {"warning": "warning", "alarm": "alarm"}
KIND_WORDS = {
    "heat_warning": "heat warning",
    "heat_alarm": "heat alarm",
    "cold_warning": "cold warning",
    "cold_alarm": "freeze alarm",
}


# --- rules -------------------------------------------------------------------------------------


def _rule_set_from_row(row: TemperatureRuleSet) -> RuleSet:
    rules = tuple(
        Rule(
            r.side,
            r.level,
            r.limit_c,
            r.mode,
            r.duration_min * MINUTE,  # type: ignore[arg-type]
            r.window_min * MINUTE if r.window_min else None,
        )
        for r in row.rules
    )
    return RuleSet(row.min_temp_c, row.max_temp_c, rules)


def _defaults(settings: Settings, min_c: float, max_c: float) -> RuleSet:
    return default_rules(
        min_c,
        max_c,
        freeze_limit_c=settings.alerts_freeze_limit_c,
        heat_warning_min=settings.alerts_heat_warning_min,
        heat_alarm_min=settings.alerts_heat_alarm_min,
        cold_warning_min=settings.alerts_cold_warning_min,
        cold_alarm_min=settings.alerts_cold_alarm_min,
    )


def product_rules(uow: UnitOfWork, settings: Settings, product: Product) -> RuleSet:
    """A product's rules: its own rule set, else the defaults on its storage range."""
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(TemperatureRuleSet.product_id == product.id)
    ).first()
    return (
        _rule_set_from_row(row)
        if row
        else _defaults(settings, product.min_temp_c, product.max_temp_c)
    )


def _stricter(a: Rule, b: Rule) -> Rule:
    """The rule that fires first: the tighter limit, then the shorter duration."""
    tighter = (a.limit_c < b.limit_c) if a.side == "heat" else (a.limit_c > b.limit_c)
    if a.limit_c != b.limit_c:
        return a if tighter else b
    return a if a.duration <= b.duration else b


def _merge(sets: Sequence[RuleSet]) -> RuleSet:
    by_kind: dict[str, Rule] = {}
    for rule_set in sets:
        for rule in rule_set.rules:
            by_kind[rule.kind] = (
                _stricter(by_kind[rule.kind], rule) if rule.kind in by_kind else rule
            )
    return RuleSet(
        max(s.min_temp_c for s in sets), min(s.max_temp_c for s in sets), tuple(by_kind.values())
    )


def unit_rules(uow: UnitOfWork, settings: Settings, unit: StorageUnit) -> tuple[RuleSet, str]:
    """The rules in force for a unit and where they come from (unit override, products, defaults).

    Without an override, a unit holding several products follows, per stage, the strictest of
    their rules: the most sensitive vaccine in the unit decides.
    """
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(TemperatureRuleSet.unit_id == unit.id)
    ).first()
    if row:
        return _rule_set_from_row(row), "unit"
    products = list(
        uow.session.scalars(
            select(Product)
            .join(Lot, Lot.product_id == Product.id)
            .join(StockBalance, StockBalance.lot_id == Lot.id)
            .where(StockBalance.unit_id == unit.id, StockBalance.doses > 0)
            .distinct()
        )
    )
    if products:
        return _merge([product_rules(uow, settings, p) for p in products]), "products"
    return _defaults(settings, unit.min_temp_c, unit.max_temp_c), "defaults"


@dataclasses.dataclass(frozen=True)
class RuleInput:
    """One stage as sent by a client."""

    side: str
    level: str
    limit_c: float
    mode: str
    duration_min: int
    window_min: int | None = None


def _check_rules(min_c: float, max_c: float, rules: Sequence[RuleInput]) -> None:
    if min_c >= max_c:
        raise Invalid("min_temp_c must be below max_temp_c", field="min_temp_c")
    seen = set()
    for rule in rules:
        if (rule.side, rule.level) in seen:
            raise Invalid(f"two {rule.side} {rule.level} rules", field="rules")
        seen.add((rule.side, rule.level))
        if rule.mode == "cumulative" and (rule.window_min or 0) < rule.duration_min:
            raise Invalid(
                "a cumulative rule needs a window at least as long as its duration", field="rules"
            )


def set_rules(
    uow: UnitOfWork,
    *,
    product_id: int | None = None,
    unit_id: int | None = None,
    min_temp_c: float,
    max_temp_c: float,
    rules: Sequence[RuleInput],
    actor: str,
    now: dt.datetime,
) -> TemperatureRuleSet:
    """Replace the rules of a product, or the override of a unit."""
    model = Product if product_id is not None else StorageUnit
    if uow.session.get(model, product_id if product_id is not None else unit_id) is None:
        raise NotFound(f"{model.__name__.lower()} does not exist")
    _check_rules(min_temp_c, max_temp_c, rules)
    column = TemperatureRuleSet.product_id if product_id is not None else TemperatureRuleSet.unit_id
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(column == (product_id or unit_id))
    ).first()
    if row is None:
        row = TemperatureRuleSet(
            product_id=product_id,
            unit_id=unit_id,
            min_temp_c=min_temp_c,
            max_temp_c=max_temp_c,
            updated_at=now,
            updated_by=actor,
        )
        uow.session.add(row)
    row.min_temp_c, row.max_temp_c, row.updated_at, row.updated_by = (
        min_temp_c,
        max_temp_c,
        now,
        actor,
    )
    # The old stages go first, each deleted explicitly (and so audited), and are flushed before
    # the new ones: otherwise one flush would insert a new (side, level) beside its old twin.
    with uow.session.no_autoflush:
        for old in list(row.rules):
            row.rules.remove(old)
            uow.session.delete(old)
    uow.session.flush()
    row.rules = [TemperatureRule(**dataclasses.asdict(rule)) for rule in rules]
    # Limits learnt under the old rules no longer hold: the next readings get a full evaluation.
    uow.session.execute(update(UnitMonitorState).values(calm_checked_at=None))
    uow.commit()
    return row


def delete_unit_rules(uow: UnitOfWork, *, unit_id: int) -> None:
    """Drop a unit's override: it follows its products' rules again."""
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(TemperatureRuleSet.unit_id == unit_id)
    ).first()
    if row is None:
        raise NotFound(f"unit {unit_id} has no rule override")
    uow.session.delete(row)
    uow.commit()


def rules_of_product(uow: UnitOfWork, settings: Settings, product_id: int) -> tuple[RuleSet, str]:
    """A product's rules and whether they are its own or the defaults."""
    product = uow.session.get(Product, product_id)
    if product is None:
        raise NotFound(f"product {product_id} does not exist")
    own = uow.session.scalars(
        select(TemperatureRuleSet.id).where(TemperatureRuleSet.product_id == product_id)
    ).first()
    return product_rules(uow, settings, product), "product" if own else "defaults"


def rules_of_unit(uow: UnitOfWork, settings: Settings, unit_id: int) -> tuple[RuleSet, str]:
    """The rules in force for a unit and their source."""
    return unit_rules(uow, settings, _unit(uow, unit_id))


def _unit(uow: UnitOfWork, unit_id: int) -> StorageUnit:
    unit = uow.session.get(StorageUnit, unit_id)
    if unit is None:
        raise NotFound(f"storage unit {unit_id} does not exist")
    return unit


# --- evaluation ----------------------------------------------------------------------------------


def evaluate_units(
    runtime: Runtime, touched: Iterable[Touched], now: dt.datetime, failed: set[int] | None = None
) -> int:
    """Re-evaluate every touched unit, each in its own transaction; return how many were evaluated.

    Called by the ingestion after each committed batch (touched = (unit_id, earliest_ts, latest_ts))
    and by the scheduler. A failure on one unit is logged (and added to `failed`, so the caller
    can retry it) and does not stop the others.
    """
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for unit_id, low, high in touched:
        old = spans.get(unit_id, (low, high))
        spans[unit_id] = (min(old[0], low), max(old[1], high))
    if not spans:
        return 0
    try:
        calm = _settle_calm_units(runtime, spans, now)
    except Exception:
        log.exception("fast path failed; evaluating every touched unit in full")
        calm = set()
    done = len(calm)
    for unit_id, (low, _high) in sorted(spans.items()):
        if unit_id in calm:
            continue
        try:
            with runtime.uow() as uow:
                evaluate_unit(uow, runtime.settings, unit_id, low, now)
                uow.commit()
            done += 1
        except Exception:
            log.exception("evaluating unit %s failed; it will be retried", unit_id)
            if failed is not None:
                failed.add(unit_id)
    return done


# Limits learnt by a full evaluation are trusted this long (rules or a unit's products may change).
CALM_TTL = dt.timedelta(minutes=10)


def _settle_calm_units(
    runtime: Runtime, spans: dict[int, tuple[dt.datetime, dt.datetime]], now: dt.datetime
) -> set[int]:
    """Settle, in one transaction, the touched units whose new readings cannot change anything.

    A unit is calm when its last full evaluation (under CALM_TTL ago) left no open excursion, no
    reading outside the innermost limits within reach of the new readings, and the new readings
    all lie strictly inside those limits. The state rows are locked (in unit order, so batches
    never deadlock) exactly as a full evaluation locks them, so the two never race.
    """
    unit_ids = sorted(spans)
    with runtime.uow() as uow:
        states = _lock_states(uow, unit_ids)
        lo, hi = min(low for low, _ in spans.values()), max(high for _, high in spans.values())
        extremes = {
            u: (mn, mx)
            for u, mn, mx in uow.session.execute(
                select(Reading.unit_id, func.min(Reading.temp_c), func.max(Reading.temp_c))
                .where(Reading.unit_id.in_(unit_ids), Reading.ts >= lo, Reading.ts <= hi)
                .group_by(Reading.unit_id)
            )
        }
        calm = {u for u in unit_ids if _is_calm(states[u], spans[u][0], extremes.get(u), now)}
        for unit_id in calm:
            state = states[unit_id]
            state.evaluated_at, state.evaluations = now, state.evaluations + 1
            state.last_reading_ts = max(filter(None, [state.last_reading_ts, spans[unit_id][1]]))
        if calm:
            s = runtime.settings
            check_sensors(
                uow,
                silence_factor=s.alerts_silence_factor,
                low_battery_pct=s.alerts_low_battery_pct,
                power_failure_alarm_min=s.alerts_power_failure_alarm_min,
                now=now,
                unit_ids=sorted(calm),
            )
        uow.commit()
    return calm


def _is_calm(
    state: UnitMonitorState,
    earliest: dt.datetime,
    extremes: tuple[float, float] | None,
    now: dt.datetime,
) -> bool:
    if state.calm_low_c is None or state.calm_high_c is None or state.calm_span_s is None:
        return False
    if (
        state.calm_checked_at is None
        or now - state.calm_checked_at > CALM_TTL
        or state.open_excursions
    ):
        return False
    reach = _earlier(earliest, dt.timedelta(seconds=state.calm_span_s))
    if state.last_outside_ts is not None and state.last_outside_ts >= reach:
        return False
    return (
        extremes is not None and state.calm_low_c < extremes[0] and extremes[1] < state.calm_high_c
    )


def _lock_states(uow: UnitOfWork, unit_ids: list[int]) -> dict[int, UnitMonitorState]:
    insert = insert_for(uow.session)
    uow.session.execute(
        insert(UnitMonitorState)
        .values(
            [
                {"unit_id": u, "evaluations": 0, "open_excursions": 0, "full_evaluations": 0}
                for u in unit_ids
            ]
        )
        .on_conflict_do_nothing(index_elements=["unit_id"])
    )
    query = (
        select(UnitMonitorState)
        .where(UnitMonitorState.unit_id.in_(unit_ids))
        .order_by(UnitMonitorState.unit_id)
    )
    if is_postgres(uow.session):
        query = query.with_for_update()
    return {
        s.unit_id: s for s in uow.session.scalars(query.execution_options(populate_existing=True))
    }


def _lock_state(uow: UnitOfWork, unit_id: int) -> UnitMonitorState:
    insert = insert_for(uow.session)
    uow.session.execute(
        insert(UnitMonitorState)
        .values(unit_id=unit_id, evaluations=0, open_excursions=0, full_evaluations=0)
        .on_conflict_do_nothing(index_elements=["unit_id"])
    )
    query = select(UnitMonitorState).where(UnitMonitorState.unit_id == unit_id)
    if is_postgres(uow.session):
        query = query.with_for_update()
    return uow.session.scalars(query.execution_options(populate_existing=True)).one()


def _evaluation_start(
    uow: UnitOfWork, unit_id: int, rules: RuleSet, earliest: dt.datetime, max_gap: dt.timedelta
) -> dt.datetime:
    """Where re-reading must start so every excursion the changed span can touch is recomputed."""
    since = _earlier(earliest, rules.longest_span() + max_gap)
    stored = uow.session.scalar(
        select(func.min(Excursion.started_at)).where(
            Excursion.unit_id == unit_id,
            (Excursion.ended_at.is_(None)) | (Excursion.ended_at >= since),
        )
    )
    if stored is not None:
        since = min(since, stored)
    # Start, for every logger, from one of its readings inside every limit, so no logger's
    # episode is cut at its beginning (each logger's series is evaluated on its own).
    low, high = _innermost(rules)
    calm = uow.session.execute(
        select(Reading.sensor_id, func.max(Reading.ts))
        .where(
            Reading.unit_id == unit_id,
            Reading.ts <= since,
            Reading.ts >= _earlier(since, MAX_LOOKBACK),
            Reading.temp_c > low,
            Reading.temp_c < high,
        )
        .group_by(Reading.sensor_id)
    )
    return min([since, *(ts for _sensor, ts in calm)])


def _findings_per_logger(
    samples: dict[str, list[Sample]], rules: RuleSet, now: dt.datetime, max_gap: dt.timedelta
) -> list[tuple[str, Finding]]:
    """Each logger's series on its own (issue 11): a unit is in excursion when any logger is.

    Interleaving two loggers' readings would hide a freezing logger next to a healthy one (every
    interval would have one end in range), so a unit's loggers are never mixed.
    """
    return [
        (sensor_id, finding)
        for sensor_id, series in sorted(samples.items())
        for finding in detect(series, rules, now, max_gap)
    ]


def _earlier(ts: dt.datetime, span: dt.timedelta) -> dt.datetime:
    """ts - span, stopping at the first representable instant instead of raising OverflowError."""
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    return ts - span if ts - floor > span else floor


def evaluate_unit(
    uow: UnitOfWork, settings: Settings, unit_id: int, earliest: dt.datetime, now: dt.datetime
) -> list[Excursion]:
    """Recompute a unit's excursions from its readings since `earliest`; store, alert, quarantine.

    Does not commit; the caller commits (the unit's state row stays locked until then).
    """
    state = _lock_state(uow, unit_id)
    unit = _unit(uow, unit_id)
    rules, _source = unit_rules(uow, settings, unit)
    max_gap = settings.alerts_max_gap_min * MINUTE
    since = _evaluation_start(uow, unit_id, rules, earliest, max_gap)
    rows = uow.session.execute(
        select(Reading.sensor_id, Reading.ts, Reading.temp_c)
        .where(Reading.unit_id == unit_id, Reading.ts >= since, Reading.ts <= now)
        .order_by(Reading.ts)
    )
    by_logger: dict[str, list[Sample]] = {}
    samples = []
    for sensor_id, ts, temp in rows:
        sample = Sample(ts, temp)
        by_logger.setdefault(sensor_id, []).append(sample)
        samples.append(sample)
    findings = _findings_per_logger(by_logger, rules, now, max_gap)
    stored = _reconcile(uow, unit, rules, findings, since, now)
    _sync_alerts(uow, unit, now)
    # Readings came in: a silent sensor of this unit has spoken again, its battery/power changed.
    check_sensors(
        uow,
        silence_factor=settings.alerts_silence_factor,
        low_battery_pct=settings.alerts_low_battery_pct,
        power_failure_alarm_min=settings.alerts_power_failure_alarm_min,
        now=now,
        unit_ids=[unit_id],
    )
    state.evaluated_at = now
    state.last_reading_ts = max(
        filter(None, [state.last_reading_ts, samples[-1].ts if samples else None]), default=None
    )
    state.evaluations += 1
    state.full_evaluations += 1
    _learn_calm(uow, state, rules, samples, max_gap, now)
    return stored


def _innermost(rules: RuleSet) -> tuple[float, float]:
    low = max((r.limit_c for r in rules.rules if r.side == "cold"), default=rules.min_temp_c)
    high = min((r.limit_c for r in rules.rules if r.side == "heat"), default=rules.max_temp_c)
    return low, high


def _learn_calm(
    uow: UnitOfWork,
    state: UnitMonitorState,
    rules: RuleSet,
    samples: list[Sample],
    max_gap: dt.timedelta,
    now: dt.datetime,
) -> None:
    low, high = _innermost(rules)
    outside = [s.ts for s in samples if not low < s.temp_c < high]
    state.last_outside_ts = max(
        filter(None, [state.last_outside_ts, max(outside, default=None)]), default=None
    )
    state.calm_low_c, state.calm_high_c = low, high
    state.calm_span_s = int((rules.longest_span() + max_gap).total_seconds())
    state.calm_checked_at = now
    state.open_excursions = (
        uow.session.scalar(
            select(func.count())
            .select_from(Excursion)
            .where(Excursion.unit_id == state.unit_id, Excursion.ended_at.is_(None))
        )
        or 0
    )


def _lots_in_unit(uow: UnitOfWork, unit_id: int) -> list[dict[str, Any]]:
    balances = uow.session.scalars(
        select(StockBalance).where(StockBalance.unit_id == unit_id, StockBalance.doses > 0)
    )
    return [
        {
            "lot_id": b.lot_id,
            "lot_number": b.lot.lot_number,
            "product_id": b.lot.product_id,
            "doses": b.doses,
        }
        for b in balances
    ]


def _merge_lots(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every lot seen in the unit during the excursion, with the most doses seen."""
    by_lot = {item["lot_id"]: dict(item) for item in old}
    for item in new:
        if item["lot_id"] not in by_lot or item["doses"] > by_lot[item["lot_id"]]["doses"]:
            by_lot[item["lot_id"]] = dict(item)
    return sorted(by_lot.values(), key=lambda item: item["lot_id"])


def _reconcile(
    uow: UnitOfWork,
    unit: StorageUnit,
    rules: RuleSet,
    findings: list[tuple[str, Finding]],
    since: dt.datetime,
    now: dt.datetime,
) -> list[Excursion]:
    existing = list(
        uow.session.scalars(
            select(Excursion).where(
                Excursion.unit_id == unit.id,
                (Excursion.started_at >= since) | Excursion.ended_at.is_(None),
            )
        )
    )
    lots = _lots_in_unit(uow, unit.id)
    kept: list[Excursion] = []
    for sensor_id, finding in findings:
        match = _match(existing, sensor_id, finding)
        is_new = match is None
        if match is None:
            match = _new_excursion(uow, unit, rules, sensor_id, finding, now)
        else:
            existing.remove(match)
        _apply(match, finding, now)
        if match.ended_at is None or not match.lots:
            match.lots = _merge_lots(match.lots or [], lots)
        # Doses that sat through an alarm are held, also when the alarm was over before its
        # readings arrived (a backlog after an outage); new lots are held while it lasts.
        if finding.rule.level == "alarm" and (is_new or match.ended_at is None):
            quarantine_unit(uow, match, now)
        if is_new and match.ended_at is not None:
            _alert_past_excursion(uow, unit, match, now)
        kept.append(match)
    for stale in existing:
        # A late reading showed this span was not one excursion: close it where it was triggered;
        # its record (and any quarantine review) stays for the officers.
        if stale.ended_at is None:
            stale.ended_at, stale.updated_at = stale.triggered_at, now
    return kept


def _match(existing: list[Excursion], sensor_id: str, finding: Finding) -> Excursion | None:
    """The stored excursion of this logger that the finding continues, if any."""
    mine = [e for e in existing if e.sensor_id == sensor_id]
    for excursion in mine:
        if excursion.kind == finding.kind and excursion.started_at == finding.started_at:
            return excursion
    end = finding.ended_at
    for excursion in mine:
        if (
            excursion.kind == finding.kind
            and (end is None or excursion.started_at <= end)
            and (excursion.ended_at is None or excursion.ended_at >= finding.started_at)
        ):
            return excursion
    return None


def _new_excursion(
    uow: UnitOfWork,
    unit: StorageUnit,
    rules: RuleSet,
    sensor_id: str,
    finding: Finding,
    now: dt.datetime,
) -> Excursion:
    excursion = Excursion(
        unit_id=unit.id,
        store_id=unit.store_id,
        sensor_id=sensor_id,
        kind=finding.kind,
        started_at=finding.started_at,
        triggered_at=finding.triggered_at,
        peak_temp_c=finding.peak_temp_c,
        minutes_outside=finding.minutes_outside,
        thresholds={**rules.snapshot(), "rule": finding.rule.snapshot()},
        lots=[],
        updated_at=now,
    )
    uow.session.add(excursion)
    uow.session.flush()
    return excursion


def _apply(excursion: Excursion, finding: Finding, now: dt.datetime) -> None:
    excursion.started_at, excursion.triggered_at = finding.started_at, finding.triggered_at
    excursion.ended_at, excursion.peak_temp_c = finding.ended_at, finding.peak_temp_c
    excursion.minutes_outside, excursion.updated_at = finding.minutes_outside, now


def _sync_alerts(uow: UnitOfWork, unit: StorageUnit, now: dt.datetime) -> None:
    """One alert per unit and excursion kind, open exactly while such an excursion is open."""
    uow.session.flush()
    open_by_kind = {
        e.kind: e
        for e in uow.session.scalars(
            select(Excursion)
            .where(Excursion.unit_id == unit.id, Excursion.ended_at.is_(None))
            .order_by(Excursion.started_at)
        )
    }
    for kind, words in KIND_WORDS.items():
        excursion = open_by_kind.get(kind)
        if excursion is None:
            clear_alert(
                uow,
                kind=kind,
                subject_type="unit",
                subject_id=unit.id,
                now=now,
                comment="temperature back in range",
            )
            continue
        _raise_excursion_alert(uow, unit, excursion, f"{words} in unit {unit.code}", now)


def _raise_excursion_alert(
    uow: UnitOfWork, unit: StorageUnit, excursion: Excursion, headline: str, now: dt.datetime
) -> None:
    """Raise (or update) the unit's alert for an excursion of this kind, with its figures."""
    raise_alert(
        uow,
        kind=excursion.kind,
        subject_type="unit",
        subject_id=unit.id,
        store_id=unit.store_id,
        severity=SEVERITY[excursion.kind.split("_")[1]],
        message=f"{headline}{_logger(excursion)}: {excursion.minutes_outside:.0f} min outside, "
        f"peak {excursion.peak_temp_c:.1f} C",
        details=_alert_details(excursion),
        now=now,
    )


def _alert_past_excursion(
    uow: UnitOfWork, unit: StorageUnit, excursion: Excursion, now: dt.datetime
) -> None:
    """An excursion already over when its readings arrived still gets an alert (then resolved)."""
    kind = excursion.kind
    if _open_alert_exists(uow, kind, unit.id):
        return  # the open alert of a current excursion of this kind already calls for attention
    _raise_excursion_alert(
        uow, unit, excursion, f"{KIND_WORDS[kind]} in unit {unit.code} (already over)", now
    )
    clear_alert(
        uow,
        kind=kind,
        subject_type="unit",
        subject_id=unit.id,
        now=now,
        comment="excursion was already over when its readings arrived",
    )


def _open_alert_exists(uow: UnitOfWork, kind: str, unit_id: int) -> bool:
    from logistics.models.alerts import Alert

    return (
        uow.session.scalar(
            select(func.count())
            .select_from(Alert)
            .where(
                Alert.kind == kind,
                Alert.subject_type == "unit",
                Alert.subject_id == str(unit_id),
                Alert.state != "resolved",
            )
        )
        > 0
    )


def _logger(excursion: Excursion) -> str:
    return f" (logger {excursion.sensor_id})" if excursion.sensor_id else ""


def _alert_details(excursion: Excursion) -> dict[str, Any]:
    return {
        "excursion_id": excursion.id,
        "unit_id": excursion.unit_id,
        "sensor_id": excursion.sensor_id,
        "started_at": excursion.started_at.isoformat(),
        "triggered_at": excursion.triggered_at.isoformat(),
        "peak_temp_c": excursion.peak_temp_c,
        "minutes_outside": excursion.minutes_outside,
        "lots": excursion.lots,
    }


# --- quarantine ----------------------------------------------------------------------------------


def quarantine_unit(uow: UnitOfWork, excursion: Excursion, now: dt.datetime) -> int:
    """Hold every lot in the unit after an alarm, with one review per lot; return lots newly held.

    Idempotent: a lot already under review for this excursion is left as the officer left it.
    The held doses themselves are kept by logistics.services.holds, their only writer.
    """
    held = holds.hold_for_alarm(uow.session, excursion, now)
    if held:
        # Held doses may no longer cover the sessions the centre has opened (issue 5, point 4).
        from logistics.services.sessions import check_commitments

        check_commitments(uow, excursion.store_id, now)
    return held


def _review_for_update(uow: UnitOfWork, review_id: int) -> tuple[QuarantineReview, StockBalance]:
    """The pending review and its balance, both locked: the balance first, as every movement does.

    Movements lock the balance and then touch its reviews; locking in the same order here means a
    decision and a concurrent receipt of the lot into the unit never deadlock.
    """
    found = uow.session.get(QuarantineReview, review_id) if 0 < review_id < 2**63 else None
    if found is None:
        raise NotFound(f"quarantine review {review_id} does not exist")
    query = select(StockBalance).where(
        StockBalance.unit_id == found.unit_id, StockBalance.lot_id == found.lot_id
    )
    balance = uow.session.scalars(
        _locked(uow, query, StockBalance).execution_options(populate_existing=True)
    ).one()
    query = select(QuarantineReview).where(QuarantineReview.id == review_id)
    review = uow.session.scalars(
        _locked(uow, query, QuarantineReview).execution_options(populate_existing=True)
    ).one()
    if review.state != "pending":
        raise Conflict(f"quarantine review {review_id} is already {review.state}")
    return review, balance


def _locked(uow: UnitOfWork, query: Any, model: Any) -> Any:
    """Lock the rows of `model` the query reads on PostgreSQL (SQLite serialises writers)."""
    return query.with_for_update(of=model) if is_postgres(uow.session) else query


def _usable_stock_changed(uow: UnitOfWork, store_id: int, now: dt.datetime) -> None:
    """Sessions and the public availability see a decision at once (issue 11, point 6)."""
    from logistics.services.sessions import check_commitments

    check_commitments(uow, store_id, now)


def release_review(
    uow: UnitOfWork, *, review_id: int, comment: str, actor: str, now: dt.datetime
) -> QuarantineReview:
    """An officer judges the lot usable: what no other pending review holds is no longer held."""
    if not (comment or "").strip():
        raise Invalid("a comment is required to release quarantined doses", field="comment")
    review, balance = _review_for_update(uow, review_id)
    _decide(review, "released", comment, actor, now)
    holds.settle(uow.session, balance)
    balance.updated_at = now
    _usable_stock_changed(uow, review.store_id, now)
    uow.commit()
    return review


def discard_review(
    uow: UnitOfWork, *, review_id: int, comment: str | None, actor: str, now: dt.datetime
) -> QuarantineReview:
    """Discard the held doses: recorded once as wastage (heat_exposure or frozen) by the ledger.

    Other pending reviews of the lot in the unit keep what stays held; those left holding nothing
    are closed as discarded under this review, with no second wastage.
    """
    from logistics.services.stock import record_wastage

    review, balance = _review_for_update(uow, review_id)
    doses = review.doses  # never more than the unit holds (logistics.services.holds)
    _decide(review, "discarded", comment, actor, now)
    if doses > 0:
        record_wastage(
            uow,
            store_id=review.store_id,
            unit_id=review.unit_id,
            lot_id=review.lot_id,
            doses=doses,
            reason=review.reason,
            actor=actor,
            occurred_at=now,
            client_id=holds.discard_client_id(review),
            note=comment,
            from_quarantine=True,
        )
    holds.close_emptied(uow.session, balance, by=review, actor=actor, now=now)
    _usable_stock_changed(uow, review.store_id, now)
    uow.commit()
    return review


def _decide(
    review: QuarantineReview, state: str, comment: str | None, actor: str, now: dt.datetime
) -> None:
    review.state, review.comment, review.decided_by, review.decided_at = state, comment, actor, now


def list_reviews(
    uow: UnitOfWork, *, store_path: str | None, state: str | None, limit: int = 100, offset: int = 0
) -> list[QuarantineReview]:
    """Quarantine reviews of a store subtree, pending first."""
    from logistics.models.catalog import Store

    query = select(QuarantineReview)
    if store_path is not None:
        query = query.join(Store, Store.id == QuarantineReview.store_id).where(
            Store.path.startswith(store_path, autoescape=True)
        )
    if state is not None:
        query = query.where(QuarantineReview.state == state)
    return list(
        uow.session.scalars(query.order_by(QuarantineReview.id.desc()).limit(limit).offset(offset))
    )


def list_excursions(
    uow: UnitOfWork,
    *,
    store_path: str | None,
    unit_id: int | None,
    kind: str | None,
    open_only: bool,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int = 100,
    offset: int = 0,
) -> list[Excursion]:
    """Excursions of a store subtree or a unit, newest first."""
    from logistics.models.catalog import Store

    query = select(Excursion)
    if store_path is not None:
        query = query.join(Store, Store.id == Excursion.store_id).where(
            Store.path.startswith(store_path, autoescape=True)
        )
    if unit_id is not None:
        query = query.where(Excursion.unit_id == unit_id)
    if kind is not None:
        query = query.where(Excursion.kind == kind)
    if open_only:
        query = query.where(Excursion.ended_at.is_(None))
    if since is not None:
        query = query.where((Excursion.ended_at.is_(None)) | (Excursion.ended_at >= since))
    if until is not None:
        query = query.where(Excursion.started_at < until)
    return list(
        uow.session.scalars(query.order_by(Excursion.started_at.desc()).limit(limit).offset(offset))
    )


def units_needing_evaluation(
    uow: UnitOfWork, now: dt.datetime, lookback: dt.timedelta
) -> list[Touched]:
    """Units with readings received since their last evaluation (the scheduler's safety net)."""
    rows = uow.session.execute(
        select(Reading.unit_id, func.min(Reading.ts), func.max(Reading.ts))
        .outerjoin(UnitMonitorState, UnitMonitorState.unit_id == Reading.unit_id)
        .where(
            Reading.received_at >= now - lookback,
            (UnitMonitorState.evaluated_at.is_(None))
            | (Reading.received_at >= UnitMonitorState.evaluated_at),
        )
        .group_by(Reading.unit_id)
    )
    return [(unit_id, low, high) for unit_id, low, high in rows]


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
    clipped = [(u, max(a, start), min(b, end)) for u, a, b in stays if b > start and a < end]
    return sorted(clipped, key=lambda stay: stay[1])


def lot_thermal_history(
    uow: UnitOfWork, settings: Settings, *, lot_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """Every unit (and store) the lot sat in, every excursion it sat through there, and its MKT."""
    from logistics.domain.mkt import mean_kinetic_temperature
    from logistics.models.catalog import Lot as LotModel

    _check_span(start, end)
    lot = uow.session.get(LotModel, lot_id)
    if lot is None:
        raise NotFound(f"lot {lot_id} does not exist")
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


def get_review(uow: UnitOfWork, review_id: int) -> tuple[QuarantineReview, Excursion]:
    """One quarantine review with the excursion that caused it."""
    review = uow.session.get(QuarantineReview, review_id) if 0 < review_id < 2**62 else None
    if review is None:
        raise NotFound(f"quarantine review {review_id} does not exist")
    return review, uow.session.get(Excursion, review.excursion_id)
