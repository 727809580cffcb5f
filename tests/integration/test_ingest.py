"""Ingestion against the machine's Mosquitto and PostgreSQL: in-process ingestor, real broker."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from logistics.models.catalog import StorageUnit, Store
from logistics.models.readings import DeadLetter, Reading, Sensor
from logistics.runtime import Runtime
from logistics.services.sensors import move_sensor, register_sensor, retire_sensor
from sensors.ingest import Ingestor

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def wait_until(check: Callable[[], bool], timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def make_unit(runtime: Runtime, code: str) -> int:
    with runtime.uow() as uow:
        store = Store(
            code=f"C-{code}-{uuid.uuid4().hex[:6]}", name="PHC", level_code="centre", path="/"
        )
        uow.session.add(store)
        uow.session.flush()
        store.path = f"/{store.id}/"
        unit = StorageUnit(store_id=store.id, code=code, kind="ilr", min_temp_c=2, max_temp_c=8)
        uow.session.add(unit)
        uow.commit()
        return unit.id


def new_sensor(
    runtime: Runtime, unit_id: int, since: dt.datetime = NOW - dt.timedelta(days=2)
) -> str:
    sensor_id = f"t-{uuid.uuid4().hex[:10]}"
    with runtime.uow() as uow:
        register_sensor(
            uow, sensor_id=sensor_id, unit_id=unit_id, valid_from=since, actor="test", now=NOW
        )
        uow.commit()
    return sensor_id


def count(runtime: Runtime, model, *where) -> int:
    with runtime.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


class Publisher:
    """A QoS 1 publisher on the machine's Mosquitto, under a topic prefix of its own."""

    def __init__(self, host: str, port: int, prefix: str = "coldchain/sensors"):
        self.prefix = prefix
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.connect(host, port)
        self.client.loop_start()

    def reading(self, sensor_id: str, ts: dt.datetime, temp_c: float, **extra) -> None:
        self.raw(
            f"{self.prefix}/{sensor_id}/readings",
            json.dumps({"ts": ts.isoformat(), "temp_c": temp_c, **extra}),
        )

    def raw(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test only: other test runs share the machine's broker."""
    return f"test-{uuid.uuid4().hex[:10]}/sensors"


@pytest.fixture
def publisher(mqtt_url: str, prefix: str) -> Iterator[Publisher]:
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    pub = Publisher(host, int(port), prefix)
    yield pub
    pub.close()


@pytest.fixture
def ingest_runtime(runtime: Runtime, mqtt_url: str, prefix: str) -> Runtime:
    """The test runtime pointed at the machine's Mosquitto with a client id of its own."""
    settings = runtime.settings.replace(
        mqtt_url=mqtt_url,
        mqtt_client_id=f"ingest-{uuid.uuid4().hex[:10]}",
        mqtt_topic_prefix=prefix,
        ingest_flush_interval_ms=100,
    )
    return Runtime(settings, runtime.engine, runtime.session_factory)


@pytest.fixture
def start_ingestor(ingest_runtime: Runtime) -> Iterator[Callable[..., Ingestor]]:
    started: list[Ingestor] = []

    def start(**changes) -> Ingestor:
        runtime = ingest_runtime
        if changes:
            runtime = Runtime(
                ingest_runtime.settings.replace(**changes), runtime.engine, runtime.session_factory
            )
        ingestor = Ingestor(runtime)
        ingestor.start()
        assert ingestor.connection.subscribed.wait(10), "ingestion did not subscribe"
        started.append(ingestor)
        return ingestor

    yield start
    for ingestor in started:
        ingestor.stop()


def test_published_readings_are_stored_once_with_received_time(runtime, publisher, start_ingestor):
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    start_ingestor()
    for minute in range(10):
        publisher.reading(
            sensor_id,
            NOW - dt.timedelta(minutes=minute),
            4.0 + minute / 10,
            battery_pct=90,
            power="mains",
        )
    publisher.reading(sensor_id, NOW - dt.timedelta(minutes=3), 4.3)  # re-sent: stored once
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 10)
    time.sleep(0.5)
    assert count(runtime, Reading, Reading.sensor_id == sensor_id) == 10
    with runtime.uow() as uow:
        sensor = uow.session.get(Sensor, sensor_id)
        assert sensor.last_reading_ts == NOW and sensor.last_temp_c == 4.0
        assert (sensor.battery_pct, sensor.power) == (
            90.0,
            "mains",
        ) and sensor.last_seen_at is not None
        received = uow.session.scalars(
            select(Reading.received_at).where(Reading.sensor_id == sensor_id)
        ).all()
        assert all(at >= NOW - dt.timedelta(seconds=5) for at in received)


