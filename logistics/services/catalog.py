"""Use cases of the catalog: store levels, stores, storage units, products and lots.

Each function that creates something commits; lookups raise NotFound naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from logistics.db import UnitOfWork
from logistics.domain.errors import Conflict, Invalid, NotFound
from logistics.domain.gs1 import GS1Error, parse_carton_label
from logistics.models.catalog import Lot, Product, StorageUnit, Store, StoreLevel
from logistics.services.lookup import Row, get_or_404, in_subtree

UNIT_KINDS = (
    "ilr",
    "deep_freezer",
    "walk_in_cooler",
    "walk_in_freezer",
    "refrigerator",
    "cold_box",
    "vaccine_carrier",  # issue 18: carriers travel with a shipment (logistics.services.transit)
)


def _get(uow: UnitOfWork, model: type[Row], ident: int | None, field: str) -> Row:
    what = str(model.__tablename__)[:-1].replace("_", " ")
    return get_or_404(uow, model, ident, f"no {what} with id {ident}", field=field)


def get_store(uow: UnitOfWork, store_id: int, field: str = "store_id") -> Store:
    """The store with this id, or NotFound naming `field`."""
    return _get(uow, Store, store_id, field)


def get_unit(uow: UnitOfWork, unit_id: int, field: str = "unit_id") -> StorageUnit:
    """The storage unit with this id, or NotFound naming `field`."""
    return _get(uow, StorageUnit, unit_id, field)


def unit_with_store(uow: UnitOfWork, unit_id: int) -> StorageUnit | None:
    """The storage unit with its store, read in one statement (None: no such unit).

    The unit holds its store, so later look-ups of that store in the unit of work (a check of
    who may see it, `unit.store`) find it there instead of reading it again.
    """
    return uow.session.get(StorageUnit, unit_id, options=[joinedload(StorageUnit.store)])


def get_product(uow: UnitOfWork, product_id: int, field: str = "product_id") -> Product:
    """The product with this id, or NotFound naming `field`."""
    return _get(uow, Product, product_id, field)


def get_lot(uow: UnitOfWork, lot_id: int, field: str = "lot_id") -> Lot:
    """The lot with this id, or NotFound naming `field`."""
    return _get(uow, Lot, lot_id, field)


def unit_of_store(
    uow: UnitOfWork, unit_id: int, store_id: int, field: str = "unit_id"
) -> StorageUnit:
    """The unit, checked to belong to the store (stock sits in a unit of a store)."""
    unit = get_unit(uow, unit_id, field)
    if unit.store_id != store_id:
        # 409: the pairing is refused by the stored network (where the unit stands), not by
        # the request's form.
        raise Conflict(f"unit {unit_id} does not belong to store {store_id}", field=field)
    return unit


def list_store_levels(uow: UnitOfWork) -> list[StoreLevel]:
    """Every store level, top of the chain first."""
    return list(uow.session.scalars(select(StoreLevel).order_by(StoreLevel.rank, StoreLevel.code)))


def create_store_level(uow: UnitOfWork, *, code: str, name: str, rank: int) -> StoreLevel:
    """Add a level of the supply chain (levels are data)."""
    if uow.session.get(StoreLevel, code) is not None:
        raise Conflict(f"store level {code!r} exists", field="code")
    level = StoreLevel(code=code, name=name, rank=rank)
    uow.session.add(level)
    uow.session.flush()
    return level


def _check_parent(uow: UnitOfWork, level: StoreLevel, parent_id: int | None) -> Store | None:
    if parent_id is None:
        return None
    parent = get_store(uow, parent_id, "parent_id")
    if parent.level.rank >= level.rank:
        # 409: the stored ranks of the two levels refuse it, not the request's form.
        raise Conflict(
            f"a {level.code} store cannot sit under a {parent.level_code} store", field="parent_id"
        )
    return parent


def create_store(
    uow: UnitOfWork, *, code: str, name: str, level_code: str, parent_id: int | None = None
) -> Store:
    """Add a store under its parent; its level must be below the parent's."""
    level = uow.session.get(StoreLevel, level_code)
    if level is None:
        raise NotFound(f"no store level {level_code!r}", field="level_code")
    parent = _check_parent(uow, level, parent_id)
    if find_store_by_code(uow, code) is not None:
        raise Conflict(f"store code {code!r} is taken", field="code")
    store = Store(code=code, name=name, level_code=level_code, parent_id=parent_id, path="/")
    uow.session.add(store)
    uow.session.flush()
    store.path = f"{parent.path if parent else '/'}{store.id}/"
    uow.session.flush()
    return store


