"""Use cases of alerts: raise, clear, acknowledge, resolve, list, remind and escalate.

`raise_alert` and `clear_alert` never commit: callers (excursions, sensors, stock, sessions) raise
alerts inside their own transaction, so an alert exists exactly when its cause was stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, case, func, select

from logistics.db import UnitOfWork, is_postgres
from logistics.domain.alerts import (
    EXPIRY_KINDS,
    SENSOR_KINDS,
    SEVERITY_RANK,
    STOCK_KINDS,
    check_acknowledge,
    check_resolve,
    power_failure_severity,
)
from logistics.domain.errors import NotFound
from logistics.models.alerts import Alert, AlertEvent
from logistics.models.catalog import Store
from logistics.services.lookup import get_or_404, in_bound_subtree, in_subtree, subtree_params

SYSTEM_ACTOR = "system"


def _open_alert(uow: UnitOfWork, kind: str, subject_type: str, subject_id: str) -> Alert | None:
    query = select(Alert).where(
        Alert.kind == kind,
        Alert.subject_type == subject_type,
        Alert.subject_id == str(subject_id),
        Alert.state != "resolved",
    )
    return uow.session.scalars(query).first()


def _store_path(uow: UnitOfWork, store_id: int | None) -> str:
    store = uow.session.get(Store, store_id) if store_id is not None else None
    return store.path if store else "/"


def _event(
    alert: Alert, event: str, actor: str, now: dt.datetime, comment: str | None = None
) -> None:
    alert.events.append(
        AlertEvent(
            event=event,
            actor=actor,
            comment=comment,
            at=now,
            escalation_level=alert.escalation_level,
        )
    )


def raise_alert(
    uow: UnitOfWork,
    *,
    kind: str,
    subject_type: str,
    subject_id: str | int,
    store_id: int | None,
    severity: str,
    message: str,
    details: dict[str, Any],
    now: dt.datetime,
) -> Alert:
    """Open an alert, or update the details of the one already open for this subject and kind.

    Does not commit. A new alert queues its notifications in the outbox (same transaction).
    """
    alert = _open_alert(uow, kind, subject_type, str(subject_id))
    if alert is not None:
        if alert.details != details or alert.message != message or alert.severity != severity:
            alert.details, alert.message, alert.severity, alert.updated_at = (
                details,
                message,
                severity,
                now,
            )
        return alert
    alert = Alert(
        kind=kind,
        subject_type=subject_type,
        subject_id=str(subject_id),
        store_id=store_id,
        store_path=_store_path(uow, store_id),
        severity=severity,
        state="open",
        message=message,
        details=details,
        opened_at=now,
        updated_at=now,
        escalation_level=0,
        notifications_sent=0,
    )
    _event(alert, "opened", SYSTEM_ACTOR, now, message)
    uow.session.add(alert)
    uow.session.flush()
    from logistics.services.notify import enqueue_alert_notifications

    enqueue_alert_notifications(uow, alert, "opened", now)
    return alert


def clear_alert(
    uow: UnitOfWork,
    *,
    kind: str,
    subject_type: str,
    subject_id: str | int,
    now: dt.datetime,
    comment: str = "condition ended",
) -> Alert | None:
    """Resolve the open alert of this subject and kind, if any (the condition ended). No commit."""
    alert = _open_alert(uow, kind, subject_type, str(subject_id))
    if alert is None:
        return None
    _resolve(alert, SYSTEM_ACTOR, comment, now)
    from logistics.services.notify import enqueue_alert_notifications

    enqueue_alert_notifications(uow, alert, "resolved", now)
    return alert


def _resolve(alert: Alert, actor: str, comment: str, now: dt.datetime) -> None:
    alert.state, alert.resolved_at, alert.resolved_by = "resolved", now, actor
    alert.resolve_comment, alert.updated_at = comment, now
    _event(alert, "resolved", actor, now, comment)


def _get_for_update(uow: UnitOfWork, alert_id: int) -> Alert:
    alert = uow.session.scalars(select(Alert).where(Alert.id == alert_id).with_for_update()).first()
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist")
    return alert


def acknowledge_alert(
    uow: UnitOfWork, *, alert_id: int, comment: str, actor: str, now: dt.datetime
) -> Alert:
    """Record that an officer has seen the alert and acts on it (a comment is required)."""
    alert = _get_for_update(uow, alert_id)
    check_acknowledge(alert.state, comment)
    alert.state, alert.acknowledged_at, alert.acknowledged_by = "acknowledged", now, actor
    alert.acknowledge_comment, alert.updated_at = comment, now
    _event(alert, "acknowledged", actor, now, comment)
    uow.session.flush()
    return alert


def resolve_alert(
    uow: UnitOfWork, *, alert_id: int, comment: str, actor: str, now: dt.datetime
) -> Alert:
    """Resolve an alert by hand, with a comment saying why."""
    alert = _get_for_update(uow, alert_id)
    check_resolve(alert.state, comment)
    _resolve(alert, actor, comment, now)
    uow.session.flush()
    return alert


def get_alert(uow: UnitOfWork, alert_id: int) -> Alert:
    """One alert with its events."""
    alert = get_or_404(uow, Alert, alert_id, f"alert {alert_id} does not exist")
    return alert


@dataclasses.dataclass(frozen=True)
class AlertFilter:
    """What a list of alerts may be narrowed by."""

    store_id: int | None = None
    kind: str | None = None
    state: str | None = None
    severity: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100
    offset: int = 0


def list_alerts(uow: UnitOfWork, flt: AlertFilter) -> list[Alert]:
    """Alerts of a store's subtree (a district sees its centres), newest first."""
    query = select(Alert)
    if flt.store_id is not None:
        store = get_or_404(
            uow, Store, flt.store_id, f"store {flt.store_id} does not exist", field="store_id"
        )
        query = query.where(in_subtree(Alert.store_path, store.path))
    for column, value in (
        (Alert.kind, flt.kind),
        (Alert.state, flt.state),
        (Alert.severity, flt.severity),
    ):
        if value is not None:
            query = query.where(column == value)
    if flt.since is not None:
        query = query.where(Alert.opened_at >= flt.since)
    if flt.until is not None:
        query = query.where(Alert.opened_at < flt.until)
    query = (
        query.order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(flt.limit).offset(flt.offset)
    )
    return list(uow.session.scalars(query))


