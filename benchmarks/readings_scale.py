"""Readings at scale (issue 16): does the partitioned readings table stay fast as it grows?

Brings up a throw-away PostgreSQL database (harness), builds the schema with the migrations (the
monthly partitions and hourly aggregates of migrations 0007 and 0010), and a network of 5,000 ILRs:
one state, 50 districts of 20 centres, five units per centre (100 units per district), one logger
per unit reporting every 10 minutes. It loads readings with COPY, oldest first as they would
arrive, in two steps: SMALL readings (default 1 million), then up to SIZE (default 50 million, 68
days). 100 of the units (the chart probes) first get 30 days of history (432,000 readings, counted
in SMALL), so that the 30-day chart has 30 days to draw at both sizes: 720 hourly buckets in the
small table and in the big one. Without them the small table holds 19 hours of every unit and the
"30-day" chart of a unit there has 19 buckets against the big table's 720; that ratio measures the
chart's content, not the table's growth. It is still reported, as chart_any_unit. Values are
realistic: each ILR drifts around its own set point in +2..+8 C, with door openings, rare power
cuts that warm it past +8 C and rare freezing dips; batteries drain slowly. The hourly aggregates
of the loaded readings are loaded with them, as the ingestion keeps them.

At the empty table, at SMALL and at SIZE it measures:
- chart_ms: a 30-day chart of one unit (GET /api/units/{id}/readings?bucket=1h's service,
  unit_series: longer than two days, so from the hourly aggregates), median of 100 random picks
  among the probes; chart_any_unit_ms the same for a random unit of all 5,000 (information);
- latest_ms: a district's latest readings for its 100 units (latest_by_store, subtree), median of
  100 random districts;
- ingest_per_s: the ingestion's write path (record_readings + evaluation requests, batches of
  2,000 as `coldchain ingest` commits them), median of three rounds of 20,000 new readings;
and bytes on disk per reading (heap, indexes and TOAST of every partition, over the rows). Before
each measurement it vacuums and analyses the tables, as autovacuum does on a running system.

Goal: every ratio of big to small is at most 1.5 (for ingestion: the time per reading into the
big table against the empty one). Stops by itself and drops its database; the last line is JSON.

    python benchmarks/readings_scale.py [--size 50000000] [--small 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import create_database, drop_database, log  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from logistics.config import load_settings  # noqa: E402
from logistics.domain.mkt import kinetic_factor  # noqa: E402
from logistics.domain.readings import SensorReading  # noqa: E402
from logistics.migrate import upgrade  # noqa: E402
from logistics.models.catalog import StorageUnit, Store  # noqa: E402
from logistics.models.readings import Sensor, SensorAssignment  # noqa: E402
from logistics.runtime import Runtime  # noqa: E402
from logistics.services.evaluation import request_evaluation  # noqa: E402
from logistics.services.partitions import ensure_partitions  # noqa: E402
from logistics.services.readings import (  # noqa: E402
    HOUR_COLUMNS,
    HOUR_MERGE,
    latest_by_store,
    record_readings,
    unit_series,
)
from logistics.services.reference import seed_reference_data  # noqa: E402

UNITS = 5000
DISTRICTS = 50
CENTRES_PER_DISTRICT = 20
UNITS_PER_CENTRE = 5
STEP = dt.timedelta(minutes=10)
RUNS = 100
INGEST_READINGS = 20_000  # per round; three rounds, the median reported
BATCH = 2000
GOAL = 1.5
PROBES = 100  # units with 30 days of history before the first step
PROBE_STEPS = 30 * 24 * 6  # 30 days of 10-minute steps
COLUMNS = "sensor_id, unit_id, ts, temp_c, battery_pct, power, seq, received_at, late"


# --- the network ---------------------------------------------------------------------------


def build_network(runtime: Runtime, since: dt.datetime) -> tuple[list[int], list[int]]:
    """Stores, 5,000 ILRs and their loggers; returns the unit ids and the district ids."""
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
        s = uow.session
        state = Store(code="ST", name="State", level_code="state", path="/")
        s.add(state)
        s.flush()
        state.path = f"/{state.id}/"
        districts = []
        for d in range(DISTRICTS):
            district = Store(
                code=f"D{d:02d}",
                name=f"District {d}",
                level_code="district",
                parent_id=state.id,
                path=state.path,
            )
            s.add(district)
            s.flush()
            district.path = f"{state.path}{district.id}/"
            districts.append(district)
        centres = []
        for district in districts:
            for c in range(CENTRES_PER_DISTRICT):
                centre = Store(
                    code=f"{district.code}C{c:02d}",
                    name="PHC",
                    level_code="centre",
                    parent_id=district.id,
                    path=district.path,
                )
                s.add(centre)
                centres.append(centre)
        s.flush()
        for centre in centres:
            centre.path = f"{centre.path}{centre.id}/"
        units = [
            StorageUnit(store_id=centre.id, code=f"ILR-{k}", kind="ilr", min_temp_c=2, max_temp_c=8)
            for centre in centres
            for k in range(UNITS_PER_CENTRE)
        ]
        s.add_all(units)
        s.flush()
        unit_ids = [unit.id for unit in units]
        s.execute(
            insert(Sensor),
            [
                {"sensor_id": sensor_id(i), "registered_at": since, "expected_interval_s": 600}
                for i in range(UNITS)
            ],
        )
        s.execute(
            insert(SensorAssignment),
            [
                {
                    "sensor_id": sensor_id(i),
                    "unit_id": unit_ids[i],
                    "valid_from": since,
                    "actor": "bench",
                }
                for i in range(UNITS)
            ],
        )
        uow.commit()
        return unit_ids, [district.id for district in districts]


def sensor_id(index: int) -> str:
    return f"L{index:05d}"


# --- realistic values ----------------------------------------------------------------------


class Traces:
    """Each ILR's temperature and battery, one step (10 minutes) at a time."""

    def __init__(self, seed: int = 16):
        self.rng = random.Random(seed)
        self.set_point = [self.rng.uniform(3.5, 6.0) for _ in range(UNITS)]
        self.temp = list(self.set_point)
        self.battery = [self.rng.uniform(70, 100) for _ in range(UNITS)]
        self.event = [0] * UNITS  # steps left of a power cut (+) or a freezing dip (-)

    def step(self, unit: int) -> float:
        """The next reading of one unit."""
        rng, temp = self.rng, self.temp[unit]
        if self.event[unit] == 0:
            roll = rng.random()
            if roll < 0.0004:  # a power cut of 2-8 hours
                self.event[unit] = rng.randint(12, 48)
            elif roll < 0.0006:  # a thermostat fault: freezing for 1-3 hours
                self.event[unit] = -rng.randint(6, 18)
        if self.event[unit] > 0:
            temp += rng.uniform(0.1, 0.35)
            self.event[unit] -= 1
        elif self.event[unit] < 0:
            temp -= rng.uniform(0.3, 0.8)
            self.event[unit] += 1
        else:
            temp += (self.set_point[unit] - temp) * 0.3 + rng.gauss(0, 0.15)
            if rng.random() < 0.02:  # a door opening
                temp += rng.uniform(0.5, 2.5)
        temp = max(-6.0, min(24.0, temp))
        self.temp[unit] = temp
        self.battery[unit] = max(5.0, self.battery[unit] - 0.0005)
        return temp


