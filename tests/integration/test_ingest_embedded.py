"""The embedded amqtt broker: logins required, messages kept for the ingestion while it is away."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from logistics.models.readings import Reading
from logistics.runtime import Runtime
from sensors.broker import EmbeddedBroker, free_port
from sensors.demo import demo_settings
from sensors.ingest import Ingestor
from sensors.mqtt import BrokerAddress
from sensors.simulate import publish_chunked, publisher
from tests.integration.test_ingest import NOW, count, make_unit, new_sensor, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def broker():
    embedded = EmbeddedBroker("127.0.0.1", free_port(), {"ingest": "pw-ingest", "sim": "pw-sim"})
    embedded.start()
    yield embedded
    embedded.stop()


def test_anonymous_clients_are_refused(broker):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"anon-{uuid.uuid4().hex[:6]}")
    outcome = {}
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.setdefault("reason", reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert wait_until(lambda: "reason" in outcome, 10)
    client.loop_stop()
    assert outcome["reason"].is_failure


def test_ingestion_gets_what_was_published_while_it_was_down(runtime, broker):
    settings = demo_settings(
        runtime.settings, f"mqtt://127.0.0.1:{broker.port}", "ingest", "pw-ingest"
    )
    settings = settings.replace(mqtt_client_id=f"emb-{uuid.uuid4().hex[:6]}")
    local = Runtime(settings, runtime.engine, runtime.session_factory)
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"))
    first = Ingestor(local)
    first.start()
    assert first.connection.subscribed.wait(10)
    first.stop()
    sim = publisher(BrokerAddress("127.0.0.1", broker.port, "sim", "pw-sim"))
    items = [
        (
            f"coldchain/sensors/{sensor_id}/readings",
            json.dumps({"ts": (NOW - dt.timedelta(minutes=m)).isoformat(), "temp_c": 5.0}).encode(),
            False,
        )
        for m in range(50)
    ]
    publish_chunked(sim, items)
    sim.disconnect()
    second = Ingestor(local)
    second.start()
    try:
        # amqtt redelivers them flagged as retained; they are still ordinary readings.
        assert wait_until(lambda: count(runtime, Reading, Reading.sensor_id == sensor_id) == 50, 30)
    finally:
        second.stop()
