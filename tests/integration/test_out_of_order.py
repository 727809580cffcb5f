"""Readings arriving out of order, in several batches, give the verdict of the same readings sent
in order (issue 11, point 9: this replaces unit tests that shuffled readings and sorted them back
before checking). Real PostgreSQL, through the ingestion's storage and the evaluation."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import select

from logistics.models.alerts import Excursion
from logistics.models.catalog import StorageUnit
from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

pytestmark = pytest.mark.integration
T0 = dt.datetime(2021, 1, 9, 18, 0, tzinfo=dt.UTC)
TRACES = {
    # (segments of (minutes, temp_c), the kinds in order, written out by hand)
    "heat 10 h 01": (((30, 5.0), (601, 9.0), (30, 5.0)), ["heat_alarm", "heat_warning"]),
    "freeze 61 min": (((10, 4.0), (61, -0.5), (10, 4.0)), ["cold_alarm", "cold_warning"]),
    "back in range": (((400, 9.0), (2, 5.0), (400, 9.0)), ["heat_warning", "heat_warning"]),
}


@pytest.fixture
def units(runtime):
    """Two ILRs with a logger each: one gets its readings in order, the other shuffled."""
    with runtime.uow() as uow:
        tree = make_tree(uow)
        other = StorageUnit(
            store_id=tree.other_centre.id, code="ILR-1", kind="ilr", min_temp_c=2.0, max_temp_c=8.0
        )
        uow.session.add(other)
        uow.session.flush()
        add_sensor(uow, tree.ilr.id, sensor_id="IN-ORDER")
        add_sensor(uow, other.id, sensor_id="SHUFFLED")
        uow.commit()
        return tree.ilr.id, other.id


def _verdict(runtime, unit_id, superseded: bool = False):
    """The unit's excursions as the readings now show them; with `superseded`, those a late
    reading disproved instead (closed where they were triggered, kept for the officers)."""
    with runtime.uow() as uow:
        rows = uow.session.scalars(select(Excursion).where(Excursion.unit_id == unit_id))
        return sorted(
            (e.kind, e.started_at, e.ended_at, e.minutes_outside, e.peak_temp_c)
            for e in rows
            if (e.ended_at == e.triggered_at) is superseded
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(TRACES))
def test_shuffled_batches_give_the_in_order_verdict(runtime, units, name, seed):
    segments, kinds = TRACES[name]
    in_order, shuffled = units
    arrived = T0 + dt.timedelta(hours=24)
    ingest(runtime, readings(T0, *segments, sensor_id="IN-ORDER"), arrived)
    late = readings(T0, *segments, sensor_id="SHUFFLED")
    random.Random(seed).shuffle(late)
    for first in range(0, len(late), len(late) // 5 + 1):  # six batches, evaluated one by one
        ingest(runtime, late[first : first + len(late) // 5 + 1], arrived)
    expected = _verdict(runtime, in_order)
    assert [row[0] for row in expected] == kinds
    assert _verdict(runtime, in_order, superseded=True) == []
    assert _verdict(runtime, shuffled) == expected


def test_a_late_in_range_reading_splits_an_alarm(runtime, units):
    in_order, _ = units
    arrived = T0 + dt.timedelta(hours=24)
    ingest(runtime, readings(T0, (601, 9.0), sensor_id="IN-ORDER"), arrived)
    assert [row[0] for row in _verdict(runtime, in_order)] == ["heat_alarm", "heat_warning"]
    # A reading taken in the middle, in range, arrives last: ten hours in a row never happened.
    middle = readings(T0 + dt.timedelta(minutes=300, seconds=30), (1, 5.0), sensor_id="IN-ORDER")
    ingest(runtime, middle, arrived + dt.timedelta(minutes=5))
    assert [row[0] for row in _verdict(runtime, in_order)] == ["heat_warning", "heat_warning"]
    assert [row[0] for row in _verdict(runtime, in_order, superseded=True)] == ["heat_alarm"]
