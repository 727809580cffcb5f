"""Readings at national scale (issue 16): partitions, hourly aggregates, retention, migration."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import func, insert, select, text

from logistics.db import make_engine, make_session_factory
from logistics.migrate import alembic_config, upgrade
from logistics.models.readings import Reading, ReadingHour
from logistics.runtime import Runtime
from logistics.services.partitions import apply_retention, ensure_partitions, partitions
from logistics.services.readings import ReadingTally, record_readings, unit_series
from logistics.services.reference import seed_reference_data
from logistics.services.sensors import move_sensor
from tests.support import services
from tests.support.alerts_fixtures import add_sensor, make_tree, readings

pytestmark = pytest.mark.integration
HOUR = dt.datetime(2026, 3, 10, 6, tzinfo=dt.UTC)


def store(runtime: Runtime, batch: list, now: dt.datetime | None = None) -> ReadingTally:
    tally = ReadingTally()
    with runtime.uow() as uow:
        record_readings(uow, batch, now or dt.datetime.now(dt.UTC), tally=tally)
        uow.commit()
    return tally


def hours(runtime: Runtime, unit_id: int) -> list[tuple]:
    """(hour, count, min, avg, max) of a unit, oldest first."""
    with runtime.uow() as uow:
        rows = uow.session.execute(
            select(ReadingHour).where(ReadingHour.unit_id == unit_id).order_by(ReadingHour.hour)
        ).scalars()
        return [
            (h.hour, h.readings, h.min_temp_c, round(h.sum_temp_c / h.readings, 3), h.max_temp_c)
            for h in rows
        ]


@pytest.fixture
def site(runtime: Runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, "S-1", since=HOUR - dt.timedelta(days=1000))
        uow.commit()
    return tree


def test_hourly_aggregates_follow_arrivals_redeliveries_and_late_readings(runtime, site):
    # 06:00-06:59 at 4 C then 07:00-07:29 at 9 C, one a minute.
    tally = store(runtime, readings(HOUR, (60, 4.0), (30, 9.0)))
    assert (tally.stored, tally.duplicates) == (90, 0)
    assert hours(runtime, site.ilr.id) == [
        (HOUR, 60, 4.0, 4.0, 4.0),
        (HOUR + dt.timedelta(hours=1), 30, 9.0, 9.0, 9.0),
    ]
    # The broker delivers the last ten again: nothing changes.
    again = store(runtime, readings(HOUR + dt.timedelta(minutes=80), (10, 9.0)))
    assert (again.stored, again.duplicates) == (0, 10)
    # A late reading, half a minute into 06:00, lands in its own hour.
    late = readings(HOUR + dt.timedelta(seconds=30), (1, 1.0))
    assert store(runtime, late).stored == 1
    assert hours(runtime, site.ilr.id) == [
        (HOUR, 61, 1.0, round((60 * 4.0 + 1.0) / 61, 3), 4.0),
        (HOUR + dt.timedelta(hours=1), 30, 9.0, 9.0, 9.0),
    ]
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Reading)) == 91


def test_long_series_are_read_from_the_aggregates(runtime, site):
    store(runtime, readings(HOUR, (60, 4.0), (60, 6.0)))
    start, end = HOUR - dt.timedelta(days=3), HOUR + dt.timedelta(days=1)
    with runtime.uow() as uow:
        uow.session.execute(text("DELETE FROM readings"))  # raw gone: aggregates must serve
        uow.commit()
    with runtime.uow() as uow:
        width, buckets = unit_series(uow, site.ilr.id, start, end, 900)
        short_width, short = unit_series(uow, site.ilr.id, HOUR, HOUR + dt.timedelta(hours=2), 900)
    assert width == 3600  # widened to whole hours
    assert [(b.start, b.count, b.min_temp_c, b.avg_temp_c, b.max_temp_c) for b in buckets] == [
        (HOUR, 60, 4.0, 4.0, 4.0),
        (HOUR + dt.timedelta(hours=1), 60, 6.0, 6.0, 6.0),
    ]
    assert short_width == 900 and short == []  # two hours: raw readings, none left
    with runtime.uow() as uow:
        _, daily = unit_series(uow, site.ilr.id, start, end, 86400)
        _, two_hourly = unit_series(uow, site.ilr.id, start, end, 7200)
        _, five_hourly = unit_series(uow, site.ilr.id, start, end, 18000)
    assert [(b.start, b.count, b.min_temp_c, b.avg_temp_c, b.max_temp_c) for b in daily] == [
        (dt.datetime(2026, 3, 10, tzinfo=dt.UTC), 120, 4.0, 5.0, 6.0)
    ]
    # Buckets are aligned on the Unix epoch. 06:00 on 10 March 2026 is 1,773,122,400 s: a whole
    # number of two-hour buckets, and 4 h into a five-hour bucket (1,773,108,000 s, 02:00).
    assert [(b.start, b.count, b.avg_temp_c) for b in two_hourly] == [(HOUR, 120, 5.0)]
    assert [(b.start, b.count, b.avg_temp_c) for b in five_hourly] == [
        (dt.datetime(2026, 3, 10, 2, tzinfo=dt.UTC), 60, 4.0),
        (dt.datetime(2026, 3, 10, 7, tzinfo=dt.UTC), 60, 6.0),
    ]


def test_series_api_uses_whole_hours_beyond_two_days(client, runtime, site):
    store(runtime, readings(HOUR, (60, 4.0)))
    params = {
        "start": (HOUR - dt.timedelta(days=10)).isoformat(),
        "end": (HOUR + dt.timedelta(days=20)).isoformat(),
        "bucket": "15m",
    }
    body = client.get(f"/api/units/{site.ilr.id}/readings", query_string=params).json
    assert body["bucket_s"] == 3600
    assert [(b["count"], b["avg_temp_c"]) for b in body["buckets"]] == [(60, 4.0)]


def test_partitions_are_made_ahead_and_take_in_stray_readings(runtime, site):
    far = dt.datetime(2031, 5, 20, tzinfo=dt.UTC)
    with runtime.engine.connect() as connection:
        assert "readings_p203105" not in partitions(connection)
    # A reading months ahead of every partition waits in the default partition...
    assert store(runtime, readings(far, (2, 5.0)), now=far).stored == 2
    made = ensure_partitions(runtime, far - dt.timedelta(days=40), ahead_months=1)
    assert made == ["readings_p203104", "readings_p203105"]
    assert ensure_partitions(runtime, far - dt.timedelta(days=40), ahead_months=1) == []
    with runtime.engine.connect() as connection:
        held = connection.execute(
            text("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1")
        ).all()
    # ... and moves into its month's partition when that is made, still stored once.
    assert held == [("readings_p203105", 2)]
    assert store(runtime, readings(far, (2, 5.0)), now=far).duplicates == 2


def test_retention_drops_old_partitions_keeps_aggregates_and_archives(runtime, site, tmp_path):
    old = dt.datetime(2024, 1, 15, tzinfo=dt.UTC)
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    ensure_partitions(runtime, old, ahead_months=0)
    assert store(runtime, readings(old, (3, 5.0)), now=old).stored == 3
    store(runtime, readings(HOUR, (3, 5.0)))
    settings = runtime.settings.replace(readings_archive_dir=str(tmp_path))
    result = apply_retention(Runtime(settings, runtime.engine, runtime.session_factory), now)
    assert result == {"dropped": ["readings_p202401"], "deleted": 0}
    with runtime.uow() as uow:
        kept = uow.session.scalars(select(Reading.ts).order_by(Reading.ts)).all()
    assert kept == [HOUR + dt.timedelta(minutes=k) for k in range(3)]
    assert [h[:2] for h in hours(runtime, site.ilr.id)] == [(old, 3), (HOUR, 3)]
    with gzip.open(tmp_path / "readings_p202401.csv.gz", "rt") as archived:
        rows = list(csv.DictReader(io.StringIO(archived.read())))
    assert [(r["sensor_id"], r["temp_c"]) for r in rows] == [("S-1", "5")] * 3


def test_a_moved_sensor_moves_its_hours(runtime, site):
    store(runtime, readings(HOUR, (120, 4.0)))
    other_unit = _second_unit(runtime, site)
    with runtime.uow() as uow:
        move_sensor(
            uow,
            sensor_id="S-1",
            unit_id=other_unit,
            valid_from=HOUR + dt.timedelta(hours=1),
            actor="test",
        )
        uow.commit()
    assert [h[:2] for h in hours(runtime, site.ilr.id)] == [(HOUR, 60)]
    assert [h[:2] for h in hours(runtime, other_unit)] == [(HOUR + dt.timedelta(hours=1), 60)]


def _second_unit(runtime: Runtime, site) -> int:
    from logistics.models.catalog import StorageUnit

    with runtime.uow() as uow:
        unit = StorageUnit(
            store_id=site.centre.id, code="ILR-2", kind="ilr", min_temp_c=2, max_temp_c=8
        )
        uow.session.add(unit)
        uow.commit()
        return unit.id


# --- the migration of an existing database --------------------------------------------------


@pytest.fixture
def db_before_partitions() -> Iterator[str]:
    """A database at 0006, the revision before readings are partitioned (0007)."""
    url = services.create_database()
    upgrade(url, "0006")
    yield url
    services.drop_database(url)


def test_upgrade_partitions_an_existing_database_with_every_reading(db_before_partitions, settings):
    engine = make_engine(db_before_partitions)
    runtime = Runtime(
        settings.replace(database_url=db_before_partitions), engine, make_session_factory(engine)
    )
    try:
        with runtime.uow() as uow:
            seed_reference_data(uow)
            uow.commit()
            tree = make_tree(uow)
            add_sensor(uow, tree.ilr.id, "S-1", since=dt.datetime(2019, 1, 1, tzinfo=dt.UTC))
            uow.commit()
            rows = [
                {
                    "sensor_id": "S-1",
                    "unit_id": tree.ilr.id,
                    "ts": ts,
                    "temp_c": temp,
                    "received_at": ts,
                    "late": False,
                }
                for ts, temp in [
                    (dt.datetime(2019, 6, 1, 12, tzinfo=dt.UTC), 3.5),
                    (dt.datetime(2025, 12, 31, 23, 59, tzinfo=dt.UTC), 4.5),
                    (dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC), 5.5),
                    (dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.UTC), 7.5),
                ]
            ]
            uow.session.execute(insert(Reading), rows)
            uow.commit()
        before = _all_readings(runtime)
        upgrade(db_before_partitions)
        assert _all_readings(runtime) == before
        with engine.connect() as connection:
            names = partitions(connection)
            placed = dict(
                connection.execute(
                    text("SELECT ts, tableoid::regclass::text FROM readings ORDER BY ts")
                ).all()
            )
        assert {"readings_p201906", "readings_p202512", "readings_p202601"} <= set(names)
        assert sorted(placed.values()) == [
            "readings_p201906",
            "readings_p202512",
            "readings_p202601",
            "readings_p202601",
        ]
        assert hours(runtime, tree.ilr.id) == [
            (dt.datetime(2019, 6, 1, 12, tzinfo=dt.UTC), 1, 3.5, 3.5, 3.5),
            (dt.datetime(2025, 12, 31, 23, tzinfo=dt.UTC), 1, 4.5, 4.5, 4.5),
            (dt.datetime(2026, 1, 1, 0, tzinfo=dt.UTC), 2, 5.5, 6.5, 7.5),
        ]
        # Ingestion still stores each reading once, and new ids follow the old ones.
        again = readings(dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC), (2, 6.0))
        tally = store(runtime, again)
        assert (tally.stored, tally.duplicates) == (1, 1)  # 00:00 was held, 00:01 is new
        with runtime.uow() as uow:
            ids = uow.session.scalars(select(Reading.id).order_by(Reading.id)).all()
        assert len(ids) == 5 and ids[-1] > max(r[0] for r in before)
        # And back: one plain table again, with every reading.
        held = _all_readings(runtime)
        engine.dispose()
        command.downgrade(alembic_config(db_before_partitions), "0006")
        assert _all_readings(runtime) == held
        with engine.connect() as connection:
            assert not partitions(connection)
    finally:
        engine.dispose()


def _all_readings(runtime: Runtime) -> list[tuple]:
    with runtime.uow() as uow:
        return [
            tuple(row)
            for row in uow.session.execute(
                select(
                    Reading.id,
                    Reading.sensor_id,
                    Reading.unit_id,
                    Reading.ts,
                    Reading.temp_c,
                    Reading.received_at,
                    Reading.late,
                ).order_by(Reading.id)
            )
        ]


def test_the_scheduler_runs_the_partition_and_retention_jobs(runtime, site):
    from logistics.services.scheduler import Scheduler

    now = dt.datetime(2032, 1, 10, tzinfo=dt.UTC)
    scheduler = Scheduler(runtime)
    try:
        made = scheduler.run_job("partitions", now)
        assert made == {
            "created": [
                "readings_p203201",
                "readings_p203202",
                "readings_p203203",
                "readings_p203204",
            ]
        }
        dropped = scheduler.run_job("retention", now)
    finally:
        scheduler.stop()
    # Two years before 2032-01-10: the partitions of 2029 and before go (those the migration made).
    assert dropped is not None and dropped["deleted"] == 0
    assert all(name < "readings_p203001" for name in dropped["dropped"])
    with runtime.engine.connect() as connection:
        left = [name for name in partitions(connection) if name != "readings_default"]
    assert left and min(left) >= "readings_p203001"
    # The run's other tests write readings of today: give them back their partitions.
    ensure_partitions(runtime, dt.datetime.now(dt.UTC) - dt.timedelta(days=62), ahead_months=5)


def test_sqlite_keeps_one_table_counts_outcomes_and_charts_from_raw(tmp_path, settings):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    lite = Runtime.from_settings(settings.replace(database_url=url))
    try:
        with lite.uow() as uow:
            seed_reference_data(uow)
            uow.commit()
            tree = make_tree(uow)
            add_sensor(uow, tree.ilr.id, "S-1", since=HOUR - dt.timedelta(days=1))
            uow.commit()
        first = store(lite, readings(HOUR, (30, 4.0)) + readings(HOUR, (5, 4.0)))
        assert (first.stored, first.duplicates) == (30, 5)
        with lite.engine.connect() as connection:
            assert ensure_partitions(lite, HOUR, 1) == []
            assert apply_retention(lite, HOUR + dt.timedelta(days=3650)) == {
                "dropped": [],
                "deleted": 0,
            }
            assert connection.scalar(text("SELECT count(*) FROM reading_hours")) == 0
        with lite.uow() as uow:  # no aggregates on SQLite: long ranges read the raw readings
            width, buckets = unit_series(
                uow, tree.ilr.id, HOUR - dt.timedelta(days=5), HOUR + dt.timedelta(days=1), 3600
            )
        assert width == 3600 and [(b.count, b.avg_temp_c) for b in buckets] == [(30, 4.0)]
    finally:
        lite.close()
