"""Public availability in the shape of CoWIN's public API, and the district planner's view.

The public answers are cached per web process and keyed by the district's availability version
(a row bumped in the same transaction as every change people can see). A process asks the
database for that version at most every `availability.version_check_s` seconds, so with several
gunicorn workers each answer is at most that old plus the request time; there is no per-process
truth to go stale.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, case, func, literal, select, union_all

from logistics.db import UnitOfWork
from logistics.domain import slots as rules
from logistics.domain import stock as stock_rules
from logistics.models.catalog import Lot, Product, Store
from logistics.models.sessions import AvailabilityVersion, Session, SessionReport, Slot
from logistics.models.stock import Shipment, ShipmentLine, StockBalance
from logistics.services import catalog
from logistics.services.commitments import district_of
from logistics.services.lookup import get_or_404, in_bound_subtree, subtree_params
from logistics.services.recalled import scopes as recall_scopes

COWIN_DATE = "%d-%m-%Y"  # CoWIN's public API writes dates as DD-MM-YYYY


# --- answers ---------------------------------------------------------------------------------

# One row per slot of every open session of a district on a date: plain columns, no ORM objects,
# because this is rebuilt by every web process whenever the district changes.
_COLUMNS = (
    Session.id,
    Session.store_id,
    Store.name,
    Session.district_id,
    Session.session_date,
    Session.capacity,
    Session.shortfall_doses,
    Session.dose_number,
    Session.min_age,
    Product.name,
    Slot.id,
    Slot.starts_at,
    Slot.ends_at,
    Slot.capacity,
    Slot.booked,
)


def _public_session(row: Any, slots: list[Any]) -> dict[str, Any]:
    """One session as CoWIN's public API showed it (plus slot ids to book with)."""
    available = rules.available_seats(row[5], row[6], [(slot[13], slot[14]) for slot in slots])
    dose = row[7]
    return {
        "center_id": row[1],
        "name": row[2],
        "district_id": row[3],
        "session_id": row[0],
        "date": row[4].strftime(COWIN_DATE),
        "available_capacity": available,
        "available_capacity_dose1": available if dose == "1" else 0,
        "available_capacity_dose2": available if dose == "2" else 0,
        "available_capacity_precaution": available if dose == "precaution" else 0,
        "min_age_limit": row[8],
        "vaccine": row[9],
        "slots": [
            {
                "slot_id": slot[10],
                "time": f"{slot[11]:%H:%M}-{slot[12]:%H:%M}",
                "seats": max(0, slot[13] - slot[14]),
            }
            for slot in slots
        ],
    }


def _open_sessions(uow: UnitOfWork, on_date: dt.date, *where: Any) -> list[dict[str, Any]]:
    query = (
        select(*_COLUMNS)
        .join(Store, Store.id == Session.store_id)
        .join(Product, Product.id == Session.product_id)
        .join(Slot, Slot.session_id == Session.id)
        .where(Session.session_date == on_date, Session.status == "open", *where)
        .order_by(Store.name, Session.id, Slot.starts_at)
    )
    grouped: dict[int, list[Any]] = {}
    for row in uow.session.execute(query).all():
        grouped.setdefault(row[0], []).append(row)
    return [_public_session(rows[0], rows) for rows in grouped.values()]


def find_by_district(uow: UnitOfWork, district_id: int, on_date: dt.date) -> dict[str, Any]:
    """Open sessions of a district's centres on a date (unknown district: none, like CoWIN)."""
    return {"sessions": _open_sessions(uow, on_date, Session.district_id == district_id)}


def centre_district(uow: UnitOfWork, centre_id: int) -> int:
    """The district whose version guards a centre's answers, or 404."""
    centre = get_or_404(uow, Store, centre_id, f"no centre {centre_id}", field="center_id")
    return district_of(uow, centre)


def district_version(uow: UnitOfWork, district_id: int) -> int:
    """The district's availability version (0 before its first change)."""
    query = select(AvailabilityVersion.version).where(
        AvailabilityVersion.district_id == district_id
    )
    return int(uow.session.scalar(query) or 0)


# --- the per-process cache ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CachedAnswer:
    """A serialised answer and the version it was built at."""

    version: int
    body: bytes
    etag: str


