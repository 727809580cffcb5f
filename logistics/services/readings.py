"""Use cases of temperature readings: store a batch, keep dead letters, sensor status, queries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar
from typing import cast as cast_type

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    text,
    update,
)

from logistics.db import UnitOfWork, UTCDateTime, insert_for, is_postgres, rowcount
from logistics.domain.errors import Invalid
from logistics.domain.mkt import kinetic_factor
from logistics.domain.readings import Bucket, Rejection, SensorReading, downsample, is_late
from logistics.models.catalog import StorageUnit, Store
from logistics.models.readings import SENSOR_RETIRED, DeadLetter, Reading, Sensor, SensorAssignment
from logistics.services.lookup import get_or_404, in_subtree

# (unit_id, earliest ts, latest ts) of the readings of a batch, for excursion evaluation.
Touched = tuple[int, dt.datetime, dt.datetime]
R = TypeVar("R")
MAX_RAW_POINTS = 20000
MAX_BUCKETS = 5000


@dataclasses.dataclass(slots=True)
class ReadingTally:
    """What became of a batch's readings (filled by record_readings, counted after commit)."""

    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Letter:
    """A rejected message or reading on its way to the dead-letter table."""

    topic: str
    sensor_id: str | None
    rejection: Rejection
    payload: str
    received_at: dt.datetime
    raw: bytes | None = None  # the bytes as received, when the whole message is refused


def record_dead_letters(
    uow: UnitOfWork, letters: Iterable[Letter], payload_chars: int = 2048
) -> int:
    """Add rejected messages to the dead letters (the caller commits); return how many."""
    rows = [_letter_row(letter, payload_chars) for letter in letters]
    if rows:
        uow.session.execute(insert_for(uow.session)(DeadLetter), rows)
    return len(rows)


def _letter_row(letter: Letter, payload_chars: int) -> dict[str, object]:
    return {
        "topic": storable_text(letter.topic, 256),
        "sensor_id": (letter.sensor_id or None) and storable_text(letter.sensor_id, 64),
        "reason": storable_text(letter.rejection.reason, 64),
        "detail": storable_text(letter.rejection.detail, 500),
        "received_at": letter.received_at,
        "payload": storable_text(letter.payload, payload_chars),
        "raw": None if letter.raw is None else letter.raw[:payload_chars],
    }


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str, limit: int) -> str:
    """Text a database column accepts: NUL and lone surrogates shown as U+FFFD, cut to `limit`.

    PostgreSQL text refuses NUL and the driver cannot encode a lone surrogate; the exact bytes of
    a refused message are kept beside it (dead_letters.raw).
    """
    return _UNSTORABLE.sub("\ufffd", text[:limit])


def record_status(uow: UnitOfWork, sensor_id: str, status: str, now: dt.datetime) -> bool:
    """Note a sensor's online/offline status (its last will says offline); False if unknown."""
    result = uow.session.execute(
        update(Sensor)
        .where(Sensor.sensor_id == sensor_id)
        .values(connection=status, connection_changed_at=now, last_seen_at=now)
    )
    return bool(rowcount(result))


def record_readings(
    uow: UnitOfWork,
    readings: Sequence[SensorReading],
    now: dt.datetime,
    *,
    late_after_s: int = 900,
    payload_chars: int = 2048,
    tally: ReadingTally | None = None,
) -> list[Touched]:
    """Store a batch once per sensor and ts, each in the unit its sensor was in at ts.

    Readings of unknown, retired or unassigned sensors go to the dead letters. Does not commit.
    Returns the touched (unit_id, earliest ts, latest ts) for excursion evaluation; `tally`, when
    given, gets how many were stored, already held (duplicates) and refused.
    """
    sensor_ids = {reading.sensor_id for reading in readings}
    sensors = _sensors(uow, sensor_ids)
    assignments = _assignments(uow, sensor_ids)
    rows: list[dict[str, object]] = []
    letters: list[Letter] = []
    for reading in readings:
        unit_id, rejection = _unit_of(reading, sensors.get(reading.sensor_id), assignments)
        if rejection:
            letters.append(
                Letter(
                    reading.topic, reading.sensor_id, rejection, _raw(reading), reading.received_at
                )
            )
        else:
            rows.append(_reading_row(reading, unit_id, sensors[reading.sensor_id], late_after_s))
    stored = _insert_readings(uow, rows)
    record_dead_letters(uow, letters, payload_chars)
    if tally is not None:
        tally.stored += stored
        tally.duplicates += len(rows) - stored
        tally.dead_letters += len(letters)
    _update_sensors(
        uow,
        sensors,
        [r for r in readings if r.sensor_id in sensors and not _retired(sensors[r.sensor_id])],
    )
    return _touched(rows)


def _sensors(uow: UnitOfWork, sensor_ids: set[str]) -> dict[str, Any]:
    """(sensor_id, status, last_reading_ts) rows: plain rows, cheaper than ORM objects per batch."""
    if not sensor_ids:
        return {}
    query = select(Sensor.sensor_id, Sensor.status, Sensor.last_reading_ts).where(
        Sensor.sensor_id.in_(sensor_ids)
    )
    return {row.sensor_id: row for row in uow.session.execute(query).all()}


