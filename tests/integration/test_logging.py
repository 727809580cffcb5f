"""Structured logs (issue 16): JSON lines with the request's id, user, route, status, duration."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from logistics.logs import configure_logging

pytestmark = pytest.mark.integration


@pytest.fixture
def json_log(settings, monkeypatch) -> Iterator[io.StringIO]:
    """JSON logging into a buffer for one test; the root logger is put back afterwards."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(settings.replace(logging_format="json"))
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("logistics.access").setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_each_request_logs_one_json_line_with_its_id(client, json_log):
    response = client.get("/api/dead-letters?page=1", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123"
    [entry] = [e for e in lines(json_log) if e["logger"] == "logistics.access"]
    assert entry["event"] == "request" and entry["level"] == "INFO"
    assert entry["request_id"] == "abc-123"
    assert entry["user"] == "test-admin"
    assert entry["method"] == "GET" and entry["route"] == "/api/dead-letters"
    assert entry["status"] == 200 and entry["duration_ms"] >= 0
    assert entry["time"].endswith("+00:00")


def test_a_request_without_a_sane_id_gets_one_made_up(anon_client, json_log):
    made = anon_client.get("/api/health/live")
    refused = anon_client.get("/api/dead-letters", headers={"X-Request-ID": "bad id\twith tabs"})
    assert len(made.headers["X-Request-ID"]) == 32
    assert refused.status_code == 401
    made_up = refused.headers["X-Request-ID"]
    assert made_up not in {"bad id\twith tabs", made.headers["X-Request-ID"]}
    entries = [e for e in lines(json_log) if e["logger"] == "logistics.access"]
    assert [e["request_id"] for e in entries] == [
        made.headers["X-Request-ID"],
        refused.headers["X-Request-ID"],
    ]
    assert entries[1]["status"] == 401 and entries[1]["user"] is None


def test_lines_logged_during_a_request_carry_its_id(app, anon_client, json_log, monkeypatch):
    @app.get("/api/test-logs")
    def noisy():  # a view that logs, as services do
        logging.getLogger("logistics.services.test").warning("something to see")
        return {"ok": True}

    from logistics.domain import policy

    monkeypatch.setattr(policy, "PUBLIC_ENDPOINTS", policy.PUBLIC_ENDPOINTS | {"noisy"})
    anon_client.get("/api/test-logs", headers={"X-Request-ID": "r-42"})
    [entry] = [e for e in lines(json_log) if e["logger"] == "logistics.services.test"]
    assert entry["event"] == "something to see" and entry["level"] == "WARNING"
    assert entry["request_id"] == "r-42" and entry["route"] == "/api/test-logs"


def test_text_stays_the_default(settings):
    assert settings.logging_format == "text"
    stream = io.StringIO()
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        configure_logging(settings)
        handler = next(h for h in root.handlers if h not in handlers)
        handler.setStream(stream)
        logging.getLogger("logistics.test").warning("plain words")
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        access_enabled = logging.getLogger("logistics.access").isEnabledFor(logging.INFO)
        logging.getLogger("logistics.access").setLevel(logging.NOTSET)
    assert stream.getvalue().rstrip().endswith("WARNING logistics.test: plain words")
    assert not access_enabled  # no line per request in text mode
