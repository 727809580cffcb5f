"""The 30-day chart comes from the hourly aggregates: under 2,000 points, extremes kept."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from logistics.domain.readings import SensorReading
from logistics.services.readings import record_readings
from tests.support.alerts_fixtures import add_sensor, make_tree

pytestmark = pytest.mark.integration


def _unit_with_logger(runtime, since: dt.datetime) -> tuple[int, int]:
    """An ILR with logger S-1 since `since`; returns its id and its district's."""
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, "S-1", since=since)
        uow.commit()
        return tree.ilr.id, tree.district.id


def _record(runtime, batch: list[SensorReading], now: dt.datetime) -> None:
    """Store readings as the ingestion does, 2,000 to a transaction."""
    for first in range(0, len(batch), 2000):
        with runtime.uow() as uow:
            record_readings(uow, batch[first : first + 2000], now)
            uow.commit()


def test_thirty_day_chart_keeps_under_2000_points_and_the_extremes(app, runtime, person):
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    unit, district = _unit_with_logger(runtime, end - dt.timedelta(days=40))
    # A reading every 5 minutes for 30 days (8,640: more than the chart may send), at 5 C but
    # one minute-long freeze to -3.5 C and one spike to 14.25 C.
    batch = []
    for step in range(30 * 288):
        ts = end - dt.timedelta(minutes=5 * step + 3)
        temp = -3.5 if step == 1000 else 14.25 if step == 5000 else 5.0 + (step % 7) / 10
        batch.append(SensorReading(sensor_id="S-1", ts=ts, temp_c=temp, received_at=ts))
    _record(runtime, batch, end)
    page = person("district_officer", district).get(f"/units/{unit}/chart?range=30d")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    data = json.loads(re.search(r'type="application/json"[^>]*>(.*?)</script>', body, re.S)[1])
    assert 700 <= len(data["t"]) <= 2000
    assert min(data["min"]) == -3.5
    assert max(data["max"]) == 14.25
    assert max(data["avg"]) < 14.25 and min(data["avg"]) > -3.5  # averaged, yet still shown


def test_the_day_chart_has_five_minute_buckets_that_keep_a_one_minute_spike(runtime, person):
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    unit, district = _unit_with_logger(runtime, end - dt.timedelta(days=2))
    # A reading a minute for a day at 5 C, but one minute at 9.75 C and one at 1.5 C.
    batch = [
        SensorReading(
            sensor_id="S-1",
            ts=end - dt.timedelta(minutes=minute + 1),
            temp_c=9.75 if minute == 300 else 1.5 if minute == 900 else 5.0,
            received_at=end,
        )
        for minute in range(24 * 60)
    ]
    _record(runtime, batch, end)
    body = person("district_officer", district).get(f"/units/{unit}").get_data(as_text=True)
    data = json.loads(re.search(r'id="chart-data-\d+">(.*?)</script>', body, re.S)[1])
    assert data["bucket_s"] == 300
    assert len(data["t"]) in (288, 289)  # 1,439 minutes of readings in five-minute buckets
    assert all(b - a == 300 for a, b in zip(data["t"], data["t"][1:], strict=False))
    assert max(data["max"]) == 9.75 and min(data["min"]) == 1.5
    assert sorted(data["avg"])[-1] == round((4 * 5.0 + 9.75) / 5, 2)  # the spike's bucket


@pytest.mark.parametrize(("chart", "width"), [("24h", 300), ("7d", 3600), ("30d", 3600)])
def test_each_point_starts_at_its_buckets_epoch_second(runtime, person, chart, width):
    # Three readings placed in three buckets whose starts are known: each chart point says the
    # epoch second its bucket starts at, with the bucket's own low, mean and high.
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    unit, district = _unit_with_logger(runtime, end - dt.timedelta(days=40))
    # Inside the chart's range: three hours ago on the hour (day chart), else midnight UTC two
    # days ago.
    now_s = int(end.timestamp())
    first = (now_s // 3600 - 3) * 3600 if chart == "24h" else (now_s // 86400 - 2) * 86400
    placed = {  # bucket start -> temperatures in it
        first: [4.0, 6.5],
        first + 2 * width: [3.25],
        first + 5 * width: [7.0, 7.5, 8.0],
    }
    batch = []
    for start, temps in placed.items():
        for index, temp in enumerate(temps):
            ts = dt.datetime.fromtimestamp(start + 30 + index, dt.UTC)
            batch.append(SensorReading(sensor_id="S-1", ts=ts, temp_c=temp, received_at=ts))
    _record(runtime, batch, end)
    page = person("district_officer", district).get(f"/units/{unit}/chart?range={chart}")
    body = page.get_data(as_text=True)
    data = json.loads(re.search(r'type="application/json"[^>]*>(.*?)</script>', body, re.S)[1])
    shown = {
        t: (low, avg, high)
        for t, low, avg, high in zip(data["t"], data["min"], data["avg"], data["max"], strict=True)
    }
    assert data["bucket_s"] == width
    assert shown == {
        placed_start: expected
        for placed_start, expected in zip(
            placed, [(4.0, 5.25, 6.5), (3.25, 3.25, 3.25), (7.0, 7.5, 8.0)], strict=True
        )
    }