def _assignments(uow: UnitOfWork, sensor_ids: set[str]) -> dict[str, list[Any]]:
    by_sensor: dict[str, list[Any]] = {}
    if sensor_ids:
        a = SensorAssignment
        query = select(a.sensor_id, a.unit_id, a.valid_from, a.valid_to).where(
            a.sensor_id.in_(sensor_ids)
        )
        for assignment in uow.session.execute(query.order_by(a.valid_from)).all():
            by_sensor.setdefault(assignment.sensor_id, []).append(assignment)
    return by_sensor


def _retired(sensor: Sensor) -> bool:
    return sensor.status == SENSOR_RETIRED


def _unit_of(
    reading: SensorReading, sensor: Any, assignments: dict[str, list[Any]]
) -> tuple[int, Rejection | None]:
    if sensor is None:
        return 0, Rejection("unknown_sensor", f"sensor {reading.sensor_id!r} is not registered")
    if _retired(sensor):
        return 0, Rejection("retired_sensor", f"sensor {reading.sensor_id!r} is retired")
    held = assignments.get(reading.sensor_id, [])
    for assignment in reversed(held):
        if assignment.valid_from <= reading.ts and (
            assignment.valid_to is None or reading.ts < assignment.valid_to
        ):
            return assignment.unit_id, None
    if held and reading.ts < held[0].valid_from:
        # Same reason as any time outside an assignment; the detail says it precedes registration.
        return 0, Rejection(
            "unassigned",
            f"ts {reading.ts.isoformat()} is before sensor {reading.sensor_id!r} was registered "
            f"({held[0].valid_from.isoformat()})",
        )
    return 0, Rejection(
        "unassigned", f"sensor {reading.sensor_id!r} was in no unit at {reading.ts.isoformat()}"
    )


def _raw(reading: SensorReading) -> str:
    return (
        f'{{"ts":"{reading.ts.isoformat()}","temp_c":{reading.temp_c},'
        f'"battery_pct":{_json(reading.battery_pct)},"power":{_json(reading.power)},"seq":{_json(reading.seq)}}}'
    )


def _json(value: object) -> str:
    if value is None:
        return "null"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _reading_row(
    reading: SensorReading, unit_id: int, sensor: Any, late_after_s: int
) -> dict[str, object]:
    return {
        "sensor_id": reading.sensor_id,
        "unit_id": unit_id,
        "ts": reading.ts,
        "temp_c": reading.temp_c,
        "battery_pct": reading.battery_pct,
        "power": reading.power,
        "seq": reading.seq,
        "received_at": reading.received_at,
        "late": is_late(reading.ts, reading.received_at, sensor.last_reading_ts, late_after_s),
    }


def _insert_readings(uow: UnitOfWork, rows: list[dict[str, object]]) -> int:
    """Insert the rows not already held; return how many were new."""
    if not rows:
        return 0
    if is_postgres(uow.session):
        return _insert_readings_unnest(uow, rows)
    # Redeliveries and re-sent backlogs hit the unique (sensor_id, ts) and are dropped here.
    # The table, not the entity: a Core executemany, whose rowcount says how many were new.
    statement = insert_for(uow.session)(Reading.__table__).on_conflict_do_nothing(
        index_elements=["sensor_id", "ts"]
    )
    result = uow.session.execute(statement, rows)
    # SQLite's batched insert may not report its row count: count every row as new then.
    rowcount = getattr(result, "rowcount", -1)
    return rowcount if isinstance(rowcount, int) and rowcount >= 0 else len(rows)


_READING_COLUMNS = (
    ("sensor_id", "varchar"),
    ("unit_id", "int"),
    ("ts", "timestamptz"),
    ("temp_c", "float8"),
    ("battery_pct", "float8"),
    ("power", "varchar"),
    ("seq", "int8"),
    ("received_at", "timestamptz"),
    ("late", "bool"),
)
# Each column travels as one text value split by PostgreSQL (string_to_array; an empty field is
# NULL): formatting 2,000 values in Python is far cheaper than the driver's per-element array dump.
_SEP = "\x1f"
# What each unit-hour keeps (reading_hours, migrations 0007 and 0010), computed from a relation
# of (unit_id, ts, temp_c) rows. MKT (domain/mkt.py) weights a reading by the time until the next
# one, so an hour also keeps its first and last reading, the last one's temperature, and the sum
# over its back-to-back readings of gap_s * exp(-dH/(R*T)) (dH/R = 10,000 K, USP <1160>) with
# the largest gap. Two readings at one instant leave kinetic_s NULL: that hour is read raw.
HOUR_COLUMNS = (
    "(unit_id, hour, readings, sum_temp_c, min_temp_c, max_temp_c, "
    "first_ts, last_ts, last_temp_c, kinetic_s, max_gap_s)"
)