# --- conditions checked on a schedule (and as readings arrive) ----------------------------------


def _open_alerts_of(
    uow: UnitOfWork, kinds: Iterable[str], subject_type: str, subjects: set[str] | None
) -> dict[tuple[str, str], tuple[int, str]]:
    """(id, severity) of the open alerts of these kinds, of these subjects only when named (None:
    all). Rows, not objects: most checks change nothing, and a hundred silent sensors' alerts
    were loaded as objects on every evaluator pass."""
    query = select(Alert.id, Alert.kind, Alert.subject_id, Alert.severity).where(
        Alert.kind.in_(list(kinds)), Alert.subject_type == subject_type, Alert.state != "resolved"
    )
    if subjects is not None:
        if not subjects:
            return {}
        query = query.where(Alert.subject_id.in_(sorted(subjects)))
    return {
        (kind, subject): (i, severity) for i, kind, subject, severity in uow.session.execute(query)
    }


@dataclasses.dataclass(frozen=True)
class Condition:
    """A condition that holds now for a subject: it should have an open alert of this kind."""

    kind: str
    subject_id: str
    store_id: int | None
    severity: str
    message: str
    details: dict[str, Any]


def sync_conditions(
    uow: UnitOfWork,
    *,
    subject_type: str,
    kinds: Iterable[str],
    subjects: set[str] | None,
    holding: list[Condition],
    now: dt.datetime,
    comment: str = "condition ended",
) -> tuple[int, int]:
    """Open alerts for conditions that started, resolve those that ended (changes of state only).

    `subjects` limits which subjects were checked (None: all of them). Returns (raised, cleared).
    """
    kinds = list(kinds)
    # A check of some subjects (one unit's sensors, after its readings) reads their alerts only:
    # the evaluator runs it for every unit it evaluates, and reading every open alert of the
    # network each time (a hundred silent sensors elsewhere) was a fifth of its work (issue 17).
    named = None if subjects is None else subjects | {c.subject_id for c in holding}
    open_now = _open_alerts_of(uow, kinds, subject_type, named)
    wanted = {(c.kind, c.subject_id): c for c in holding}
    raised = cleared = 0
    for key, cond in wanted.items():
        found = open_now.get(key)
        if found is not None and SEVERITY_RANK[cond.severity] > SEVERITY_RANK[found[1]]:
            alert = uow.session.get(Alert, found[0])
            assert alert is not None
            _raise_severity(uow, alert, cond, now)
            raised += 1
        if found is None:
            raise_alert(
                uow,
                kind=cond.kind,
                subject_type=subject_type,
                subject_id=cond.subject_id,
                store_id=cond.store_id,
                severity=cond.severity,
                message=cond.message,
                details=cond.details,
                now=now,
            )
            raised += 1
    for key in open_now:
        if key not in wanted and (subjects is None or key[1] in subjects):
            clear_alert(
                uow,
                kind=key[0],
                subject_type=subject_type,
                subject_id=key[1],
                now=now,
                comment=comment,
            )
            cleared += 1
    return raised, cleared


