"""Excursion evaluation: evaluate units as readings arrive, open and close excursions and alerts.

The rules in force live in logistics.services.temperature_rules, quarantine and its reviews in
logistics.services.quarantine, MKT and a lot's thermal history in logistics.services.thermal.

Evaluation re-reads a unit's readings from the database over the span that can still change
(so late and out-of-order readings, and one sensor's readings spread over several ingestion
processes, give the same result), holding the unit's state row locked (SELECT ... FOR UPDATE on
PostgreSQL) so two processes never evaluate one unit at the same time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, text

from logistics.config import Settings
from logistics.db import UnitOfWork, insert_for, is_postgres
from logistics.domain.excursions import Finding, RuleSet, Sample, detect
from logistics.models.alerts import (
    Alert,
    Excursion,
    UnitMonitorState,
)
from logistics.models.catalog import StorageUnit
from logistics.models.readings import Reading
from logistics.models.stock import StockBalance
from logistics.runtime import Runtime
from logistics.services.alerts import check_sensors, clear_alert, raise_alert
from logistics.services.lookup import id_in, in_subtree
from logistics.services.quarantine import quarantine_unit
from logistics.services.temperature_rules import _unit, unit_rules

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

    A unit is calm when its last full evaluation (under CALM_TTL ago) left no open excursion, its
    readings within the new readings' span all lie strictly inside the innermost limits, and
    either no reading outside them is within reach or, in each logger with readings in the span,
    the reading just before it lies inside them too (the usual case after a door opening: the
    sensor is back in range and reports on). The state rows are locked (in unit order, so batches
    never deadlock) exactly as a full evaluation locks them, so the two never race.
    """
    unit_ids = sorted(spans)
    with runtime.uow() as uow:
        states = _lock_states(uow, unit_ids)
        views = _span_views(uow, spans)
        calm = {u for u in unit_ids if _is_calm(states[u], spans[u][0], views.get(u), now)}
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


@dataclasses.dataclass(frozen=True, slots=True)
class _SpanView:
    """A unit's readings within its span (the new ones and any stored among them), and the reading
    just before the span of each of the loggers that have readings in it."""

    low_c: float
    high_c: float
    before_low_c: float | None = None  # None: no logger has a reading before the span
    before_high_c: float | None = None


# One index range per unit (a range from the pass's earliest reading to its latest would take in,
# for every unit, all it read since the earliest late upload of any unit in the pass), and per
# logger one index probe for the reading before it.
_SPAN_VIEWS = text(
    "SELECT s.unit_id, m.low_c, m.high_c, b.low_c, b.high_c"
    " FROM unnest(CAST(:units AS bigint[]), CAST(:lows AS timestamptz[]),"
    " CAST(:highs AS timestamptz[])) AS s(unit_id, low, high)"
    " CROSS JOIN LATERAL (SELECT min(r.temp_c) AS low_c, max(r.temp_c) AS high_c,"
    " array_agg(DISTINCT r.sensor_id) AS sensors"
    " FROM readings r WHERE r.unit_id = s.unit_id AND r.ts >= s.low AND r.ts <= s.high) AS m"
    " CROSS JOIN LATERAL (SELECT min(p.temp_c) AS low_c, max(p.temp_c) AS high_c"
    " FROM unnest(m.sensors) AS q(sensor_id) CROSS JOIN LATERAL (SELECT r.temp_c FROM readings r"
    " WHERE r.sensor_id = q.sensor_id AND r.unit_id = s.unit_id AND r.ts < s.low"
    " ORDER BY r.ts DESC LIMIT 1) AS p) AS b"
    " WHERE m.low_c IS NOT NULL"
)
_SQLITE_SPANS = 300  # units per statement on SQLite (three bound parameters each)


def _span_views(
    uow: UnitOfWork, spans: dict[int, tuple[dt.datetime, dt.datetime]]
) -> dict[int, _SpanView]:
    """What the fast path must know of each unit's span; units without readings in it left out."""
    ordered = sorted(spans.items())
    if is_postgres(uow.session):
        params = {
            "units": [unit_id for unit_id, _ in ordered],
            "lows": [low for _, (low, _high) in ordered],
            "highs": [high for _, (_low, high) in ordered],
        }
        return {
            row.unit_id: _SpanView(row[1], row[2], row[3], row[4])
            for row in uow.session.execute(_SPAN_VIEWS, params)
        }
    per_logger: dict[int, list[tuple[float, float, float | None]]] = {}
    for start in range(0, len(ordered), _SQLITE_SPANS):
        within = or_(
            *(
                and_(Reading.unit_id == unit_id, Reading.ts >= low, Reading.ts <= high)
                for unit_id, (low, high) in ordered[start : start + _SQLITE_SPANS]
            )
        )
        rows = uow.session.execute(
            select(
                Reading.unit_id,
                Reading.sensor_id,
                func.min(Reading.temp_c),
                func.max(Reading.temp_c),
            )
            .where(within)
            .group_by(Reading.unit_id, Reading.sensor_id)
        )
        for unit_id, sensor_id, low_c, high_c in rows:
            before = uow.session.scalar(
                select(Reading.temp_c)
                .where(
                    Reading.sensor_id == sensor_id,
                    Reading.unit_id == unit_id,
                    Reading.ts < spans[unit_id][0],
                )
                .order_by(Reading.ts.desc())
                .limit(1)
            )
            per_logger.setdefault(unit_id, []).append((low_c, high_c, before))
    views = {}
    for unit_id, loggers in per_logger.items():
        preceding = [b for *_, b in loggers if b is not None]
        views[unit_id] = _SpanView(
            min(low for low, _, _ in loggers),
            max(high for _, high, _ in loggers),
            min(preceding) if preceding else None,
            max(preceding) if preceding else None,
        )
    return views