def _kinetic(temp_c: str) -> str:
    return f"exp(-10000 / ({temp_c} + 273.15))"


def hour_figures(source: str) -> str:
    """SELECT of every reading_hours column per unit-hour of `source` (unit_id, ts, temp_c)."""
    return (
        "SELECT unit_id, hour, count(*), sum(temp_c), min(temp_c), max(temp_c), min(ts), max(ts), "
        "min(temp_c) FILTER (WHERE gap_s IS NULL), "
        f"CASE WHEN coalesce(min(gap_s), 1) > 0 THEN coalesce(sum(gap_s * {_kinetic('temp_c')}), 0)"
        " END, coalesce(max(gap_s), 0) "
        "FROM (SELECT unit_id, date_trunc('hour', ts, 'UTC') AS hour, ts, temp_c, "
        "date_part('epoch', lead(ts) OVER (PARTITION BY unit_id, date_trunc('hour', ts, 'UTC') "
        f"ORDER BY ts) - ts) AS gap_s FROM {source}) AS points GROUP BY 1, 2 ORDER BY 1, 2"
    )


def _joined(early: str, late: str, what: str) -> str:
    """`what` of two runs of one hour when `early`'s readings all precede `late`'s."""
    gap = f"date_part('epoch', {late}.first_ts - {early}.last_ts)"
    return {
        "kinetic_s": f"{early}.kinetic_s + {late}.kinetic_s + "
        f"{gap} * {_kinetic(f'{early}.last_temp_c')}",
        "max_gap_s": f"GREATEST({early}.max_gap_s, {late}.max_gap_s, {gap})",
    }[what]


# An hour's new readings (EXCLUDED) merge with those it holds (h): counts and extremes add up;
# the kinetic sum joins the two runs end to end when one wholly precedes the other. Readings that
# land inside the held run (out of order) make kinetic_s NULL: MKT then reads that hour raw.
HOUR_MERGE = (
    "ON CONFLICT (unit_id, hour) DO UPDATE SET readings = h.readings + EXCLUDED.readings, "
    "sum_temp_c = h.sum_temp_c + EXCLUDED.sum_temp_c, "
    "min_temp_c = LEAST(h.min_temp_c, EXCLUDED.min_temp_c), "
    "max_temp_c = GREATEST(h.max_temp_c, EXCLUDED.max_temp_c), "
    "first_ts = LEAST(h.first_ts, EXCLUDED.first_ts), "
    "last_ts = GREATEST(h.last_ts, EXCLUDED.last_ts), "
    "last_temp_c = CASE WHEN EXCLUDED.last_ts > h.last_ts THEN EXCLUDED.last_temp_c "
    "ELSE h.last_temp_c END, "
    + ", ".join(
        f"{what} = CASE WHEN h.last_ts < EXCLUDED.first_ts THEN {_joined('h', 'EXCLUDED', what)} "
        f"WHEN EXCLUDED.last_ts < h.first_ts THEN {_joined('EXCLUDED', 'h', what)} END"
        for what in ("kinetic_s", "max_gap_s")
    )
)
# The readings actually inserted (RETURNING) also feed the hourly aggregates (issue 16) in the
# same statement, so a redelivered reading is counted in neither, and a late one lands in its hour.
# Unit-hours are upserted in key order, so concurrent ingestions lock them in one order.
_UNNEST_INSERT = text(
    f"WITH stored AS (INSERT INTO readings ({', '.join(name for name, _ in _READING_COLUMNS)}) "
    "SELECT * FROM unnest("
    + ", ".join(
        f"CAST(string_to_array(:{name}, :sep, '') AS {kind}[])" for name, kind in _READING_COLUMNS
    )
    + ") "
    # Redeliveries and re-sent backlogs hit the unique (sensor_id, ts) and are dropped here.
    "ON CONFLICT (sensor_id, ts) DO NOTHING RETURNING unit_id, ts, temp_c), "
    f"hours AS (INSERT INTO reading_hours AS h {HOUR_COLUMNS} {hour_figures('stored')} "
    f"{HOUR_MERGE}) "
    "SELECT count(*) FROM stored"
)


def _column_text(rows: list[dict[str, Any]], name: str, kind: str) -> str:
    """A column of the batch as one text value: NULL as an empty field, timestamps in ISO 8601,
    numbers as Python writes them (repr: a float's shortest exact text), booleans as t and f.

    Written per column type: a batch is 2,000 rows of nine columns, and a call per field cost
    the writer a seventh of its time."""
    if kind == "timestamptz":  # never NULL
        return _SEP.join([row[name].isoformat() for row in rows])
    if kind == "float8":
        return _SEP.join(["" if row[name] is None else repr(row[name]) for row in rows])
    if kind in ("int", "int8"):
        return _SEP.join(["" if row[name] is None else str(row[name]) for row in rows])
    if kind == "bool":
        return _SEP.join(["t" if row[name] else "f" for row in rows])
    return _SEP.join(["" if row[name] is None else row[name] for row in rows])