# --- loading with COPY ---------------------------------------------------------------------


def load(
    runtime: Runtime,
    unit_ids: list[int],
    traces: Traces,
    start: dt.datetime,
    first_step: int,
    last_step: int,
    only: list[int] | None = None,
) -> None:
    """COPY the readings of steps [first_step, last_step) and merge their hourly aggregates.

    `only`: the indexes of the units that report (all of them when None).
    """
    indexes = list(range(len(unit_ids))) if only is None else only
    raw = runtime.engine.raw_connection()
    try:
        driver = raw.driver_connection
        chunk_steps = 20
        for chunk_start in range(first_step, last_step, chunk_steps):
            chunk_end = min(last_step, chunk_start + chunk_steps)
            readings, hours = _chunk(unit_ids, indexes, traces, start, chunk_start, chunk_end)
            with driver.cursor() as cursor:
                with cursor.copy(f"COPY readings ({COLUMNS}) FROM STDIN") as copy:
                    copy.write(readings)
                cursor.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS hours_in "
                    "(LIKE reading_hours) ON COMMIT DELETE ROWS"
                )
                with cursor.copy("COPY hours_in FROM STDIN") as copy:
                    copy.write(hours)
                # Merged as the ingestion merges a batch into the hours it holds.
                cursor.execute(
                    f"INSERT INTO reading_hours AS h {HOUR_COLUMNS} SELECT * FROM hours_in "
                    f"ORDER BY unit_id, hour {HOUR_MERGE}"
                )
            driver.commit()
            if (chunk_start - first_step) // chunk_steps % 50 == 0:
                log(f"  loaded up to step {chunk_end} of {last_step}")
    finally:
        raw.close()
    if only is None:
        _note_latest(runtime, unit_ids, traces, start + (last_step - 1) * STEP)


