"""Health checks (issue 16): live while the process runs, ready only while its dependencies answer.

The database that goes away is a PostgreSQL cluster of the test's own, and the broker a Mosquitto
of its own: the machine's are shared with other test runs.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

from logistics.app import create_app
from logistics.runtime import Runtime
from sensors.ingest import Ingestor, readiness
from sensors.mosquitto import PrivateMosquitto
from tests.support.private_pg import PrivatePostgres

pytestmark = pytest.mark.integration


def wait_until(check: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres().start()
    yield cluster
    cluster.destroy()


def test_live_and_ready_answer_while_the_database_is_up(anon_client):
    live = anon_client.get("/api/health/live")
    assert live.status_code == 200 and live.json == {"status": "ok"}
    ready = anon_client.get("/api/health/ready")
    assert ready.status_code == 200 and ready.json == {"status": "ready"}
    # The benchmarks' baseline stays as it was: no database access.
    assert anon_client.get("/api/health").json == {"status": "ok"}


def test_ready_is_503_problem_while_the_database_is_down(settings, private_pg):
    runtime = Runtime.from_settings(settings.replace(database_url=private_pg.url))
    client = create_app(runtime=runtime).test_client()
    try:
        assert client.get("/api/health/ready").status_code == 200
        private_pg.stop()
        down = client.get("/api/health/ready")
        assert down.status_code == 503
        assert down.mimetype == "application/problem+json"
        assert down.json["status"] == 503 and "database unreachable" in down.json["detail"]
        assert client.get("/api/health/live").status_code == 200  # alive all the same
        private_pg.start()
        assert wait_until(lambda: client.get("/api/health/ready").status_code == 200)
    finally:
        runtime.close()


def _get(url: str) -> tuple[int, dict]:
    try:
        with urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())


def test_ingest_is_ready_only_while_broker_and_database_answer(settings, private_pg):
    broker = PrivateMosquitto().start()
    runtime = Runtime.from_settings(
        settings.replace(
            database_url=private_pg.url,
            mqtt_url=broker.url,
            mqtt_client_id=f"ready-{uuid.uuid4().hex[:8]}",
            mqtt_reconnect_min_s=0.2,
            mqtt_reconnect_max_s=0.5,
        )
    )
    ingestor = Ingestor(runtime)
    from logistics.metrics import serve_process_metrics

    endpoints = serve_process_metrics(runtime, free_port(), lambda: readiness(ingestor))
    assert endpoints is not None
    ready_url = f"http://127.0.0.1:{endpoints.port}/health/ready"
    try:
        assert _get(ready_url)[0] == 503  # not connected to the broker yet
        ingestor.start()
        assert wait_until(lambda: _get(ready_url)[0] == 200)
        private_pg.stop()
        status, problem = _get(ready_url)
        assert status == 503 and "database unreachable" in problem["detail"]
        private_pg.start()
        assert wait_until(lambda: _get(ready_url)[0] == 200)
        broker.stop()
        assert wait_until(lambda: _get(ready_url)[0] == 503)
        assert _get(ready_url)[1]["detail"] == "not connected to the broker"
        assert _get(f"http://127.0.0.1:{endpoints.port}/health/live")[0] == 200
        broker.start()
        assert wait_until(lambda: _get(ready_url)[0] == 200)
    finally:
        ingestor.stop()
        endpoints.stop()
        broker.cleanup()
        runtime.close()
