"""A district with a centre, ILRs, a product and lots received through the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from logistics.db import UnitOfWork
from logistics.models.catalog import Lot, Product, StorageUnit, Store
from logistics.models.stock import StockBalance
from logistics.services.stock import receive_stock, recorded

SITE_TZ = "Asia/Kolkata"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def today() -> dt.date:
    return now().astimezone(ZoneInfo(SITE_TZ)).date()


def day(n: int) -> dt.date:
    return today() + dt.timedelta(days=n)


@dataclasses.dataclass
class Site:
    state: Store
    district: Store
    centre: Store
    ilr: StorageUnit
    product: Product
    lot: Lot


def add_store(uow: UnitOfWork, code: str, level: str, parent: Store | None) -> Store:
    store = Store(code=code, name=code, level_code=level, parent_id=parent.id if parent else None)
    uow.session.add(store)
    uow.session.flush()
    store.path = f"{parent.path if parent else '/'}{store.id}/"
    uow.session.flush()
    return store


def add_unit(uow: UnitOfWork, centre: Store, code: str = "ILR-1") -> StorageUnit:
    unit = StorageUnit(store_id=centre.id, code=code, kind="ilr", min_temp_c=2.0, max_temp_c=8.0)
    uow.session.add(unit)
    uow.session.flush()
    return unit


def add_lot(uow: UnitOfWork, product: Product, number: str, expires_in_days: int = 180) -> Lot:
    lot = Lot(
        product_id=product.id,
        lot_number=number,
        manufacturer="Serum Institute of India",
        expiry_date=day(expires_in_days),
    )
    uow.session.add(lot)
    uow.session.flush()
    return lot


def start_of_today() -> dt.datetime:
    """Midnight at the site, today."""
    return dt.datetime.combine(today(), dt.time(0), tzinfo=ZoneInfo(SITE_TZ))


def receive(uow: UnitOfWork, unit: StorageUnit, lot: Lot, doses: int) -> None:
    """Receive doses into a unit through the ledger (commits), at the start of the site's day.

    Stock on hand before today's sessions: a session reported today gives its doses at the end of
    its last slot, which is before the test's now once the site's afternoon is over. A receipt
    made at now would then come after them, and the report would find no stock (four tests of the
    suite failed that way when run after 17:00 in India).
    """
    rec = recorded("test", start_of_today(), str(uuid.uuid4()), SITE_TZ)
    receive_stock(
        uow, store_id=unit.store_id, unit_id=unit.id, doses=doses, rec=rec, lot={"lot_id": lot.id}
    )
    uow.commit()


def make_site(uow: UnitOfWork, doses: int = 500, doses_per_vial: int = 10) -> Site:
    """State -> district -> centre with one ILR holding `doses` of one Covishield lot."""
    state = add_store(uow, "KA", "state", None)
    district = add_store(uow, "KA-BLR", "district", state)
    centre = add_store(uow, "KA-BLR-PHC1", "centre", district)
    ilr = add_unit(uow, centre)
    product = Product(
        code="COVISHIELD",
        name="COVISHIELD",
        doses_per_vial=doses_per_vial,
        min_temp_c=2.0,
        max_temp_c=8.0,
        freeze_sensitive=True,
        open_vial_life_min=240,
    )
    uow.session.add(product)
    uow.session.flush()
    lot = add_lot(uow, product, "4121Z001")
    uow.commit()
    if doses:
        receive(uow, ilr, lot, doses)
    return Site(state, district, centre, ilr, product, lot)


def balance(uow: UnitOfWork, unit: StorageUnit, lot: Lot) -> StockBalance:
    found = uow.session.query(StockBalance).filter_by(unit_id=unit.id, lot_id=lot.id).one()
    uow.session.refresh(found)
    return found


def session_body(site: Site, capacity: int, on: dt.date | None = None, **extra: object) -> dict:
    return {
        "store_id": site.centre.id,
        "product_id": site.product.id,
        "session_date": (on or day(1)).isoformat(),
        "capacity": capacity,
        "dose_number": "1",
        "min_age": 18,
        **extra,
    }
