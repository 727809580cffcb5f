"""A Mosquitto crash (SIGKILL) with the shipped config/mosquitto.conf (issue 12, point 5).

The broker is a private `mosquitto -c` on a free loopback port with the project's configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import func, select

from logistics.models.readings import Reading
from logistics.runtime import Runtime
from sensors.ingest import Ingestor
from sensors.mosquitto import PrivateMosquitto
from sensors.simulate import publish_chunked
from tests.integration.test_ingest import NOW, Publisher, make_unit, new_sensor, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _items(prefix: str, sensor_id: str, minutes: range) -> list[tuple[str, bytes, bool]]:
    return [
        (
            f"{prefix}/{sensor_id}/readings",
            json.dumps({"ts": (NOW - dt.timedelta(minutes=m)).isoformat(), "temp_c": 5}).encode(),
            False,
        )
        for m in minutes
    ]


def _count(runtime: Runtime, sensor_id: str, after_crash: bool) -> int:
    cut = NOW - dt.timedelta(minutes=2000)
    with runtime.uow() as uow:
        when = Reading.ts <= cut if after_crash else Reading.ts > cut
        return (
            uow.session.scalar(select(func.count()).where(Reading.sensor_id == sensor_id, when))
            or 0
        )


def test_the_ingestion_session_survives_a_broker_crash_once_saved(runtime, prefix):
    broker = PrivateMosquitto().start()
    try:
        settings = runtime.settings.replace(
            mqtt_url=broker.url,
            mqtt_client_id=f"crash-{uuid.uuid4().hex[:8]}",
            mqtt_topic_prefix=prefix,
        )
        local = Runtime(settings, runtime.engine, runtime.session_factory)
        sensor_id = new_sensor(
            runtime, make_unit(runtime, "ILR-1"), since=NOW - dt.timedelta(days=9)
        )
        first = Ingestor(local)
        first.start()
        assert first.connection.subscribed.wait(10)
        first.stop()  # the ingestion is down: its session queues what comes
        publisher = Publisher("127.0.0.1", broker.port, prefix)
        # 1,200 changes: more than autosave_interval (1000 with autosave_on_changes) -> a snapshot.
        publish_chunked(publisher.client, _items(prefix, sensor_id, range(0, 1200)))
        publisher.close()
        assert wait_until(lambda: broker.saved_at is not None, 10), "no snapshot was written"
        broker.kill()
        broker.start()
        # Published after the crash, while the ingestion is still down: only a session that
        # survived (with its subscription) queues these.
        publisher = Publisher("127.0.0.1", broker.port, prefix)
        publish_chunked(publisher.client, _items(prefix, sensor_id, range(2000, 2050)))
        publisher.close()
        second = Ingestor(local)
        second.start()
        try:
            assert wait_until(lambda: _count(runtime, sensor_id, after_crash=True) == 50, 60)
            # What the snapshot held arrived too: at most autosave_interval changes were lost.
            assert wait_until(lambda: _count(runtime, sensor_id, after_crash=False) >= 200, 30)
        finally:
            second.stop()
    finally:
        broker.cleanup()
