"""Rules about temperature readings, free of any framework: plausibility, lateness, downsampling."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence

POWER_STATES = ("mains", "battery", "off")
# A sensor id is also its MQTT user name and a topic level: no wildcards, separators or spaces.
SENSOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclasses.dataclass(frozen=True, slots=True)
class SensorReading:
    """One reading as the sensor reported it (ts in UTC), plus when the service received it."""

    sensor_id: str
    ts: dt.datetime
    temp_c: float
    received_at: dt.datetime
    battery_pct: float | None = None
    power: str | None = None
    seq: int | None = None
    topic: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message (or one reading of a batch) cannot be stored; it goes to the dead letters."""

    reason: str
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ReadingLimits:
    """What a real logger can report; anything outside is a fault, not a temperature."""

    min_temp_c: float = -90.0
    max_temp_c: float = 70.0
    max_future_s: int = 300
    # Earlier timestamps come from a reset clock, not from a logger (ingest.earliest_ts).
    earliest_ts: dt.datetime = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def check_reading(
    temp_c: float, ts: dt.datetime, limits: ReadingLimits, now: dt.datetime
) -> Rejection | None:
    """Refuse NaN/inf, impossible temperatures, and timestamps from the future or a reset clock."""
    if not math.isfinite(temp_c):
        return Rejection("not_finite", f"temp_c is {temp_c}")
    if not limits.min_temp_c <= temp_c <= limits.max_temp_c:
        return Rejection(
            "implausible_temp", f"temp_c {temp_c} outside {limits.min_temp_c}..{limits.max_temp_c}"
        )
    if ts > now + dt.timedelta(seconds=limits.max_future_s):
        return Rejection("future_ts", f"ts {ts.isoformat()} is ahead of {now.isoformat()}")
    if ts < limits.earliest_ts:
        return Rejection(
            "ancient_ts", f"ts {ts.isoformat()} is before {limits.earliest_ts.isoformat()}"
        )
    return None


def is_late(
    ts: dt.datetime, received_at: dt.datetime, newest_held: dt.datetime | None, late_after_s: int
) -> bool:
    """A reading is late when it arrives long after it was taken or behind one already held."""
    if (received_at - ts).total_seconds() > late_after_s:
        return True
    return newest_held is not None and ts < newest_held


_BUCKET = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_bucket(text: str) -> int:
    """Read a bucket width like "15m", "1h", "30s" or "1d" as seconds."""
    match = _BUCKET.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"bucket must look like 30s, 15m, 1h or 1d, not {text!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    """Summary of the readings of one time bucket."""

    start: dt.datetime
    count: int
    min_temp_c: float
    avg_temp_c: float
    max_temp_c: float


def bucket_start(ts: dt.datetime, width_s: int) -> dt.datetime:
    """Start of the bucket holding ts; buckets are aligned on the Unix epoch."""
    epoch = int(ts.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % width_s, dt.UTC)


def downsample(points: Iterable[tuple[dt.datetime, float]], width_s: int) -> list[Bucket]:
    """Summarise (ts, temp_c) points per bucket: min, average and max, in time order."""
    groups: dict[dt.datetime, list[float]] = {}
    for ts, temp_c in points:
        groups.setdefault(bucket_start(ts, width_s), []).append(temp_c)
    return [_summarise(start, temps) for start, temps in sorted(groups.items())]


def _summarise(start: dt.datetime, temps: Sequence[float]) -> Bucket:
    return Bucket(start, len(temps), min(temps), sum(temps) / len(temps), max(temps))
