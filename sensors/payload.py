"""Parse sensor messages (topic + payload bytes) into readings or rejections; no I/O here.

The protocol is documented in docs/sensors.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from typing import Any

from logistics.domain.readings import (
    POWER_STATES,
    ReadingLimits,
    Rejection,
    SensorReading,
    check_reading,
)

READINGS = "readings"
# A batch is {"readings": [{...}]}: three levels. Deeper JSON is hostile, and refused before the
# decoder recurses into it.
MAX_DEPTH = 8
_OPENERS = re.compile(rb"[\[{]")
# ISO 8601 as the protocol allows it; fromisoformat alone also takes any character (even NUL) as
# the date-time separator and before the offset.
_ISO_TS = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?", re.ASCII
)
STATUS = "status"
# readings.seq is a 32-bit INTEGER: a larger counter is refused here, as one reading's dead letter,
# instead of failing the INSERT of its whole batch.
MAX_SEQ = 2**31 - 1
STATUS_VALUES = ("online", "offline")


@dataclasses.dataclass(frozen=True, slots=True)
class ParseLimits:
    """Limits applied while parsing, from the [ingest] settings."""

    reading: ReadingLimits = ReadingLimits()
    max_payload_bytes: int = 65536
    max_batch_readings: int = 2000


@dataclasses.dataclass(slots=True)
class Parsed:
    """What one message held: readings to store and rejected parts (with the part's raw text)."""

    sensor_id: str | None
    kind: str | None
    readings: list[SensorReading] = dataclasses.field(default_factory=list)
    rejections: list[tuple[Rejection, str]] = dataclasses.field(default_factory=list)
    status: str | None = None
    whole_message: bool = False  # the rejection covers the message: keep its bytes as received


def parse_topic(topic: str, prefix: str) -> tuple[str, str] | None:
    """Split `<prefix>/<sensor_id>/<kind>` into (sensor_id, kind); None when it does not match."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) != 2 or not parts[0] or parts[1] not in (READINGS, STATUS) or len(parts[0]) > 64:
        return None
    return parts[0], parts[1]


def parse_message(
    topic: str, payload: bytes, prefix: str, limits: ParseLimits, now: dt.datetime
) -> Parsed:
    """Turn one MQTT message into readings, a status, or rejections; never raises."""
    try:
        return _parse_message(topic, payload, prefix, limits, now)
    except Exception as exc:  # a case the checks below missed must still reach the dead letters
        detail = f"{type(exc).__name__}: {exc}"[:200]
        return _rejected(None, None, Rejection("unparseable", detail), payload)


def _parse_message(
    topic: str, payload: bytes, prefix: str, limits: ParseLimits, now: dt.datetime
) -> Parsed:
    where = parse_topic(topic, prefix)
    if where is None:
        return _rejected(None, None, Rejection("bad_topic", topic[:200]), payload)
    sensor_id, kind = where
    if len(payload) > limits.max_payload_bytes:
        return _rejected(sensor_id, kind, Rejection("oversized", f"{len(payload)} bytes"), payload)
    if kind == STATUS:
        return _parse_status(sensor_id, payload)
    return _parse_readings(sensor_id, topic, payload, limits, now)


def _rejected(
    sensor_id: str | None, kind: str | None, rejection: Rejection, payload: bytes
) -> Parsed:
    return Parsed(
        sensor_id, kind, rejections=[(rejection, decode_leniently(payload))], whole_message=True
    )


def decode_leniently(payload: bytes) -> str:
    """Text of a payload for people to read, whatever bytes it holds."""
    return payload.decode("utf-8", errors="replace")


def _parse_status(sensor_id: str, payload: bytes) -> Parsed:
    text = decode_leniently(payload).strip().strip('"').lower()
    if text not in STATUS_VALUES:
        return _rejected(
            sensor_id, STATUS, Rejection("bad_status", "status must be online or offline"), payload
        )
    return Parsed(sensor_id, STATUS, status=text)


def _parse_readings(
    sensor_id: str, topic: str, payload: bytes, limits: ParseLimits, now: dt.datetime
) -> Parsed:
    if _nesting_exceeds(payload, MAX_DEPTH):
        detail = f"JSON nested deeper than {MAX_DEPTH} levels"
        return _rejected(sensor_id, READINGS, Rejection("too_deep", detail), payload)
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return _rejected(sensor_id, READINGS, Rejection("not_json", str(exc)[:200]), payload)
    items, problem = _items_of(body, limits)
    if problem:
        return _rejected(sensor_id, READINGS, problem, payload)
    parsed = Parsed(sensor_id, READINGS)
    for item in items:
        outcome = parse_reading(item, sensor_id, topic, limits.reading, now)
        if isinstance(outcome, Rejection):
            parsed.rejections.append((outcome, _compact(item)))
        else:
            parsed.readings.append(outcome)
    return parsed


def _nesting_exceeds(payload: bytes, limit: int) -> bool:
    """Whether brackets open more than `limit` deep (strings counted too: a safe over-estimate)."""
    if len(_OPENERS.findall(payload, 0, 4096)) <= limit and len(payload) <= 4096:
        return False
    depth = 0
    for byte in payload:
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif byte in b"]}":
            depth -= 1
    return False


def _items_of(body: Any, limits: ParseLimits) -> tuple[list[Any], Rejection | None]:
    if isinstance(body, dict) and "readings" in body:
        items = body["readings"]
        if not isinstance(items, list) or not items:
            return [], Rejection("bad_batch", "readings must be a non-empty list")
        if len(items) > limits.max_batch_readings:
            return [], Rejection(
                "bad_batch", f"{len(items)} readings, more than {limits.max_batch_readings}"
            )
        return items, None
    return [body], None


def _compact(item: Any) -> str:
    try:
        return json.dumps(item, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError):
        return repr(item)


def parse_reading(
    item: Any, sensor_id: str, topic: str, limits: ReadingLimits, now: dt.datetime
) -> SensorReading | Rejection:
    """Validate one reading object: ts, temp_c, optional battery_pct, power and seq."""
    if not isinstance(item, dict):
        return Rejection("bad_field", "a reading must be a JSON object")
    ts = parse_ts(item.get("ts"))
    if ts is None:
        return Rejection("bad_field", "ts must be ISO 8601 with an offset, or epoch seconds")
    temp_c = item.get("temp_c")
    if not _is_number(temp_c):
        return Rejection("bad_field", "temp_c must be a number")
    rejection = check_reading(float(temp_c), ts, limits, now) or _check_optional(item)
    if rejection:
        return rejection
    battery = item.get("battery_pct")
    return SensorReading(
        sensor_id,
        ts,
        float(temp_c),
        now,
        None if battery is None else float(battery),
        item.get("power"),
        item.get("seq"),
        topic,
    )


def _is_number(value: Any) -> bool:
    """A JSON number a float can hold (a 400-digit integer cannot: it is refused, not rounded).

    JSON decodes to exact types (bool is not an int here); checked on every field of every
    reading, so by type identity first.
    """
    kind = type(value)
    if kind is float:
        return True
    return kind is int and -(2**63) < value < 2**63


def _check_optional(item: dict[str, Any]) -> Rejection | None:
    battery = item.get("battery_pct")
    if battery is not None and not (
        _is_number(battery) and math.isfinite(battery) and 0 <= battery <= 100
    ):
        return Rejection("bad_field", "battery_pct must be a number from 0 to 100")
    if item.get("power") is not None and item.get("power") not in POWER_STATES:
        return Rejection("bad_field", f"power must be one of {', '.join(POWER_STATES)}")
    seq = item.get("seq")
    if seq is not None and not (
        isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SEQ
    ):
        return Rejection("bad_field", f"seq must be an integer from 0 to {MAX_SEQ}")
    return None


def parse_ts(value: Any) -> dt.datetime | None:
    """Read a timestamp: ISO 8601 with a UTC offset, or epoch seconds; None when neither."""
    if _is_number(value):
        if not math.isfinite(value) or not 0 < value < 32503680000:
            return None
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if not isinstance(value, str) or not _ISO_TS.fullmatch(value):
        return None
    try:
        ts = dt.datetime.fromisoformat(value)
        # A time without a zone is ambiguous (site clock or UTC?): the protocol requires an offset.
        # Applying the offset can leave the calendar (0001-01-01T00:00+14:00): that is refused.
        return ts.astimezone(dt.UTC) if ts.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
