"""Traceability: where a lot's doses are and every movement they took; a store's stock."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, tuple_

from logistics.db import UnitOfWork
from logistics.domain import stock as rules
from logistics.models.catalog import Lot, StorageUnit, Store
from logistics.models.stock import LedgerEntry, Movement, Shipment, ShipmentLine, StockBalance
from logistics.services import catalog
from logistics.services.lookup import in_bound_subtree, subtree_params
from logistics.services.stock import lot_stock

# Columns, not entities: a national lot sits in thousands of units (issue 14, lot trace page).
# The trace's statements are built once: building them cost its page more than running them.
_LOCATIONS = (
    select(
        Store.id,
        Store.code,
        StorageUnit.id,
        StorageUnit.code,
        StockBalance.doses,
        StockBalance.quarantined_doses,
        StockBalance.vvm_stage,
    )
    .join(StorageUnit, StorageUnit.id == StockBalance.unit_id)
    .join(Store, Store.id == StockBalance.store_id)
    .where(StockBalance.lot_id == bindparam("lot_id"), StockBalance.doses > 0)
    .order_by(Store.path, StorageUnit.id)
)


def _locations(uow: UnitOfWork, lot: Lot) -> list[dict[str, Any]]:
    per_vial = lot.product.doses_per_vial
    rows = uow.session.execute(_LOCATIONS, {"lot_id": lot.id})
    return [
        {
            "store_id": store_id,
            "store_code": store_code,
            "unit_id": unit_id,
            "unit_code": unit_code,
            "doses": doses,
            "vials": rules.vials(doses, per_vial),
            "quarantined_doses": quarantined,
            "vvm_stage": vvm_stage,
        }
        for store_id, store_code, unit_id, unit_code, doses, quarantined, vvm_stage in rows
    ]


_SHIPMENT_LINES = (
    select(ShipmentLine, Shipment)
    .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
    .where(ShipmentLine.lot_id == bindparam("lot_id"))
    .order_by(Shipment.id)
)


def _shipment_lines(uow: UnitOfWork, lot: Lot) -> list[tuple[ShipmentLine, Shipment]]:
    found = uow.session.execute(_SHIPMENT_LINES, {"lot_id": lot.id})
    return [(line, shipment) for line, shipment in found]


def _transit(
    lot: Lot, lines: list[tuple[ShipmentLine, Shipment]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    in_transit, lost = [], []
    for line, shipment in lines:
        base = {
            "shipment_id": shipment.id,
            "from_store_id": shipment.from_store_id,
            "to_store_id": shipment.to_store_id,
        }
        if shipment.status == "in_transit":
            in_transit.append(
                {
                    **base,
                    "doses": line.doses_issued,
                    "issued_at": shipment.issued_at,
                    "vials": rules.vials(line.doses_issued, lot.product.doses_per_vial),
                }
            )
        elif shipment.status == "received" and (line.doses_received or 0) < line.doses_issued:
            lost.append(
                {
                    **base,
                    "doses": line.doses_issued - (line.doses_received or 0),
                    "reason": line.difference_reason,
                }
            )
    return in_transit, lost


def _movements(
    uow: UnitOfWork, lot: Lot, limit: int | None, after_entry_id: int | None
) -> list[dict[str, Any]]:
    """The lot's entries oldest first; a page of `limit` after the entry `after_entry_id`
    (keyset on (occurred_at, id): the index on lot, time and id reads only the page). Read as
    columns, not ORM objects (a lot's trace can list thousands)."""
    query = _MOVEMENTS_AFTER if after_entry_id is not None else _MOVEMENTS_FROM_START
    # No limit is a bound no lot reaches (SQLite refuses LIMIT NULL).
    params = {"lot_id": lot.id, "limit": _ALL if limit is None else limit, "after": after_entry_id}
    return [dict(row._mapping) for row in uow.session.execute(query, params)]


_E, _M = LedgerEntry, Movement
_ALL = 2**62
_MOVEMENTS_FROM_START = (
    select(
        _E.id.label("entry_id"),
        _M.id.label("movement_id"),
        _M.kind,
        _E.store_id,
        _E.unit_id,
        _E.doses,
        _E.occurred_at,
        _M.recorded_at,
        _M.actor,
        _M.reason,
        _M.client_id,
        _M.other_store_id,
        _M.reverses_id,
    )
    .join(_M, _M.id == _E.movement_id)
    .where(_E.lot_id == bindparam("lot_id"))
    .order_by(_E.occurred_at, _E.id)
    .limit(bindparam("limit"))
)
_AFTER = (
    select(_E.occurred_at, _E.id)
    .where(_E.id == bindparam("after"), _E.lot_id == bindparam("lot_id"))
    .subquery()
)
_MOVEMENTS_AFTER = _MOVEMENTS_FROM_START.where(
    tuple_(_E.occurred_at, _E.id) > select(_AFTER.c.occurred_at, _AFTER.c.id).scalar_subquery()
)


def lot_trace(
    uow: UnitOfWork, lot_id: int, *, limit: int | None = None, after_entry_id: int | None = None
) -> dict[str, Any]:
    """Where every dose of a lot is now (store and unit, or in transit) and its movements.

    The movements come oldest first, all of them or a page of `limit` after the entry
    `after_entry_id`; `next_after_entry_id` continues a full page (None: the last page).
    """
    lot = catalog.get_lot(uow, lot_id)
    locations = _locations(uow, lot)
    shipments = _shipment_lines(uow, lot)
    in_transit, lost = _transit(lot, shipments)
    movements = _movements(uow, lot, limit, after_entry_id)
    full = limit is not None and len(movements) == limit
    return {
        "lot": lot,
        "locations": locations,
        "in_transit": in_transit,
        "lost_in_transit": lost,
        "doses_in_stock": sum(row["doses"] for row in locations),
        "doses_in_transit": sum(row["doses"] for row in in_transit),
        "movements": movements,
        "next_after_entry_id": movements[-1]["entry_id"] if full else None,
        # Vaccines in transit (issue 18): every trip of the lot's doses, and in which carriers.
        "trips": _trips(uow, lot.id, shipments),
    }


def _trips(
    uow: UnitOfWork, lot_id: int, shipments: list[tuple[ShipmentLine, Shipment]]
) -> list[dict[str, Any]]:
    from logistics.services import transit

    return transit.lot_trips(uow, lot_id, shipments)


def _stock_statements(scope: Any) -> tuple[Any, Any]:
    """The non-empty balances of the stores `scope` selects (with lot and product), and the doses
    they consumed per product since :since, reversed consumptions left out."""
    balances = (
        select(StockBalance)
        .where(StockBalance.store_id.in_(scope), StockBalance.doses > 0)
        .order_by(StockBalance.lot_id, StockBalance.unit_id)
    )
    reversed_ids = select(Movement.reverses_id).where(Movement.reverses_id.is_not(None))
    consumed = (
        select(Lot.product_id, func.sum(-LedgerEntry.doses))
        .join(Movement, Movement.id == LedgerEntry.movement_id)
        .join(Lot, Lot.id == LedgerEntry.lot_id)
        .where(
            Movement.kind == rules.CONSUMPTION,
            LedgerEntry.store_id.in_(scope),
            LedgerEntry.occurred_at >= bindparam("since"),
            Movement.id.not_in(reversed_ids),
        )
        .group_by(Lot.product_id)
    )
    return balances, consumed


# Built once for a store (:store_id) and for a subtree (:subtree, a subtree_pattern): a store's
# page shows them on every request, and building them cost more than running them.
_OF_STORE = _stock_statements(select(Store.id).where(Store.id == bindparam("store_id")))
_OF_SUBTREE = _stock_statements(select(Store.id).where(in_bound_subtree(Store.path)))


Held = set[tuple[int, int]]  # (store id, lot id) pairs a recall holds


def _usable(balance: StockBalance, on: dt.date, held: Held) -> int:
    recalled = (balance.store_id, balance.lot_id) in held
    return rules.usable_doses(lot_stock(balance, recalled), on)


def _recalled(uow: UnitOfWork, balances: list[StockBalance]) -> Held:
    """The (store, lot) pairs among these balances that a recall in force holds."""
    from logistics.services.recalled import scopes

    found = scopes(uow.session, {b.lot_id for b in balances})
    if not found:
        return set()
    paths = dict(
        uow.session.execute(
            select(Store.id, Store.path).where(Store.id.in_({b.store_id for b in balances}))
        ).all()
    )
    return {
        (b.store_id, b.lot_id)
        for b in balances
        if rules.recalled(b.lot_id, paths[b.store_id], found)
    }


def _lot_rows(balances: list[StockBalance], on: dt.date, held: Held) -> list[dict[str, Any]]:
    lots: dict[int, dict[str, Any]] = {}
    for balance in balances:
        lot = balance.lot
        row = lots.setdefault(
            lot.id,
            {
                "lot_id": lot.id,
                "lot_number": lot.lot_number,
                "expiry_date": lot.expiry_date,
                "doses": 0,
                "usable_doses": 0,
                "quarantined_doses": 0,
                "units": [],
            },
        )
        row["doses"] += balance.doses
        row["quarantined_doses"] += balance.quarantined_doses
        row["usable_doses"] += _usable(balance, on, held)
        row["units"].append(
            {
                "store_id": balance.store_id,
                "unit_id": balance.unit_id,
                "doses": balance.doses,
                "vvm_stage": balance.vvm_stage,
            }
        )
    for row in lots.values():
        row["vials"] = rules.vials(row["doses"], balances[0].lot.product.doses_per_vial)
    return sorted(lots.values(), key=lambda r: (r["expiry_date"], r["lot_id"]))


def _product_row(
    balances: list[StockBalance], consumed: int, window_days: int, on: dt.date, held: Held
) -> dict[str, Any]:
    product = balances[0].lot.product
    doses = sum(b.doses for b in balances)
    rate = rules.daily_rate(consumed, window_days)
    return {
        "product_id": product.id,
        "product_code": product.code,
        "doses": doses,
        "vials": rules.vials(doses, product.doses_per_vial),
        "usable_doses": sum(_usable(b, on, held) for b in balances),
        "consumed_doses": consumed,
        "daily_consumption": round(rate, 2) if rate else None,
        "days_of_stock": rules.days_of_stock(doses, rate),
        "lots": _lot_rows(balances, on, held),
    }


def store_stock(
    uow: UnitOfWork,
    store_id: int,
    *,
    now: dt.datetime,
    window_days: int,
    subtree: bool = False,
    site_timezone: str = "UTC",
) -> dict[str, Any]:
    """Stock of a store (or its whole subtree) by product and lot, with days of stock when known."""
    store = catalog.get_store(uow, store_id)
    of_balances, of_consumed = _OF_SUBTREE if subtree else _OF_STORE
    scope: dict[str, Any] = subtree_params(store.path) if subtree else {"store_id": store.id}
    balances = list(uow.session.scalars(of_balances, scope))
    since = now - dt.timedelta(days=window_days)
    sums: list[Any] = list(uow.session.execute(of_consumed, {**scope, "since": since}))
    consumed = {product_id: int(total) for product_id, total in sums}
    on = now.astimezone(ZoneInfo(site_timezone)).date()
    by_product: dict[int, list[StockBalance]] = {}
    for balance in balances:
        by_product.setdefault(balance.lot.product_id, []).append(balance)
    held = _recalled(uow, balances)
    products = [
        _product_row(group, consumed.get(pid, 0), window_days, on, held)
        for pid, group in sorted(by_product.items())
    ]
    return {
        "store": store,
        "subtree": subtree,
        "as_of": now,
        "window_days": window_days,
        "products": products,
    }
