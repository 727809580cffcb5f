"""Hostile MQTT messages: (kind, topic under the prefix, payload). `{s}` is a registered sensor.

The first ones are those of issue 12's report; the rest are our own. Each must end as a dead letter
(never a reading, never a stalled ingestion).
"""

from __future__ import annotations

import json

GOOD_TS = "2026-11-30T10:00:00+00:00"


def _reading(**fields: object) -> bytes:
    return json.dumps({"ts": GOOD_TS, "temp_c": 5.0, **fields}).encode()


def _raw_reading(ts: str = f'"{GOOD_TS}"', temp: str = "5.0", extra: str = "") -> bytes:
    return f'{{"ts":{ts},"temp_c":{temp}{extra}}}'.encode()


BIG = "9" * 400

CORPUS: list[tuple[str, str, bytes]] = [
    # --- from the report ---
    ("nul_garbage", "{s}/readings", b"\x00garbage"),
    ("array_30000_deep", "{s}/readings", b"[" * 30000 + b"]" * 30000),
    ("object_10000_deep", "{s}/readings", b'{"a":' * 10000 + b"1" + b"}" * 10000),
    ("ts_400_digits", "{s}/readings", _raw_reading(ts=BIG)),
    ("temp_400_digits", "{s}/readings", _raw_reading(temp=BIG)),
    ("battery_400_digits", "{s}/readings", _raw_reading(extra=f',"battery_pct":{BIG}')),
    ("year_0001_plus_14", "{s}/readings", _reading(ts="0001-01-01T00:00:00+14:00")),
    ("year_9999_minus_14", "{s}/readings", _reading(ts="9999-12-31T23:59:59-14:00")),
    ("year_0001_utc", "{s}/readings", _reading(ts="0001-01-01T00:00:00+00:00")),
    ("status_of_unknown_sensor", "ghost-sensor-1/status", b"online"),
    ("mistyped_kind", "{s}/reading", _reading()),
    ("extra_topic_level", "{s}/readings/extra", _reading()),
    # --- our own ---
    ("empty", "{s}/readings", b""),
    ("json_null", "{s}/readings", b"null"),
    ("json_array", "{s}/readings", b"[]"),
    ("json_object_empty", "{s}/readings", b"{}"),
    ("json_true", "{s}/readings", b"true"),
    ("json_string", "{s}/readings", b'"5.0"'),
    ("not_utf8", "{s}/readings", b"\xff\xfe\xfd"),
    (
        "latin1_in_string",
        "{s}/readings",
        b'{"ts":"2026-11-30T10:00:00+00:00","temp_c":5,"power":"\xe9"}',
    ),
    ("trailing_garbage", "{s}/readings", _reading() + b"x"),
    ("nan", "{s}/readings", _raw_reading(temp="NaN")),
    ("infinity", "{s}/readings", _raw_reading(temp="Infinity")),
    ("minus_infinity", "{s}/readings", _raw_reading(temp="-Infinity")),
    ("temp_1e999", "{s}/readings", _raw_reading(temp="1e999")),
    ("temp_1e308", "{s}/readings", _raw_reading(temp="1e308")),
    ("temp_string", "{s}/readings", _reading(temp_c="5")),
    ("temp_null", "{s}/readings", _reading(temp_c=None)),
    ("temp_bool", "{s}/readings", _reading(temp_c=True)),
    ("temp_5000_digits", "{s}/readings", _raw_reading(temp="9" * 5000)),
    ("ts_missing", "{s}/readings", b'{"temp_c":5}'),
    ("ts_naive", "{s}/readings", _reading(ts="2026-11-30T10:00:00")),
    ("ts_words", "{s}/readings", _reading(ts="yesterday")),
    ("ts_negative_epoch", "{s}/readings", _reading(ts=-5)),
    ("ts_epoch_1e20", "{s}/readings", _reading(ts=1e20)),
    ("ts_list", "{s}/readings", _reading(ts=[1, 2])),
    ("ts_object", "{s}/readings", _reading(ts={"a": 1})),
    ("ts_far_future", "{s}/readings", _reading(ts="2999-01-01T00:00:00+00:00")),
    ("ts_1970", "{s}/readings", _reading(ts="1970-01-01T00:00:00+00:00")),
    ("ts_before_registration", "{s}/readings", _reading(ts="2020-01-01T00:00:00+00:00")),
    ("ts_nul_separator", "{s}/readings", _reading(ts="2026-11-30\u000010:00:00+00:00")),
    ("ts_nul_inside", "{s}/readings", _reading(ts="2026-11-30T10:00:00\u0000+00:00")),
    ("battery_101", "{s}/readings", _reading(battery_pct=101)),
    ("battery_negative", "{s}/readings", _reading(battery_pct=-1)),
    ("power_unknown", "{s}/readings", _reading(power="nuclear")),
    ("power_nul", "{s}/readings", _reading(power="\u0000")),
    ("power_lone_surrogate", "{s}/readings", _raw_reading(extra=',"power":"\\ud800"')),
    ("seq_negative", "{s}/readings", _reading(seq=-1)),
    ("seq_2_64", "{s}/readings", _reading(seq=2**64)),
    ("seq_string", "{s}/readings", _reading(seq="1")),
    ("batch_empty", "{s}/readings", b'{"readings":[]}'),
    ("batch_not_list", "{s}/readings", b'{"readings":{"ts":1}}'),
    ("batch_too_large", "{s}/readings", json.dumps({"readings": [{"ts": 1}] * 2001}).encode()),
    ("batch_of_junk", "{s}/readings", b'{"readings":[1,"a",null]}'),
    ("oversized", "{s}/readings", b'{"pad":"' + b"x" * 70000 + b'"}'),
    ("status_junk", "{s}/status", b"maybe"),
    ("status_nul", "{s}/status", b"\x00online"),
    ("unknown_sensor_reading", "ghost-sensor-2/readings", _reading()),
    ("empty_sensor_level", "/readings", _reading()),
    ("sensor_id_too_long", "s" * 100 + "/readings", _reading()),
    ("no_kind_level", "{s}", _reading()),
    ("deep_topic", "{s}/a/b/c/d/e/f", _reading()),
    ("unicode_topic", "{s}/réadings", _reading()),
    (
        "duplicate_keys_bad_last",
        "{s}/readings",
        b'{"ts":"' + GOOD_TS.encode() + b'","temp_c":5,"temp_c":"x"}',
    ),
]