def _insert_readings_unnest(uow: UnitOfWork, rows: list[dict[str, object]]) -> int:
    """One INSERT for the whole batch, one text value per column; returns the rows inserted."""
    params = {name: _column_text(rows, name, kind) for name, kind in _READING_COLUMNS}
    return int(uow.session.execute(_UNNEST_INSERT, {**params, "sep": _SEP}).scalar_one())


def _update_sensors(
    uow: UnitOfWork, sensors: dict[str, Any], readings: list[SensorReading]
) -> None:
    """Note each sensor's newest reading and last contact, never moving either backwards."""
    newest: dict[str, SensorReading] = {}
    seen: dict[str, dt.datetime] = {}
    for reading in readings:
        if reading.sensor_id not in newest or reading.ts > newest[reading.sensor_id].ts:
            newest[reading.sensor_id] = reading
        seen[reading.sensor_id] = max(
            seen.get(reading.sensor_id, reading.received_at), reading.received_at
        )
    params = [
        {
            "b_id": sensor_id,
            "b_seen": seen[sensor_id],
            "b_ts": r.ts,
            "b_temp": r.temp_c,
            "b_battery": r.battery_pct,
            "b_power": r.power,
        }
        for sensor_id, r in newest.items()
    ]
    if params and is_postgres(uow.session):
        columns = ("b_id", "b_seen", "b_ts", "b_temp", "b_battery", "b_power")
        uow.session.execute(
            _SENSOR_UPDATE_UNNEST, {name: [p[name] for p in params] for name in columns}
        )
    elif params:
        uow.session.execute(_SENSOR_UPDATE, params)


def _sensor_update() -> Any:
    table = cast_type(Table, Sensor.__table__)  # a mapped class's table is a Table
    ts, seen = bindparam("b_ts", type_=UTCDateTime()), bindparam("b_seen", type_=UTCDateTime())
    newer = or_(table.c.last_reading_ts.is_(None), table.c.last_reading_ts < ts)
    # Typed casts: PostgreSQL cannot infer the type of a bare "$n IS NULL".
    battery, power = cast(bindparam("b_battery"), Float()), cast(bindparam("b_power"), String())
    return (
        update(table)
        .where(table.c.sensor_id == bindparam("b_id"))
        .values(
            last_seen_at=case(
                (or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < seen), seen),
                else_=table.c.last_seen_at,
            ),
            last_reading_ts=case((newer, ts), else_=table.c.last_reading_ts),
            last_temp_c=case(
                (newer, bindparam("b_temp", type_=Float())), else_=table.c.last_temp_c
            ),
            battery_pct=case(
                (newer, func.coalesce(battery, table.c.battery_pct)), else_=table.c.battery_pct
            ),
            power=case((newer, func.coalesce(power, table.c.power)), else_=table.c.power),
        )
    )


_SENSOR_UPDATE = _sensor_update()
# The same in one statement on PostgreSQL (one array per column instead of one UPDATE per sensor).
_SENSOR_UPDATE_UNNEST = text(
    "UPDATE sensors AS s SET "
    "last_seen_at = GREATEST(s.last_seen_at, u.seen), "
    "last_reading_ts = CASE WHEN s.last_reading_ts IS NULL OR s.last_reading_ts < u.ts THEN u.ts "
    "ELSE s.last_reading_ts END, "
    "last_temp_c = CASE WHEN s.last_reading_ts IS NULL OR s.last_reading_ts < u.ts THEN u.temp "
    "ELSE s.last_temp_c END, "
    "battery_pct = CASE WHEN s.last_reading_ts IS NULL OR s.last_reading_ts < u.ts "
    "THEN COALESCE(u.battery, s.battery_pct) ELSE s.battery_pct END, "
    "power = CASE WHEN s.last_reading_ts IS NULL OR s.last_reading_ts < u.ts "
    "THEN COALESCE(u.power, s.power) ELSE s.power END "
    "FROM unnest(CAST(:b_id AS varchar[]), CAST(:b_seen AS timestamptz[]), "
    "CAST(:b_ts AS timestamptz[]), "
    "CAST(:b_temp AS float8[]), CAST(:b_battery AS float8[]), CAST(:b_power AS varchar[])) "
    "AS u(id, seen, ts, temp, battery, power) WHERE s.sensor_id = u.id"
)


def _touched(rows: list[dict[str, object]]) -> list[Touched]:
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for row in rows:
        unit_id, ts = row["unit_id"], row["ts"]
        assert isinstance(unit_id, int) and isinstance(ts, dt.datetime)
        low, high = spans.get(unit_id, (ts, ts))
        spans[unit_id] = (min(low, ts), max(high, ts))
    return [(unit_id, low, high) for unit_id, (low, high) in sorted(spans.items())]


# --- queries -------------------------------------------------------------------------------


