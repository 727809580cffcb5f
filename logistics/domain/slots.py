"""Rules of sessions and slots: usable doses, what a centre may still promise, slot windows.

Pure functions: no Flask, SQLAlchemy or clock; callers pass `today` and the stock they read.

How promises on other dates count (shared/domain.md, "Sessions and slots": capacity must never
exceed the usable doses minus doses already promised to other sessions):

* Every open (not cancelled, not yet reported) session promises its whole capacity, because every
  seat of it may be booked. A session whose date has passed but that is not reported still holds
  its doses: they were probably given and will leave the ledger when the centre reports. Its
  promise counts as due today.
* A dose can serve a session only if its lot has not expired by the session date. So stock is a
  set of lots, each usable up to its expiry date, and promises are demands on dates. The promises
  can all be kept exactly when, for every date t, the doses promised on t or later fit in the doses
  of lots that are still valid on t (Hall's condition; lots usable "up to a date" make the
  neighbourhoods nested, so checking suffixes of dates is enough).
* Hence what a centre may still promise on date D is the smallest, over t <= D (t = D and every
  promised date before D), of: doses valid on t - doses promised on t or later. Promises BEFORE D
  count in full (they draw the same stock first); promises AFTER D count as well, because doses
  taken on D are no longer there for them (a centre is not resupplied in this arithmetic: doses in
  transit are shown apart and count once received). Lots expiring before D cannot serve D but can
  still serve earlier promises, which the minimum over t accounts for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
from collections.abc import Iterable, Sequence

from logistics.domain import stock as stock_rules

# Dose numbers a session can be opened for (CoWIN: dose 1, dose 2, precaution dose).
DOSE_NUMBERS = ("1", "2", "precaution")


@dataclasses.dataclass(frozen=True)
class StockLine:
    """Doses of one lot in one storage unit, as the ledger's balance holds them."""

    doses: int
    quarantined_doses: int
    vvm_stage: int
    expiry_date: dt.date
    lot_quarantined: bool = False


@dataclasses.dataclass(frozen=True)
class Promise:
    """Doses an open session may use on its date."""

    session_id: int
    on_date: dt.date
    doses: int


def usable_now(line: StockLine) -> int:
    """Doses of a line that may be given at all (quarantine and VVM), whatever the date."""
    return stock_rules.usable_whatever_the_date(
        line.doses, line.quarantined_doses, line.vvm_stage, line.lot_quarantined
    )


def is_valid_on(expiry_date: dt.date, on_date: dt.date) -> bool:
    """Tell whether a lot may be given on a date: it is usable through its expiry date."""
    return not stock_rules.is_expired(expiry_date, on_date)


def usable_doses(lines: Iterable[StockLine], on_date: dt.date) -> int:
    """Doses that may be given on a date: not expired by then, not quarantined, VVM usable."""
    return sum(usable_now(line) for line in lines if is_valid_on(line.expiry_date, on_date))


def due_date(on_date: dt.date, today: dt.date) -> dt.date:
    """The date a promise draws on: its own, or today for a past session not yet reported."""
    return max(on_date, today)


def doses_possible(
    lines: Sequence[StockLine], promises: Sequence[Promise], on_date: dt.date, today: dt.date
) -> int:
    """Doses a centre may still promise on a date without breaking any promise (module doc)."""
    dues = [(due_date(p.on_date, today), p.doses) for p in promises]
    target = due_date(on_date, today)
    candidates = {t for t, _ in dues if t <= target} | {target}
    slack = min(usable_doses(lines, t) - sum(d for due, d in dues if due >= t) for t in candidates)
    return max(0, slack)


