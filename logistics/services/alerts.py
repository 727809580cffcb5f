"""Use cases of alerts: raise, clear, acknowledge, resolve, list, remind and escalate.

`raise_alert` and `clear_alert` never commit: callers (excursions, sensors, stock, sessions) raise
alerts inside their own transaction, so an alert exists exactly when its cause was stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select

from logistics.db import UnitOfWork
from logistics.domain.alerts import check_acknowledge, check_resolve
from logistics.errors import NotFound
from logistics.models.alerts import Alert, AlertEvent
from logistics.models.catalog import Store

SYSTEM_ACTOR = "system"


def _open_alert(uow: UnitOfWork, kind: str, subject_type: str, subject_id: str) -> Alert | None:
    query = select(Alert).where(Alert.kind == kind, Alert.subject_type == subject_type,
                                Alert.subject_id == str(subject_id), Alert.state != "resolved")
    return uow.session.scalars(query).first()


def _store_path(uow: UnitOfWork, store_id: int | None) -> str:
    store = uow.session.get(Store, store_id) if store_id is not None else None
    return store.path if store else "/"


def _event(alert: Alert, event: str, actor: str, now: dt.datetime, comment: str | None = None) -> None:
    alert.events.append(AlertEvent(event=event, actor=actor, comment=comment, at=now,
                                    escalation_level=alert.escalation_level))


def raise_alert(uow: UnitOfWork, *, kind: str, subject_type: str, subject_id: str | int,
                store_id: int | None, severity: str, message: str, details: dict[str, Any],
                now: dt.datetime) -> Alert:
    """Open an alert, or update the details of the one already open for this subject and kind.

    Does not commit. A new alert queues its notifications in the outbox (same transaction).
    """
    alert = _open_alert(uow, kind, subject_type, str(subject_id))
    if alert is not None:
        if alert.details != details or alert.message != message or alert.severity != severity:
            alert.details, alert.message, alert.severity, alert.updated_at = details, message, severity, now
        return alert
    alert = Alert(kind=kind, subject_type=subject_type, subject_id=str(subject_id), store_id=store_id,
                  store_path=_store_path(uow, store_id), severity=severity, state="open",
                  message=message, details=details, opened_at=now, updated_at=now,
                  escalation_level=0, notifications_sent=0)
    _event(alert, "opened", SYSTEM_ACTOR, now, message)
    uow.session.add(alert)
    uow.session.flush()
    from logistics.services.notify import enqueue_alert_notifications

    enqueue_alert_notifications(uow, alert, "opened", now)
    return alert


def clear_alert(uow: UnitOfWork, *, kind: str, subject_type: str, subject_id: str | int,
                now: dt.datetime, comment: str = "condition ended") -> Alert | None:
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


def acknowledge_alert(uow: UnitOfWork, *, alert_id: int, comment: str, actor: str,
                      now: dt.datetime) -> Alert:
    """Record that an officer has seen the alert and acts on it (a comment is required)."""
    alert = _get_for_update(uow, alert_id)
    check_acknowledge(alert.state, comment)
    alert.state, alert.acknowledged_at, alert.acknowledged_by = "acknowledged", now, actor
    alert.acknowledge_comment, alert.updated_at = comment, now
    _event(alert, "acknowledged", actor, now, comment)
    uow.commit()
    return alert


def resolve_alert(uow: UnitOfWork, *, alert_id: int, comment: str, actor: str, now: dt.datetime) -> Alert:
    """Resolve an alert by hand, with a comment saying why."""
    alert = _get_for_update(uow, alert_id)
    check_resolve(alert.state, comment)
    _resolve(alert, actor, comment, now)
    uow.commit()
    return alert


def get_alert(uow: UnitOfWork, alert_id: int) -> Alert:
    """One alert with its events."""
    alert = uow.session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist")
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
        store = uow.session.get(Store, flt.store_id)
        if store is None:
            raise NotFound(f"store {flt.store_id} does not exist", field="store_id")
        query = query.where(Alert.store_path.startswith(store.path, autoescape=True))
    for column, value in ((Alert.kind, flt.kind), (Alert.state, flt.state), (Alert.severity, flt.severity)):
        if value is not None:
            query = query.where(column == value)
    if flt.since is not None:
        query = query.where(Alert.opened_at >= flt.since)
    if flt.until is not None:
        query = query.where(Alert.opened_at < flt.until)
    query = query.order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(flt.limit).offset(flt.offset)
    return list(uow.session.scalars(query))
