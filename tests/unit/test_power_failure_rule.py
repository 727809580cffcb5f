"""A logger on battery: a warning at once, an alarm once the cut has lasted (issue 11, point 5)."""

from __future__ import annotations

import datetime as dt

from logistics.domain.alerts import power_failure_severity

CUT = dt.datetime(2021, 1, 9, 14, 0, tzinfo=dt.UTC)
TWO_HOURS = dt.timedelta(hours=2)


def test_a_fresh_cut_is_a_warning():
    assert power_failure_severity(CUT, CUT, TWO_HOURS) == "warning"
    assert power_failure_severity(CUT, CUT + dt.timedelta(minutes=119), TWO_HOURS) == "warning"


def test_a_cut_that_lasted_is_an_alarm():
    assert power_failure_severity(CUT, CUT + TWO_HOURS, TWO_HOURS) == "alarm"
    assert power_failure_severity(CUT, CUT + 10 * TWO_HOURS, TWO_HOURS) == "alarm"


def test_zero_alarm_time_alarms_at_once():
    assert power_failure_severity(CUT, CUT, dt.timedelta(0)) == "alarm"
