"""Payload parsing and storage never raise, whatever bytes arrive (issue 12, points 1 and 2)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from logistics.models.readings import DeadLetter, Reading
from logistics.runtime import Runtime
from sensors.ingest import Ingestor
from sensors.mqtt import Incoming
from sensors.payload import ParseLimits, parse_message
from tests.faults.corpus import CORPUS
from tests.integration.test_ingest import make_unit, new_sensor

PREFIX = "coldchain/sensors"
NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(("kind", "topic", "payload"), CORPUS, ids=[c[0] for c in CORPUS])
def test_parsing_a_hostile_message_never_raises(kind, topic, payload):
    parsed = parse_message(f"{PREFIX}/{topic.format(s='s-1')}", payload, PREFIX, ParseLimits(), NOW)
    assert parsed.readings or parsed.rejections or parsed.status, kind


@given(st.binary(max_size=4096))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_parse_without_raising(payload):
    for kind in ("readings", "status", "other/level"):
        parsed = parse_message(f"{PREFIX}/s-1/{kind}", payload, PREFIX, ParseLimits(), NOW)
        assert parsed.readings or parsed.rejections or parsed.status


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_values_as_reading_fields_parse_without_raising(value):
    import json

    for field in ("ts", "temp_c", "battery_pct", "power", "seq"):
        body = {"ts": "2026-11-30T10:00:00+00:00", "temp_c": 5, field: value}
        payload = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
        parse_message(f"{PREFIX}/s-1/readings", payload, PREFIX, ParseLimits(), NOW)


@pytest.fixture
def ingestor(runtime: Runtime) -> Ingestor:
    """An ingestion that is never connected: its decode and write run on the real database."""
    settings = runtime.settings.replace(mqtt_url="mqtt://127.0.0.1:9", mqtt_topic_prefix=PREFIX)
    return Ingestor(Runtime(settings, runtime.engine, runtime.session_factory))


def _count(runtime: Runtime, model) -> int:
    with runtime.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.integration
def test_arbitrary_bytes_are_stored_as_dead_letters_with_their_exact_bytes(runtime, ingestor):
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    now = dt.datetime.now(dt.UTC)

    @given(st.binary(max_size=2048), st.sampled_from(["readings", "status", "x"]))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def store(payload: bytes, kind: str) -> None:
        before = _count(runtime, DeadLetter) + _count(runtime, Reading)
        topic = f"{PREFIX}/{sensor_id}/{kind}"
        message = Incoming(topic, payload, 1, 1, False, now, 0)
        ingestor.write(ingestor.decode([message]))
        # Every message leaves a trace: a reading, a status, or a dead letter.
        after = _count(runtime, DeadLetter) + _count(runtime, Reading)
        assert after > before or (
            kind == "status"
            and payload.strip().lower() in (b"online", b"offline", b'"online"', b'"offline"')
        )

    store()
    with runtime.uow() as uow:
        nul = DeadLetter(
            topic="t", reason="r", detail="", received_at=now, payload="", raw=b"\x00\xff"
        )
        uow.session.add(nul)
        uow.commit()
        assert uow.session.get(DeadLetter, nul.id).raw == b"\x00\xff"


@pytest.mark.integration
def test_a_nul_payload_is_kept_byte_for_byte(runtime, ingestor):
    sensor_id = new_sensor(runtime, make_unit(runtime, f"ILR-{uuid.uuid4().hex[:4]}"))
    payload = b"\x00garbage\xff"
    message = Incoming(f"{PREFIX}/{sensor_id}/readings", payload, 1, 1, False, NOW, 0)
    ingestor.write(ingestor.decode([message]))
    with runtime.uow() as uow:
        letter = uow.session.scalars(select(DeadLetter)).one()
        assert letter.raw == payload
        assert letter.reason == "not_json"
        assert letter.payload == "\ufffdgarbage\ufffd"
