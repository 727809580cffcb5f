"""Pure rules of sessions and slots: usable doses, promises over dates, vials, slot windows."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logistics.domain import slots as rules
from logistics.domain import stock as stock_rules
from logistics.domain.slots import Promise, StockLine

TODAY = dt.date(2026, 11, 22)


def day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def line(doses: int, expires_in: int = 100, **kw) -> StockLine:
    return StockLine(
        doses=doses,
        quarantined_doses=kw.get("quarantined", 0),
        vvm_stage=kw.get("vvm", 1),
        expiry_date=day(expires_in),
        lot_quarantined=kw.get("lot_quarantined", False),
    )


def test_usable_excludes_quarantine_vvm_and_lot_hold():
    lines = [
        line(100, quarantined=30),
        line(50, vvm=3),
        line(40, vvm=2),
        line(20, lot_quarantined=True),
    ]
    assert rules.usable_doses(lines, TODAY) == 70 + 40


def test_lot_is_usable_through_its_expiry_date_not_after():
    lines = [line(100, expires_in=5)]
    assert rules.usable_doses(lines, day(5)) == 100
    assert rules.usable_doses(lines, day(6)) == 0


def test_possible_subtracts_earlier_promises():
    lines = [line(200)]
    assert rules.doses_possible(lines, [Promise(1, day(1), 150)], day(3), TODAY) == 50


def test_later_promises_count_because_the_doses_would_be_gone():
    lines = [line(200)]
    assert rules.doses_possible(lines, [Promise(1, day(10), 150)], day(3), TODAY) == 50


def test_lots_expiring_before_the_date_cannot_serve_it_but_serve_earlier_promises():
    # 100 doses expire on day 2 and are promised on day 1; 100 more last; day 5 may get 100.
    lines = [line(100, expires_in=2), line(100, expires_in=30)]
    promises = [Promise(1, day(1), 100)]
    assert rules.doses_possible(lines, promises, day(5), TODAY) == 100
    # Without the early promise the short-lived lot still cannot serve day 5.
    assert rules.doses_possible(lines, [], day(5), TODAY) == 100
    # A promise on day 1 bigger than the short lot eats into the long one.
    assert rules.doses_possible(lines, [Promise(1, day(1), 150)], day(5), TODAY) == 50


def test_past_unreported_session_still_holds_its_doses():
    lines = [line(100)]
    assert rules.doses_possible(lines, [Promise(1, day(-2), 60)], day(1), TODAY) == 40


def test_possible_is_never_negative():
    assert rules.doses_possible([line(10)], [Promise(1, day(1), 50)], day(2), TODAY) == 0


def test_shortfalls_fall_on_the_later_sessions():
    lines = [line(100)]
    promises = [Promise(1, day(1), 60), Promise(2, day(2), 60), Promise(3, day(3), 10)]
    assert rules.shortfalls(lines, promises, TODAY) == {2: 20, 3: 10}


def test_shortfalls_use_earliest_expiry_first():
    # FEFO keeps both promises: day 1 takes the lot expiring on day 1, day 10 the long one.
    lines = [line(50, expires_in=30), line(50, expires_in=1)]
    promises = [Promise(1, day(1), 50), Promise(2, day(10), 50)]
    assert rules.shortfalls(lines, promises, TODAY) == {}


def test_expired_before_session_date_leaves_it_short():
    assert rules.shortfalls([line(50, expires_in=1)], [Promise(7, day(2), 30)], TODAY) == {7: 30}


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 20)), max_size=5),
    st.lists(st.tuples(st.integers(0, 15), st.integers(1, 200)), max_size=5),
    st.integers(0, 15),
)
def test_possible_never_creates_a_shortfall(stock, promised, on):
    lines = [line(doses, expires_in=exp) for doses, exp in stock]
    promises = [Promise(i, day(d), doses) for i, (d, doses) in enumerate(promised)]
    if rules.shortfalls(lines, promises, TODAY):
        return  # already over-committed: nothing more may be promised anyway
    possible = rules.doses_possible(lines, promises, day(on), TODAY)
    assert not rules.shortfalls(lines, [*promises, Promise(99, day(on), possible)], TODAY)
    assert rules.shortfalls(lines, [*promises, Promise(99, day(on), possible + 1)], TODAY)


def test_round_down_to_whole_vials():
    assert rules.round_down_to_vials(95, 10) == 90
    assert rules.round_down_to_vials(100, 10) == 100
    assert rules.round_down_to_vials(19, 20) == 0
    assert rules.round_down_to_vials(-5, 10) == 0


def test_four_two_hour_windows():
    windows = rules.slot_windows(dt.time(9), 120, 4)
    assert windows[0] == (dt.time(9), dt.time(11))
    assert windows[-1] == (dt.time(15), dt.time(17))
    assert rules.windows_are_valid(windows)


def test_windows_past_midnight_are_refused():
    with pytest.raises(ValueError):
        rules.slot_windows(dt.time(20), 120, 3)


def test_overlapping_windows_are_invalid():
    assert not rules.windows_are_valid([(dt.time(9), dt.time(11)), (dt.time(10), dt.time(12))])
    assert not rules.windows_are_valid([])


def test_spread_capacity_evenly_and_never_below_booked():
    assert rules.spread_capacity(100, [0, 0, 0, 0]) == [25, 25, 25, 25]
    assert rules.spread_capacity(10, [0, 0, 0]) == [4, 3, 3]
    assert rules.spread_capacity(40, [20, 0, 0, 0]) == [20, 7, 7, 6]
    with pytest.raises(ValueError):
        rules.spread_capacity(10, [6, 5])


@given(st.lists(st.integers(0, 50), min_size=1, max_size=6), st.integers(0, 400))
def test_spread_keeps_total_and_bookings(booked, extra):
    seats = rules.spread_capacity(sum(booked) + extra, booked)
    assert sum(seats) == sum(booked) + extra
    assert all(s >= b for s, b in zip(seats, booked, strict=True))


def test_open_vial_wastage():
    assert rules.open_vial_wastage(95, 10, 10) == 5
    with pytest.raises(ValueError):
        rules.open_vial_wastage(101, 10, 10)


def test_days_of_stock():
    assert stock_rules.days_of_stock(300, 50) == 6.0
    assert stock_rules.days_of_stock(300, 0) is None


def test_available_seats_are_open_seats_capped_by_covered_doses():
    assert rules.available_seats(100, 0, [(25, 5), (25, 0), (25, 25), (25, 0)]) == 70
    assert rules.available_seats(100, 40, [(25, 5), (25, 0), (25, 25), (25, 0)]) == 30
    assert rules.available_seats(100, 100, [(50, 10), (50, 0)]) == 0


def test_seats_left_takes_the_sums_of_the_slots():
    # open seats 20 + 25 + 0 + 25 = 70, booked 5 + 0 + 25 + 0 = 30 (the case above, as sums)
    assert rules.seats_left(100, 0, 70, 30) == 70
    assert rules.seats_left(100, 40, 70, 30) == 30
    assert rules.seats_left(100, 100, 90, 10) == 0
    assert rules.seats_left(10, 0, 0, 0) == 0  # a session without slots offers no seats