def test_batches_are_acknowledged_without_waiting_for_evaluation_which_is_queued(
    runtime, publisher, start_ingestor
):
    from logistics.models.alerts import EvaluationRequest, UnitMonitorState

    unit_id = make_unit(runtime, "ILR-1")
    sensor_id = new_sensor(runtime, unit_id)
    ingestor = start_ingestor()  # and no evaluator anywhere
    for minute in range(5):
        publisher.reading(sensor_id, NOW - dt.timedelta(minutes=minute), -3.0)
    assert wait_until(lambda: ingestor.stats.acked == 5)
    assert count(runtime, Reading, Reading.sensor_id == sensor_id) == 5
    with runtime.uow() as uow:
        requests = uow.session.scalars(select(EvaluationRequest)).all()
        assert {r.unit_id for r in requests} == {unit_id}
        assert min(r.earliest_ts for r in requests) == NOW - dt.timedelta(minutes=4)
        assert max(r.latest_ts for r in requests) == NOW
        assert uow.session.get(UnitMonitorState, unit_id) is None  # nothing evaluated yet


def test_late_and_out_of_order_readings_are_stored_and_flagged(runtime, publisher, start_ingestor):
    # Its own clock, not the module's NOW: a reading is late by how long ago it was taken, and a
    # slow run can reach this test many minutes after the module was imported.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    start_ingestor()
    publisher.reading(sensor_id, now, 5.0)
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 1)
    publisher.reading(sensor_id, now - dt.timedelta(minutes=2), 5.5)  # older than the newest held
    publisher.raw(
        f"{publisher.prefix}/{sensor_id}/readings",
        json.dumps(
            {
                "readings": [
                    {"ts": (now - dt.timedelta(hours=5, minutes=m)).isoformat(), "temp_c": 9.1}
                    for m in range(3)
                ]
            }
        ),
    )
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 5)
    assert count(runtime, Reading, Reading.sensor_id == sensor_id, Reading.late.is_(True)) == 4


def test_reading_belongs_to_the_unit_of_its_time_across_a_move(runtime, publisher, start_ingestor):
    first, second = make_unit(runtime, "ILR-A"), make_unit(runtime, "ILR-B")
    sensor_id = new_sensor(runtime, first)
    moved_at = NOW - dt.timedelta(hours=1)
    with runtime.uow() as uow:
        move_sensor(uow, sensor_id=sensor_id, unit_id=second, valid_from=moved_at, actor="test")
        uow.commit()
    start_ingestor()
    publisher.reading(sensor_id, moved_at - dt.timedelta(minutes=1), 4.0)
    publisher.reading(sensor_id, moved_at, 4.1)
    publisher.reading(sensor_id, NOW, 4.2)
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 3)
    assert count(runtime, Reading, Reading.unit_id == first) == 1
    assert count(runtime, Reading, Reading.unit_id == second) == 2


BAD = [
    (b"not json at all", "not_json"),
    (b'{"ts": "2021-04-28T10:00:00Z"}', "bad_field"),
    (b'{"ts": "2021-04-28T10:00:00Z", "temp_c": "cold"}', "bad_field"),
    (b'{"ts": "2021-04-28T10:00:00Z", "temp_c": NaN}', "not_finite"),
    (b'{"ts": "2021-04-28T10:00:00Z", "temp_c": 480.0}', "implausible_temp"),
    (
        json.dumps({"ts": (NOW + dt.timedelta(days=3)).isoformat(), "temp_c": 4}).encode(),
        "future_ts",
    ),
    (b'{"readings": 7}', "bad_batch"),
    (b'{"pad": "' + b"x" * 70000 + b'"}', "oversized"),
]


def test_bad_payloads_go_to_dead_letters_and_the_next_good_reading_is_stored(
    runtime, publisher, start_ingestor, client
):
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    start_ingestor()
    for payload, _reason in BAD:
        publisher.raw(f"{publisher.prefix}/{sensor_id}/readings", payload)
    publisher.reading(sensor_id, NOW, 4.4)
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 1)
    assert wait_until(
        lambda: count(runtime, DeadLetter, DeadLetter.sensor_id == sensor_id) == len(BAD)
    )
    with runtime.uow() as uow:
        letters = uow.session.execute(
            select(DeadLetter.reason, DeadLetter.payload).where(DeadLetter.sensor_id == sensor_id)
        ).all()
    assert sorted(reason for reason, _payload in letters) == sorted(reason for _p, reason in BAD)
    assert all(
        len(payload) <= runtime.settings.ingest_dead_letter_payload_chars for _r, payload in letters
    )
    page = client.get(f"/api/dead-letters?sensor_id={sensor_id}&page_size=3")
    assert page.status_code == 200
    assert page.json["total"] == len(BAD) and len(page.json["items"]) == 3
    assert page.json["items"][0]["topic"] == f"{publisher.prefix}/{sensor_id}/readings"