class AvailabilityCache:
    """Answers of this process, trusted only while the district's version in the database holds.

    A district's sessions of a day are read once per version (one query for the whole district);
    the answers by district and by centre are cut from them and kept serialised with their ETag.
    """

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        version_check_s: float,
        max_entries: int = 20000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._new_uow = new_uow
        self._clock = clock
        self._check_s = version_check_s
        self._max_entries = max_entries
        self._versions: dict[int, tuple[int, float]] = {}
        self._days: dict[tuple[int, dt.date], tuple[int, list[dict[str, Any]]]] = {}
        self._answers: dict[tuple[Any, ...], CachedAnswer] = {}
        self._districts: dict[int, int] = {}
        self._lock = threading.Lock()

    def by_district(self, district_id: int, on_date: dt.date) -> CachedAnswer:
        """Open sessions of a district's centres on a date."""
        return self._answer(("district", district_id, on_date), district_id, on_date, None)

    def by_centre(self, centre_id: int, on_date: dt.date) -> CachedAnswer:
        """Open sessions of one centre on a date (404 for an unknown centre)."""
        district_id = self._district_of_centre(centre_id)
        return self._answer(("centre", centre_id, on_date), district_id, on_date, centre_id)

    def _district_of_centre(self, centre_id: int) -> int:
        # Stores do not move between districts while the service runs.
        if centre_id not in self._districts:
            with self._new_uow() as uow:
                self._districts[centre_id] = centre_district(uow, centre_id)
        return self._districts[centre_id]

    def _version(self, district_id: int) -> int:
        known = self._versions.get(district_id)
        clock = self._clock()
        if known is not None and clock - known[1] < self._check_s:
            return known[0]
        with self._new_uow() as uow:
            version = district_version(uow, district_id)
        self._remember(self._versions, district_id, (version, clock))
        return version

    def _day(self, district_id: int, on_date: dt.date, version: int) -> list[dict[str, Any]]:
        known = self._days.get((district_id, on_date))
        if known is not None and known[0] == version:
            return known[1]
        with self._new_uow() as uow:
            sessions: list[dict[str, Any]] = find_by_district(uow, district_id, on_date)["sessions"]
        self._remember(self._days, (district_id, on_date), (version, sessions))
        return sessions

    def _answer(
        self, key: tuple[Any, ...], district_id: int, on_date: dt.date, centre_id: int | None
    ) -> CachedAnswer:
        version = self._version(
            district_id
        )  # read before the data: newer data is never mislabelled
        cached = self._answers.get(key)
        if cached is not None and cached.version == version:
            return cached
        sessions = self._day(district_id, on_date, version)
        if centre_id is not None:
            sessions = [s for s in sessions if s["center_id"] == centre_id]
        body = json.dumps({"sessions": sessions}, separators=(",", ":")).encode()
        fresh = CachedAnswer(version, body, f'"{hashlib.sha1(body).hexdigest()[:20]}"')
        self._remember(self._answers, key, fresh)
        return fresh

    def _remember(self, store: dict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            if len(store) >= self._max_entries:  # bounded memory, whatever keys clients ask for
                store.clear()
            store[key] = value


# --- the district planner's view ---------------------------------------------------------------


@dataclasses.dataclass
class PlannerRow:
    """One centre and product in the district view."""

    centre_id: int
    centre_name: str
    product_id: int
    product_code: str
    doses_per_vial: int
    usable_doses: int = 0
    in_transit_doses: int = 0
    promised_doses: int = 0
    open_capacity: int = 0
    available_doses: int = 0
    daily_doses: float = 0.0
    days_of_stock: float | None = None
    lines: list[rules.StockLine] = dataclasses.field(default_factory=list)
    promises: list[rules.Promise] = dataclasses.field(default_factory=list)


# The view's statements are built once, on the tables (Core, not the ORM: plain tuples come
# back), with bound parameters: a planner page runs them all on every request, and building
# and keying them anew cost as much as the database's answers. Each selects the district's
# centres by one bound subtree pattern, not by a list of a hundred ids, so none is rendered per
# centre.
_stores = Store.__table__.c
_balances, _lots = StockBalance.__table__.c, Lot.__table__.c
_sessions, _slots = Session.__table__.c, Slot.__table__.c
_shipments, _lines = Shipment.__table__.c, ShipmentLine.__table__.c
_reports = SessionReport.__table__.c

_IN_DISTRICT = (
    in_bound_subtree(_stores.path),
    _stores.id != bindparam("district_id"),
)
_CENTRE_IDS = select(_stores.id).where(*_IN_DISTRICT).scalar_subquery()
_CENTRES = select(_stores.id, _stores.name, _stores.path).where(*_IN_DISTRICT)
_STOCK = (
    select(
        _balances.store_id,
        _lots.product_id,
        _balances.lot_id,
        _balances.doses,
        _balances.quarantined_doses,
        _balances.vvm_stage,
        _lots.expiry_date,
        _lots.quarantined,
    )
    .join_from(StockBalance.__table__, Lot.__table__, _lots.id == _balances.lot_id)
    .where(_balances.store_id.in_(_CENTRE_IDS), _balances.doses > 0)
)
# One row per open session with its slots' sums (a session without slots: 0 and 0); the sums are
# what rules.seats_left needs, so a district's slots never travel one row each.
_SESSION_HEADS = (
    _sessions.id,
    _sessions.store_id,
    _sessions.product_id,
    _sessions.session_date,
    _sessions.capacity,
    _sessions.shortfall_doses,
)
_OPEN_SEATS = case((_slots.capacity > _slots.booked, _slots.capacity - _slots.booked), else_=0)
_SESSIONS = (
    select(
        *_SESSION_HEADS,
        func.coalesce(func.sum(_OPEN_SEATS), 0),
        func.coalesce(func.sum(_slots.booked), 0),
    )
    .join_from(Session.__table__, Slot.__table__, _slots.session_id == _sessions.id, isouter=True)
    .where(_sessions.store_id.in_(_CENTRE_IDS), _sessions.status == "open")
    .group_by(*_SESSION_HEADS)
    .order_by(_sessions.id)
)
# Doses in transit to each centre and doses given there since the window's start, in one answer:
# (True, ...) rows are in transit, (False, ...) rows were given.
_TRANSIT_AND_GIVEN = union_all(
    select(literal(True), _shipments.to_store_id, _lots.product_id, func.sum(_lines.doses_issued))
    .join_from(Shipment.__table__, ShipmentLine.__table__, _lines.shipment_id == _shipments.id)
    .join(Lot.__table__, _lots.id == _lines.lot_id)
    .where(_shipments.to_store_id.in_(_CENTRE_IDS), _shipments.status == "in_transit")
    .group_by(_shipments.to_store_id, _lots.product_id),
    select(literal(False), _reports.store_id, _reports.product_id, func.sum(_reports.doses_given))
    .where(_reports.store_id.in_(_CENTRE_IDS), _reports.session_date >= bindparam("since"))
    .group_by(_reports.store_id, _reports.product_id),
)


class _Rows(dict[tuple[int, int], PlannerRow]):
    """The view's rows by (centre, product), made on first use; centres not in the district's
    list (added after it was read, READ COMMITTED) are left out."""

    def __init__(self, centres: dict[int, tuple[int, str, str]], products: dict[int, Any]):
        super().__init__()
        self.centres, self.products = centres, products

    def at(self, centre_id: int, product_id: int) -> PlannerRow | None:
        """The row of a centre and product, or None for a centre not in the list."""
        row = self.get((centre_id, product_id))
        if row is None and centre_id in self.centres:
            product = self.products[product_id]
            row = self[centre_id, product_id] = PlannerRow(
                centre_id,
                self.centres[centre_id][1],
                product_id,
                product.code,
                product.doses_per_vial,
            )
        return row


def _found(uow: UnitOfWork, statement: Any, params: dict[str, Any]) -> list[Any]:
    """The rows of one of the view's statements (plain tuples)."""
    return list(uow.session.execute(statement, params).all())


def _add_stock(uow: UnitOfWork, rows: _Rows, params: dict[str, Any]) -> None:
    found = [row for row in _found(uow, _STOCK, params) if row[0] in rows.centres]
    scopes = recall_scopes(uow.session, {row[2] for row in found}) if found else []
    for store_id, product_id, lot_id, doses, held, vvm, expiry, lot_held in found:
        row = rows.at(store_id, product_id)
        if row is not None:
            recalled = lot_held or stock_rules.recalled(lot_id, rows.centres[store_id][2], scopes)
            row.lines.append(rules.StockLine(doses, held, vvm, expiry, recalled))


def _add_sessions(uow: UnitOfWork, rows: _Rows, params: dict[str, Any]) -> None:
    for session_id, store_id, product_id, on_date, capacity, short, seats, booked in _found(
        uow, _SESSIONS, params
    ):
        row = rows.at(store_id, product_id)
        if row is not None:
            row.promises.append(rules.Promise(session_id, on_date, capacity))
            row.open_capacity += rules.seats_left(capacity, short, int(seats), int(booked))


def _add_transit_and_rate(uow: UnitOfWork, rows: _Rows, params: dict[str, Any]) -> None:
    window_days = params["window_days"]
    for in_transit, store_id, product_id, doses in _found(uow, _TRANSIT_AND_GIVEN, params):
        row = rows.at(store_id, product_id)
        if row is None:
            continue
        if in_transit:
            row.in_transit_doses = int(doses)
        else:
            row.daily_doses = round(int(doses) / window_days, 2)


def district_view(
    uow: UnitOfWork, *, district_id: int, on_date: dt.date, today: dt.date, window_days: int
) -> list[PlannerRow]:
    """Per centre and product: usable, in transit, promised, open capacity and days of stock.

    Days of stock = usable doses / doses given per day over the last `window_days` days of
    end-of-session reports (shared/domain.md: stock / daily consumption rate).
    """
    district = get_or_404(
        uow, Store, district_id, f"no district store {district_id}", field="district_id"
    )
    params: dict[str, Any] = {
        **subtree_params(district.path),
        "district_id": district.id,
        "since": today - dt.timedelta(days=window_days),
        "window_days": window_days,
    }
    centres = {row[0]: tuple(row) for row in _found(uow, _CENTRES, params)}
    products = {row.id: row for row in catalog.product_rows(uow)}
    rows = _Rows(centres, products)
    _add_stock(uow, rows, params)
    _add_sessions(uow, rows, params)
    _add_transit_and_rate(uow, rows, params)
    due = rules.due_date(on_date, today)
    for row in rows.values():
        row.usable_doses = rules.usable_doses(row.lines, due)
        row.promised_doses = sum(p.doses for p in row.promises)
        row.available_doses = rules.doses_possible(row.lines, row.promises, on_date, today)
        row.days_of_stock = stock_rules.days_of_stock(row.usable_doses, row.daily_doses)
    return sorted(rows.values(), key=lambda r: (r.centre_name, r.product_code))