def _chunk(
    unit_ids: list[int], units: list[int], traces: Traces, start: dt.datetime, first: int, end: int
) -> tuple[str, str]:
    out, hours = io.StringIO(), io.StringIO()
    acc: dict[tuple[int, str], list[float]] = {}
    for step in range(first, end):
        ts = start + step * STEP
        ts_s = ts.isoformat()
        received = (ts + dt.timedelta(seconds=7)).isoformat()
        hour = ts.replace(minute=0).isoformat()
        lines = []
        for u in units:
            temp = round(traces.step(u), 2)
            lines.append(
                f"{sensor_id(u)}\t{unit_ids[u]}\t{ts_s}\t{temp}\t"
                f"{traces.battery[u]:.1f}\tmains\t{step}\t{received}\tf\n"
            )
            slot = acc.get((u, hour))
            if slot is None:
                acc[(u, hour)] = [1, temp, temp, temp, ts, ts, temp, 0.0, 0.0]
            else:  # steps come in time order: this reading follows the slot's last one
                gap_s = (ts - slot[5]).total_seconds()
                slot[7] += gap_s * kinetic_factor(slot[6])
                slot[8] = max(slot[8], gap_s)
                slot[0] += 1
                slot[1] += temp
                slot[2] = min(slot[2], temp)
                slot[3] = max(slot[3], temp)
                slot[5], slot[6] = ts, temp
        out.write("".join(lines))
    for (u, hour), (count, total, low, high, first, last, last_temp, kinetic, gap) in acc.items():
        hours.write(
            f"{unit_ids[u]}\t{hour}\t{count}\t{total}\t{low}\t{high}\t"
            f"{first.isoformat()}\t{last.isoformat()}\t{last_temp}\t{kinetic!r}\t{gap}\n"
        )
    return out.getvalue(), hours.getvalue()


def _note_latest(runtime: Runtime, unit_ids: list[int], traces: Traces, at: dt.datetime) -> None:
    """What the ingestion keeps on each sensor: its newest reading (the latest-readings view)."""
    with runtime.uow() as uow:
        uow.session.execute(
            text(
                "UPDATE sensors AS s SET last_reading_ts = :at, last_seen_at = :at, "
                "last_temp_c = u.temp, battery_pct = u.battery, power = 'mains' "
                "FROM unnest(CAST(:ids AS varchar[]), CAST(:temps AS float8[]), "
                "CAST(:batteries AS float8[])) AS u(id, temp, battery) WHERE s.sensor_id = u.id"
            ),
            {
                "at": at,
                "ids": [sensor_id(u) for u in range(len(unit_ids))],
                "temps": traces.temp,
                "batteries": traces.battery,
            },
        )
        uow.commit()


# --- measurements --------------------------------------------------------------------------