def test_unknown_retired_and_unassigned_sensors_are_dead_letters(
    runtime, publisher, start_ingestor
):
    unit = make_unit(runtime, "ILR-1")
    retired = new_sensor(runtime, unit)
    with runtime.uow() as uow:
        retire_sensor(uow, sensor_id=retired, actor="test", now=NOW - dt.timedelta(hours=1))
        uow.commit()
    late_joiner = new_sensor(runtime, unit, since=NOW - dt.timedelta(hours=1))
    unknown = f"ghost-{uuid.uuid4().hex[:8]}"
    start_ingestor()
    publisher.reading(unknown, NOW, 4.0)
    publisher.reading(retired, NOW, 4.0)
    publisher.reading(late_joiner, NOW - dt.timedelta(hours=2), 4.0)
    publisher.reading(late_joiner, NOW, 4.0)
    assert wait_until(lambda: count(runtime, DeadLetter) == 3)
    with runtime.uow() as uow:
        reasons = dict(uow.session.execute(select(DeadLetter.sensor_id, DeadLetter.reason)).all())
    assert reasons == {
        unknown: "unknown_sensor",
        retired: "retired_sensor",
        late_joiner: "unassigned",
    }
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == late_joiner) == 1)


def test_status_topic_sets_online_and_offline(runtime, publisher, start_ingestor):
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    start_ingestor()
    publisher.raw(f"{publisher.prefix}/{sensor_id}/status", b"online", retain=True)

    def connection() -> str | None:
        with runtime.uow() as uow:
            return uow.session.get(Sensor, sensor_id).connection

    assert wait_until(lambda: connection() == "online")
    publisher.raw(f"{publisher.prefix}/{sensor_id}/status", b"offline", retain=True)
    assert wait_until(lambda: connection() == "offline")
    publisher.raw(
        f"{publisher.prefix}/{sensor_id}/status", b"", retain=True
    )  # clear the retained message


def test_messages_published_while_ingestion_is_down_arrive_after_it_returns(
    runtime, publisher, start_ingestor
):
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    first = start_ingestor()
    first.stop()
    for minute in range(30):
        publisher.reading(sensor_id, NOW - dt.timedelta(minutes=minute), 5.0)
    start_ingestor()  # same client id: the broker kept the session (session expiry > 0)
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 30)


def test_without_session_expiry_the_broker_keeps_nothing(runtime, publisher, start_ingestor):
    """The trap avoided: MQTT 5 with session expiry 0 loses what is published meanwhile."""
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    first = start_ingestor(mqtt_session_expiry_s=0)
    first.stop()
    publisher.reading(sensor_id, NOW, 5.0)
    start_ingestor(mqtt_session_expiry_s=0)
    publisher.reading(sensor_id, NOW - dt.timedelta(minutes=1), 5.0)
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 1)
    time.sleep(1)
    assert count(runtime, Reading, Reading.sensor_id == sensor_id) == 1


def test_a_batch_larger_than_the_inflight_window_still_flushes(runtime, publisher, start_ingestor):
    """Mosquitto sends an MQTT 3.1.1 client at most 20 unacknowledged messages (its default
    max_inflight_messages); a batch of 500 acknowledged only when full would wait forever."""
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    ingestor = start_ingestor(
        ingest_batch_size=500, ingest_flush_interval_ms=300, mqtt_protocol="3.1.1"
    )
    for chunk in range(4):
        infos = [
            publisher.client.publish(
                f"{publisher.prefix}/{sensor_id}/readings",
                json.dumps(
                    {"ts": (NOW - dt.timedelta(minutes=chunk * 30 + m)).isoformat(), "temp_c": 5.0}
                ),
                qos=1,
            )
            for m in range(30)
        ]
        for info in infos:
            info.wait_for_publish(10)
    assert wait_until(
        lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 120, timeout_s=30
    )
    # Without the timer the first 20 would wait for a full batch that the window never lets in.
    assert wait_until(lambda: ingestor.stats.batches >= 2)


def test_database_errors_in_one_message_do_not_block_the_others(runtime, publisher, start_ingestor):
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    ingestor = start_ingestor()
    original = ingestor.write
    calls = {"n": 0}

    def flaky(decoded):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("handler bug")
        return original(decoded)

    ingestor.write = flaky
    publisher.reading(sensor_id, NOW, 4.0)
    publisher.reading(sensor_id, NOW - dt.timedelta(minutes=1), 4.1)
    assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 2)
