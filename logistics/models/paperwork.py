"""Models: the paperwork officers kept by hand (issue 19).

Indents (a store asks its parent for doses) with their trail of states, the repair history of
storage units, and the monthly sign-off of a unit's temperature log. The equipment register's
own fields live on StorageUnit (logistics/models/catalog.py).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from logistics.db import Base, BigIntPK

INDENT_STATES = ("requested", "approved", "rejected", "shipped", "received", "cancelled")
WORKING_STATUSES = ("working", "needs_repair", "not_working")


class Indent(Base):
    """A store's request to its parent for doses of a product, needed by a date."""

    __tablename__ = "indents"
    __table_args__ = (
        CheckConstraint(
            "state IN ('requested', 'approved', 'rejected', 'shipped', 'received', 'cancelled')",
            name="state_known",
        ),
        CheckConstraint("doses_requested > 0", name="requested_positive"),
        CheckConstraint(
            "doses_approved IS NULL OR (doses_approved > 0 AND doses_approved <= doses_requested)",
            name="approved_within",
        ),
        Index("ix_indents_to_store_state", "to_store_id", "state"),
        Index("ix_indents_from_store_state", "from_store_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The requesting store (a centre or a district) and the parent it asks.
    from_store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    to_store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    needed_by: Mapped[dt.date]
    doses_requested: Mapped[int]
    # What the service suggested when the indent was raised (consumption, sessions, max level).
    doses_suggested: Mapped[int]
    doses_approved: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16), default="requested")
    note: Mapped[str | None] = mapped_column(Text)
    # Why the parent rejected it, or why it approved fewer doses.
    decision_reason: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[dt.datetime]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[dt.datetime | None]
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"), unique=True)
    shipped_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]

    events: Mapped[list[IndentEvent]] = relationship(
        back_populates="indent", order_by="IndentEvent.id"
    )


class IndentEvent(Base):
    """One change of an indent's state: who, when, and what was said."""

    __tablename__ = "indent_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    indent_id: Mapped[int] = mapped_column(ForeignKey("indents.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    doses: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime]

    indent: Mapped[Indent] = relationship(back_populates="events")


class UnitStatusChange(Base):
    """The repair history of a storage unit: each change of its working status, and why."""

    __tablename__ = "unit_status_changes"
    __table_args__ = (
        CheckConstraint(
            "to_status IN ('working', 'needs_repair', 'not_working')", name="status_known"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    # The fault seen, or the repair done (e.g. "compressor replaced by the cold chain technician").
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime]


class TemperatureLogSignoff(Base):
    """An officer's review of one unit's temperature log for one month (30-DTR practice)."""

    __tablename__ = "temperature_log_signoffs"
    __table_args__ = (UniqueConstraint("unit_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"))
    # The first day of the month reviewed.
    month: Mapped[dt.date]
    signed_by: Mapped[str] = mapped_column(String(100))
    signed_at: Mapped[dt.datetime]
    comment: Mapped[str | None] = mapped_column(Text)
