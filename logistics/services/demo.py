"""Demo data: a state store, two districts, four centres, Covishield and Covaxin lots with stock.

Stock goes in through the real receipt, issue and consumption services, so the ledger, balances and
shipments are consistent. Loading twice changes nothing: stores are found by code, movements by
their deterministic client ids.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from logistics.db import UnitOfWork
from logistics.models.catalog import Lot, Product, StorageUnit, Store
from logistics.models.stock import Movement
from logistics.services import catalog, stock
from logistics.services.reference import seed_reference_data

ILR = ("ilr", 2.0, 8.0)  # ice-lined refrigerator, +2 to +8 C (shared/domain.md)
WALK_IN_COOLER = ("walk_in_cooler", 2.0, 8.0)

# (code, name, level, parent code, [(unit code, kind/range)])
STORES = (
    (
        "MH-SVS-PUNE",
        "State Vaccine Store, Pune",
        "state",
        None,
        [("WIC-1", WALK_IN_COOLER), ("ILR-1", ILR)],
    ),
    ("MH-DVS-PUNE", "District Vaccine Store, Pune", "district", "MH-SVS-PUNE", [("ILR-1", ILR)]),
    (
        "MH-DVS-NASHIK",
        "District Vaccine Store, Nashik",
        "district",
        "MH-SVS-PUNE",
        [("ILR-1", ILR)],
    ),
    ("PUN-PHC-KHED", "PHC Khed", "centre", "MH-DVS-PUNE", [("ILR-1", ILR)]),
    ("PUN-PHC-BARAMATI", "PHC Baramati", "centre", "MH-DVS-PUNE", [("ILR-1", ILR)]),
    ("NSK-PHC-SINNAR", "PHC Sinnar", "centre", "MH-DVS-NASHIK", [("ILR-1", ILR)]),
    ("NSK-CHC-IGATPURI", "CHC Igatpuri", "centre", "MH-DVS-NASHIK", [("ILR-1", ILR)]),
)
# Covishield 10, Covaxin 20 doses a vial; +2 to +8 C, freeze-sensitive, opened vial 4 h (domain.md).
PRODUCTS = (
    ("COVISHIELD", "Covishield (ChAdOx1 nCoV-19)", 10, "08901234567890"),
    ("COVAXIN", "Covaxin (BBV152)", 20, "08907654321098"),
)
# (product, lot number, manufacturer, days to expiry, doses received at the state store)
LOTS = (
    ("COVISHIELD", "4121Z001", "Serum Institute of India", 25, 20_000),
    ("COVISHIELD", "4121Z045", "Serum Institute of India", 150, 50_000),
    ("COVISHIELD", "4121Z102", "Serum Institute of India", 270, 50_000),
    ("COVAXIN", "13210021", "Bharat Biotech", 120, 20_000),
    ("COVAXIN", "13210055", "Bharat Biotech", 200, 30_000),
)
DISTRICT_ISSUE = {"COVISHIELD": 20_000, "COVAXIN": 8_000}
CENTRE_ISSUE = {"COVISHIELD": 3_000, "COVAXIN": 1_000}
DAILY_CONSUMPTION = {"COVISHIELD": 150, "COVAXIN": 40}


def _existing(uow: UnitOfWork, code: str) -> Store:
    store = catalog.find_store_by_code(uow, code)
    assert store is not None, f"the demo creates store {code} before its children"
    return store


def _store(
    uow: UnitOfWork,
    code: str,
    name: str,
    level: str,
    parent: str | None,
    units: list[tuple[str, tuple[str, float, float]]],
) -> Store:
    store = catalog.find_store_by_code(uow, code)
    if store is None:
        parent_id = _existing(uow, parent).id if parent else None
        store = catalog.create_store(
            uow, code=code, name=name, level_code=level, parent_id=parent_id
        )
    existing = {unit.code for unit in catalog.list_units(uow, store_id=store.id)}
    for unit_code, (kind, low, high) in units:
        if unit_code not in existing:
            catalog.create_unit(
                uow, store_id=store.id, code=unit_code, kind=kind, min_temp_c=low, max_temp_c=high
            )
    return store


def _products(uow: UnitOfWork) -> dict[str, Product]:
    found = {p.code: p for p in catalog.list_products(uow)}
    for code, name, doses_per_vial, gtin in PRODUCTS:
        if code not in found:
            found[code] = catalog.create_product(
                uow,
                code=code,
                name=name,
                doses_per_vial=doses_per_vial,
                min_temp_c=2.0,
                max_temp_c=8.0,
                freeze_sensitive=True,
                open_vial_life_min=240,
                gtin=gtin,
            )
    return found


def _lots(uow: UnitOfWork, products: dict[str, Product], today: dt.date) -> dict[str, Lot]:
    lots = {}
    for product_code, number, maker, days, _doses in LOTS:
        product = products[product_code]
        lot = uow.session.scalars(
            select(Lot).where(Lot.product_id == product.id, Lot.lot_number == number)
        ).first()
        lots[number] = lot or catalog.create_lot(
            uow,
            {
                "product_id": product.id,
                "lot_number": number,
                "manufacturer": maker,
                "expiry_date": today + dt.timedelta(days=days),
            },
        )
    return lots


def _once(uow: UnitOfWork, client_id: str, record: Callable[[], Movement]) -> Movement:
    """Record a movement unless the demo recorded it before (same client id)."""
    found = uow.session.scalars(select(Movement).where(Movement.client_id == client_id)).first()
    if found is not None:
        return found
    movement = record()
    uow.session.flush()
    return movement


def _unit(store: Store, code: str = "ILR-1") -> StorageUnit:
    return next(unit for unit in store.units if unit.code == code)


def _ship(
    uow: UnitOfWork,
    parent: Store,
    child: Store,
    product: Product,
    doses: int,
    issued: dt.datetime,
    now: dt.datetime,
) -> None:
    """Issue from parent to child (FEFO) and receive it into the child's ILR a day later."""
    tag = f"demo-issue-{parent.code}-{child.code}-{product.code}"
    issue = _once(
        uow,
        tag,
        lambda: stock.issue_stock(
            uow,
            store_id=parent.id,
            to_store_id=child.id,
            doses=doses,
            product_id=product.id,
            rec=stock.recorded("demo", issued, tag, now=now),
        ),
    )
    shipment_id = issue.shipment_id
    assert shipment_id is not None  # an issue always opens a shipment
    _once(
        uow,
        f"{tag}-received",
        lambda: stock.receive_shipment(
            uow,
            store_id=child.id,
            unit_id=_unit(child).id,
            shipment_id=shipment_id,
            rec=stock.recorded("demo", issued + dt.timedelta(days=1), f"{tag}-received", now=now),
        ),
    )


