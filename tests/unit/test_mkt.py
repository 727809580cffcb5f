"""Mean kinetic temperature (USP <1160>) with time weights."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from logistics.domain.mkt import mean_kinetic_temperature, reading_weights

T0 = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def test_constant_temperature_gives_itself():
    assert mean_kinetic_temperature([5.0, 5.0, 5.0], [1, 1, 1]) == pytest.approx(5.0)


def test_mkt_weighs_heat_more_than_the_arithmetic_mean():
    mkt = mean_kinetic_temperature([2.0, 8.0], [1, 1])
    assert 5.0 < mkt < 8.0
    # Hand computation with dH/R = 10,000 K.
    k = [math.exp(-10_000 / (t + 273.15)) for t in (2.0, 8.0)]
    assert mkt == pytest.approx(10_000 / -math.log(sum(k) / 2) - 273.15)


def test_weights_follow_the_time_each_reading_stands_for():
    # 5 C for 9 hours then 25 C for 1 hour.
    weighted = mean_kinetic_temperature([5.0, 25.0], [9, 1])
    even = mean_kinetic_temperature([5.0, 25.0], [1, 1])
    assert weighted < even


def test_reading_weights_clip_to_range_and_cap_gaps():
    times = [T0, T0 + H, T0 + 10 * H]
    weights = reading_weights(times, T0 + 0.5 * H, T0 + 11 * H, max_gap=2 * H)
    assert weights == [1800.0, 7200.0, 3600.0]


def test_no_weight_gives_none():
    assert mean_kinetic_temperature([], []) is None