def unit_readings(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime, limit: int = MAX_RAW_POINTS
) -> list[Reading]:
    """Readings of a unit with start <= ts < end, oldest first (none when end == start)."""
    _require_unit(uow, unit_id)
    if end == start:  # an empty range holds no readings; a reversed one is refused (422)
        return []
    _require_range(start, end)
    query = (
        select(Reading)
        .where(Reading.unit_id == unit_id, Reading.ts >= start, Reading.ts < end)
        .order_by(Reading.ts, Reading.sensor_id)
        .limit(limit)
    )
    return _detached(uow, list(uow.session.scalars(query)))


def unit_buckets(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime, width_s: int
) -> list[Bucket]:
    """Min/avg/max of a unit's readings per bucket of width_s seconds over [start, end)."""
    _require_unit(uow, unit_id)
    _require_range(start, end)
    if (end - start).total_seconds() / width_s > MAX_BUCKETS:
        raise Invalid(
            f"more than {MAX_BUCKETS} buckets: widen the bucket or shorten the range",
            field="bucket",
        )
    query = (
        select(Reading.ts, Reading.temp_c)
        .where(Reading.unit_id == unit_id, Reading.ts >= start, Reading.ts < end)
        .order_by(Reading.ts)
    )
    return downsample(uow.session.execute(query).tuples().all(), width_s)


HOUR_S = 3600
# Series over ranges longer than this come from the hourly aggregates (setting:
# readings.aggregate_after_days).
AGGREGATE_AFTER = dt.timedelta(days=2)


def unit_series(
    uow: UnitOfWork,
    unit_id: int,
    start: dt.datetime,
    end: dt.datetime,
    width_s: int,
    aggregate_after: dt.timedelta = AGGREGATE_AFTER,
) -> tuple[int, list[Bucket]]:
    """Min/avg/max per bucket for a chart; returns the bucket width used and the buckets.

    Over ranges longer than `aggregate_after` on PostgreSQL the buckets come from the hourly
    aggregates (issue 16): they cover whole UTC hours, and a width under an hour, or not a whole
    number of hours, is widened to the next whole number of hours. Otherwise from raw readings.
    """
    if end - start <= aggregate_after or not is_postgres(uow.session):
        return width_s, unit_buckets(uow, unit_id, start, end, width_s)
    width_s = _hour_width(uow, unit_id, start, end, width_s)
    return width_s, _hour_buckets(uow, unit_id, start, end, width_s)


def _hour_width(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime, width_s: int
) -> int:
    """The bucket width widened to whole hours, once the unit, range and bucket count hold."""
    width_s = -(-width_s // HOUR_S) * HOUR_S
    _require_unit(uow, unit_id)
    _require_range(start, end)
    _require_bucket_count(start, end, width_s)
    return width_s


def _hour_buckets(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime, width_s: int
) -> list[Bucket]:
    return [
        Bucket(bucket.astimezone(dt.UTC), int(count), low, avg, high)
        for bucket, count, low, avg, high in _hour_rows(uow, unit_id, start, end, width_s)
    ]


def _hour_rows(
    uow: UnitOfWork,
    unit_id: int,
    start: dt.datetime,
    end: dt.datetime,
    width_s: int,
    epoch: bool = False,
) -> Sequence[Any]:
    """(start, count, low, mean, high) per bucket from the hourly aggregates; the start as a
    timestamp, or with `epoch` in whole epoch seconds."""
    statement = _HOUR_ROWS[width_s == HOUR_S, epoch]
    return uow.session.execute(
        statement,
        {
            "width": width_s,
            "unit": unit_id,
            "first": start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0),
            "end": end,
        },
    ).all()


def _hour_rows_text(hourly: bool, epoch: bool) -> Any:
    # An hour wide: the stored rows are the buckets (an index-only scan of the primary key, which
    # carries these columns). Wider: grouped with date_bin (epoch-aligned, as bucket_start);
    # numeric arithmetic on extract(epoch) cost four times as much on 720 hours.
    if hourly:
        bucket = "hour"
        query = (
            "SELECT {bucket}, readings, min_temp_c, sum_temp_c / readings, max_temp_c "
            "FROM reading_hours WHERE unit_id = :unit AND hour >= :first AND hour < :end "
            "ORDER BY hour"
        )
    else:
        bucket = "date_bin(make_interval(secs => :width), hour, TIMESTAMPTZ 'epoch')"
        query = (
            "SELECT {bucket} AS bucket, "
            "sum(readings), min(min_temp_c), sum(sum_temp_c) / sum(readings), max(max_temp_c) "
            "FROM reading_hours WHERE unit_id = :unit AND hour >= :first AND hour < :end "
            "GROUP BY 1 ORDER BY 1"
        )
    if epoch:
        bucket = f"date_part('epoch', {bucket})::bigint"
    return text(query.format(bucket=bucket))


# By (an hour wide, starts in epoch seconds); made once, as charts ask them on every request.
_HOUR_ROWS = {
    (hourly, epoch): _hour_rows_text(hourly, epoch)
    for hourly in (True, False)
    for epoch in (True, False)
}


