"""Ingestion processes under faults: SIGKILL, two processes in a shared group, a database restart,
and the project's Mosquitto configuration holding a long outage's queue."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from logistics.config import load_settings
from logistics.db import Base, make_engine, make_session_factory
from logistics.models.readings import Reading
from logistics.runtime import Runtime
from logistics.services.reference import seed_reference_data
from sensors.ingest import Ingestor
from sensors.mosquitto import PrivateMosquitto
from sensors.simulate import publish_chunked
from tests.integration.test_ingest import NOW, Publisher, make_unit, new_sensor, wait_until
from tests.support.private_pg import PrivatePostgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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


class IngestProcess:
    """`coldchain ingest` in a subprocess, configured through COLDCHAIN_* variables."""

    def __init__(self, env: dict[str, str], client_id: str, workdir: Path):
        self.log = workdir / f"{client_id}-{uuid.uuid4().hex[:4]}.log"
        command = [
            sys.executable,
            "-c",
            "from logistics.cli import main; main()",
            "ingest",
            "--client-id",
            client_id,
        ]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        assert wait_until(lambda: "connected to" in self.log.read_text(), 30), self.log.read_text()[
            -2000:
        ]
        time.sleep(0.5)  # let the SUBACK arrive

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        return self.log.read_text()

    def stats(self, text: str) -> dict[str, float]:
        match = re.search(r"IngestStats\(([^)]*)\)", text)
        assert match, text[-2000:]
        return {
            key: float(value)
            for key, value in (part.split("=") for part in match.group(1).split(", "))
        }


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ingest-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def processes() -> Iterator[list[IngestProcess]]:
    started: list[IngestProcess] = []
    yield started
    for proc in started:
        if proc.process.poll() is None:
            proc.kill()


def env_for(database_url: str, mqtt_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "COLDCHAIN_DATABASE_URL": database_url,
        "COLDCHAIN_MQTT_URL": mqtt_url,
        "COLDCHAIN_MQTT_TOPIC_PREFIX": prefix,
        "COLDCHAIN_INGEST_FLUSH_INTERVAL_MS": "100",
        **extra,
    }


def publish_stream(
    publisher: Publisher, sensor_ids: list[str], total: int, pause_s: float = 0.004
) -> threading.Thread:
    """Publish `total` readings round-robin over the sensors, steadily, in a thread."""

    def run() -> None:
        for index in range(total):
            sensor_id = sensor_ids[index % len(sensor_ids)]
            minute = index // len(sensor_ids)
            publisher.reading(sensor_id, NOW - dt.timedelta(minutes=minute), 4.0 + (index % 7) / 10)
            time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def stored(runtime: Runtime, sensor_ids: list[str]) -> int:
    """Readings of these sensors in the database (UNIQUE per sensor and ts: a reading delivered
    twice is dropped there, so doubling is counted in deliveries, from the processes' stats)."""
    with runtime.uow() as uow:
        rows = uow.session.scalar(
            select(func.count()).select_from(Reading).where(Reading.sensor_id.in_(sensor_ids))
        )
    return rows or 0


def test_ingestion_killed_mid_stream_loses_nothing_and_doubles_nothing(
    runtime, publisher, prefix, mqtt_url, workdir, processes
):
    unit = make_unit(runtime, "ILR-1")
    sensor_ids = [new_sensor(runtime, unit) for _ in range(4)]
    env = env_for(runtime.settings.database_url, mqtt_url, prefix)
    client_id = f"kill-{uuid.uuid4().hex[:8]}"
    processes.append(IngestProcess(env, client_id, workdir))
    stream = publish_stream(publisher, sensor_ids, 800)
    assert wait_until(lambda: stored(runtime, sensor_ids) >= 150, 30)
    processes[
        0
    ].kill()  # no clean shutdown: whatever was received but not committed is unacknowledged
    processes[0].process.wait(10)
    at_kill = stored(runtime, sensor_ids)
    processes.append(IngestProcess(env, client_id, workdir))
    stream.join(60)
    assert wait_until(lambda: stored(runtime, sensor_ids) == 800, 60), stored(runtime, sensor_ids)
    assert at_kill < 800  # the kill really happened mid-stream
    after = processes[1].stats(processes[1].terminate())
    # Deliveries to the restarted process: every reading not stored at the kill came again (at
    # least once), and each delivery was acknowledged, so none will come a third time. The ones
    # beyond that are the batch committed but not yet acknowledged when the process died.
    redelivered = after["readings"] - (800 - at_kill)
    assert redelivered >= 0 and after["acked"] == after["messages"], after
    assert redelivered <= runtime.settings.ingest_batch_size, after


def test_two_processes_in_a_shared_group_store_every_reading_exactly_once(
    runtime, publisher, prefix, mqtt_url, workdir, processes
):
    unit = make_unit(runtime, "ILR-1")
    sensor_ids = [new_sensor(runtime, unit) for _ in range(5)]
    env = env_for(
        runtime.settings.database_url,
        mqtt_url,
        prefix,
        COLDCHAIN_MQTT_SHARED_GROUP=f"g{uuid.uuid4().hex[:8]}",
    )
    processes.extend(
        IngestProcess(env, f"shared-{n}-{uuid.uuid4().hex[:6]}", workdir) for n in range(2)
    )
    publish_stream(publisher, sensor_ids, 1000, pause_s=0.001).join(120)
    assert wait_until(lambda: stored(runtime, sensor_ids) == 1000, 60), stored(runtime, sensor_ids)
    stats = [proc.stats(proc.terminate()) for proc in processes]
    # Each message went to one member only: nobody stored a reading the other had (no redelivery).
    assert sum(s["messages"] for s in stats) == 1000
    assert all(s["messages"] > 0 for s in stats), stats


# --- a throwaway PostgreSQL that this test may restart --------------------------------------


@pytest.fixture
def throwaway_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().start()
    yield pg
    pg.destroy()


def test_database_restarted_under_load_loses_nothing(
    throwaway_pg, mqtt_url, prefix, workdir, processes
):
    engine = make_engine(throwaway_pg.url, pool_size=2)
    Base.metadata.create_all(engine)
    runtime = Runtime(
        load_settings({"database_url": throwaway_pg.url}), engine, make_session_factory(engine)
    )
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
    unit = make_unit(runtime, "ILR-1")
    sensor_ids = [new_sensor(runtime, unit) for _ in range(3)]
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    publisher = Publisher(host, int(port), prefix)
    processes.append(
        IngestProcess(
            env_for(
                throwaway_pg.url,
                mqtt_url,
                prefix,
                COLDCHAIN_INGEST_RETRY_MIN_S="0.2",
                COLDCHAIN_INGEST_RETRY_MAX_S="1",
            ),
            f"pgr-{uuid.uuid4().hex[:8]}",
            workdir,
        )
    )
    try:
        stream = publish_stream(publisher, sensor_ids, 600, pause_s=0.01)
        assert wait_until(lambda: stored(runtime, sensor_ids) >= 100, 30)
        engine.dispose()
        throwaway_pg.stop()
        time.sleep(2)  # readings keep coming while the database is down
        throwaway_pg.start()
        stream.join(60)
        assert wait_until(lambda: stored(runtime, sensor_ids) == 600, 60), stored(
            runtime, sensor_ids
        )
        stats = processes[0].stats(processes[0].terminate())
        assert stats["db_retries"] > 0  # the outage was really seen by the ingestion
        # Every reading was delivered to it and each delivery acknowledged once it was stored.
        assert stats["readings"] >= 600 and stats["acked"] == stats["messages"], stats
    finally:
        publisher.close()
        engine.dispose()


def test_project_mosquitto_config_keeps_an_outage_backlog_beyond_the_default_queue(runtime, prefix):
    """Mosquitto's default max_queued_messages (1,000) would drop most of this backlog."""
    broker = PrivateMosquitto().start()
    try:
        settings = runtime.settings.replace(
            mqtt_url=broker.url,
            mqtt_client_id=f"q-{uuid.uuid4().hex[:8]}",
            mqtt_topic_prefix=prefix,
        )
        local = Runtime(settings, runtime.engine, runtime.session_factory)
        sensor_ids = [new_sensor(runtime, make_unit(runtime, "ILR-1")) for _ in range(3)]
        first = Ingestor(local)
        first.start()
        assert first.connection.subscribed.wait(10)
        first.stop()
        publisher = Publisher("127.0.0.1", broker.port, prefix)
        items = [
            (
                f"{prefix}/{sensor_ids[i % 3]}/readings",
                json.dumps(
                    {"ts": (NOW - dt.timedelta(minutes=i // 3)).isoformat(), "temp_c": 5}
                ).encode(),
                False,
            )
            for i in range(3000)
        ]
        publish_chunked(publisher.client, items)
        publisher.close()
        second = Ingestor(local)
        second.start()
        try:
            assert wait_until(lambda: stored(runtime, sensor_ids) == 3000, 60), stored(
                runtime, sensor_ids
            )
        finally:
            second.stop()
    finally:
        broker.cleanup()
