"""Prometheus metrics of the service: every metric is defined here, named `coldchain_...`.

Two kinds:
- what a process counts as it works (requests, readings stored, evaluations, job runs): module
  level prometheus-client metrics. Under gunicorn each worker writes its values to files in
  PROMETHEUS_MULTIPROC_DIR (set by config/gunicorn.conf.py before any worker starts), and a scrape
  of any worker adds them all up;
- the state kept in the database (evaluation queue, open alerts, the notification outbox, the
  scheduler's lease): read at scrape time by `DatabaseCollector`, so every process reports the same
  truth whichever of them did the work.

The web app serves /metrics; `coldchain ingest`, `evaluate` and `scheduler` serve /metrics,
/health/live and /health/ready on their own port (`serve_process_metrics`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# --- what processes count ------------------------------------------------------------------

HTTP_DURATION = Histogram(
    "coldchain_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (URL rule), method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INGEST_READINGS = Counter(
    "coldchain_ingest_readings",
    "Readings taken from the broker: stored, duplicate (already held) or dead_letter (refused)",
    ["outcome"],
)
INGEST_LAG = Histogram(
    "coldchain_ingest_lag_seconds",
    "From a message's arrival from the broker to the commit of its batch",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
INGEST_BATCHES = Counter("coldchain_ingest_batches", "Batches committed by the ingestion")
INGEST_DB_RETRIES = Counter(
    "coldchain_ingest_db_retries", "Batch writes retried because the database was unreachable"
)
INGEST_LAST_COMMIT = Gauge(
    "coldchain_ingest_last_commit_timestamp_seconds",
    "Unix time of the ingestion's last committed batch",
    multiprocess_mode="max",
)
EVALUATION_PASSES = Counter("coldchain_evaluation_passes", "Passes over the evaluation queue")
EVALUATION_REQUESTS = Counter(
    "coldchain_evaluation_requests", "Evaluation requests worked off by evaluators"
)
EVALUATION_FAILURES = Counter(
    "coldchain_evaluation_failures", "Evaluation passes that failed (requests stay queued)"
)
EVALUATION_WAIT = Histogram(
    "coldchain_evaluation_wait_seconds",
    "From the oldest request of a pass being queued to the end of the pass",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
SCHEDULER_JOB_RUNS = Counter(
    "coldchain_scheduler_job_runs", "Runs of periodic jobs, by job and result", ["job", "result"]
)
SCHEDULER_LAST_SUCCESS = Gauge(
    "coldchain_scheduler_last_success_timestamp_seconds",
    "Unix time of each job's last successful run",
    ["job"],
    multiprocess_mode="max",
)
SCHEDULER_LEADING = Gauge(
    "coldchain_scheduler_leading",
    "1 while this scheduler process holds the lease",
    multiprocess_mode="max",
)


def count_ingested(stored: int, duplicates: int, dead_letters: int) -> None:
    """Count the outcome of one committed batch."""
    for outcome, count in (
        ("stored", stored),
        ("duplicate", duplicates),
        ("dead_letter", dead_letters),
    ):
        if count:
            INGEST_READINGS.labels(outcome).inc(count)


def observe_commit(received: Iterable[dt.datetime], committed_at: dt.datetime) -> None:
    """Ingestion lag of each message of a committed batch; note the commit time."""
    for at in received:
        INGEST_LAG.observe(max(0.0, (committed_at - at).total_seconds()))
    INGEST_BATCHES.inc()
    INGEST_LAST_COMMIT.set(committed_at.timestamp())


def count_job_run(job: str, ok: bool, finished_at: dt.datetime) -> None:
    """Count one run of a scheduler job."""
    SCHEDULER_JOB_RUNS.labels(job, "ok" if ok else "error").inc()
    if ok:
        SCHEDULER_LAST_SUCCESS.labels(job).set(finished_at.timestamp())


# --- what the database holds ---------------------------------------------------------------


class DatabaseCollector(Collector):
    """Reads queue, alert, outbox and lease state from the database at each scrape."""

    def __init__(self, runtime: Any, clock: Callable[[], dt.datetime] | None = None):
        self.runtime = runtime
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("coldchain_database_up", "1 when the database answered this scrape")
        try:
            with self.runtime.uow() as uow:
                families = list(_database_families(uow.session, self.clock()))
        except Exception as exc:  # a scrape must answer while the database is down
            log.warning("metrics: database unreachable (%s)", str(exc).splitlines()[0][:200])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _database_families(session: Any, now: dt.datetime) -> Iterator[Metric]:
    from sqlalchemy import func, select

    from logistics.models.alerts import (
        Alert,
        EvaluationRequest,
        NotificationDelivery,
        SchedulerLease,
    )

    depth, oldest = session.execute(
        select(func.count(), func.min(EvaluationRequest.requested_at))
    ).one()
    yield _gauge("coldchain_evaluation_queue_depth", "Evaluation requests waiting", depth)
    yield _gauge(
        "coldchain_evaluation_queue_age_seconds",
        "Age of the oldest waiting evaluation request (0: queue empty)",
        _age(now, oldest),
    )
    alerts = GaugeMetricFamily(
        "coldchain_alerts_open",
        "Alerts not resolved, by kind, severity and state (open or acknowledged)",
        labels=["kind", "severity", "state"],
    )
    query = (
        select(Alert.kind, Alert.severity, Alert.state, func.count())
        .where(Alert.state != "resolved")
        .group_by(Alert.kind, Alert.severity, Alert.state)
    )
    for kind, severity, state, count in session.execute(query).all():
        alerts.add_metric([kind, severity, state], count)
    yield alerts
    pending = NotificationDelivery.state == "pending"
    depth, due = session.execute(
        select(func.count(), func.min(NotificationDelivery.next_attempt_at)).where(pending)
    ).one()
    yield _gauge("coldchain_notification_outbox_depth", "Notifications waiting to be sent", depth)
    yield _gauge(
        "coldchain_notification_outbox_overdue_seconds",
        "How long the most overdue waiting notification is past its attempt time (0: none)",
        _age(now, due),
    )
    failed = session.scalar(select(func.count()).where(NotificationDelivery.state == "failed"))
    failed_family = CounterMetricFamily(
        "coldchain_notification_failed", "Notifications given up after every attempt"
    )
    failed_family.add_metric([], failed or 0)
    yield failed_family
    lease = session.execute(select(SchedulerLease.expires_at)).scalars().first()
    yield _gauge(
        "coldchain_scheduler_lease_valid",
        "1 while some scheduler holds an unexpired lease",
        1 if lease is not None and lease > now else 0,
    )
    if session.get_bind().dialect.name == "postgresql":
        size = session.scalar(select(func.pg_database_size(func.current_database())))
        yield _gauge("coldchain_database_size_bytes", "Size of the service's database", size)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value or 0))


def _age(now: dt.datetime, since: dt.datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


# --- exposition ----------------------------------------------------------------------------


def process_registry() -> Any:
    """The values of this process, or of every worker in multiprocess mode (gunicorn)."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def database_registry(runtime: Any) -> CollectorRegistry:
    """A registry holding only the database collector of this runtime."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(runtime))
    return registry


def exposition(*registries: Any) -> bytes:
    """The text format of these registries, one after the other (their names never overlap)."""
    return b"".join(generate_latest(registry) for registry in registries)


def init_metrics(app: Any) -> None:
    """Time every request of this Flask app and serve GET /metrics."""
    from flask import Response, g, request

    databases = database_registry(app.extensions["coldchain"])

    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    def observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            HTTP_DURATION.labels(route, request.method, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    def metrics() -> Response:
        return Response(exposition(process_registry(), databases), mimetype=CONTENT_TYPE_LATEST)

    app.before_request(start_timer)
    app.after_request(observe)
    app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics, methods=["GET"])


# --- the port of the ingest, evaluate and scheduler processes -----------------------------


class ProcessEndpoints:
    """/metrics, /health/live and /health/ready of a worker process, on a port of its own."""

    def __init__(self, ready: Callable[[], tuple[bool, str]], registries: list[Any]):
        self.ready = ready
        self.registries = registries
        self.server: ThreadingHTTPServer | None = None

    def start(self, host: str, port: int) -> ProcessEndpoints:
        """Listen on host:port in a daemon thread (port 0: a free port, see `port`)."""
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True).start()
        return self

    @property
    def port(self) -> int:
        """The port listened on."""
        assert self.server is not None
        return self.server.server_address[1]

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for a GET of `path`."""
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, exposition(*self.registries)
        if path == "/health/live":
            return 200, "application/json", b'{"status": "ok"}'
        if path == "/health/ready":
            ok, detail = self.ready()
            if ok:
                return 200, "application/json", b'{"status": "ready"}'
            return 503, "application/problem+json", _problem_body(503, detail)
        return 404, "application/problem+json", _problem_body(404, f"no such path: {path}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                status, content_type, body = endpoints.answer(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:  # scrapes every few seconds: no log
                return

        return Handler


def _problem_body(status: int, detail: str) -> bytes:
    import http
    import json

    title = http.HTTPStatus(status).phrase
    return json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()


def database_answers(runtime: Any) -> tuple[bool, str]:
    """Whether the database answers a trivial query now."""
    from sqlalchemy import text

    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return False, f"database unreachable: {str(exc).splitlines()[0][:200]}"
    return True, ""


def serve_process_metrics(
    runtime: Any,
    port: int,
    ready: Callable[[], tuple[bool, str]] | None = None,
    *,
    database: bool = False,
) -> ProcessEndpoints | None:
    """Serve this process's endpoints on metrics.host:port; None when port is 0 or taken.

    `database`: also report the database's state (queue, alerts, outbox, lease), as /metrics of
    the web app does.
    """
    if not port:
        return None
    check = ready or (lambda: database_answers(runtime))
    registries = [process_registry(), *([database_registry(runtime)] if database else [])]
    endpoints = ProcessEndpoints(check, registries)
    try:
        endpoints.start(runtime.settings.metrics_host, port)
    except OSError as exc:  # a second process on the same host: work on, without the endpoints
        log.error("cannot serve metrics on port %d (%s); set metrics.*_port", port, exc)
        return None
    log.info("metrics and health on http://%s:%d/metrics", runtime.settings.metrics_host, port)
    return endpoints
