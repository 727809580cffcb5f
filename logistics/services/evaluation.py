"""The evaluation queue: which units' readings changed, and the evaluators that work through it.

The ingestion stores a batch of readings and, in the same transaction, one request per unit the
batch touched (`request_evaluation`); it acknowledges the messages as soon as that commits, so a
broker's window never waits on excursion detection. Evaluators (`Evaluator`: `coldchain evaluate`,
`coldchain ingest --evaluate`, the demo) claim the waiting requests, merge them per unit, evaluate
those units (`excursions.evaluate_units`) and delete the requests in the claiming transaction. A
crash before that commit leaves the requests for the next pass; a request is as durable as the
readings it stands for.

On PostgreSQL requests are claimed FOR UPDATE SKIP LOCKED, so several evaluators share the queue
(each unit is still evaluated under its own row lock), and the ingestion's transaction sends a
NOTIFY that wakes an idle evaluator at once. Under load an evaluator starts a pass at most every
`evaluation.min_interval_ms`, so one pass covers everything queued meanwhile: the busier the
ingestion, the more batches each evaluation covers. The scheduler's excursions job drains the
queue too, as the safety net of a deployment whose evaluators are down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, text

from logistics import metrics
from logistics.config import Settings
from logistics.db import UnitOfWork, is_postgres
from logistics.models.alerts import EvaluationRequest
from logistics.runtime import Runtime, watch
from logistics.services.excursions import Touched, evaluate_units

log = logging.getLogger(__name__)
CHANNEL = "coldchain_evaluate"
_SQLITE_CHUNK = 500  # ids per DELETE ... IN on SQLite (its bound-parameter limit)


def request_evaluation(uow: UnitOfWork, touched: Sequence[Touched], now: dt.datetime) -> None:
    """Queue the touched units for evaluation, in the caller's transaction (does not commit)."""
    if not touched:
        return
    uow.session.execute(
        insert(EvaluationRequest),
        [
            {"unit_id": unit_id, "earliest_ts": low, "latest_ts": high, "requested_at": now}
            for unit_id, low, high in touched
        ],
    )
    if is_postgres(uow.session):
        # Delivered when (and only if) the transaction commits.
        uow.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


@dataclasses.dataclass(frozen=True)
class Pass:
    """What one pass over the queue did."""

    requests: int = 0
    units: frozenset[int] = frozenset()
    evaluated: int = 0
    oldest_requested_at: dt.datetime | None = None
    failed: int = 0  # units whose evaluation failed in this pass (each retried after a back-off)


def drain_once(runtime: Runtime, now: dt.datetime | None = None, limit: int | None = None) -> Pass:
    """Claim due requests, evaluate their units, delete the requests; one transaction.

    A unit whose evaluation fails gets one request back, due after a back-off that doubles with
    each failed attempt (evaluation.retry_min_s .. retry_max_s): it is logged every time, retried
    for as long as it fails, and never holds up the other units.
    """
    limit = limit or runtime.settings.evaluation_claim_limit
    at = now or dt.datetime.now(dt.UTC)
    with runtime.uow() as claim:
        rows = _claim(claim, at, limit)
        if not rows:
            return Pass()
        failed: set[int] = set()
        evaluated = evaluate_units(
            runtime, [(row.unit_id, row.earliest_ts, row.latest_ts) for row in rows], at, failed
        )
        _delete(claim, [row.id for row in rows])
        _retry_later(claim, runtime.settings, [row for row in rows if row.unit_id in failed], at)
        claim.commit()
    units = frozenset(row.unit_id for row in rows)
    return Pass(len(rows), units, evaluated, min(row.requested_at for row in rows), len(failed))


def _claim(uow: UnitOfWork, now: dt.datetime, limit: int) -> list[Any]:
    request = EvaluationRequest
    query = (
        select(
            request.id,
            request.unit_id,
            request.earliest_ts,
            request.latest_ts,
            request.requested_at,
            request.attempts,
        )
        .where(or_(request.not_before.is_(None), request.not_before <= now))
        .order_by(request.id)
        .limit(limit)
    )
    if is_postgres(uow.session):
        query = query.with_for_update(skip_locked=True)
    return list(uow.session.execute(query).all())


def retry_delay(attempts: int, min_s: float, max_s: float) -> dt.timedelta:
    """Wait before the next try of a unit that failed `attempts` times: min * 2^(n-1), capped."""
    seconds = min(max_s, min_s * 2 ** min(max(attempts - 1, 0), 30))
    return dt.timedelta(seconds=max(1.0, seconds))


def _retry_later(
    uow: UnitOfWork, settings: Settings, failed_rows: list[Any], now: dt.datetime
) -> None:
    """One request per failed unit (its claimed spans merged), due after the back-off."""
    merged: dict[int, dict[str, Any]] = {}
    for row in failed_rows:
        item = merged.setdefault(
            row.unit_id,
            {
                "unit_id": row.unit_id,
                "earliest_ts": row.earliest_ts,
                "latest_ts": row.latest_ts,
                "requested_at": row.requested_at,
                "attempts": 0,
            },
        )
        item["earliest_ts"] = min(item["earliest_ts"], row.earliest_ts)
        item["latest_ts"] = max(item["latest_ts"], row.latest_ts)
        item["requested_at"] = min(item["requested_at"], row.requested_at)
        item["attempts"] = max(item["attempts"], row.attempts + 1)
    for item in merged.values():
        delay = retry_delay(
            item["attempts"], settings.evaluation_retry_min_s, settings.evaluation_retry_max_s
        )
        item["not_before"] = now + delay
        log.warning(
            "unit %s failed %d time(s); next try in %.0f s",
            item["unit_id"],
            item["attempts"],
            delay.total_seconds(),
        )
    if merged:
        uow.session.execute(insert(EvaluationRequest), list(merged.values()))