def _raise_severity(uow: UnitOfWork, alert: Alert, cond: Condition, now: dt.datetime) -> None:
    """A condition that got worse (a power cut that lasted): the alert becomes an alarm, is open
    again even if its warning was acknowledged, and is notified again."""
    alert.severity, alert.message, alert.details = cond.severity, cond.message, cond.details
    alert.state, alert.updated_at = "open", now
    _event(alert, "severity_raised", SYSTEM_ACTOR, now, cond.message)
    from logistics.services.notify import enqueue_alert_notifications

    enqueue_alert_notifications(uow, alert, "severity_raised", now)


def _on_battery_since(uow: UnitOfWork, sensor_id: str) -> dt.datetime | None:
    """When the logger's current run on battery began: its first battery reading after its last
    mains reading (by reading time, so a backlog sent after the cut dates it right)."""
    from logistics.models.readings import Reading

    of_sensor = Reading.sensor_id == sensor_id
    last_mains = uow.session.scalar(
        select(func.max(Reading.ts)).where(of_sensor, Reading.power == "mains")
    )
    query = select(func.min(Reading.ts)).where(of_sensor, Reading.power == "battery")
    if last_mains is not None:
        query = query.where(Reading.ts > last_mains)
    return uow.session.scalar(query)


def check_sensors(
    uow: UnitOfWork,
    *,
    silence_factor: float,
    low_battery_pct: float,
    now: dt.datetime,
    unit_ids: Iterable[int] | None = None,
    power_failure_alarm_min: int,
) -> tuple[int, int]:
    """Silent sensors, low batteries and power cuts; alerts resolve themselves when they end.

    A logger on battery raises `power_failure`: a warning at once, an alarm once the cut has
    lasted `power_failure_alarm_min` (alerts.power_failure_alarm_min); mains back resolves it.

    A sensor is silent when its newest reading (sensor time) is older than `silence_factor` times
    its expected interval (default 3x: one lost upload is not an alarm, a night is; the Silchar
    freeze of January 2021 went unseen because monitoring had stopped).
    """
    from logistics.models.catalog import StorageUnit
    from logistics.models.readings import Sensor, SensorAssignment

    query = (
        select(Sensor, StorageUnit)
        .join(SensorAssignment, SensorAssignment.sensor_id == Sensor.sensor_id)
        .join(StorageUnit, StorageUnit.id == SensorAssignment.unit_id)
        .where(SensorAssignment.valid_to.is_(None), Sensor.status == "active")
    )
    if unit_ids is not None:
        query = query.where(SensorAssignment.unit_id.in_(list(unit_ids)))
    holding: list[Condition] = []
    checked: set[str] = set()
    for sensor, unit in uow.session.execute(query).all():
        checked.add(sensor.sensor_id)
        holding.extend(_sensor_conditions(sensor, unit, silence_factor, low_battery_pct, now))
        if sensor.power == "battery":
            alarm_after = dt.timedelta(minutes=power_failure_alarm_min)
            holding.append(_power_failure(uow, sensor, unit, alarm_after, now))
    return sync_conditions(
        uow,
        subject_type="sensor",
        kinds=SENSOR_KINDS,
        subjects=checked if unit_ids is not None else None,
        holding=holding,
        now=now,
    )


