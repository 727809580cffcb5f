"""End to end: readings over MQTT -> ingestion -> evaluator -> excursion -> alert seen over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from logistics.runtime import Runtime
from logistics.services.evaluation import Evaluator
from sensors.ingest import Ingestor
from tests.support.alerts_fixtures import add_sensor, make_tree

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _wait_for(check, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    return None


def test_freezing_ilr_over_mqtt_raises_the_freeze_alarm_seen_by_the_district(
    runtime, client, mqtt_url
):
    prefix = f"test-{uuid.uuid4().hex[:10]}/sensors"
    settings = runtime.settings.replace(
        mqtt_url=mqtt_url,
        mqtt_client_id=f"ingest-{uuid.uuid4().hex[:10]}",
        mqtt_topic_prefix=prefix,
        ingest_flush_interval_ms=100,
    )
    ingest_runtime = Runtime(settings, runtime.engine, runtime.session_factory)
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, sensor_id="SIL-ILR-1")
        uow.commit()
    # The production topology: the ingestion queues evaluations, a separate evaluator runs them.
    evaluator = Evaluator(ingest_runtime).start()
    ingestor = Ingestor(ingest_runtime)
    ingestor.start()
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    publisher = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
    )
    publisher.connect(host, int(port))
    publisher.loop_start()
    try:
        assert ingestor.connection.subscribed.wait(10)
        # Silchar, January 2021: an ILR freezing overnight. 61 readings at -2 C, one a minute, as
        # one backlog batch and sent in reverse order.
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
        batch = [
            {"ts": (start + dt.timedelta(minutes=m)).isoformat(), "temp_c": -2.0} for m in range(61)
        ]
        half = len(batch) // 2
        for part in (batch[half:], batch[:half]):
            info = publisher.publish(
                f"{prefix}/SIL-ILR-1/readings", json.dumps({"readings": part}), qos=1
            )
            info.wait_for_publish(5)

        def freeze_alarm():
            got = client.get(
                "/api/alerts", query_string={"store_id": tree.district.id, "kind": "cold_alarm"}
            )
            return got.json if got.status_code == 200 and got.json else None

        alerts = _wait_for(freeze_alarm)
        assert alerts and alerts[0]["state"] == "open" and alerts[0]["severity"] == "alarm"
        reviews = client.get(
            "/api/quarantine-reviews", query_string={"store_id": tree.centre.id}
        ).json
        assert [(r["reason"], r["proposed_decision"], r["doses"]) for r in reviews] == [
            ("frozen", "discard", 500)
        ]
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        ingestor.stop()
        evaluator.stop()
