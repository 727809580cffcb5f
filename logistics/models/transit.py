"""Models: doses packed in carriers for a shipment, and the holds a carrier's alarm put on them.

A carrier (cold box, vaccine carrier) is a `StorageUnit` of its own kind with a logger like an
ILR's; its trip with a shipment runs from the issue (`Shipment.issued_at`) to the receipt
(`Shipment.received_at`). The held doses themselves are kept by logistics.services.holds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from logistics.db import Base, BigIntPK


class CarrierLoad(Base):
    """Doses of one lot of a shipment packed in one carrier."""

    __tablename__ = "carrier_loads"
    __table_args__ = (
        UniqueConstraint("shipment_id", "carrier_unit_id", "lot_id"),
        CheckConstraint("doses > 0", name="doses_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    carrier_unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    doses: Mapped[int]
    loaded_by: Mapped[str] = mapped_column(String(100))
    loaded_at: Mapped[dt.datetime]


class TransitHold(Base):
    """A carrier's alarm during a shipment's trip: its doses travel held, and arrive held.

    `applied_at` is when the receiver's reviews were opened: at the receipt, or when the alarm's
    readings arrived after it (a logger that uploads late); `outcome` says per lot what was
    received, held and already used by then.
    """

    __tablename__ = "transit_holds"
    __table_args__ = (UniqueConstraint("shipment_id", "excursion_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    excursion_id: Mapped[int] = mapped_column(ForeignKey("excursions.id"), index=True)
    carrier_unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"))
    created_at: Mapped[dt.datetime]
    # Known only after the receipt: the logger uploaded late.
    after_receipt: Mapped[bool] = mapped_column(default=False)
    applied_at: Mapped[dt.datetime | None]
    outcome: Mapped[list[dict[str, Any]]] = mapped_column(JSON(), default=list)