def _sensor_conditions(
    sensor: Any, unit: Any, factor: float, low_pct: float, now: dt.datetime
) -> list[Condition]:
    where = {"sensor_id": sensor.sensor_id, "unit_id": unit.id, "unit_code": unit.code}
    found = []
    last = sensor.last_reading_ts or sensor.registered_at
    allowed = dt.timedelta(seconds=sensor.expected_interval_s * factor)
    if now - last > allowed:
        found.append(
            Condition(
                "sensor_silent",
                sensor.sensor_id,
                unit.store_id,
                "alarm",
                f"sensor {sensor.sensor_id} in {unit.code} silent since {last.isoformat()}",
                {
                    **where,
                    "last_reading_ts": last.isoformat(),
                    "allowed_s": allowed.total_seconds(),
                },
            )
        )
    if sensor.battery_pct is not None and sensor.battery_pct < low_pct:
        found.append(
            Condition(
                "sensor_low_battery",
                sensor.sensor_id,
                unit.store_id,
                "warning",
                f"sensor {sensor.sensor_id} battery at {sensor.battery_pct:.0f}%",
                {**where, "battery_pct": sensor.battery_pct},
            )
        )
    if sensor.power == "off":
        found.append(
            Condition(
                "sensor_power_off",
                sensor.sensor_id,
                unit.store_id,
                "alarm",
                f"power off at {unit.code} (sensor {sensor.sensor_id})",
                where,
            )
        )
    return found


def _power_failure(
    uow: UnitOfWork, sensor: Any, unit: Any, alarm_after: dt.timedelta, now: dt.datetime
) -> Condition:
    since = _on_battery_since(uow, sensor.sensor_id) or sensor.last_reading_ts or now
    severity = power_failure_severity(since, now, alarm_after)
    return Condition(
        "power_failure",
        sensor.sensor_id,
        unit.store_id,
        severity,
        f"mains power lost at {unit.code} (sensor {sensor.sensor_id} on battery since "
        f"{since.isoformat()})",
        {
            "sensor_id": sensor.sensor_id,
            "unit_id": unit.id,
            "unit_code": unit.code,
            "on_battery_since": since.isoformat(),
            "alarm_after_min": alarm_after.total_seconds() / 60,
        },
    )


def _usable_on_hand(uow: UnitOfWork) -> dict[tuple[int, int], int]:
    """Usable-now doses per (store, product): doses minus quarantined doses over the store's
    units; a lot recalled network-wide is not stock a store can use (issue 11)."""
    from logistics.models.catalog import Lot
    from logistics.models.stock import StockBalance

    usable = case((Lot.quarantined, 0), else_=StockBalance.doses - StockBalance.quarantined_doses)
    query = (
        select(StockBalance.store_id, Lot.product_id, func.sum(usable))
        .join(Lot, Lot.id == StockBalance.lot_id)
        .group_by(StockBalance.store_id, Lot.product_id)
    )
    return {(s, p): int(d or 0) for s, p, d in uow.session.execute(query).tuples().all()}


def _stock_condition(
    store_id: int, product_id: int, doses: int, level: Any, code: str | None
) -> Condition | None:
    """The stock alert a store's doses of a product call for against its levels, if any."""
    from logistics.domain.alerts import level_in_doses, stock_state

    low = high = None
    if level is not None:
        low = level_in_doses(level.min_value, level.basis, level.daily_consumption_doses)
        high = level_in_doses(level.max_value, level.basis, level.daily_consumption_doses)
    state = stock_state(doses, low, high)
    if state == "ok":
        return None
    return Condition(
        state,
        f"{store_id}:{product_id}",
        store_id,
        STOCK_KINDS[state],
        f"{state.replace('_', ' ')}: {doses} doses of {code or f'product {product_id}'}",
        {
            "store_id": store_id,
            "product_id": product_id,
            "product": code,
            "doses": doses,
            "min_doses": low,
            "max_doses": high,
        },
    )


