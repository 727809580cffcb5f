"""The stock rules without a database: FEFO, running balances, counts, vials, wastage factor."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.domain import stock as rules
from logistics.domain.errors import InsufficientStock, Invalid

TODAY = dt.date(2026, 6, 1)
AT = dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)


def lot(lot_id: int, days: int, doses: int, **kw) -> rules.LotStock:
    return rules.LotStock(
        unit_id=1, lot_id=lot_id, expiry_date=TODAY + dt.timedelta(days), doses=doses, **kw
    )


def test_fefo_takes_earliest_expiry_first_across_lots():
    stocks = [lot(1, 90, 100), lot(2, 10, 30), lot(3, 40, 50)]
    chosen = rules.fefo_allocate(stocks, 60, TODAY)
    assert [(a.lot_id, a.doses) for a in chosen] == [(2, 30), (3, 30)]


def test_fefo_prefers_more_heat_exposed_vvm_at_equal_expiry():
    stocks = [lot(1, 30, 100, vvm_stage=1), lot(2, 30, 100, vvm_stage=2)]
    assert rules.fefo_allocate(stocks, 10, TODAY)[0].lot_id == 2


@pytest.mark.parametrize(
    "unusable",
    [
        {"days": -1},  # expired yesterday
        {"lot_quarantined": True},
        {"vvm_stage": 3},
        {"vvm_stage": 4},
        {"quarantined_doses": 100},
    ],
)
def test_fefo_never_takes_unusable_stock(unusable):
    days = unusable.pop("days", 5)
    stocks = [lot(1, days, 100, **unusable), lot(2, 300, 100)]
    chosen = rules.fefo_allocate(stocks, 50, TODAY)
    assert [a.lot_id for a in chosen] == [2]


def test_lot_is_usable_on_its_expiry_date_not_after():
    assert rules.usable_doses(lot(1, 0, 10), TODAY) == 10
    assert rules.usable_doses(lot(1, -1, 10), TODAY) == 0


def test_quarantined_doses_are_held_back():
    assert rules.usable_doses(lot(1, 10, 100, quarantined_doses=30), TODAY) == 70


def test_fefo_refuses_when_usable_stock_is_short():
    with pytest.raises(InsufficientStock) as info:
        rules.fefo_allocate([lot(1, 10, 40), lot(2, -5, 1000)], 50, TODAY)
    assert info.value.extra["available_doses"] == 40


@pytest.mark.parametrize("doses", [0, -5])
def test_fefo_refuses_non_positive_quantities(doses):
    with pytest.raises(Invalid):
        rules.fefo_allocate([lot(1, 10, 40)], doses, TODAY)


def test_current_debit_needs_the_balance():
    rules.check_debit(100, [], 100, AT)
    with pytest.raises(InsufficientStock):
        rules.check_debit(100, [], 101, AT)


def test_backdated_debit_refused_when_a_later_balance_would_go_negative():
    # 100 at t; later -80 (issue), +50 (receipt): now 70. A debit of 30 at t gives -10 after it.
    with pytest.raises(InsufficientStock) as info:
        rules.check_debit(70, [-80, 50], 30, AT)
    assert "later running balance" in info.value.detail
    rules.check_debit(70, [-80, 50], 20, AT)


def test_lowest_running_balance_walks_forward_from_the_past():
    assert rules.balance_as_of(70, [-80, 50]) == 100
    assert rules.lowest_running_balance(70, [-80, 50]) == 20


def test_count_difference_is_relative_to_the_balance_at_the_count_time():
    assert rules.count_difference(90, 70, [-80, 50]) == -10
    assert rules.count_difference(70, 70, []) == 0
    with pytest.raises(Invalid):
        rules.count_difference(-1, 70, [])


def test_vials_are_shown_from_doses():
    assert rules.vials(25, 10) == 2.5
    assert rules.whole_vials(25, 10) == 3
    assert rules.vials(40, 20) == 2


def test_wastage_factor_of_ten_percent_is_1_11():
    assert round(rules.wastage_factor(10), 2) == 1.11
    assert rules.wastage_factor(0) == 1
    with pytest.raises(ValueError):
        rules.wastage_factor(100)


def test_days_of_stock_known_only_once_consumption_is():
    assert rules.days_of_stock(900, rules.daily_rate(300, 30)) == 90
    assert rules.daily_rate(0, 30) is None
    assert rules.days_of_stock(900, None) is None