def find_store_by_code(uow: UnitOfWork, code: str) -> Store | None:
    """The store with this code, if any."""
    return uow.session.scalars(select(Store).where(Store.code == code)).first()


def list_stores(
    uow: UnitOfWork,
    *,
    parent_id: int | None = None,
    level_code: str | None = None,
    within_id: int | None = None,
) -> list[Store]:
    """Stores, optionally the children of one store, of one level, or within a subtree."""
    query = select(Store).order_by(Store.path)
    if parent_id is not None:
        query = query.where(Store.parent_id == parent_id)
    if level_code is not None:
        query = query.where(Store.level_code == level_code)
    if within_id is not None:
        query = query.where(in_subtree(Store.path, get_store(uow, within_id, "within_id").path))
    return list(uow.session.scalars(query))


# Rows for the lists and choices of pages, read with statements built once on the tables (Core):
# plain rows with the columns as attributes, no ORM objects. A store page reads several of these
# on every request, and building, keying and loading them through the ORM cost more than the
# database's answers.
_stores, _units, _products = Store.__table__.c, StorageUnit.__table__.c, Product.__table__.c
_CHILD_STORES = (
    select(_stores.id, _stores.code, _stores.name, _stores.level_code, _stores.path)
    .where(_stores.parent_id == bindparam("parent_id"))
    .order_by(_stores.path)
)
_UNITS_OF_STORE = (
    select(
        _units.id, _units.store_id, _units.code, _units.kind, _units.min_temp_c, _units.max_temp_c
    )
    .where(_units.store_id == bindparam("store_id"))
    .order_by(_units.id)
)
_PRODUCTS = select(_products.id, _products.code, _products.name, _products.doses_per_vial).order_by(
    _products.code
)


def child_store_rows(uow: UnitOfWork, parent_id: int) -> list[Any]:
    """The children of a store as plain rows (id, code, name, level_code, path), in path order.

    For lists and choices of a page: a district's hundred centres as ORM objects (with their
    level) cost a page more than the rest of its queries.
    """
    return list(uow.session.execute(_CHILD_STORES, {"parent_id": parent_id}).all())


def unit_rows(uow: UnitOfWork, store_id: int) -> list[Any]:
    """A store's storage units as plain rows (id, store_id, code, kind, min_temp_c,
    max_temp_c), in id order: list_units for a page's links and choices."""
    return list(uow.session.execute(_UNITS_OF_STORE, {"store_id": store_id}).all())


def product_rows(uow: UnitOfWork) -> list[Any]:
    """Every product as a plain row (id, code, name, doses_per_vial), in code order: for a
    page's choices."""
    return list(uow.session.execute(_PRODUCTS).all())


def create_unit(
    uow: UnitOfWork, *, store_id: int, code: str, kind: str, min_temp_c: float, max_temp_c: float
) -> StorageUnit:
    """Add a storage unit (ILR, deep freezer...) with its safe range to a store."""
    get_store(uow, store_id)
    if min_temp_c >= max_temp_c:
        raise Invalid("the safe range needs min_temp_c < max_temp_c", field="max_temp_c")
    taken = select(StorageUnit.id).where(StorageUnit.store_id == store_id, StorageUnit.code == code)
    if uow.session.scalar(taken) is not None:
        raise Conflict(f"store {store_id} already has a unit {code!r}", field="code")
    unit = StorageUnit(
        store_id=store_id, code=code, kind=kind, min_temp_c=min_temp_c, max_temp_c=max_temp_c
    )
    uow.session.add(unit)
    uow.session.flush()
    return unit


def list_units(uow: UnitOfWork, *, store_id: int | None = None) -> list[StorageUnit]:
    """Storage units, optionally of one store."""
    query = select(StorageUnit).order_by(StorageUnit.id)
    if store_id is not None:
        query = query.where(StorageUnit.store_id == store_id)
    return list(uow.session.scalars(query))


def create_product(
    uow: UnitOfWork,
    *,
    code: str,
    name: str,
    doses_per_vial: int,
    min_temp_c: float,
    max_temp_c: float,
    freeze_sensitive: bool = True,
    open_vial_life_min: int | None = None,
    gtin: str | None = None,
) -> Product:
    """Add a vaccine product with its presentation and storage needs."""
    if min_temp_c >= max_temp_c:
        raise Invalid("the storage range needs min_temp_c < max_temp_c", field="max_temp_c")
    if uow.session.scalar(select(Product.id).where(Product.code == code)) is not None:
        raise Conflict(f"product code {code!r} is taken", field="code")
    if gtin and uow.session.scalar(select(Product.id).where(Product.gtin == gtin)) is not None:
        raise Conflict(f"GTIN {gtin} belongs to another product", field="gtin")
    product = Product(
        code=code,
        name=name,
        doses_per_vial=doses_per_vial,
        min_temp_c=min_temp_c,
        max_temp_c=max_temp_c,
        freeze_sensitive=freeze_sensitive,
        open_vial_life_min=open_vial_life_min,
        gtin=gtin,
    )
    uow.session.add(product)
    uow.session.flush()
    return product