def check_stock_states(uow: UnitOfWork, *, now: dt.datetime) -> tuple[int, int]:
    """Stock-out, below minimum, above maximum per store and product, raised on a change of state.

    Stock is the usable-now quantity on hand: doses minus quarantined doses, summed over the
    store's units. Pairs are those with a min/max set or with any balance row.
    """
    from logistics.models.alerts import StockLevel
    from logistics.models.catalog import Product

    on_hand = _usable_on_hand(uow)
    levels = {(lv.store_id, lv.product_id): lv for lv in uow.session.scalars(select(StockLevel))}
    codes = {pid: code for pid, code in uow.session.execute(select(Product.id, Product.code)).all()}
    holding = []
    for store, product in set(on_hand) | set(levels):
        doses, level = on_hand.get((store, product), 0), levels.get((store, product))
        condition = _stock_condition(store, product, doses, level, codes.get(product))
        if condition is not None:
            holding.append(condition)
    return sync_conditions(
        uow,
        subject_type="store_product",
        kinds=STOCK_KINDS,
        subjects=None,
        holding=holding,
        now=now,
        comment="stock state changed",
    )


def check_expiry(
    uow: UnitOfWork, *, warn_days: int, site_timezone: str, now: dt.datetime
) -> tuple[int, int]:
    """Lots expiring within `warn_days` with doses on hand, and expired stock on hand, per store."""
    from zoneinfo import ZoneInfo

    from logistics.domain.alerts import expiry_state
    from logistics.models.catalog import Lot
    from logistics.models.stock import StockBalance

    today = now.astimezone(ZoneInfo(site_timezone)).date()
    rows = uow.session.execute(
        select(
            StockBalance.store_id,
            Lot.id,
            Lot.lot_number,
            Lot.expiry_date,
            func.sum(StockBalance.doses),
        )
        .join(Lot, Lot.id == StockBalance.lot_id)
        .where(StockBalance.doses > 0)
        .group_by(StockBalance.store_id, Lot.id, Lot.lot_number, Lot.expiry_date)
    )
    holding = []
    for store_id, lot_id, lot_number, expiry, doses in rows:
        state = expiry_state(expiry, today, warn_days)
        if state == "ok":
            continue
        kind = "lot_expired" if state == "expired" else "lot_expiring"
        holding.append(
            Condition(
                kind,
                f"{store_id}:{lot_id}",
                store_id,
                EXPIRY_KINDS[kind],
                f"lot {lot_number} {'expired' if state == 'expired' else 'expires'} on "
                f"{expiry.isoformat()}: {int(doses)} doses on hand",
                {
                    "store_id": store_id,
                    "lot_id": lot_id,
                    "lot_number": lot_number,
                    "expiry_date": expiry.isoformat(),
                    "doses": int(doses),
                },
            )
        )
    return sync_conditions(
        uow,
        subject_type="store_lot",
        kinds=EXPIRY_KINDS,
        subjects=None,
        holding=holding,
        now=now,
        comment="no such stock on hand any more",
    )


# --- reminders and escalation --------------------------------------------------------------------