def timings_ms(work, runs: int = RUNS) -> dict[str, float]:
    """Median and fastest of `runs` calls, after one warm-up (a running service has warm caches).

    The machine is shared: the fastest call shows the cost itself, the median what others' load
    adds to it.
    """
    work(0)
    times = []
    for run in range(runs):
        started = time.perf_counter()
        work(run)
        times.append((time.perf_counter() - started) * 1000)
    return {"median": round(statistics.median(times), 3), "min": round(min(times), 3)}


def measure(
    runtime: Runtime,
    unit_ids: list[int],
    probes: list[int],
    districts: list[int],
    now: dt.datetime,
    ingest_at: dt.datetime,
    label: str,
) -> dict[str, float]:
    """Chart, latest readings and ingestion at the table's present size."""
    rng = random.Random(16)  # the same units and districts at every size
    # What autovacuum does on a running system between loads: statistics and visibility maps.
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("reading_hours", "sensors", "evaluation_requests"):
            connection.execute(text(f"VACUUM (ANALYZE) {table}"))
        connection.execute(text("ANALYZE readings"))  # append-only: statistics are what matter

    def chart_of(units: list[int], full: bool):
        def chart(_run: int) -> None:
            with runtime.uow() as uow:
                unit = rng.choice(units)
                _, buckets = unit_series(uow, unit, now - dt.timedelta(days=30), now, 3600)
                assert not full or len(buckets) >= 720, (unit, len(buckets))

        return chart

    def latest(_run: int) -> None:
        with runtime.uow() as uow:
            found = latest_by_store(uow, rng.choice(districts), True, now)
            assert len(found) == UNITS_PER_CENTRE * CENTRES_PER_DISTRICT

    result: dict[str, Any] = {
        "chart_ms": timings_ms(chart_of(probes, full=label != "empty")),
        "chart_any_unit_ms": timings_ms(chart_of(unit_ids, full=False)),
        "latest_ms": timings_ms(latest),
        "ingest_per_s": statistics.median(
            ingest_rate(runtime, ingest_at + k * dt.timedelta(minutes=1)) for k in range(3)
        ),
    }
    result.update(on_disk(runtime))
    log(f"{label}: {result}")
    return result


