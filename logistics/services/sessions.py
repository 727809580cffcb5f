"""Use cases of sessions: usable doses, open/resize/cancel, bookings, end-of-session report.

The check of promises against stock lives in logistics.services.commitments (the ledger calls it
after every movement; sessions and the ledger both build on it).

Every write bumps the district's availability version in its own transaction, so the public
availability cache of every web process sees the change (logistics.services.availability).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from logistics.clock import local_date
from logistics.db import UnitOfWork, is_postgres, rowcount
from logistics.domain import slots as rules
from logistics.domain.errors import Conflict, DomainError, InsufficientStock, Invalid, NotFound
from logistics.domain.ids import MAX_BIG_ID, MAX_ID
from logistics.domain.stock import LotStock, fefo_allocate
from logistics.models.catalog import Lot, Product, Store
from logistics.models.sessions import Booking, Session, SessionReport, Slot
from logistics.models.stock import Shipment, ShipmentLine, StockBalance
from logistics.services.commitments import (
    bump_availability,
    check_commitments,
    district_of,
    promises,
    stock_lines,
)
from logistics.services.lookup import get_or_404, in_bound_subtree, subtree_params
from logistics.services.stock import stock_at

# Namespace of this area's PostgreSQL advisory locks (one lock per centre and product).
_LOCK_SPACE = 5 << 56


# --- reading stock and promises ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Usability:
    """What a centre holds and may still promise of one product on one date."""

    store_id: int
    product_id: int
    on_date: dt.date
    doses_per_vial: int
    usable_doses: int  # on hand, valid on the date, not held, VVM usable
    in_transit_doses: int  # issued to the centre, not yet received (not counted as usable)
    promised_doses: int  # open sessions on or before the date
    promised_later_doses: int  # open sessions after the date (they count too: see domain.slots)
    available_doses: int  # what a new session on the date may still take
    suggested_capacity: int  # available, rounded down to whole vials


def get_store(uow: UnitOfWork, store_id: int) -> Store:
    """The store, or 404."""
    store = get_or_404(uow, Store, store_id, f"no store {store_id}", field="store_id")
    return store


def get_product(uow: UnitOfWork, product_id: int) -> Product:
    """The product, or 404."""
    product = get_or_404(uow, Product, product_id, f"no product {product_id}", field="product_id")
    return product


_IN_TRANSIT_DOSES = (
    select(func.coalesce(func.sum(ShipmentLine.doses_issued), 0))
    .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
    .join(Lot, Lot.id == ShipmentLine.lot_id)
    .where(
        Shipment.to_store_id == bindparam("store_id"),
        Shipment.status == "in_transit",
        Lot.product_id == bindparam("product_id"),
    )
)


def in_transit_doses(uow: UnitOfWork, store_id: int, product_id: int) -> int:
    """Doses issued to the centre and not yet received (the ledger's shipments)."""
    params = {"store_id": store_id, "product_id": product_id}
    return int(uow.session.scalar(_IN_TRANSIT_DOSES, params) or 0)


def usability(
    uow: UnitOfWork,
    *,
    store_id: int,
    product_id: int,
    on_date: dt.date,
    today: dt.date,
    exclude_session: int | None = None,
) -> Usability:
    """Usable, in-transit and promised doses of a centre for a date; what it may still promise."""
    get_store(uow, store_id)
    product = get_product(uow, product_id)
    lines = stock_lines(uow, store_id, product_id)
    promised = promises(uow, store_id, product_id, exclude_session)
    due = rules.due_date(on_date, today)
    available = rules.doses_possible(lines, promised, on_date, today)
    return Usability(
        store_id=store_id,
        product_id=product_id,
        on_date=on_date,
        doses_per_vial=product.doses_per_vial,
        usable_doses=rules.usable_doses(lines, due),
        in_transit_doses=in_transit_doses(uow, store_id, product_id),
        promised_doses=sum(p.doses for p in promised if rules.due_date(p.on_date, today) <= due),
        promised_later_doses=sum(
            p.doses for p in promised if rules.due_date(p.on_date, today) > due
        ),
        available_doses=available,
        suggested_capacity=rules.round_down_to_vials(available, product.doses_per_vial),
    )


# --- sessions ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SessionRequest:
    """What a planner asks for when opening a session."""

    store_id: int
    product_id: int
    session_date: dt.date
    capacity: int
    dose_number: str
    min_age: int
    windows: Sequence[tuple[dt.time, dt.time]] = ()


def _lock_centre(uow: UnitOfWork, store_id: int, product_id: int) -> None:
    """Serialise promise changes of one centre and product (two openings cannot both pass)."""
    if is_postgres(uow.session):
        key = _LOCK_SPACE | (store_id << 24) | product_id
        uow.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _refuse_beyond_stock(capacity: int, usable: Usability, field: str = "capacity") -> None:
    if capacity > usable.available_doses:
        raise InsufficientStock(
            f"capacity {capacity} exceeds the {usable.available_doses} doses this centre can still "
            f"promise on {usable.on_date.isoformat()}; at most {usable.suggested_capacity} "
            f"(whole vials of {usable.doses_per_vial})",
            field=field,
            possible_doses=usable.available_doses,
            suggested_capacity=usable.suggested_capacity,
            usable_doses=usable.usable_doses,
            promised_doses=usable.promised_doses + usable.promised_later_doses,
        )


def _windows(
    request: SessionRequest, day_start: dt.time, slot_minutes: int, slot_count: int
) -> list[tuple[dt.time, dt.time]]:
    if not request.windows:
        return rules.slot_windows(day_start, slot_minutes, slot_count)
    windows = sorted(request.windows)
    if not rules.windows_are_valid(windows):
        raise Invalid("slots must each start before they end and must not overlap", field="slots")
    return windows


def open_session(
    uow: UnitOfWork,
    request: SessionRequest,
    *,
    actor: str,
    now: dt.datetime,
    site_timezone: str,
    day_start: dt.time,
    slot_minutes: int,
    slot_count: int,
) -> Session:
    """Open a session, refused (409) beyond the doses the centre can still promise on its date."""
    today = local_date(now, site_timezone)
    if request.session_date < today:
        # 409, not 422: the date is well formed and only conflicts with today's date, which the
        # OpenAPI document cannot state (issue 12: the document is as strict as validation).
        raise Conflict("a session cannot be opened in the past", field="session_date")
    store = get_store(uow, request.store_id)
    windows = _windows(request, day_start, slot_minutes, slot_count)
    _lock_centre(uow, request.store_id, request.product_id)
    usable = usability(
        uow,
        store_id=request.store_id,
        product_id=request.product_id,
        on_date=request.session_date,
        today=today,
    )
    _refuse_beyond_stock(request.capacity, usable)
    seats = rules.spread_capacity(request.capacity, [0] * len(windows))
    session = Session(
        store_id=store.id,
        district_id=district_of(uow, store),
        product_id=request.product_id,
        session_date=request.session_date,
        capacity=request.capacity,
        dose_number=request.dose_number,
        min_age=request.min_age,
        status="open",
        shortfall_doses=0,
        created_at=now,
        created_by=actor,
        updated_at=now,
        slots=[
            Slot(starts_at=b, ends_at=e, capacity=n, booked=0)
            for (b, e), n in zip(windows, seats, strict=True)
        ],
    )
    uow.session.add(session)
    uow.session.flush()
    bump_availability(uow, session.district_id, now)
    uow.session.flush()
    return session


def get_session(uow: UnitOfWork, session_id: int, *, for_update: bool = False) -> Session:
    """The session, or 404 (locked for the rest of the transaction when asked)."""
    query = select(Session).where(Session.id == session_id)
    if for_update:
        query = query.with_for_update(of=Session)
    session = uow.session.scalars(query).first() if 0 < session_id <= MAX_ID else None
    if session is None:
        raise NotFound(f"no session {session_id}", field="session_id")
    return session


_SESSIONS_OF = (
    select(Session)
    .where(Session.store_id == bindparam("store_id"))
    .options(selectinload(Session.slots))
    .order_by(Session.session_date, Session.id)
)
# Built once, of every date and of one: a centre's planner shows them on every request.
_SESSIONS_ON = {
    False: _SESSIONS_OF,
    True: _SESSIONS_OF.where(Session.session_date == bindparam("on_date")),
}


def list_sessions(
    uow: UnitOfWork, *, store_id: int, on_date: dt.date | None = None
) -> list[Session]:
    """A centre's sessions, by date (of one date if given)."""
    params = {"store_id": store_id, "on_date": on_date}
    return list(uow.session.scalars(_SESSIONS_ON[on_date is not None], params))


def _require_open(session: Session) -> None:
    if session.status != "open":
        raise Conflict(
            f"session {session.id} is {session.status}",
            field="session_id",
            status_now=session.status,
        )


def _locked_slots(uow: UnitOfWork, session_id: int) -> list[Slot]:
    query = (
        select(Slot).where(Slot.session_id == session_id).order_by(Slot.starts_at).with_for_update()
    )
    return list(uow.session.scalars(query))


def resize_session(
    uow: UnitOfWork,
    *,
    session_id: int,
    capacity: int,
    actor: str,
    now: dt.datetime,
    site_timezone: str,
) -> Session:
    """Change a session's capacity: enlarging checked against stock, shrinking against bookings."""
    session = get_session(uow, session_id, for_update=True)
    _require_open(session)
    _lock_centre(uow, session.store_id, session.product_id)
    slots = _locked_slots(uow, session.id)
    booked = [slot.booked for slot in slots]
    if capacity < sum(booked):
        raise Conflict(
            f"{sum(booked)} seats are already booked; capacity cannot go below that",
            field="capacity",
            booked=sum(booked),
        )
    if capacity > session.capacity:
        usable = usability(
            uow,
            store_id=session.store_id,
            product_id=session.product_id,
            on_date=session.session_date,
            today=local_date(now, site_timezone),
            exclude_session=session.id,
        )
        _refuse_beyond_stock(capacity, usable)
    for slot, seats in zip(slots, rules.spread_capacity(capacity, booked), strict=True):
        slot.capacity = seats
    session.capacity, session.updated_at = capacity, now
    _after_change(uow, session, now, site_timezone)
    uow.session.flush()
    return session


def _close_slots(uow: UnitOfWork, session_id: int) -> None:
    """Make a closed session's slots full, so a booking waiting on their lock finds no seat."""
    for slot in _locked_slots(uow, session_id):
        slot.capacity = slot.booked


def cancel_session(
    uow: UnitOfWork, *, session_id: int, actor: str, now: dt.datetime, site_timezone: str
) -> Session:
    """Cancel a session: its bookings are cancelled and its doses are no longer promised."""
    session = get_session(uow, session_id, for_update=True)
    _require_open(session)
    for slot in _locked_slots(uow, session.id):
        slot.capacity = slot.booked = 0
    uow.session.execute(
        update(Booking)
        .where(Booking.session_id == session.id, Booking.status == "booked")
        .values(status="cancelled", cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    session.status, session.shortfall_doses, session.updated_at = "cancelled", 0, now
    _after_change(uow, session, now, site_timezone)
    uow.session.flush()
    return session


def _after_change(
    uow: UnitOfWork, session: Session, now: dt.datetime, site_timezone: str | None
) -> None:
    # Lock order of this area: sessions, then slots, then the availability version (last).
    uow.session.flush()
    check_commitments(uow, session.store_id, now, site_timezone=site_timezone)
    bump_availability(uow, session.district_id, now)


# --- bookings ----------------------------------------------------------------------------------


def _seat_refusal(uow: UnitOfWork, session_id: int, slot_id: int) -> DomainError:
    session = uow.session.get(Session, session_id, populate_existing=True)
    if session is not None and session.status != "open":
        return Conflict(f"session {session_id} is {session.status}", field="session_id")
    slot = uow.session.get(Slot, slot_id)
    if slot is None or slot.session_id != session_id:
        return NotFound(f"session {session_id} has no slot {slot_id}", field="slot_id")
    return Conflict(f"slot {slot_id} is fully booked", field="slot_id", slot_id=slot_id)


def _take_seat(uow: UnitOfWork, session_id: int, slot_id: int) -> None:
    """Take one seat with a conditional UPDATE: of concurrent bookings only those that fit win."""
    result = uow.session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.session_id == session_id, Slot.booked < Slot.capacity)
        .values(booked=Slot.booked + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise _seat_refusal(uow, session_id, slot_id)


def _shortfall_now(uow: UnitOfWork, session: Session, today: dt.date) -> int:
    """Doses the session lacks on the stock as it is now (not only as the last check saw it)."""
    lines = stock_lines(uow, session.store_id, session.product_id)
    short = rules.shortfalls(lines, promises(uow, session.store_id, session.product_id), today)
    return short.get(session.id, 0)


def _within_covered_doses(uow: UnitOfWork, session: Session, shortfall: int) -> None:
    """When stock no longer covers the session, only the covered seats may be booked."""
    get_session(uow, session.id, for_update=True)  # bookings of a short session queue here
    booked = (
        uow.session.scalar(select(func.sum(Slot.booked)).where(Slot.session_id == session.id)) or 0
    )
    if booked >= session.capacity - shortfall:
        raise InsufficientStock(
            f"session {session.id} lacks {shortfall} doses of usable stock; "
            "no further seats can be booked",
            field="session_id",
            short_doses=shortfall,
        )


def book_slot(
    uow: UnitOfWork,
    *,
    session_id: int,
    slot_id: int,
    beneficiary: str,
    actor: str,
    now: dt.datetime,
    site_timezone: str,
) -> Booking:
    """Book a seat in a slot; refused when the slot is full, the session closed or booked twice."""
    session = get_session(uow, session_id)
    _require_open(session)
    today = local_date(now, site_timezone)
    if session.session_date < today:
        raise Invalid("the session date has passed", field="session_id")
    # Checked on every booking, so stock lost since the last commitment check is never sold.
    shortfall = _shortfall_now(uow, session, today)
    if shortfall:
        _within_covered_doses(uow, session, shortfall)
    _take_seat(uow, session_id, slot_id)
    booking = Booking(
        session_id=session_id,
        slot_id=slot_id,
        beneficiary=beneficiary,
        status="booked",
        booked_at=now,
        booked_by=actor,
    )
    try:
        with uow.session.begin_nested():
            uow.session.add(booking)
    except IntegrityError:
        raise Conflict(
            f"{beneficiary} already holds a booking in session {session_id}", field="beneficiary"
        ) from None
    bump_availability(uow, session.district_id, now)
    uow.session.flush()
    return booking


def cancel_booking(uow: UnitOfWork, *, booking_id: int, actor: str, now: dt.datetime) -> Booking:
    """Cancel a booking and give its seat back (once, also when the cancellation is retried)."""
    booking = get_or_404(
        uow, Booking, booking_id, f"no booking {booking_id}", field="booking_id", max_id=MAX_BIG_ID
    )
    session = get_session(uow, booking.session_id)
    _require_open(session)
    result = uow.session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.status == "booked")
        .values(status="cancelled", cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise Conflict(f"booking {booking_id} is already cancelled", field="booking_id")
    uow.session.execute(
        update(Slot)
        .where(Slot.id == booking.slot_id, Slot.booked > 0)
        .values(booked=Slot.booked - 1)
        .execution_options(synchronize_session=False)
    )
    bump_availability(uow, session.district_id, now)
    uow.session.flush()
    set_committed_value(booking, "status", "cancelled")
    set_committed_value(booking, "cancelled_at", now)
    return booking


# --- end of session ----------------------------------------------------------------------------


def _fefo_stock(uow: UnitOfWork, store_id: int, product_id: int, at: dt.datetime) -> list[LotStock]:
    """The centre's stock of a product as it was usable at `at` (when the session's doses left).

    A report of doses given before an alarm or a recall is never blocked by it (issue 11).
    """
    query = (
        select(StockBalance)
        .join(Lot, Lot.id == StockBalance.lot_id)
        .where(
            StockBalance.store_id == store_id, Lot.product_id == product_id, StockBalance.doses > 0
        )
        .order_by(StockBalance.unit_id, StockBalance.lot_id)
        .with_for_update(of=StockBalance)
    )
    return [stock_at(uow.session, b, at) for b in uow.session.scalars(query)]


def _session_end(session: Session, now: dt.datetime, site_timezone: str) -> dt.datetime:
    """When the session's doses left stock: the end of its last slot, never after now."""
    last = max((slot.ends_at for slot in session.slots), default=dt.time(23, 59))
    end = dt.datetime.combine(session.session_date, last, tzinfo=ZoneInfo(site_timezone))
    return min(end.astimezone(dt.UTC), now)


def _record_in_ledger(
    uow: UnitOfWork,
    session: Session,
    given: int,
    wasted: int,
    *,
    actor: str,
    occurred_at: dt.datetime,
) -> None:
    """Consumption and open-vial wastage from the opened vials, FEFO over the centre's units."""
    from logistics.services.stock import record_consumption, record_wastage

    picks = fefo_allocate(
        _fefo_stock(uow, session.store_id, session.product_id, occurred_at),
        given + wasted,
        session.session_date,
    )
    for pick in picks:
        used = min(given, pick.doses)
        given -= used
        common: dict[str, Any] = {
            "store_id": session.store_id,
            "unit_id": pick.unit_id,
            "lot_id": pick.lot_id,
            "actor": actor,
            "occurred_at": occurred_at,
        }
        if used:
            record_consumption(
                uow,
                doses=used,
                client_id=f"session-{session.id}-given-{pick.unit_id}-{pick.lot_id}",
                **common,
            )
        if pick.doses - used:
            record_wastage(
                uow,
                doses=pick.doses - used,
                reason="open_vial",
                client_id=f"session-{session.id}-open-vial-{pick.unit_id}-{pick.lot_id}",
                note=f"opened vials of session {session.id}",
                **common,
            )


def report_session(
    uow: UnitOfWork,
    *,
    session_id: int,
    doses_given: int,
    vials_opened: int,
    actor: str,
    now: dt.datetime,
    site_timezone: str,
) -> SessionReport:
    """Close a session with the doses given and vials opened; the ledger records both, in one go."""
    session = get_session(uow, session_id, for_update=True)
    _require_open(session)
    if session.session_date > local_date(now, site_timezone):
        raise Invalid("a session can be reported on or after its date", field="session_id")
    try:
        wasted = rules.open_vial_wastage(doses_given, vials_opened, session.product.doses_per_vial)
    except ValueError as exc:
        raise Invalid(
            f"{exc} ({session.product.doses_per_vial} doses per vial)", field="doses_given"
        ) from None
    if doses_given + wasted:
        _record_in_ledger(
            uow,
            session,
            doses_given,
            wasted,
            actor=actor,
            occurred_at=_session_end(session, now, site_timezone),
        )
    report = SessionReport(
        session_id=session.id,
        store_id=session.store_id,
        product_id=session.product_id,
        session_date=session.session_date,
        doses_given=doses_given,
        vials_opened=vials_opened,
        wasted_doses=wasted,
        reported_at=now,
        reported_by=actor,
    )
    uow.session.add(report)
    _close_slots(uow, session.id)
    session.status, session.shortfall_doses, session.updated_at = "reported", 0, now
    _after_change(uow, session, now, site_timezone)
    uow.session.flush()
    return report


def _at_risk(subtree: bool) -> Any:
    query = select(Session).where(
        Session.status == "open",
        Session.shortfall_doses > 0,
        Session.session_date >= bindparam("from_date"),
    )
    if subtree:
        query = query.join(Store, Store.id == Session.store_id).where(in_bound_subtree(Store.path))
    return query.order_by(Session.session_date, Session.id).limit(bindparam("limit"))


# Built once, for a subtree and for everywhere: every home page shows them.
_AT_RISK = {True: _at_risk(True), False: _at_risk(False)}


def sessions_at_risk(
    uow: UnitOfWork, *, store_path: str | None, from_date: dt.date, limit: int = 100
) -> list[Session]:
    """Open sessions from a date on whose promise stock no longer covers (a shortfall), by date."""
    params = {"from_date": from_date, "limit": limit, **subtree_params(store_path)}
    return list(uow.session.scalars(_AT_RISK[store_path is not None], params))


def usability_by_date(
    uow: UnitOfWork, *, store_id: int, product_id: int, dates: Sequence[dt.date], today: dt.date
) -> list[Usability]:
    """`usability` for several dates, reading the centre's stock and promises once."""
    get_store(uow, store_id)
    product = get_product(uow, product_id)
    lines = stock_lines(uow, store_id, product_id)
    promised = promises(uow, store_id, product_id)
    transit = in_transit_doses(uow, store_id, product_id)
    result = []
    for on_date in dates:
        due = rules.due_date(on_date, today)
        available = rules.doses_possible(lines, promised, on_date, today)
        result.append(
            Usability(
                store_id=store_id,
                product_id=product_id,
                on_date=on_date,
                doses_per_vial=product.doses_per_vial,
                usable_doses=rules.usable_doses(lines, due),
                in_transit_doses=transit,
                promised_doses=sum(
                    p.doses for p in promised if rules.due_date(p.on_date, today) <= due
                ),
                promised_later_doses=sum(
                    p.doses for p in promised if rules.due_date(p.on_date, today) > due
                ),
                available_doses=available,
                suggested_capacity=rules.round_down_to_vials(available, product.doses_per_vial),
            )
        )
    return result