def remind_and_escalate(uow: UnitOfWork, *, policy: Any, now: dt.datetime) -> int:
    """Notify unacknowledged alarms again at an interval; climb the store tree as they pile up."""
    from logistics.domain.alerts import next_escalation_level, reminder_due
    from logistics.services.notify import enqueue_alert_notifications

    query = select(Alert).where(Alert.state == "open", Alert.severity == "alarm")
    if is_postgres(uow.session):
        query = query.with_for_update(skip_locked=True)
    reminded = 0
    for alert in uow.session.scalars(query):
        if not reminder_due(
            alert.state, alert.severity, alert.last_notified_at, alert.opened_at, policy, now
        ):
            continue
        reminders = sum(1 for e in alert.events if e.event in ("reminded", "escalated")) + 1
        ancestors = len([p for p in alert.store_path.split("/") if p]) - 1
        level = next_escalation_level(reminders, alert.escalation_level, policy, ancestors)
        event = "escalated" if level > alert.escalation_level else "reminded"
        alert.escalation_level, alert.updated_at = level, now
        _event(alert, event, SYSTEM_ACTOR, now, f"unacknowledged; notified at level {level}")
        enqueue_alert_notifications(uow, alert, event, now)
        reminded += 1
    return reminded


# --- stock levels -----------------------------------------------------------------------


def set_stock_level(
    uow: UnitOfWork,
    *,
    store_id: int,
    product_id: int,
    basis: str,
    min_value: float,
    max_value: float,
    daily_consumption_doses: float | None,
    now: dt.datetime,
) -> Any:
    """Set a store's minimum and maximum of a product (doses, or days of stock at a daily rate)."""
    from logistics.domain.errors import Invalid
    from logistics.models.alerts import StockLevel
    from logistics.models.catalog import Product

    if uow.session.get(Store, store_id) is None:
        raise NotFound(f"store {store_id} does not exist", field="store_id")
    if uow.session.get(Product, product_id) is None:
        raise NotFound(f"product {product_id} does not exist", field="product_id")
    if not 0 <= min_value < max_value:
        raise Invalid("need 0 <= min_value < max_value", field="max_value")
    if basis == "days" and not daily_consumption_doses:
        raise Invalid(
            "levels in days of stock need daily_consumption_doses", field="daily_consumption_doses"
        )
    level = uow.session.scalars(
        select(StockLevel).where(
            StockLevel.store_id == store_id, StockLevel.product_id == product_id
        )
    ).first()
    if level is None:
        level = StockLevel(store_id=store_id, product_id=product_id)
        uow.session.add(level)
    level.basis, level.min_value, level.max_value = basis, min_value, max_value
    level.daily_consumption_doses, level.updated_at = daily_consumption_doses, now
    uow.session.flush()
    return level


_OPEN_ALERT_COUNTS = (
    select(Alert.store_path, Alert.kind, Alert.severity, func.count())
    .where(
        Alert.state != "resolved",
        in_bound_subtree(Alert.store_path),
    )
    .group_by(Alert.store_path, Alert.kind, Alert.severity)
)


def open_alert_counts(uow: UnitOfWork, *, store_path: str) -> list[tuple[str, str, str, int]]:
    """How many alerts are not yet resolved in a store subtree, per store path, kind and
    severity: what status tiles colour and count, however many alerts are open."""
    found = uow.session.execute(_OPEN_ALERT_COUNTS, subtree_params(store_path))
    return [(path, kind, severity, int(n)) for path, kind, severity, n in found]


def _open_alerts(subtree: bool) -> Any:
    """Alerts not yet resolved (in the subtree :subtree, with `subtree`), alarms first, newest
    first, at most :limit."""
    from logistics.domain.alerts import SEVERITY_RANK

    rank = case(SEVERITY_RANK, value=Alert.severity, else_=-1)
    query = select(Alert).where(Alert.state != "resolved")
    if subtree:
        query = query.where(in_bound_subtree(Alert.store_path))
    return query.order_by(rank.desc(), Alert.opened_at.desc(), Alert.id.desc()).limit(
        bindparam("limit")
    )


# Built once, for a subtree and for everywhere: every home page shows them.
_OPEN_ALERTS = {True: _open_alerts(True), False: _open_alerts(False)}


def open_alerts(uow: UnitOfWork, *, store_path: str | None, limit: int = 200) -> list[Alert]:
    """Alerts not yet resolved in a store subtree (None: everywhere), alarms first, newest first."""
    params = {"limit": limit, **subtree_params(store_path)}
    return list(uow.session.scalars(_OPEN_ALERTS[store_path is not None], params))
