"""Prometheus metrics (issue 16): /metrics answers, and each value moves when its thing happens."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from logistics.models.alerts import NotificationDelivery
from logistics.services.alerts import raise_alert, resolve_alert
from logistics.services.evaluation import drain, request_evaluation
from logistics.services.notify import add_target
from logistics.services.scheduler import JOBS, Scheduler
from tests.support import services
from tests.support.alerts_fixtures import add_sensor, make_tree

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter that never moved)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_http_requests_are_timed_by_route_method_and_status(anon_client):
    name = "coldchain_http_request_duration_seconds_count"
    health = {"route": "/api/health", "method": "GET", "status": "200"}
    missing = {"route": "unmatched", "method": "GET", "status": "404"}
    refused = {"route": "/api/dead-letters", "method": "GET", "status": "401"}
    before = scrape(anon_client)
    for _ in range(3):
        anon_client.get("/api/health")
    anon_client.get("/api/no-such-thing")
    anon_client.get("/api/dead-letters")  # refused by auth: still timed
    after = scrape(anon_client)
    assert value(after, name, **health) - value(before, name, **health) == 3
    assert value(after, name, **missing) - value(before, name, **missing) == 1
    assert value(after, name, **refused) - value(before, name, **refused) == 1
    bucket = "coldchain_http_request_duration_seconds_bucket"
    assert value(after, bucket, **health, le="+Inf") == value(after, name, **health)


def test_evaluation_queue_depth_and_age_follow_the_queue(runtime, anon_client):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
    empty = scrape(anon_client)
    assert value(empty, "coldchain_evaluation_queue_depth") == 0
    assert value(empty, "coldchain_evaluation_queue_age_seconds") == 0
    with runtime.uow() as uow:
        queued_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120)
        request_evaluation(uow, [(tree.ilr.id, NOW, NOW)], queued_at)
        request_evaluation(uow, [(tree.ilr.id, NOW, NOW)], queued_at)
        uow.commit()
    waiting = scrape(anon_client)
    assert value(waiting, "coldchain_evaluation_queue_depth") == 2
    assert value(waiting, "coldchain_evaluation_queue_age_seconds") >= 120
    drain(runtime, NOW)
    assert value(scrape(anon_client), "coldchain_evaluation_queue_depth") == 0


def test_open_alerts_by_kind_and_severity_and_the_outbox(runtime, anon_client):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
        add_target(
            uow,
            store_id=tree.centre.id,
            channel="webhook",
            address="http://127.0.0.1:9/coldchain",
            secret="s3cret-s3cret-s3cret",
            allowed_networks="127.0.0.0/8",  # no name resolves on this closed network
        )
        uow.commit()
    labels = {"kind": "sensor_silent", "severity": "alarm", "state": "open"}
    assert value(scrape(anon_client), "coldchain_alerts_open", **labels) == 0
    with runtime.uow() as uow:
        alert = raise_alert(
            uow,
            kind="sensor_silent",
            subject_type="sensor",
            subject_id="S-1",
            store_id=tree.centre.id,
            severity="alarm",
            message="sensor S-1 silent",
            details={},
            now=NOW,
        )
        uow.commit()
        alert_id = alert.id
    opened = scrape(anon_client)
    assert value(opened, "coldchain_alerts_open", **labels) == 1
    assert value(opened, "coldchain_notification_outbox_depth") == 1
    with runtime.uow() as uow:
        resolve_alert(uow, alert_id=alert_id, actor="officer", comment="fixed", now=NOW)
        uow.commit()
    closed = scrape(anon_client)
    assert value(closed, "coldchain_alerts_open", **labels) == 0
    assert value(closed, "coldchain_database_up") == 1
    # The outbox: a delivery overdue for five minutes (no scheduler sending), then sent.
    with runtime.uow() as uow:
        delivery = uow.session.scalars(select(NotificationDelivery)).one()
        delivery.next_attempt_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        uow.commit()
    stuck = scrape(anon_client)
    assert value(stuck, "coldchain_notification_outbox_depth") == 1
    assert value(stuck, "coldchain_notification_outbox_overdue_seconds") >= 300
    with runtime.uow() as uow:
        uow.session.scalars(select(NotificationDelivery)).one().state = "sent"
        uow.commit()
    sent = scrape(anon_client)
    assert value(sent, "coldchain_notification_outbox_depth") == 0
    assert value(sent, "coldchain_notification_outbox_overdue_seconds") == 0


def test_scheduler_runs_are_counted_by_job_and_result(runtime, anon_client, monkeypatch):
    from logistics.metrics import exposition as render
    from logistics.metrics import process_registry

    def text() -> str:
        return render(process_registry()).decode()

    ok = {"job": "stock_states", "result": "ok"}
    failed = {"job": "expiry", "result": "error"}
    before = text()
    scheduler = Scheduler(runtime)
    now = dt.datetime.now(dt.UTC)  # the lease is taken until now + its ttl: the real clock
    assert scheduler.run_job("stock_states", now) is not None
    monkeypatch.setitem(JOBS, "expiry", lambda *_: 1 / 0)
    assert scheduler.run_job("expiry", now) == {"error": "ZeroDivisionError: division by zero"}
    after = text()
    runs = "coldchain_scheduler_job_runs_total"
    assert value(after, runs, **ok) - value(before, runs, **ok) == 1
    assert value(after, runs, **failed) - value(before, runs, **failed) == 1
    last = "coldchain_scheduler_last_success_timestamp_seconds"
    assert value(after, last, job="stock_states") >= now.timestamp()
    assert value(after, last, job="expiry") == value(before, last, job="expiry")
    assert value(after, "coldchain_scheduler_leading") == 1
    assert value(scrape(anon_client), "coldchain_scheduler_lease_valid") == 1
    scheduler.stop()
    assert value(scrape(anon_client), "coldchain_scheduler_lease_valid") == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read(url: str) -> str:
    with urlopen(url, timeout=10) as response:
        return response.read().decode()


def _wait_for(url: str, process: subprocess.Popen, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return _read(url)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def _coldchain(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from logistics.cli import main; main()", *args],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_gunicorn_workers_add_up_their_metrics(tmp_path):
    port = _free_port()
    env = {
        "COLDCHAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        # Several workers need shared rate-limit storage (coldchain serve refuses memory://).
        "COLDCHAIN_AUTH_RATE_LIMIT_STORAGE": services.redis_url(),
        "COLDCHAIN_AUTH_RATE_LIMIT_KEY_PREFIX": f"test-metrics-{tmp_path.name}",
    }
    server = _coldchain(env, "serve", "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/api/health", server)
        name = "coldchain_http_request_duration_seconds_count"
        labels = {"route": "/api/health/live", "method": "GET", "status": "200"}
        before = value(_read(f"{base}/metrics"), name, **labels)
        for _ in range(20):  # sync workers: the kernel hands these to both workers
            _read(f"{base}/api/health/live")
        after = value(_read(f"{base}/metrics"), name, **labels)
        assert after - before == 20
        # gunicorn.conf.py gave the workers a directory of their own for the values.
        assert not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    finally:
        _stop(server)


def test_ingest_and_evaluate_processes_serve_their_metrics(runtime, settings, mqtt_url):
    prefix = f"test-{uuid.uuid4().hex[:10]}/sensors"
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, "M-1", since=NOW - dt.timedelta(days=1))
        uow.commit()
    ingest_port, evaluate_port = _free_port(), _free_port()
    env = {
        "COLDCHAIN_DATABASE_URL": settings.database_url,
        "COLDCHAIN_MQTT_URL": mqtt_url,
        "COLDCHAIN_MQTT_TOPIC_PREFIX": prefix,
        "COLDCHAIN_MQTT_CLIENT_ID": f"metrics-{uuid.uuid4().hex[:8]}",
        "COLDCHAIN_MQTT_SESSION_EXPIRY_S": "0",
        "COLDCHAIN_METRICS_INGEST_PORT": str(ingest_port),
        "COLDCHAIN_METRICS_EVALUATE_PORT": str(evaluate_port),
    }
    ingest = _coldchain(env, "ingest")
    evaluate = _coldchain(env, "evaluate")
    ingest_url, evaluate_url = (f"http://127.0.0.1:{p}" for p in (ingest_port, evaluate_port))
    try:
        _wait_for(f"{ingest_url}/health/live", ingest)
        deadline = time.monotonic() + 30
        while _status(f"{ingest_url}/health/ready") != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(f"{ingest_url}/health/ready") == 200
        _publish(mqtt_url, prefix, ["M-1", "M-1", "UNKNOWN"])
        stored = ("coldchain_ingest_readings_total", {"outcome": "stored"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = _read(f"{ingest_url}/metrics")
            if value(text, stored[0], **stored[1]) >= 1:
                break
            time.sleep(0.2)
        assert value(text, "coldchain_ingest_readings_total", outcome="stored") == 1
        assert value(text, "coldchain_ingest_readings_total", outcome="duplicate") == 1
        assert value(text, "coldchain_ingest_readings_total", outcome="dead_letter") == 1
        assert value(text, "coldchain_ingest_lag_seconds_count") == 3
        assert value(text, "coldchain_ingest_last_commit_timestamp_seconds") >= NOW.timestamp()
        evaluated = _wait_for(f"{evaluate_url}/metrics", evaluate)
        assert "coldchain_evaluation_queue_depth" in evaluated
        assert _status(f"{evaluate_url}/health/ready") == 200
    finally:
        _stop(ingest)
        _stop(evaluate)


def _status(url: str) -> int:
    from urllib.error import HTTPError

    try:
        with urlopen(url, timeout=5) as response:
            return response.status
    except HTTPError as error:
        return error.code
    except OSError:
        return 0


def _publish(mqtt_url: str, prefix: str, sensors: list[str]) -> None:
    """One reading per sensor, all with the same ts: the second of a sensor is a duplicate."""
    import json

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(host, int(port))
    client.loop_start()
    payload = json.dumps({"ts": (NOW - dt.timedelta(minutes=1)).isoformat(), "temp_c": 5.0})
    for sensor in sensors:
        client.publish(f"{prefix}/{sensor}/readings", payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
