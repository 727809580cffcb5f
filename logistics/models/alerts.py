"""Models: temperature rules, excursions, quarantine reviews, alerts, stock levels, notifications.

Everything detection and alerting needs to survive a restart lives here: the rules (as data), the
per-unit evaluation state row (locked while a unit is evaluated), the excursions found, the alerts
with their history, the notification outbox with every delivery attempt, and the scheduler lease.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from logistics.db import Base, BigIntPK

JSONDoc = JSON()  # thresholds snapshots, alert details, payloads: JSON on both databases


class TemperatureRuleSet(Base):
    """The temperature rules of one product, or the override of one storage unit."""

    __tablename__ = "temperature_rule_sets"
    __table_args__ = (
        CheckConstraint("(product_id IS NULL) <> (unit_id IS NULL)", name="one_scope"),
        CheckConstraint("min_temp_c < max_temp_c", name="range_ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), unique=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("storage_units.id"), unique=True)
    min_temp_c: Mapped[float]
    max_temp_c: Mapped[float]
    updated_at: Mapped[dt.datetime]
    updated_by: Mapped[str] = mapped_column(String(100))

    rules: Mapped[list[TemperatureRule]] = relationship(
        back_populates="rule_set", cascade="all, delete-orphan", order_by="TemperatureRule.id"
    )


class TemperatureRule(Base):
    """One stage of one side: e.g. heat alarm, at or above +8 C, 600 minutes consecutive."""

    __tablename__ = "temperature_rules"
    __table_args__ = (
        UniqueConstraint("rule_set_id", "side", "level"),
        CheckConstraint("side IN ('heat', 'cold')", name="side_known"),
        CheckConstraint("level IN ('warning', 'alarm')", name="level_known"),
        CheckConstraint("mode IN ('consecutive', 'cumulative')", name="mode_known"),
        CheckConstraint("duration_min > 0", name="duration_positive"),
        CheckConstraint("mode = 'consecutive' OR window_min >= duration_min", name="window_fits"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_set_id: Mapped[int] = mapped_column(
        ForeignKey("temperature_rule_sets.id", ondelete="CASCADE")
    )
    side: Mapped[str] = mapped_column(String(8))
    level: Mapped[str] = mapped_column(String(8))
    limit_c: Mapped[float]
    mode: Mapped[str] = mapped_column(String(16))
    duration_min: Mapped[int]
    window_min: Mapped[int | None]

    rule_set: Mapped[TemperatureRuleSet] = relationship(back_populates="rules")


class UnitMonitorState(Base):
    """Per-unit evaluation state; its row is locked (FOR UPDATE) while the unit is evaluated."""

    __tablename__ = "unit_monitor_states"

    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"), primary_key=True)
    evaluated_at: Mapped[dt.datetime | None]
    # Latest reading timestamp seen by the last evaluation (sensor time, not arrival time).
    last_reading_ts: Mapped[dt.datetime | None]
    evaluations: Mapped[int] = mapped_column(default=0)
    # What the last full evaluation learnt, so a batch of calm readings needs no re-detection:
    # the innermost limits of the rules in force, how far back a reading can matter, the newest
    # reading outside those limits, and how many excursions are open.
    calm_low_c: Mapped[float | None]
    calm_high_c: Mapped[float | None]
    calm_span_s: Mapped[int | None]
    calm_checked_at: Mapped[dt.datetime | None]
    last_outside_ts: Mapped[dt.datetime | None]
    open_excursions: Mapped[int] = mapped_column(default=0)
    full_evaluations: Mapped[int] = mapped_column(default=0)


class EvaluationRequest(Base):
    """A unit whose readings changed and wait to be evaluated (the evaluation queue).

    The ingestion adds one row per touched unit in the transaction that stores the readings, so
    the request is exactly as durable as the readings; evaluators claim rows (SKIP LOCKED on
    PostgreSQL), evaluate, and delete them in the claiming transaction. Append-only for writers:
    ingestion processes never wait on each other or on an evaluation.
    """

    __tablename__ = "evaluation_requests"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"))
    earliest_ts: Mapped[dt.datetime]
    latest_ts: Mapped[dt.datetime]
    requested_at: Mapped[dt.datetime]
    # A unit whose evaluation failed keeps its request and is tried again after a back-off
    # (evaluation.retry_min_s doubling up to retry_max_s); other units are not held up.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    not_before: Mapped[dt.datetime | None]


class Excursion(Base):
    """A time a unit was outside its range long enough to reach a warning or an alarm."""

    __tablename__ = "excursions"
    __table_args__ = (
        # Each logger's series is evaluated on its own (issue 11): one excursion per logger.
        UniqueConstraint("unit_id", "sensor_id", "kind", "started_at"),
        Index("ix_excursions_unit_open", "unit_id", "ended_at"),
        CheckConstraint(
            "kind IN ('heat_warning', 'heat_alarm', 'cold_warning', 'cold_alarm')",
            name="kind_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    # The logger whose readings showed it (None: recorded before excursions named their logger).
    sensor_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime]
    # When the rule's duration was reached (the warning or alarm fired).
    triggered_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    peak_temp_c: Mapped[float]
    minutes_outside: Mapped[float]
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    # [{"lot_id", "lot_number", "product_id", "doses"}] in the unit while the excursion lasted.
    lots: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    updated_at: Mapped[dt.datetime]


class QuarantineReview(Base):
    """An officer's decision on one lot of a unit held after a temperature alarm."""

    __tablename__ = "quarantine_reviews"
    __table_args__ = (
        # One pending review per alarm and lot; doses arriving after the lot's review was decided,
        # while the alarm still lasts, get a review of their own.
        Index(
            "uq_quarantine_reviews_pending",
            "excursion_id",
            "lot_id",
            unique=True,
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        CheckConstraint("state IN ('pending', 'released', 'discarded')", name="state_known"),
        CheckConstraint(
            "proposed_decision IN ('release', 'discard', 'review')", name="proposal_known"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    excursion_id: Mapped[int] = mapped_column(ForeignKey("excursions.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    # Doses this review holds: every dose of the lot in the unit when the alarm fired, plus
    # arrivals while it lasts, never more than the unit holds (logistics.services.holds).
    doses: Mapped[int]
    reason: Mapped[str] = mapped_column(String(32))  # heat_exposure or frozen
    proposed_decision: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)


class Alert(Base):
    """Something an officer must see: one open alert per subject and kind."""

    __tablename__ = "alerts"
    __table_args__ = (
        # One open (not resolved) alert per subject and kind, enforced by the database.
        Index(
            "uq_alerts_open_subject_kind",
            "kind",
            "subject_type",
            "subject_id",
            unique=True,
            postgresql_where=text("state <> 'resolved'"),
            sqlite_where=text("state <> 'resolved'"),
        ),
        Index("ix_alerts_store_state", "store_id", "state"),
        CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="state_known"),
        CheckConstraint("severity IN ('info', 'warning', 'alarm')", name="severity_known"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(100))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    # Copy of the store's path, so a district sees its subtree's alerts with one prefix match.
    store_path: Mapped[str] = mapped_column(String(512), default="/", index=True)
    severity: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="open")
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    opened_at: Mapped[dt.datetime] = mapped_column(index=True)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledge_comment: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolve_comment: Mapped[str | None] = mapped_column(Text)
    # 0: the store's own officers; n: n levels up the store tree.
    escalation_level: Mapped[int] = mapped_column(default=0)
    last_notified_at: Mapped[dt.datetime | None]
    notifications_sent: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime]

    events: Mapped[list[AlertEvent]] = relationship(
        back_populates="alert", order_by="AlertEvent.id", cascade="all, delete-orphan"
    )


class AlertEvent(Base):
    """One step of an alert's life: opened, updated, acknowledged, reminded, escalated, resolved."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)
    escalation_level: Mapped[int] = mapped_column(default=0)
    at: Mapped[dt.datetime]

    alert: Mapped[Alert] = relationship(back_populates="events")


class StockLevel(Base):
    """Minimum and maximum stock of one product at one store, as doses or as days of stock."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("store_id", "product_id"),
        CheckConstraint("basis IN ('doses', 'days')", name="basis_known"),
        CheckConstraint("min_value >= 0 AND max_value > min_value", name="levels_ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    basis: Mapped[str] = mapped_column(String(8), default="doses")
    min_value: Mapped[float]
    max_value: Mapped[float]
    # Doses given per day, used when levels are in days of stock (domain.md: days = stock / rate).
    daily_consumption_doses: Mapped[float | None]
    updated_at: Mapped[dt.datetime]


class NotificationTarget(Base):
    """Where a store's officers are told: a webhook URL (signed) or an e-mail address."""

    __tablename__ = "notification_targets"
    __table_args__ = (
        UniqueConstraint("store_id", "channel", "address"),
        CheckConstraint("channel IN ('webhook', 'email')", name="channel_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500))
    # HMAC-SHA256 key for webhooks; receivers check the X-Coldchain-Signature header with it.
    secret: Mapped[str | None] = mapped_column(String(200))
    min_severity: Mapped[str] = mapped_column(String(8), default="warning")
    active: Mapped[bool] = mapped_column(default=True)


class NotificationDelivery(Base):
    """The outbox: one message to one target; any process may send it, none is lost."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state_known"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), index=True
    )
    target_id: Mapped[int] = mapped_column(ForeignKey("notification_targets.id"))
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]

    target: Mapped[NotificationTarget] = relationship(lazy="joined")


class DeliveryAttempt(Base):
    """One try at sending a delivery, with what the other side answered."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("notification_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int]
    at: Mapped[dt.datetime]
    ok: Mapped[bool]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float]


class SchedulerLease(Base):
    """The lease that makes one scheduler process the active one across hosts."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime]


class JobRun(Base):
    """One run of a periodic job for one interval slot; the unique slot makes a run happen once."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "slot"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    slot: Mapped[dt.datetime]
    holder: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    ok: Mapped[bool | None]
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
