"""Monthly report rules: months at the site, stock figures, wastage rate, the temperature log."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.domain import reports as rules
from logistics.domain.errors import Invalid

UTC = dt.UTC
IST = "Asia/Kolkata"


def test_a_month_is_the_sites_calendar_month_in_utc():
    start, end = rules.month_bounds(dt.date(2026, 12, 1), IST)
    assert start == dt.datetime(2026, 11, 30, 18, 30, tzinfo=UTC)
    assert end == dt.datetime(2026, 12, 31, 18, 30, tzinfo=UTC)
    assert rules.next_month(dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    assert rules.days_in_month(dt.date(2028, 2, 1)) == 29


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-05", "2026-5", "", "1999-12"])
def test_a_month_must_be_written_yyyy_mm(text):
    with pytest.raises(Invalid):
        rules.parse_month(text)


def test_the_current_month_rates_over_the_days_so_far():
    start, end = rules.month_bounds(dt.date(2026, 5, 1), "UTC")
    assert rules.elapsed_days(start, end, dt.datetime(2026, 5, 11, tzinfo=UTC)) == 10
    assert rules.elapsed_days(start, end, dt.datetime(2026, 8, 1, tzinfo=UTC)) == 31
    assert rules.elapsed_days(start, end, start) == 1


def test_figures_from_signed_flows_written_out_by_hand():
    flows = [
        rules.Flow("receipt", None, 1000),
        rules.Flow("receipt", None, -100),  # a receipt reversed
        rules.Flow("issue", None, -300),
        rules.Flow("consumption", None, -250),
        rules.Flow("wastage", "open_vial", -40),
        rules.Flow("wastage", "expired", -10),
        rules.Flow("wastage", "frozen", -30),
        rules.Flow("wastage", "frozen", 30),  # the frozen discard reversed: no frozen line
        rules.Flow("count", None, 5),
        rules.Flow("transfer", None, -50),
        rules.Flow("transfer", None, 50),
    ]
    fig = rules.stock_figures(500, flows, rules.Excursions(60, 20, 40), period_days=25)
    assert (fig.opening_doses, fig.receipts_doses, fig.issues_doses) == (500, 900, 300)
    assert (fig.consumption_doses, fig.wastage_doses) == (250, 50)
    assert fig.wastage_by_reason == {"expired": 10, "open_vial": 40}
    assert (fig.adjustments_doses, fig.transfers_doses) == (5, 0)
    assert fig.closing_doses == 500 + 900 - 300 - 250 - 50 + 5 == 805
    assert fig.wastage_rate_pct == 16.67  # 50 / (250 + 50)
    assert fig.open_vial_wastage_doses == 40
    assert fig.daily_consumption_doses == 10  # 250 / 25 days
    assert fig.days_of_stock == 80.5
    assert fig.excursions.discarded_doses == 40


def test_a_month_without_use_has_no_rate_and_no_days_of_stock():
    fig = rules.stock_figures(100, [], rules.Excursions(), 30)
    assert (fig.closing_doses, fig.wastage_rate_pct, fig.days_of_stock) == (100, None, None)


def test_an_unknown_movement_kind_is_not_silently_dropped():
    with pytest.raises(ValueError):
        rules.stock_figures(0, [rules.Flow("gift", None, 5)], rules.Excursions(), 30)


def test_subtree_totals_add_the_stores_and_rework_the_rates():
    a = rules.stock_figures(
        100,
        [rules.Flow("consumption", None, -60), rules.Flow("wastage", "open_vial", -20)],
        rules.Excursions(),
        10,
    )
    b = rules.stock_figures(
        50,
        [rules.Flow("consumption", None, -40), rules.Flow("wastage", "breakage", -5)],
        rules.Excursions(1),
        10,
    )
    total = rules.add_figures([a, b], 10)
    assert (total.opening_doses, total.consumption_doses, total.closing_doses) == (150, 100, 25)
    assert total.wastage_by_reason == {"breakage": 5, "open_vial": 20}
    assert total.wastage_rate_pct == 20.0  # 25 / 125
    assert total.excursions.held_doses == 1


# --- temperature log ----------------------------------------------------------------------------

T0 = dt.datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def test_reaching_a_limit_counts_as_outside():
    assert rules.side_of(8.0, 2, 8) == "heat"
    assert rules.side_of(2.0, 2, 8) == "cold"
    assert rules.side_of(5.0, 2, 8) is None


def test_outside_spans_join_readings_and_a_long_silence_ends_a_span():
    points = [
        (at(0), 5.0),
        (at(10), 9.0),
        (at(20), 11.0),
        (at(30), 5.0),
        (at(40), 1.0),
        (at(100), 1.5),
        (at(110), 4.0),
    ]
    spans = rules.outside_spans(points, 2, 8, at(120), dt.timedelta(minutes=30))
    assert [(s.side, s.start, s.end, s.peak_temp_c) for s in spans] == [
        ("heat", at(10), at(30), 11.0),
        ("cold", at(40), at(70), 1.0),  # the reading at 40 stands for 30 minutes at most
        ("cold", at(100), at(110), 1.5),
    ]
    assert [s.minutes for s in spans] == [20.0, 30.0, 10.0]


def test_daily_log_uses_the_sites_days():
    # 18:00 UTC on 1 May is 23:30 in India; 19:00 UTC is 00:30 on 2 May there.
    points = [
        (dt.datetime(2026, 5, 1, 18, 0, tzinfo=UTC), 3.0),
        (dt.datetime(2026, 5, 1, 18, 20, tzinfo=UTC), 9.0),
        (dt.datetime(2026, 5, 1, 19, 0, tzinfo=UTC), 6.0),
    ]
    spans = rules.outside_spans(
        points, 2, 8, dt.datetime(2026, 5, 2, tzinfo=UTC), dt.timedelta(minutes=60)
    )
    days = rules.daily_log(points, spans, dt.date(2026, 5, 1), IST)
    assert len(days) == 31
    first, second = days[0], days[1]
    assert (first.day, first.readings, first.min_temp_c, first.max_temp_c) == (
        dt.date(2026, 5, 1),
        2,
        3.0,
        9.0,
    )
    # 9 C from 18:20 to 19:00 UTC: 10 minutes before midnight in India, 30 after.
    assert (first.minutes_outside, second.minutes_outside) == (10.0, 30.0)
    assert (second.readings, second.min_temp_c, second.max_temp_c) == (1, 6.0, 6.0)
    assert days[2].readings == 0 and days[2].min_temp_c is None
