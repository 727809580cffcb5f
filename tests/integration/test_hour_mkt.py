"""MKT over long ranges comes from the hourly aggregates, with the raw readings' answer."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import select

from logistics.domain.readings import SensorReading
from logistics.models.readings import ReadingHour
from logistics.runtime import Runtime
from logistics.services.readings import rebuild_hours, record_readings
from logistics.services.thermal import unit_mkt
from tests.support.alerts_fixtures import add_sensor, make_tree

pytestmark = pytest.mark.integration
DAY0 = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
START = DAY0 + dt.timedelta(hours=5, minutes=30)  # 05:30, half an hour before a whole hour
END = START + dt.timedelta(days=3)  # longer than two days: the aggregates answer


def at(day: int, hour: int, minute: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=day, hours=hour, minutes=minute)


# (day, hh, mm, temp_c), and the minutes each stands for in [START, END) with gaps capped at
# 30 min (alerts.max_gap_min), worked out by hand:
R1 = (0, 5, 20, 4.0)  # before START: from 05:30 to R2 at 05:40 -> 10
R2 = (0, 5, 40, 6.0)  # to R3 at 06:10 -> 30
R3 = (0, 6, 10, 5.0)  # to R4 at 06:20 -> 10
R4 = (0, 6, 20, 5.0)  # to R5 at 06:50 -> 30 (arrives after R5: hour 06 came out of order)
R5 = (0, 6, 50, 8.0)  # to R6 at 07:05 -> 15 (across the hour)
R6 = (0, 7, 5, 3.0)  # to R7 at 08:30 is 85 min of silence: capped -> 30
R7 = (0, 8, 30, 12.0)  # to R8 at 08:45 -> 15 (arrives after R8: joined in front of it)
R8 = (0, 8, 45, 4.0)  # to R9 three days on: capped -> 30
R9 = (3, 5, 10, 2.0)  # in the last partial hour: to END at 05:30 -> 20
R10 = (3, 5, 40, 9.0)  # after END: not counted
# Minutes per temperature: 4.0: 10+30, 6.0: 30, 5.0: 10+30, 8.0: 15, 3.0: 30, 12.0: 15, 2.0: 20
# = 190 min. MKT = 10000 / -ln(sum(min * exp(-10000 / (T + 273.15))) / 190) - 273.15
# = 5.5574 C (worked out with a calculator, not with the code under test).
EXPECTED_MKT_C = 5.56
EXPECTED_COVERED_MIN = 190.0


def sensor_reading(day: int, hour: int, minute: int, temp_c: float) -> SensorReading:
    ts = at(day, hour, minute)
    return SensorReading(sensor_id="S-1", ts=ts, temp_c=temp_c, received_at=ts)


def store(runtime: Runtime, *batch: tuple) -> None:
    with runtime.uow() as uow:
        record_readings(uow, [sensor_reading(*r) for r in batch], at(4, 0, 0))
        uow.commit()


@pytest.fixture
def unit_id(runtime: Runtime) -> int:
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, "S-1", since=DAY0 - dt.timedelta(days=1))
        uow.commit()
        return tree.ilr.id


def mkt(runtime: Runtime, unit_id: int, aggregate_after_days: float = 2.0) -> dict:
    settings = runtime.settings.replace(
        alerts_max_gap_min=30, readings_aggregate_after_days=aggregate_after_days
    )
    with runtime.uow() as uow:
        return unit_mkt(uow, settings, unit_id=unit_id, start=START, end=END)


def hour_row(runtime: Runtime, unit_id: int, hour: dt.datetime) -> ReadingHour:
    with runtime.uow() as uow:
        row = uow.session.scalar(
            select(ReadingHour).where(ReadingHour.unit_id == unit_id, ReadingHour.hour == hour)
        )
        uow.session.expunge_all()
        return row


def test_mkt_from_the_hours_equals_the_hand_worked_figure_and_the_raw_readings(runtime, unit_id):
    store(runtime, R1, R2, R3, R5)
    store(runtime, R4)  # inside hour 06's held run
    store(runtime, R8)
    store(runtime, R7)  # before hour 08's held run
    store(runtime, R6, R10)
    store(runtime, R9)
    # Hour 06 is read raw; hour 08 joined R7 in front of R8: 15 min at 12 C.
    assert hour_row(runtime, unit_id, at(0, 6, 0)).kinetic_s is None
    eight = hour_row(runtime, unit_id, at(0, 8, 0))
    assert (eight.first_ts, eight.last_ts, eight.last_temp_c) == (at(0, 8, 30), at(0, 8, 45), 4.0)
    assert eight.kinetic_s == pytest.approx(15 * 60 * math.exp(-10000 / 285.15), rel=1e-12)
    assert eight.max_gap_s == 15 * 60

    from_hours = mkt(runtime, unit_id)
    from_raw = mkt(runtime, unit_id, aggregate_after_days=30)  # every reading weighted one by one
    assert from_hours["mkt_c"] == EXPECTED_MKT_C
    assert from_hours["covered_min"] == EXPECTED_COVERED_MIN
    assert from_hours["readings"] == 9  # R1 (standing for the range's first minutes) to R9
    assert from_raw == from_hours


def test_mkt_from_rebuilt_hours_is_the_same(runtime, unit_id):
    store(runtime, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10)
    with runtime.uow() as uow:
        rebuild_hours(uow, [unit_id], DAY0)
        uow.commit()
    six = hour_row(runtime, unit_id, at(0, 6, 0))
    # R3 -> R4 10 min at 5 C, R4 -> R5 30 min at 5 C; R5 stands into hour 07, not counted here.
    assert six.kinetic_s == pytest.approx(40 * 60 * math.exp(-10000 / 278.15), rel=1e-12)
    assert (six.max_gap_s, six.last_temp_c) == (30 * 60, 8.0)
    result = mkt(runtime, unit_id)
    assert (result["mkt_c"], result["covered_min"]) == (EXPECTED_MKT_C, EXPECTED_COVERED_MIN)


def test_an_hour_with_a_gap_over_the_cap_is_read_raw(runtime, unit_id):
    # 06:00 and 06:50 in one hour: 50 min apart, over the 30 min cap, so 06:00 stands for 30.
    store(runtime, (0, 6, 0, 4.0), (0, 6, 50, 4.0), (0, 7, 0, 20.0))
    result = mkt(runtime, unit_id)
    # 4 C for 30 + 10 min, 20 C for 30 min (capped), 70 min in all.
    expected = (
        10000 / -math.log((40 * math.exp(-10000 / 277.15) + 30 * math.exp(-10000 / 293.15)) / 70)
        - 273.15
    )
    assert result["covered_min"] == 70.0
    assert result["mkt_c"] == round(expected, 2) == 14.3


def test_a_range_without_readings_has_no_mkt(runtime, unit_id):
    result = mkt(runtime, unit_id)
    assert (result["mkt_c"], result["readings"], result["covered_min"]) == (None, 0, 0.0)


def test_usable_hours_on_both_sides_of_a_raw_hour_each_stand_until_the_next_reading(
    runtime, unit_id
):
    # Hours 06-07 and 09-10 are usable; hour 08 is read raw (08:10 arrives inside its run).
    store(runtime, (0, 6, 0, 4.0), (0, 6, 30, 5.0), (0, 7, 0, 6.0))
    store(runtime, (0, 8, 0, 7.0), (0, 8, 20, 3.0))
    store(runtime, (0, 8, 10, 7.0))
    store(runtime, (0, 9, 10, 5.0), (0, 10, 0, 8.0), (0, 10, 20, 2.0))
    assert hour_row(runtime, unit_id, at(0, 8, 0)).kinetic_s is None
    assert hour_row(runtime, unit_id, at(0, 7, 0)).kinetic_s is not None
    # Minutes each temperature stands for, gaps capped at 30, worked out by hand:
    # 4 C 06:00-06:30; 5 C 06:30-07:00 and 09:10-09:40 (capped); 6 C 07:00-07:30 (capped);
    # 7 C 08:00-08:20; 3 C 08:20-08:50 (capped); 8 C 10:00-10:20; 2 C 10:20-10:50 (capped).
    minutes = {4.0: 30, 5.0: 60, 6.0: 30, 7.0: 20, 3.0: 30, 8.0: 20, 2.0: 30}
    total = sum(minutes.values())
    weighted = sum(m * math.exp(-10000 / (t + 273.15)) for t, m in minutes.items())
    expected = 10000 / -math.log(weighted / total) - 273.15

    result = mkt(runtime, unit_id)
    assert (result["covered_min"], result["readings"]) == (220.0, 9)
    assert result["mkt_c"] == round(expected, 2) == 4.97
    assert mkt(runtime, unit_id, aggregate_after_days=30) == result