def _is_calm(
    state: UnitMonitorState,
    earliest: dt.datetime,
    span: _SpanView | None,
    now: dt.datetime,
) -> bool:
    low, high = state.calm_low_c, state.calm_high_c
    if low is None or high is None or state.calm_span_s is None:
        return False
    if (
        state.calm_checked_at is None
        or now - state.calm_checked_at > CALM_TTL
        or state.open_excursions
    ):
        return False
    if span is None or not low < span.low_c <= span.high_c < high:
        return False
    reach = _earlier(earliest, dt.timedelta(seconds=state.calm_span_s))
    if state.last_outside_ts is None or state.last_outside_ts < reach:
        return True
    # A reading outside was near. Readings inside every limit, each following a reading inside
    # them in its logger's series (or none), change nothing: an interval counts as outside only
    # when both its ends are, so none is added or cut, no run of readings outside is split, ended
    # earlier or begun, and with no excursion open there is nothing for them to close. Whether they
    # came in order or late, and whether a full evaluation has read them already, does not matter.
    # After a reading outside (an excursion's end moves, a run is split) they are evaluated in full.
    if span.before_low_c is None or span.before_high_c is None:
        return True
    return low < span.before_low_c and span.before_high_c < high


def _lock_states(uow: UnitOfWork, unit_ids: list[int]) -> dict[int, UnitMonitorState]:
    """The units' state rows, locked in unit order; rows made first for units never evaluated.

    The rows that exist are locked before any is inserted, so an evaluator never waits for a row
    while holding one it inserted (and a pass does not send the INSERT of every unit it touches:
    after the first evaluation of a unit its row is always there).
    """
    states = _select_states(uow, unit_ids)
    missing = [u for u in unit_ids if u not in states]
    if missing:
        insert = insert_for(uow.session)
        uow.session.execute(
            insert(UnitMonitorState)
            .values(
                [
                    {"unit_id": u, "evaluations": 0, "open_excursions": 0, "full_evaluations": 0}
                    for u in missing
                ]
            )
            .on_conflict_do_nothing(index_elements=["unit_id"])
        )
        states.update(_select_states(uow, missing))
    return states


def _select_states(uow: UnitOfWork, unit_ids: list[int]) -> dict[int, UnitMonitorState]:
    query = (
        select(UnitMonitorState)
        .where(id_in(uow.session, UnitMonitorState.unit_id, unit_ids))
        .order_by(UnitMonitorState.unit_id)
    )
    if is_postgres(uow.session):
        query = query.with_for_update()
    return {
        s.unit_id: s for s in uow.session.scalars(query.execution_options(populate_existing=True))
    }


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
    state = _lock_states(uow, [unit_id])[unit_id]
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
    # Vaccines in transit (issue 18): a carrier's excursions during a trip concern its shipment.
    from logistics.services import transit

    transit.after_evaluation(uow, unit, stored, now)
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
    # The unit's open excursion alerts in one statement: most evaluations find none to change,
    # and asking per kind cost four statements per unit evaluated (issue 17).
    alerted = set(
        uow.session.scalars(
            select(Alert.kind).where(
                Alert.kind.in_(list(KIND_WORDS)),
                Alert.subject_type == "unit",
                Alert.subject_id == str(unit.id),
                Alert.state != "resolved",
            )
        )
    )
    for kind, words in KIND_WORDS.items():
        excursion = open_by_kind.get(kind)
        if excursion is None:
            if kind not in alerted:
                continue  # nothing open to clear
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

    found = uow.session.scalar(
        select(func.count())
        .select_from(Alert)
        .where(
            Alert.kind == kind,
            Alert.subject_type == "unit",
            Alert.subject_id == str(unit_id),
            Alert.state != "resolved",
        )
    )
    return (found or 0) > 0


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
            in_subtree(Store.path, store_path)
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


_OF_UNIT_WITHIN = (
    select(Excursion)
    .where(
        Excursion.unit_id == bindparam("unit_id"),
        Excursion.ended_at.is_(None) | (Excursion.ended_at >= bindparam("since")),
        Excursion.started_at < bindparam("until"),
    )
    .order_by(Excursion.started_at.desc())
    .limit(bindparam("limit"))
)


def unit_excursions_within(
    uow: UnitOfWork, unit_id: int, since: dt.datetime, until: dt.datetime, limit: int = 100
) -> list[Excursion]:
    """A unit's excursions that overlap [since, until), newest first: what its chart shades.

    list_excursions(unit_id=..., since=..., until=...) in a statement built once (every chart
    asks it, and building it cost more than its answer).
    """
    params = {"unit_id": unit_id, "since": since, "until": until, "limit": limit}
    return list(uow.session.scalars(_OF_UNIT_WITHIN, params))


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
