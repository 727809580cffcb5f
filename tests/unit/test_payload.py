"""Parsing sensor messages, reading rules, downsampling, simulated traces (no broker or DB)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logistics.domain.readings import ReadingLimits, downsample, is_late, parse_bucket
from sensors.ingest import topics
from sensors.mqtt import parse_broker_url
from sensors.payload import ParseLimits, parse_message, parse_topic, parse_ts
from sensors.traces import (
    BACKLOG,
    FREEZE,
    POWER_CUT,
    SILENT,
    SensorPlan,
    messages,
    plans_for,
    sample,
)

NOW = dt.datetime(2021, 4, 28, 10, 30, tzinfo=dt.UTC)
TOPIC = "coldchain/sensors/ILR-7/readings"
LIMITS = ParseLimits(ReadingLimits(-90, 70, 300), max_payload_bytes=1024, max_batch_readings=5)


def parse(payload: bytes | str, topic: str = TOPIC):
    raw = payload.encode() if isinstance(payload, str) else payload
    return parse_message(topic, raw, "coldchain/sensors", LIMITS, NOW)


def reasons(parsed) -> list[str]:
    return [rejection.reason for rejection, _raw in parsed.rejections]


def test_one_reading_with_offset_is_stored_in_utc():
    parsed = parse(
        '{"ts": "2021-04-28T16:00:00+05:30", "temp_c": 4.6, "battery_pct": 80, '
        '"power": "mains", "seq": 3}'
    )
    [reading] = parsed.readings
    assert reading.sensor_id == "ILR-7"
    assert reading.ts == dt.datetime(2021, 4, 28, 10, 30, tzinfo=dt.UTC)
    assert (reading.temp_c, reading.battery_pct, reading.power, reading.seq) == (
        4.6,
        80.0,
        "mains",
        3,
    )
    assert reading.received_at == NOW and not parsed.rejections


def test_epoch_seconds_are_accepted():
    [reading] = parse(json.dumps({"ts": NOW.timestamp() - 60, "temp_c": 5})).readings
    assert reading.ts == NOW - dt.timedelta(minutes=1)


def test_batch_keeps_good_readings_and_rejects_bad_ones_separately():
    body = {
        "readings": [
            {"ts": "2021-04-28T10:00:00Z", "temp_c": 5.0},
            {"ts": "2021-04-28T10:01:00Z"},
            {"ts": "2021-04-28T10:02:00Z", "temp_c": 5.5},
        ]
    }
    parsed = parse(json.dumps(body))
    assert [r.temp_c for r in parsed.readings] == [5.0, 5.5]
    assert reasons(parsed) == ["bad_field"]
    assert '"2021-04-28T10:01:00Z"' in parsed.rejections[0][1]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe\x00", "not_json"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": NaN}', "not_finite"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": Infinity}', "not_finite"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 1e400}', "not_finite"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 250}', "implausible_temp"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": -120}', "implausible_temp"),
        ('{"ts": "2021-04-28T12:00:00Z", "temp_c": 4}', "future_ts"),
        ('{"ts": "2021-04-28T10:00:00", "temp_c": 4}', "bad_field"),
        ('{"ts": "yesterday", "temp_c": 4}', "bad_field"),
        ('{"ts": true, "temp_c": 4}', "bad_field"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": "4"}', "bad_field"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": true}', "bad_field"),
        # Integers a float holds are numbers (this one is out of range); 2**63 and beyond are not.
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 9223372036854775807}', "implausible_temp"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 9223372036854775808}', "bad_field"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": -9223372036854775808}', "bad_field"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": ' + "9" * 400 + "}", "bad_field"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 4, "power": "solar"}', "bad_field"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 4, "battery_pct": 140}', "bad_field"),
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 4, "seq": -1}', "bad_field"),
        # readings.seq is a 32-bit INTEGER: a larger counter failed its whole batch's INSERT.
        ('{"ts": "2021-04-28T10:00:00Z", "temp_c": 4, "seq": 2147483648}', "bad_field"),
        ("[1, 2]", "bad_field"),
        ('{"readings": []}', "bad_batch"),
        ('{"readings": "many"}', "bad_batch"),
        (json.dumps({"readings": [{"ts": "2021-04-28T10:00:00Z", "temp_c": 4}] * 6}), "bad_batch"),
        (b"{" + b" " * 2000 + b"}", "oversized"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload, reason):
    parsed = parse(payload)
    assert parsed.readings == []
    assert reasons(parsed) == [reason]


def test_rejected_payload_keeps_its_raw_text_even_when_not_utf8():
    parsed = parse(b"\xffgarbage")
    assert parsed.rejections[0][1] == "\ufffdgarbage"


@pytest.mark.parametrize(
    "topic",
    [
        "coldchain/sensors/readings",
        "other/ILR-7/readings",
        "coldchain/sensors/ILR-7/readings/extra",
        "coldchain/sensors/ILR-7/config",
    ],
)
def test_unexpected_topics_are_rejected(topic):
    assert reasons(parse('{"ts": 1, "temp_c": 4}', topic)) == ["bad_topic"]


def test_status_topic():
    assert parse(b"offline", "coldchain/sensors/ILR-7/status").status == "offline"
    assert parse(b"ONLINE", "coldchain/sensors/ILR-7/status").status == "online"
    assert reasons(parse(b"sleepy", "coldchain/sensors/ILR-7/status")) == ["bad_status"]


def test_parse_topic():
    assert parse_topic("coldchain/sensors/a/status", "coldchain/sensors/") == ("a", "status")
    assert parse_topic("coldchain/sensors/+/x", "coldchain/sensors") is None


@given(st.binary(max_size=300))
def test_any_bytes_never_raise(payload):
    parsed = parse(payload)
    assert parsed.readings or parsed.rejections


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_stored_only_when_plausible(value):
    parsed = parse(json.dumps({"ts": "2021-04-28T10:00:00Z", "temp_c": value}))
    assert bool(parsed.readings) == (-90 <= value <= 70)


def test_parse_ts_requires_offset_and_sane_epoch():
    assert parse_ts("2021-04-28T10:00:00+00:00") == dt.datetime(2021, 4, 28, 10, tzinfo=dt.UTC)
    assert parse_ts(-5) is None and parse_ts(float("nan")) is None and parse_ts(None) is None


def test_late_means_long_delay_or_behind_the_newest_held():
    ts = NOW - dt.timedelta(minutes=5)
    assert not is_late(ts, NOW, None, 900)
    assert is_late(ts, NOW, NOW - dt.timedelta(minutes=1), 900)
    assert is_late(NOW - dt.timedelta(hours=1), NOW, None, 900)


def test_downsample_gives_min_avg_max_per_aligned_bucket():
    points = [
        (NOW, 4.0),
        (NOW + dt.timedelta(minutes=5), 6.0),
        (NOW + dt.timedelta(minutes=16), 9.0),
    ]
    first, second = downsample(points, 900)
    assert first.start == NOW and (
        first.count,
        first.min_temp_c,
        first.avg_temp_c,
        first.max_temp_c,
    ) == (2, 4, 5, 6)
    assert second.start == NOW + dt.timedelta(minutes=15) and second.max_temp_c == 9.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400)]
)
def test_parse_bucket(text, seconds):
    assert parse_bucket(text) == seconds


@pytest.mark.parametrize("text", ["0m", "15", "m", "1w", "-5m"])
def test_parse_bucket_refuses_nonsense(text):
    with pytest.raises(ValueError):
        parse_bucket(text)


def test_broker_url():
    address = parse_broker_url("mqtt://ing:s%40cret@broker.example:1884")
    assert (address.host, address.port, address.username, address.password) == (
        "broker.example",
        1884,
        "ing",
        "s@cret",
    )
    assert parse_broker_url("mqtts://b").port == 8883
    with pytest.raises(ValueError):
        parse_broker_url("http://b")


def test_shared_subscription_topic(settings_factory=None):
    from logistics.config import load_settings

    shared = topics(load_settings({"mqtt_shared_group": "ingest"}))
    # The whole prefix: mistyped topics and extra levels must reach the dead letters (issue 12).
    assert shared == ["$share/ingest/coldchain/sensors/#", "coldchain/sensors/+/status"]
    assert topics(load_settings({"mqtt_shared_group": ""})) == ["coldchain/sensors/#"]


# --- simulated traces ----------------------------------------------------------------------

START = dt.datetime(2021, 4, 28, 0, 0, tzinfo=dt.UTC)


def temps(plan: SensorPlan, hours: float) -> list[float]:
    out = []
    for step in range(int(hours * 3600 / plan.interval_s)):
        got = sample(plan, START, START + dt.timedelta(seconds=step * plan.interval_s))
        if got:
            out.append(got.temp_c)
    return out


def test_healthy_ilr_stays_mostly_between_3_and_6_with_short_spikes():
    values = temps(SensorPlan("N1"), 24)
    inside = sum(3.0 <= v <= 6.0 for v in values) / len(values)
    assert inside > 0.8 and max(values) < 10 and min(values) > 2.5


def test_power_cut_passes_8_only_after_hours():
    plan = SensorPlan("P1", POWER_CUT, fault_after_h=1, fault_for_h=8)
    values = temps(plan, 9)
    first_above = next(i for i, v in enumerate(values) if v > 8) * plan.interval_s / 3600
    assert 2.5 < first_above < 6.5
    assert sample(plan, START, START + dt.timedelta(hours=5)).power == "battery"


def test_thermostat_fault_freezes():
    values = temps(SensorPlan("F1", FREEZE, fault_after_h=1), 6)
    assert min(values) <= -0.5 and values[-1] < -5


def test_silent_logger_stops_sending():
    plan = SensorPlan("S1", SILENT, fault_after_h=1)
    assert sample(plan, START, START + dt.timedelta(minutes=30)) is not None
    assert sample(plan, START, START + dt.timedelta(hours=2)) is None


def test_backlog_logger_sends_its_readings_in_one_batch_after_reconnecting():
    plan = SensorPlan("B1", BACKLOG, fault_after_h=1, fault_for_h=2)
    out = messages(plan, START, START, START + dt.timedelta(hours=4))
    payloads = [json.loads(p) for t, p, _ in out if t.endswith("/readings")]
    batches = [p for p in payloads if "readings" in p]
    assert len(batches) == 1 and len(batches[0]["readings"]) == 120
    statuses = [p for t, p, retain in out if t.endswith("/status")]
    assert statuses == [b"offline", b"online"]
    # every minute of the 4 hours is covered exactly once
    singles = [p["ts"] for p in payloads if "ts" in p] + [r["ts"] for r in batches[0]["readings"]]
    assert len(singles) == len(set(singles)) == 240


def test_plans_put_one_fault_on_each_of_the_first_sensors():
    kinds = [plan.kind for plan in plans_for("SIM", 6)]
    assert kinds == [POWER_CUT, FREEZE, SILENT, BACKLOG, "normal", "normal"]


def test_traces_are_deterministic():
    plan = SensorPlan("D1")
    assert messages(plan, START, START, START + dt.timedelta(hours=1)) == messages(
        plan, START, START, START + dt.timedelta(hours=1)
    )


def test_the_largest_seq_the_column_holds_is_kept():
    parsed = parse('{"ts": "2021-04-28T10:00:00Z", "temp_c": 4, "seq": 2147483647}')
    assert [reading.seq for reading in parsed.readings] == [2147483647]
    assert reasons(parsed) == []