def _delete(uow: UnitOfWork, ids: list[int]) -> None:
    if is_postgres(uow.session):
        uow.session.execute(
            text("DELETE FROM evaluation_requests WHERE id = ANY(:ids)"), {"ids": ids}
        )
        return
    for start in range(0, len(ids), _SQLITE_CHUNK):
        chunk = ids[start : start + _SQLITE_CHUNK]
        uow.session.execute(delete(EvaluationRequest).where(EvaluationRequest.id.in_(chunk)))


def drain(runtime: Runtime, now: dt.datetime | None = None) -> Pass:
    """Pass over the queue until it is empty (or holds only what other evaluators claimed)."""
    total = Pass()
    while True:
        done = drain_once(runtime, now)
        if not done.requests:
            return total
        oldest = [at for at in (total.oldest_requested_at, done.oldest_requested_at) if at]
        total = Pass(
            total.requests + done.requests,
            total.units | done.units,
            total.evaluated + done.evaluated,
            min(oldest),
            total.failed + done.failed,
        )


def queue_state(uow: UnitOfWork) -> tuple[int, dt.datetime | None]:
    """How many requests wait, and when the oldest was made."""
    count, oldest = uow.session.execute(
        select(func.count(), func.min(EvaluationRequest.requested_at))
    ).one()
    return int(count), oldest


@dataclasses.dataclass
class EvaluatorStats:
    """Counters of one evaluator (read by tests, benchmarks and logs)."""

    passes: int = 0
    requests: int = 0
    units: int = 0
    evaluated: int = 0
    failures: int = 0
    busy_s: float = 0.0
    wakeups: int = 0  # notifications received
    max_lag_s: float = 0.0  # longest time a request waited before its pass ended


class Evaluator:
    """A thread that works through the evaluation queue until stopped."""

    def __init__(self, runtime: Runtime, name: str = "evaluator"):
        self.runtime = runtime
        self.settings = runtime.settings
        self.name = name
        self.stats = EvaluatorStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Any = None

    def start(self) -> Evaluator:
        """Start the evaluating thread."""
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def threads(self) -> list[threading.Thread]:
        """The evaluating thread (for a watchdog)."""
        return [self._thread] if self._thread is not None else []

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the pass in hand and stop; what is left stays queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Pass over the queue whenever work is there, at most every min_interval_ms."""
        min_interval = self.settings.evaluation_min_interval_ms / 1000
        last_pass = 0.0
        try:
            while not self._stop.is_set():
                pause = last_pass + min_interval - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    break
                last_pass = time.monotonic()
                if self._pass():
                    continue  # more may have queued while this pass ran
                self._wait_for_work()
        finally:
            self._close_listener()

    def _pass(self) -> bool:
        started = time.perf_counter()
        try:
            done = drain_once(self.runtime)
        except Exception:
            self.stats.failures += 1
            metrics.EVALUATION_FAILURES.inc()
            log.exception("evaluation pass failed; the requests stay queued")
            self._stop.wait(self.settings.evaluation_poll_s)
            return False
        if not done.requests:
            return False
        self.stats.busy_s += time.perf_counter() - started
        self.stats.passes += 1
        self.stats.requests += done.requests
        self.stats.units += len(done.units)
        self.stats.evaluated += done.evaluated
        self.stats.failures += done.failed
        metrics.EVALUATION_PASSES.inc()
        metrics.EVALUATION_REQUESTS.inc(done.requests)
        if done.oldest_requested_at is not None:
            lag = (dt.datetime.now(dt.UTC) - done.oldest_requested_at).total_seconds()
            self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
            metrics.EVALUATION_WAIT.observe(max(0.0, lag))
        return True

    def _wait_for_work(self) -> None:
        """Until a notification arrives, the poll interval passes, or the evaluator stops."""
        poll_s = self.settings.evaluation_poll_s
        listener = self._listen()
        if listener is None:
            self._stop.wait(poll_s)
            return
        try:
            for _notice in listener.notifies(timeout=poll_s, stop_after=1):
                self.stats.wakeups += 1
        except Exception as exc:  # the connection broke (database restart): poll until back
            log.warning("lost the evaluation notifications (%s); polling", exc)
            self._close_listener()
            self._stop.wait(poll_s)

    def _listen(self) -> Any:
        if self._listener is not None or self.runtime.engine.dialect.name != "postgresql":
            return self._listener
        import psycopg

        url = self.runtime.engine.url.set(drivername="postgresql")
        try:
            connection = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
            connection.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:
            log.warning("cannot listen for evaluation notifications (%s); polling", exc)
            return None
        self._listener = connection
        return connection

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):  # already broken
                self._listener.close()
            self._listener = None


def run_until_stopped(
    runtime: Runtime, stop: threading.Event, metrics_port: int = 0
) -> EvaluatorStats:
    """Run an evaluator until `stop` is set (the `coldchain evaluate` command).

    With a `metrics_port`, serve /metrics (with the queue's depth and age) and /health there.
    """
    endpoints = metrics.serve_process_metrics(runtime, metrics_port, database=True)
    evaluator = Evaluator(runtime).start()
    try:
        watch(stop, evaluator.threads)
    finally:
        evaluator.stop()
        if endpoints is not None:
            endpoints.stop()
    return evaluator.stats