def list_products(uow: UnitOfWork) -> list[Product]:
    """Every product."""
    return list(uow.session.scalars(select(Product).order_by(Product.code)))


def list_lots(uow: UnitOfWork, *, product_id: int | None = None) -> list[Lot]:
    """Lots, optionally of one product, earliest expiry first."""
    query = select(Lot).order_by(Lot.expiry_date, Lot.id)
    if product_id is not None:
        query = query.where(Lot.product_id == product_id)
    return list(uow.session.scalars(query))


def read_label(gs1: str) -> tuple[str | None, str, dt.date]:
    """GTIN, lot number and expiry read from a carton's GS1 element string."""
    try:
        label = parse_carton_label(gs1)
    except GS1Error as exc:
        raise Invalid(f"unreadable GS1 element string: {exc}", field="gs1") from exc
    return label.gtin, label.lot_number, label.expiry_date


def resolve_product(uow: UnitOfWork, product_id: int | None, gtin: str | None) -> Product:
    """The product named by id, else the one whose GTIN the carton carries."""
    if product_id is not None:
        return get_product(uow, product_id)
    product = (
        uow.session.scalars(select(Product).where(Product.gtin == gtin)).first() if gtin else None
    )
    if product is None and gtin:
        raise NotFound(f"no product carries GTIN {gtin}", field="gtin")
    if product is None:
        raise Invalid(
            "name the product (product_id) or give a GS1 string whose GTIN is known",
            field="product_id",
        )
    return product


def find_or_add_lot(
    uow: UnitOfWork,
    *,
    product: Product,
    lot_number: str,
    manufacturer: str | None,
    expiry_date: dt.date,
    gtin: str | None,
) -> Lot:
    """The product's lot with this number (expiry checked), or a new one (not committed)."""
    lot = uow.session.scalars(
        select(Lot).where(Lot.product_id == product.id, Lot.lot_number == lot_number)
    ).first()
    if lot is not None:
        if lot.expiry_date != expiry_date:
            # 409: the stored lot says otherwise.
            raise Conflict(
                f"lot {lot_number} is recorded with expiry {lot.expiry_date}", field="expiry_date"
            )
        return lot
    if not manufacturer:
        raise Invalid("a new lot needs its manufacturer", field="manufacturer")
    lot = Lot(
        product_id=product.id,
        lot_number=lot_number,
        manufacturer=manufacturer,
        expiry_date=expiry_date,
        gtin=gtin or product.gtin,
    )
    uow.session.add(lot)
    uow.session.flush()
    return lot


def _describe_lot(uow: UnitOfWork, fields: dict[str, Any]) -> dict[str, Any]:
    gtin, lot_number, expiry = (
        fields.get("gtin"),
        fields.get("lot_number"),
        fields.get("expiry_date"),
    )
    if fields.get("gs1"):
        gtin, lot_number, expiry = read_label(fields["gs1"])
    if not lot_number:
        raise Invalid("give lot_number (or a GS1 string with (10))", field="lot_number")
    if expiry is None:
        raise Invalid("give expiry_date (or a GS1 string with (17))", field="expiry_date")
    product = resolve_product(uow, fields.get("product_id"), gtin)
    return {
        "product": product,
        "lot_number": lot_number,
        "manufacturer": fields.get("manufacturer"),
        "expiry_date": expiry,
        "gtin": gtin,
    }


def lot_from_fields(uow: UnitOfWork, fields: dict[str, Any]) -> Lot:
    """Find or add the lot described by fields and/or a GS1 element string (not committed)."""
    return find_or_add_lot(uow, **_describe_lot(uow, fields))


def create_lot(uow: UnitOfWork, fields: dict[str, Any]) -> Lot:
    """Register a lot (fields or a GS1 element string); an existing lot number is a conflict."""
    described = _describe_lot(uow, fields)
    taken = select(Lot.id).where(
        Lot.product_id == described["product"].id, Lot.lot_number == described["lot_number"]
    )
    if uow.session.scalar(taken) is not None:
        raise Conflict(f"lot {described['lot_number']} of this product exists", field="lot_number")
    lot = find_or_add_lot(uow, **described)
    uow.session.flush()
    return lot