def shortfalls(
    lines: Sequence[StockLine], promises: Sequence[Promise], today: dt.date
) -> dict[int, int]:
    """Doses each promise lacks when stock goes to sessions in date order, earliest expiry first.

    Serving the earliest session first from the earliest-expiring valid lot keeps the most
    promises possible (exchange argument for nested validity); later sessions come up short,
    which is also where a planner can still act. Returns only the sessions that lack doses.
    """
    lots = sorted(((line.expiry_date, usable_now(line)) for line in lines), key=lambda lot: lot[0])
    remaining = [doses for _, doses in lots]
    short: dict[int, int] = {}
    for promise in sorted(promises, key=lambda p: (due_date(p.on_date, today), p.session_id)):
        due = due_date(promise.on_date, today)
        need = promise.doses
        for index, (expiry, _) in enumerate(lots):
            if need == 0:
                break
            if is_valid_on(expiry, due):
                taken = min(need, remaining[index])
                remaining[index] -= taken
                need -= taken
        if need:
            short[promise.session_id] = need
    return short


def round_down_to_vials(doses: int, doses_per_vial: int) -> int:
    """Whole vials' worth of doses, rounded down.

    Down, not up: rounding up would publish doses the centre does not hold, and a capacity that
    ends mid-vial leaves an opened vial that must be discarded at the end of the session (opened
    COVID vials last 4 hours or the session, shared/domain.md), so whole vials are used up.
    """
    return (max(0, doses) // doses_per_vial) * doses_per_vial


def slot_windows(
    day_start: dt.time, slot_minutes: int, count: int
) -> list[tuple[dt.time, dt.time]]:
    """Consecutive windows of a session day, e.g. four two-hour slots from 09:00."""
    if count < 1 or slot_minutes < 1:
        raise ValueError("a session needs at least one slot of at least one minute")
    start = dt.datetime.combine(dt.date(2000, 1, 1), day_start)
    windows = []
    for index in range(count):
        begin = start + dt.timedelta(minutes=slot_minutes * index)
        end = begin + dt.timedelta(minutes=slot_minutes)
        if end.date() != start.date():
            raise ValueError("slots must end within the session day")
        windows.append((begin.time(), end.time()))
    return windows


def windows_are_valid(windows: Sequence[tuple[dt.time, dt.time]]) -> bool:
    """Tell whether windows exist, each starts before it ends, in order, without overlap."""
    if not windows:
        return False
    ordered = all(begin < end for begin, end in windows)
    return ordered and all(windows[i][1] <= windows[i + 1][0] for i in range(len(windows) - 1))


def spread_capacity(total: int, booked: Sequence[int]) -> list[int]:
    """Split a session's capacity over its slots as evenly as possible, never below what is booked.

    Water-filling from the booked seats: each further seat goes to the slot with the fewest seats
    (the earlier slot on ties), so a fresh session of 100 over 4 slots gets 25 each.
    """
    if total < sum(booked):
        raise ValueError("capacity below the seats already booked")
    seats = list(booked)
    heap = [(count, index) for index, count in enumerate(seats)]
    heapq.heapify(heap)
    for _ in range(total - sum(booked)):
        count, index = heapq.heappop(heap)
        seats[index] = count + 1
        heapq.heappush(heap, (count + 1, index))
    return seats


def available_seats(capacity: int, shortfall_doses: int, slots: Sequence[tuple[int, int]]) -> int:
    """Seats people may still book: the open seats of the slots (capacity, booked), never beyond
    the doses stock still covers (capacity - shortfall - booked)."""
    open_seats = sum(max(0, seats - booked) for seats, booked in slots)
    booked = sum(booked for _, booked in slots)
    return seats_left(capacity, shortfall_doses, open_seats, booked)


def seats_left(capacity: int, shortfall_doses: int, open_seats: int, booked: int) -> int:
    """available_seats from the slots' sums: their open seats (each slot's seats less its
    bookings, never below 0) and their bookings (a district's sessions are summed in SQL)."""
    return max(0, min(open_seats, capacity - shortfall_doses - booked))


def open_vial_wastage(doses_given: int, vials_opened: int, doses_per_vial: int) -> int:
    """Doses lost in opened vials: doses the opened vials held minus doses given."""
    if doses_given < 0 or vials_opened < 0:
        raise ValueError("doses given and vials opened cannot be negative")
    held = vials_opened * doses_per_vial
    if doses_given > held:
        raise ValueError("more doses given than the opened vials held")
    return held - doses_given
