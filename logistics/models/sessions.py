"""Models: vaccination sessions, time slots, bookings, end-of-session reports, cache versions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from logistics.db import Base, BigIntPK
from logistics.models.catalog import Product, Store

SESSION_STATUSES = ("open", "cancelled", "reported")


class Session(Base):
    """A centre's vaccination session: a date, a product, a dose number, a capacity in doses."""

    __tablename__ = "vaccination_sessions"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("shortfall_doses >= 0", name="shortfall_not_negative"),
        CheckConstraint("status IN ('open', 'cancelled', 'reported')", name="status_known"),
        CheckConstraint("dose_number IN ('1', '2', 'precaution')", name="dose_number_known"),
        CheckConstraint("min_age >= 0", name="min_age_not_negative"),
        Index("ix_vaccination_sessions_store_status", "store_id", "status", "session_date"),
        Index("ix_vaccination_sessions_district_date", "district_id", "session_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    # The centre's district store, kept here so the public availability query needs no tree walk.
    district_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    session_date: Mapped[dt.date]
    capacity: Mapped[int]
    dose_number: Mapped[str] = mapped_column(String(16))
    min_age: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="open")
    # Doses this session lacks after the last commitment check (0 when its promise is covered).
    shortfall_doses: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime]

    store: Mapped[Store] = relationship(foreign_keys=[store_id])
    product: Mapped[Product] = relationship(lazy="joined")
    slots: Mapped[list[Slot]] = relationship(
        back_populates="session",
        order_by="Slot.starts_at",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    report: Mapped[SessionReport | None] = relationship(back_populates="session")


class Slot(Base):
    """A time window of a session with its own seats; `booked` never exceeds `capacity`."""

    __tablename__ = "session_slots"
    __table_args__ = (
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
        CheckConstraint("starts_at < ends_at", name="window_ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("vaccination_sessions.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[dt.time]
    ends_at: Mapped[dt.time]
    capacity: Mapped[int]
    booked: Mapped[int] = mapped_column(default=0)

    session: Mapped[Session] = relationship(back_populates="slots")


class Booking(Base):
    """A beneficiary's seat in a slot; a cancelled booking gives the seat back."""

    __tablename__ = "session_bookings"
    __table_args__ = (
        CheckConstraint("status IN ('booked', 'cancelled')", name="status_known"),
        # One live booking per beneficiary and session, also under concurrent retries.
        Index(
            "uq_session_bookings_live",
            "session_id",
            "beneficiary",
            unique=True,
            postgresql_where=text("status = 'booked'"),
            sqlite_where=text("status = 'booked'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("vaccination_sessions.id", ondelete="CASCADE")
    )
    slot_id: Mapped[int] = mapped_column(
        ForeignKey("session_slots.id", ondelete="CASCADE"), index=True
    )
    beneficiary: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="booked")
    booked_at: Mapped[dt.datetime]
    booked_by: Mapped[str] = mapped_column(String(100))
    cancelled_at: Mapped[dt.datetime | None]


class SessionReport(Base):
    """What a centre reports at the end of a session; the ledger movements are made with it."""

    __tablename__ = "session_reports"
    __table_args__ = (
        CheckConstraint(
            "doses_given >= 0 AND vials_opened >= 0 AND wasted_doses >= 0",
            name="counts_not_negative",
        ),
    )

    session_id: Mapped[int] = mapped_column(ForeignKey("vaccination_sessions.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    session_date: Mapped[dt.date]
    doses_given: Mapped[int]
    vials_opened: Mapped[int]
    wasted_doses: Mapped[int]
    reported_at: Mapped[dt.datetime]
    reported_by: Mapped[str] = mapped_column(String(100))

    session: Mapped[Session] = relationship(back_populates="report")


class AvailabilityVersion(Base):
    """A counter per district, bumped in the same transaction as every change the public sees.

    Every web process compares its cached answers against this row (at most every ~0.5 s), so
    several gunicorn workers never serve an answer older than the last committed change for long.
    """

    __tablename__ = "availability_versions"

    district_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    changed_at: Mapped[dt.datetime]