def rebuild_hours(uow: UnitOfWork, unit_ids: Iterable[int], since: dt.datetime) -> None:
    """Recompute the hourly aggregates of these units from `since`'s hour on (readings moved).

    Only hours whose raw readings are still held are recomputed: older aggregates stay as kept.
    Does not commit. PostgreSQL only (SQLite keeps no aggregates).
    """
    units = sorted(set(unit_ids))
    if not units or not is_postgres(uow.session):
        return
    first = uow.session.scalar(
        text("SELECT min(ts) FROM readings WHERE unit_id = ANY(:units)"), {"units": units}
    )
    floor = max(since, first) if first is not None else since
    params = {"units": units, "from": floor.astimezone(dt.UTC).replace(minute=0, second=0)}
    uow.session.execute(
        text("DELETE FROM reading_hours WHERE unit_id = ANY(:units) AND hour >= :from"), params
    )
    uow.session.execute(
        text(
            f"INSERT INTO reading_hours {HOUR_COLUMNS} "
            + hour_figures("readings WHERE unit_id = ANY(:units) AND ts >= :from")
        ),
        params,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class KineticSum:
    """Of a unit's readings over a range: sum of w * exp(-dH/(R*T)), sum of w (s), how many.

    w is the time each reading stands for (domain/mkt.py reading_weights): MKT follows from the
    two sums alone (mkt_of_sums).
    """

    kinetic_s: float
    covered_s: float
    readings: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Run:
    """Readings back to back: the first and last one's time (seconds since the epoch), the last
    one's temperature, and the kinetic sum and the seconds covered between them (gaps capped)."""

    first: float
    last: float
    last_temp_c: float
    kinetic_s: float
    covered_s: float
    readings: int


_LAST_BEFORE = select(func.max(Reading.ts)).where(
    Reading.unit_id == bindparam("unit"), Reading.ts < bindparam("start")
)


def unit_kinetic_sum(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime, max_gap: dt.timedelta
) -> KineticSum | None:
    """The kinetic sum over [start, end) from the hourly aggregates, with raw readings at the ends.

    The same figure as weighting every raw reading (reading_weights): each whole hour inside the
    range gives its back-to-back readings' sum, and only the gaps between runs, the partial hours
    at both ends and hours whose readings came out of order are read raw. None where no
    aggregates are kept (SQLite) or the range holds no whole hour.
    """
    first_hour, end_hour = _ceil_hour(start), _floor_hour(end)
    if not is_postgres(uow.session) or end_hour <= first_hour:
        return None
    cap_s = max_gap.total_seconds()
    runs, unusable = [], []
    # The whole hours come folded: each chain of usable hours (no hour read raw between them) is
    # one run, its inner gaps summed in SQL. A 30-day range is 720 hours; sending them all and
    # folding them here cost more than the rest of the page (issue 14).
    chains = uow.session.execute(
        _HOUR_CHAINS,
        {
            "unit": unit_id,
            "first": first_hour,
            "end": end_hour,
            "cap": cap_s,
        },
    )
    for row in chains:
        raw_hour_s, first_s, last_s, last_temp_c, kinetic_s, covered_s, readings = cast_type(
            "tuple[float | None, float, float, float, float, float, int]", row
        )
        if raw_hour_s is not None:
            unusable.append(dt.datetime.fromtimestamp(raw_hour_s, dt.UTC))
        else:
            runs.append(_Run(first_s, last_s, last_temp_c, kinetic_s, covered_s, int(readings)))
    before = uow.session.scalar(_LAST_BEFORE, {"unit": unit_id, "start": start})
    spans = [(before if before is not None else start, first_hour), (end_hour, end)]
    spans += [(hour, hour + dt.timedelta(hours=1)) for hour in unusable]
    runs += [
        _Run(ts.timestamp(), ts.timestamp(), temp_c, 0.0, 0.0, 1)
        for ts, temp_c in _raw_points(uow, unit_id, spans)
    ]
    runs.sort(key=lambda run: run.first)
    return _fold(runs, start.timestamp(), end.timestamp(), cap_s)


# An hour is read raw when it has no usable run (readings came out of order: no kinetic sum) or a
# gap inside it is over the cap. Usable hours between two raw ones (or the range's ends) form a
# chain: nothing but their own readings lies between them, so the time each hour's last reading
# stands until the next hour's first (capped) is summed here, as _fold sums it between runs.
# Each chain comes as one row (raw_hour_s NULL), each raw hour as one row (its epoch second).
_HOUR_CHAINS = text(
    f"""
WITH hours AS (
    SELECT hour, readings, last_temp_c, kinetic_s,
           extract(epoch FROM first_ts)::float8 AS first_s,
           extract(epoch FROM last_ts)::float8 AS last_s,
           coalesce(kinetic_s IS NULL OR first_ts IS NULL OR max_gap_s > :cap, true) AS raw
    FROM reading_hours WHERE unit_id = :unit AND hour >= :first AND hour < :end
), linked AS (
    SELECT *, count(*) FILTER (WHERE raw) OVER (ORDER BY hour) AS chain,
           lead(first_s) OVER (ORDER BY hour) AS next_first_s,
           lead(raw) OVER (ORDER BY hour) AS next_raw
    FROM hours
), usable AS (
    SELECT chain, hour, first_s, last_s, last_temp_c, kinetic_s, readings,
           CASE WHEN next_raw IS FALSE
                THEN greatest(least(next_first_s, last_s + :cap) - last_s, 0) ELSE 0 END
               AS stands_s
    FROM linked WHERE NOT raw
)
SELECT NULL::float8, min(first_s), max(last_s),
       (array_agg(last_temp_c ORDER BY hour DESC))[1],
       sum(kinetic_s + stands_s * {_kinetic("last_temp_c")}),
       sum(last_s - first_s + stands_s), sum(readings)
FROM usable GROUP BY chain
UNION ALL
SELECT extract(epoch FROM hour)::float8, NULL, NULL, NULL, NULL, NULL, NULL
FROM hours WHERE raw
"""
)


def _raw_points(
    uow: UnitOfWork, unit_id: int, spans: list[tuple[dt.datetime, dt.datetime]]
) -> list[tuple[dt.datetime, float]]:
    """(ts, temp_c) of the unit's raw readings in any of the [from, to) spans."""
    within = or_(*(and_(Reading.ts >= low, Reading.ts < high) for low, high in spans))
    query = select(Reading.ts, Reading.temp_c).where(Reading.unit_id == unit_id, within)
    return [(ts, temp_c) for ts, temp_c in uow.session.execute(query.order_by(Reading.ts)).all()]


def _fold(runs: list[_Run], start_s: float, end_s: float, max_gap_s: float) -> KineticSum:
    """Join the runs end to end; each run's last reading stands until the next run (capped).

    Times in seconds since the epoch."""
    kinetic_s = covered_s = 0.0
    for run, following in zip(runs, [*(r.first for r in runs[1:]), end_s], strict=False):
        stands_s = max(min(following, end_s, run.last + max_gap_s) - max(run.last, start_s), 0.0)
        kinetic_s += run.kinetic_s + stands_s * kinetic_factor(run.last_temp_c)
        covered_s += run.covered_s + stands_s
    return KineticSum(kinetic_s, covered_s, sum(run.readings for run in runs))


def _floor_hour(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(at: dt.datetime) -> dt.datetime:
    floor = _floor_hour(at)
    return floor if floor == at else floor + dt.timedelta(hours=1)


def _require_bucket_count(start: dt.datetime, end: dt.datetime, width_s: int) -> None:
    if (end - start).total_seconds() / width_s > MAX_BUCKETS:
        raise Invalid(
            f"more than {MAX_BUCKETS} buckets: widen the bucket or shorten the range",
            field="bucket",
        )


def _require_unit(uow: UnitOfWork, unit_id: int) -> StorageUnit:
    unit = get_or_404(
        uow, StorageUnit, unit_id, f"storage unit {unit_id} does not exist", field="unit_id"
    )
    return unit


def _require_range(start: dt.datetime, end: dt.datetime) -> None:
    if end <= start:
        raise Invalid("end must be after start", field="end")


@dataclasses.dataclass(frozen=True, slots=True)
class UnitLatest:
    """The current sensor of a unit and what it last said."""

    unit: StorageUnit
    sensor: Sensor | None


def latest_by_store(
    uow: UnitOfWork, store_id: int, subtree: bool, now: dt.datetime
) -> list[UnitLatest]:
    """Every active unit of a store (or of its subtree) with its current sensor's last reading."""
    store = get_or_404(uow, Store, store_id, f"store {store_id} does not exist", field="store_id")
    stores = (
        select(Store.id).where(in_subtree(Store.path, store.path))
        if subtree
        else select(Store.id).where(Store.id == store_id)
    )
    current = and_(
        SensorAssignment.unit_id == StorageUnit.id,
        SensorAssignment.valid_from <= now,
        or_(SensorAssignment.valid_to.is_(None), SensorAssignment.valid_to > now),
    )
    query = (
        select(StorageUnit, Sensor)
        .outerjoin(SensorAssignment, current)
        .outerjoin(Sensor, Sensor.sensor_id == SensorAssignment.sensor_id)
        .where(StorageUnit.store_id.in_(stores), StorageUnit.active.is_(True))
        .order_by(StorageUnit.store_id, StorageUnit.id, Sensor.sensor_id)
    )
    return _detached(
        uow, [UnitLatest(unit, sensor) for unit, sensor in uow.session.execute(query).all()]
    )


_UNIT_SENSORS = (
    select(Sensor)
    .join(SensorAssignment, SensorAssignment.sensor_id == Sensor.sensor_id)
    .where(
        SensorAssignment.unit_id == bindparam("unit_id"),
        SensorAssignment.valid_from <= bindparam("now"),
        or_(SensorAssignment.valid_to.is_(None), SensorAssignment.valid_to > bindparam("now")),
    )
    .order_by(Sensor.sensor_id)
)


def unit_sensors(uow: UnitOfWork, unit_id: int, now: dt.datetime) -> list[Sensor]:
    """The sensors assigned to a unit now (its page shows their state), by sensor id."""
    return list(uow.session.scalars(_UNIT_SENSORS, {"unit_id": unit_id, "now": now}))


def dead_letters(
    uow: UnitOfWork,
    page: int,
    page_size: int,
    sensor_id: str | None = None,
    reason: str | None = None,
) -> tuple[list[DeadLetter], int]:
    """A page of dead letters, newest first, and the total count."""
    query = select(DeadLetter)
    if sensor_id:
        query = query.where(DeadLetter.sensor_id == sensor_id)
    if reason:
        query = query.where(DeadLetter.reason == reason)
    total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = uow.session.scalars(
        query.order_by(DeadLetter.id.desc()).offset((page - 1) * page_size).limit(page_size)
    )
    return _detached(uow, list(rows)), total


def _detached(uow: UnitOfWork, result: R) -> R:
    # Loaded rows stay readable after the unit of work rolls back and closes (views serialise then).
    uow.session.expunge_all()
    return result


@dataclasses.dataclass(frozen=True)
class ChartColumns:
    """A chart's buckets as columns (what it draws): starts in epoch seconds, low, mean, high."""

    width_s: int
    t: Sequence[int]
    low: Sequence[float]
    avg: Sequence[float]
    high: Sequence[float]


def unit_chart_series(
    uow: UnitOfWork,
    unit_id: int,
    start: dt.datetime,
    end: dt.datetime,
    width_s: int,
    aggregate_after: dt.timedelta = AGGREGATE_AFTER,
) -> ChartColumns:
    """unit_series for the web app's charts, as columns; short ranges are bucketed by the
    database too.

    Longer than `aggregate_after` (PostgreSQL): whole-hour buckets from the hourly aggregates
    (a 30-day chart is 720 points whose min and max are the readings' own extremes). The
    database gives each bucket's start in epoch seconds, and the rows are turned into columns
    at once: a day's chart is 1,440 buckets, which as objects with datetimes cost more than
    the database's grouping.
    """
    if end - start <= aggregate_after or not is_postgres(uow.session):
        return _columns(width_s, unit_chart_buckets(uow, unit_id, start, end, width_s))
    width_s = _hour_width(uow, unit_id, start, end, width_s)
    return _columns(width_s, _hour_rows(uow, unit_id, start, end, width_s, epoch=True))


def _columns(width_s: int, rows: Sequence[Sequence[Any]]) -> ChartColumns:
    # rows: (start in epoch seconds, count, low, mean, high)
    if not rows:
        return ChartColumns(width_s, [], [], [], [])
    t, _counts, low, avg, high = zip(*rows, strict=True)
    return ChartColumns(width_s, t, low, avg, high)


def _chart_buckets(epoch: ColumnElement[Any]) -> Any:
    """Buckets of :width seconds of a unit's readings in [:start, :end), given the dialect's
    reading time in epoch seconds."""
    slot = func.floor(epoch / bindparam("width", type_=Float())).label("slot")
    return (
        select(
            slot,
            func.count(),
            func.min(Reading.temp_c),
            func.avg(Reading.temp_c),
            func.max(Reading.temp_c),
        )
        .where(
            Reading.unit_id == bindparam("unit"),
            Reading.ts >= bindparam("start"),
            Reading.ts < bindparam("end"),
        )
        .group_by(slot)
        .order_by(slot)
    )


# Built once per dialect: every day chart runs it, and building it cost more than its answer.
_CHART_BUCKETS = {  # by whether the database is PostgreSQL
    # double precision, and typed so: an untyped value divided by a whole number is cast to
    # NUMERIC by SQLAlchemy (true division), and numeric arithmetic over a day's readings
    # cost the day chart most of its time in the database.
    True: _chart_buckets(func.date_part("epoch", Reading.ts, type_=Float())),
    False: _chart_buckets(cast(func.strftime("%s", Reading.ts), Integer)),
}


def unit_chart_buckets(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime, width_s: int
) -> list[tuple[int, int, float, float, float]]:
    """Min/avg/max per bucket of width_s seconds over [start, end), summed up by the database:
    (start in epoch seconds, count, low, mean, high) per bucket.

    Same buckets as unit_buckets, but only the buckets leave the database (a 30-day chart of
    one-minute readings sends 1,440 rows, not 43,200). The web app's charts read through here,
    so a store of hourly aggregates can later answer the wide buckets instead.
    """
    _require_unit(uow, unit_id)
    _require_range(start, end)
    if (end - start).total_seconds() / width_s > MAX_BUCKETS:
        raise Invalid(f"more than {MAX_BUCKETS} buckets", field="bucket")
    statement = _CHART_BUCKETS[is_postgres(uow.session)]
    rows: Sequence[Any] = uow.session.execute(
        statement, {"width": float(width_s), "unit": unit_id, "start": start, "end": end}
    ).all()
    return [
        (int(n) * width_s, int(count), float(low), float(avg), float(high))
        for n, count, low, avg, high in rows
    ]