def ingest_rate(runtime: Runtime, at: dt.datetime) -> float:
    """Readings/s through the ingestion's write path; ts off the loaded 10-minute grid."""
    readings = [  # INGEST_READINGS / 3 per round, three rounds
        SensorReading(
            sensor_id=sensor_id(i % UNITS),
            ts=at + (i // UNITS) * STEP,
            temp_c=5.0 + (i % 7) / 10,
            received_at=at,
            battery_pct=80.0,
            power="mains",
        )
        for i in range(INGEST_READINGS)
    ]
    started = time.perf_counter()
    for offset in range(0, len(readings), BATCH):
        now = dt.datetime.now(dt.UTC)
        with runtime.uow() as uow:
            touched = record_readings(uow, readings[offset : offset + BATCH], now)
            request_evaluation(uow, touched, now)
            uow.commit()
    return round(len(readings) / (time.perf_counter() - started))


def on_disk(runtime: Runtime) -> dict[str, float]:
    with runtime.engine.connect() as connection:
        rows = connection.scalar(text("SELECT count(*) FROM readings"))
        size = connection.scalar(
            text(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'readings'::regclass"
            )
        )
        size = float(size or 0)
        hours = connection.scalar(text("SELECT pg_total_relation_size('reading_hours')"))
    return {
        "rows": rows,
        "bytes_per_reading": round(size / rows, 1) if rows else None,
        "aggregate_bytes": hours,
    }


# --- the run -------------------------------------------------------------------------------


def run(size: int, small: int) -> dict:
    history = PROBES * PROBE_STEPS  # the probes' 30 days, counted in the small table
    steps_small, steps_big = (small - history) // UNITS, (size - history) // UNITS
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    end = end.replace(minute=end.minute - end.minute % 10)
    origin = end - (PROBE_STEPS + steps_big) * STEP  # the probes' first reading
    start = origin + PROBE_STEPS * STEP  # every unit's first reading
    url = create_database()
    runtime = Runtime.from_settings(load_settings({"database_url": url, "database_pool_size": 4}))
    try:
        upgrade(url)
        months = (end.year - origin.year) * 12 + end.month - origin.month + 1
        ensure_partitions(runtime, origin, ahead_months=months)
        unit_ids, districts = build_network(runtime, origin - dt.timedelta(days=1))
        probe_indexes = sorted(random.Random(30).sample(range(UNITS), PROBES))
        probes = [unit_ids[i] for i in probe_indexes]
        traces = Traces()
        half = STEP / 2  # ingested readings fall between the loaded ones
        empty = measure(runtime, unit_ids, probes, districts, start, start + half, "empty")
        log(f"loading {small:,} readings ({history:,} of them the probes' 30 days)")
        began = time.perf_counter()
        load(runtime, unit_ids, traces, origin, 0, PROBE_STEPS, only=probe_indexes)
        load(runtime, unit_ids, traces, origin, PROBE_STEPS, PROBE_STEPS + steps_small)
        small_load_s = time.perf_counter() - began
        at_small = start + steps_small * STEP
        small_result = measure(
            runtime,
            unit_ids,
            probes,
            districts,
            at_small,
            start + (steps_small // 2) * STEP + half,
            "small",
        )
        log(f"loading up to {size:,} readings")
        began = time.perf_counter()
        load(runtime, unit_ids, traces, origin, PROBE_STEPS + steps_small, PROBE_STEPS + steps_big)
        big_load_s = time.perf_counter() - began
        big_result = measure(
            runtime,
            unit_ids,
            probes,
            districts,
            end,
            start + (steps_big // 2) * STEP + half + dt.timedelta(minutes=1),
            "big",
        )
    finally:
        runtime.close()
        drop_database(url)
    ratios = {
        "chart": _ratio(big_result["chart_ms"]["median"], small_result["chart_ms"]["median"]),
        "latest": _ratio(big_result["latest_ms"]["median"], small_result["latest_ms"]["median"]),
        "ingest_vs_empty": _ratio(empty["ingest_per_s"], big_result["ingest_per_s"]),
        "ingest_vs_small": _ratio(small_result["ingest_per_s"], big_result["ingest_per_s"]),
    }
    fastest = {
        "chart": _ratio(big_result["chart_ms"]["min"], small_result["chart_ms"]["min"]),
        "chart_any_unit": _ratio(
            big_result["chart_any_unit_ms"]["min"], small_result["chart_any_unit_ms"]["min"]
        ),
        "latest": _ratio(big_result["latest_ms"]["min"], small_result["latest_ms"]["min"]),
    }
    return {
        "benchmark": "readings_scale",
        "units": UNITS,
        "small_readings": small_result["rows"],
        "big_readings": big_result["rows"],
        "empty": empty,
        "small": small_result,
        "big": big_result,
        "copy_per_s": {
            "small": round((history + steps_small * UNITS) / small_load_s),
            "big": round((steps_big - steps_small) * UNITS / big_load_s),
        },
        "ratios": ratios,
        "information": {
            "chart_any_unit": _ratio(
                big_result["chart_any_unit_ms"]["median"],
                small_result["chart_any_unit_ms"]["median"],
            ),
        },
        "ratios_of_fastest": fastest,
        "goal": f"every ratio <= {GOAL}",
        "ok": all(value <= GOAL for value in ratios.values()),
    }


def _ratio(big: float, small: float) -> float:
    return round(big / small, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000_000, help="readings in the big table")
    parser.add_argument("--small", type=int, default=1_000_000, help="readings in the small one")
    args = parser.parse_args()
    if not PROBES * PROBE_STEPS + UNITS <= args.small < args.size:
        parser.error("need 437,000 <= --small < --size (the probes' 30 days and a step of all)")
    print(json.dumps(run(args.size, args.small)), flush=True)


if __name__ == "__main__":
    main()
