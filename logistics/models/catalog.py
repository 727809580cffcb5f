"""Models: the store tree, storage units, products and lots."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from logistics.db import Base


class StoreLevel(Base):
    """A level of the supply chain (state, district, centre, ...); data, so more can be added."""

    __tablename__ = "store_levels"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # 0 for the top of the chain; a child store's level has a higher rank than its parent's.
    rank: Mapped[int]


class Store(Base):
    """A vaccine store or cold chain point; stores form a tree (state -> district -> centre)."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level_code: Mapped[str] = mapped_column(ForeignKey("store_levels.code"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    # Materialised path of ids, e.g. "/1/4/17/": a subtree is a prefix match, on any database.
    path: Mapped[str] = mapped_column(String(512), index=True, default="/")
    active: Mapped[bool] = mapped_column(default=True)

    level: Mapped[StoreLevel] = relationship(lazy="joined")
    parent: Mapped[Store | None] = relationship(remote_side=[id])
    units: Mapped[list[StorageUnit]] = relationship(
        back_populates="store", order_by="StorageUnit.id"
    )


class StorageUnit(Base):
    """Cold-chain equipment of a store (ILR, deep freezer, walk-in cooler...), its safe range."""

    __tablename__ = "storage_units"
    __table_args__ = (
        UniqueConstraint("store_id", "code"),
        CheckConstraint("min_temp_c < max_temp_c", name="range_ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(
        String(32)
    )  # ilr, deep_freezer, walk_in_cooler, walk_in_freezer
    min_temp_c: Mapped[float]
    max_temp_c: Mapped[float]
    active: Mapped[bool] = mapped_column(default=True)
    # Equipment register (issue 19): what the unit is, and whether it works.
    make: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    pqs_code: Mapped[str | None] = mapped_column(String(32))  # WHO PQS code, e.g. E003/070
    year_installed: Mapped[int | None]
    energy_source: Mapped[str | None] = mapped_column(String(32))  # electricity, solar, ...
    working_status: Mapped[str] = mapped_column(
        String(16), default="working", server_default="working"
    )
    # Doses the unit can hold; "room" for doses that must move (logistics/domain/equipment.py).
    capacity_doses: Mapped[int | None]

    store: Mapped[Store] = relationship(back_populates="units")


class Product(Base):
    """A vaccine product and its presentation and storage needs."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("doses_per_vial > 0", name="doses_per_vial_positive"),
        CheckConstraint("min_temp_c < max_temp_c", name="range_ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    doses_per_vial: Mapped[int]
    min_temp_c: Mapped[float]
    max_temp_c: Mapped[float]
    freeze_sensitive: Mapped[bool] = mapped_column(default=True)
    open_vial_life_min: Mapped[int | None]
    # GS1 trade item number of the product's carton, so a scanned (01) finds the product.
    gtin: Mapped[str | None] = mapped_column(String(14), unique=True)


class Lot(Base):
    """A manufacturer's batch of one product, with its expiry date."""

    __tablename__ = "lots"
    __table_args__ = (
        UniqueConstraint("product_id", "lot_number"),
        Index("ix_lots_expiry", "expiry_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    lot_number: Mapped[str] = mapped_column(String(64))
    manufacturer: Mapped[str] = mapped_column(String(200))
    expiry_date: Mapped[dt.date]
    gtin: Mapped[str | None] = mapped_column(String(14))
    # A network-wide hold (a recall of the whole lot, kept by logistics.services.recalls);
    # stock of a quarantined lot is never issued or booked.
    quarantined: Mapped[bool] = mapped_column(default=False)

    product: Mapped[Product] = relationship(lazy="joined")


class LotRecall(Base):
    """A hold on every dose of a lot in a store's subtree (None: the whole network), until lifted.

    Placed and lifted by a state officer (their state) or an administrator, both with a reason;
    the row is the record of who held the lot, when and why, and who lifted the hold.
    """

    __tablename__ = "lot_recalls"
    __table_args__ = (Index("ix_lot_recalls_lot_active", "lot_id", "lifted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    # Copy of the store's path: a balance is held when its store's path starts with it.
    store_path: Mapped[str | None] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(100))
    placed_at: Mapped[dt.datetime]
    lifted_at: Mapped[dt.datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(100))
    lift_reason: Mapped[str | None] = mapped_column(Text)
