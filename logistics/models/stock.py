"""Models: stock balances (movements and the ledger are added by the ledger)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from logistics.db import Base
from logistics.models.catalog import Lot, StorageUnit


class StockBalance(Base):
    """Doses of one lot in one storage unit, kept in the same transaction as every movement."""

    __tablename__ = "stock_balances"
    __table_args__ = (
        UniqueConstraint("unit_id", "lot_id"),
        CheckConstraint("doses >= 0", name="doses_not_negative"),
        CheckConstraint("quarantined_doses >= 0 AND quarantined_doses <= doses", name="quarantine_within"),
        CheckConstraint("vvm_stage BETWEEN 1 AND 4", name="vvm_stage_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    doses: Mapped[int] = mapped_column(default=0)
    # Doses held after a temperature alarm until an officer reviews them (release or discard).
    quarantined_doses: Mapped[int] = mapped_column(default=0)
    # WHO VVM stages: 1-2 usable, 3 end point reached (do not use), 4 past end point (discard).
    vvm_stage: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[dt.datetime]

    lot: Mapped[Lot] = relationship(lazy="joined")
    unit: Mapped[StorageUnit] = relationship()
