"""Readings at national scale (issue 16): monthly partitions made ahead, raw readings retired.

On PostgreSQL `readings` is partitioned by month of `ts` (migration 0007): `readings_pYYYYMM`
holds [first of the month, first of the next) in UTC, and `readings_default` catches a reading no
partition covers (a logger whose clock is years off). The scheduler's `partitions` job makes the
coming months' partitions ahead of time; its `retention` job drops the partitions whose readings are
all older than `readings.retention_days` (after writing each to a gzipped CSV file when
`readings.archive_dir` is set). Hourly aggregates and excursions live in their own tables and stay.

SQLite keeps one plain table: both jobs do nothing there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import logging
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from logistics.runtime import Runtime

log = logging.getLogger(__name__)
PARENT = "readings"
DEFAULT_PARTITION = "readings_default"
_MONTHLY = re.compile(r"^readings_p(\d{4})(\d{2})$")


@dataclasses.dataclass(frozen=True, order=True)
class Month:
    """One UTC calendar month: the span of one partition."""

    year: int
    month: int

    @classmethod
    def of(cls, at: dt.datetime) -> Month:
        """The month `at` falls in (UTC)."""
        at = at.astimezone(dt.UTC)
        return cls(at.year, at.month)

    @property
    def start(self) -> dt.datetime:
        """First instant of the month."""
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    def next(self) -> Month:
        """The month after this one."""
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def table(self) -> str:
        """Name of its partition."""
        return f"readings_p{self.year:04d}{self.month:02d}"


def month_of_table(name: str) -> Month | None:
    """The month a monthly partition holds, from its name (None for other tables)."""
    found = _MONTHLY.match(name)
    return Month(int(found[1]), int(found[2])) if found else None


def is_partitioned(connection: Connection) -> bool:
    """Whether `readings` is a partitioned table here (PostgreSQL after migration 0007)."""
    if connection.dialect.name != "postgresql":
        return False
    return bool(
        connection.scalar(
            text(
                "SELECT count(*) FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid "
                "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
            ),
            {"name": PARENT},
        )
    )


def partitions(connection: Connection) -> list[str]:
    """Names of the partitions of `readings`, oldest month first (the default one last)."""
    names = connection.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": PARENT},
    )
    return sorted(names, key=lambda name: (month_of_table(name) is None, name))


def ensure_partitions(runtime: Runtime, now: dt.datetime, ahead_months: int) -> list[str]:
    """Create the partitions of this month and the next `ahead_months`; return those made."""
    with runtime.engine.connect() as connection:
        if not is_partitioned(connection):
            return []
        existing = set(partitions(connection))
    made = []
    month = Month.of(now)
    for _ in range(ahead_months + 1):
        if month.table not in existing:
            with runtime.engine.begin() as connection:  # one transaction per partition
                _create(connection, month)
            made.append(month.table)
        month = month.next()
    if made:
        log.info("created reading partitions %s", ", ".join(made))
    return made


def _create(connection: Connection, month: Month) -> None:
    """Create one month's partition, moving in what the default partition holds of it."""
    bounds = {"start": month.start, "end": month.next().start}
    in_range = "ts >= :start AND ts < :end"
    stray = connection.scalar(
        text(f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE {in_range}"), bounds
    )
    bound_sql = f"FROM ('{month.start.isoformat()}') TO ('{month.next().start.isoformat()}')"
    if not stray:
        connection.execute(
            text(f"CREATE TABLE {month.table} PARTITION OF {PARENT} FOR VALUES {bound_sql}")
        )
        return
    # A partition cannot be created over rows the default partition holds: move them first.
    connection.execute(text(f"CREATE TABLE {month.table} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    connection.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE {in_range} RETURNING *) "
            f"INSERT INTO {month.table} SELECT * FROM moved"
        ),
        bounds,
    )
    connection.execute(
        text(f"ALTER TABLE {PARENT} ATTACH PARTITION {month.table} FOR VALUES {bound_sql}")
    )


def apply_retention(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    """Drop (archiving first, if configured) raw readings older than the retention period."""
    settings = runtime.settings
    cutoff = now - dt.timedelta(days=settings.readings_retention_days)
    archive = Path(settings.readings_archive_dir) if settings.readings_archive_dir else None
    dropped: list[str] = []
    with runtime.engine.connect() as connection:
        if not is_partitioned(connection):
            return {"dropped": [], "deleted": 0}
        names = partitions(connection)
    for name in names:
        month = month_of_table(name)
        if month is None or month.next().start > cutoff:
            continue
        with runtime.engine.begin() as connection:  # archived and dropped together, or neither
            if archive is not None:
                archive_table(connection, name, archive / f"{name}.csv.gz")
            connection.execute(text(f"DROP TABLE {name}"))
        dropped.append(name)
    with runtime.engine.begin() as connection:
        deleted = connection.execute(
            text(f"DELETE FROM {DEFAULT_PARTITION} WHERE ts < :cutoff"), {"cutoff": cutoff}
        ).rowcount
    if dropped:
        log.info("dropped reading partitions older than %s: %s", cutoff, ", ".join(dropped))
    return {"dropped": dropped, "deleted": deleted}


def archive_table(connection: Connection, name: str, path: Path) -> int:
    """Write a table to a gzipped CSV file (with a header line); return the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    driver = connection.connection.driver_connection
    assert driver is not None
    written = 0
    statement = f"COPY {name} TO STDOUT WITH (FORMAT csv, HEADER)"
    with gzip.open(partial, "wb") as out, driver.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in copy:
            out.write(chunk)
            written += len(chunk)
    partial.rename(path)  # a file of this name is always complete
    return written