def _consume(
    uow: UnitOfWork, centre: Store, products: dict[str, Product], now: dt.datetime
) -> None:
    for code, per_day in DAILY_CONSUMPTION.items():
        for days_ago in (3, 2, 1):
            tag = f"demo-consumption-{centre.code}-{code}-{days_ago}"
            balances = [
                b
                for b in stock.store_balances(uow, centre.id)
                if b.lot.product_id == products[code].id
            ]
            lot_id = min(balances, key=lambda b: b.lot.expiry_date).lot_id
            _once(
                uow,
                tag,
                functools.partial(
                    stock.record_consumption,
                    uow,
                    store_id=centre.id,
                    unit_id=_unit(centre).id,
                    lot_id=lot_id,
                    doses=per_day,
                    actor="demo",
                    client_id=tag,
                    occurred_at=now - dt.timedelta(days=days_ago),
                ),
            )


def _stock(
    uow: UnitOfWork,
    stores: dict[str, Store],
    products: dict[str, Product],
    lots: dict[str, Lot],
    now: dt.datetime,
) -> None:
    state = stores["MH-SVS-PUNE"]
    for _product, number, _maker, _days, doses in LOTS:
        tag = f"demo-receipt-{number}"
        _once(
            uow,
            tag,
            functools.partial(
                stock.receive_stock,
                uow,
                store_id=state.id,
                unit_id=_unit(state, "WIC-1").id,
                doses=doses,
                lot={"lot_id": lots[number].id},
                supplier=lots[number].manufacturer,
                rec=stock.recorded("demo", now - dt.timedelta(days=10), tag, now=now),
            ),
        )
    for district in (s for s in stores.values() if s.level_code == "district"):
        for code, doses in DISTRICT_ISSUE.items():
            _ship(uow, state, district, products[code], doses, now - dt.timedelta(days=8), now)
    for centre in (s for s in stores.values() if s.level_code == "centre"):
        district = next(s for s in stores.values() if s.id == centre.parent_id)
        for code, doses in CENTRE_ISSUE.items():
            _ship(uow, district, centre, products[code], doses, now - dt.timedelta(days=5), now)
        _consume(uow, centre, products, now)


def load_demo(uow: UnitOfWork, now: dt.datetime) -> dict[str, Any]:
    """Load the demo network and stock (idempotent); return the ids by code, e.g. centres' ILRs.

    The caller commits; `centre_ilrs` lists the four centres' ILRs (for demo sensors).
    """
    seed_reference_data(uow)
    stores = {
        code: _store(uow, code, name, level, parent, units)
        for code, name, level, parent, units in STORES
    }
    products = _products(uow)
    lots = _lots(uow, products, now.date())
    _stock(uow, stores, products, lots, now)
    units = {
        f"{store.code}/{unit.code}": unit.id for store in stores.values() for unit in store.units
    }
    centre_ilrs = [
        {"store_code": s.code, "store_id": s.id, "unit_code": "ILR-1", "unit_id": _unit(s).id}
        for s in stores.values()
        if s.level_code == "centre"
    ]
    return {
        "stores": {code: store.id for code, store in stores.items()},
        "units": units,
        "centre_ilrs": centre_ilrs,
        "products": {c: p.id for c, p in products.items()},
        "lots": {number: lot.id for number, lot in lots.items()},
    }
