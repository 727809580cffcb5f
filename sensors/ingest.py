"""The ingestion process: MQTT messages in, readings committed in batches, then acknowledged.

Flow: paho's network thread puts each message on a queue; one writer thread takes a batch (when it
holds `ingest.batch_size` messages or `ingest.flush_interval_ms` after its first one, so a broker
window of 20 unacknowledged messages never stalls it), parses it and commits it in one transaction
together with an evaluation request for every unit the batch touched; then it acknowledges the
batch's messages, in order. Excursion evaluation runs elsewhere (logistics.services.evaluation):
its requests are as durable as the readings, so acknowledging does not wait for it. While the
database is down the writer retries with back-off and acknowledges nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from logistics import metrics
from logistics.config import Settings
from logistics.db import is_unavailable
from logistics.domain.readings import ReadingLimits, Rejection, SensorReading
from logistics.runtime import Runtime, watch
from logistics.services.evaluation import request_evaluation
from logistics.services.readings import (
    Letter,
    ReadingTally,
    record_dead_letters,
    record_readings,
    record_status,
)
from sensors.mqtt import Incoming, MqttConnection, parse_broker_url
from sensors.payload import ParseLimits, parse_message

log = logging.getLogger(__name__)
T = TypeVar("T")


class Stopping(Exception):
    """The process is stopping while the database is unreachable; nothing was acknowledged."""


@dataclasses.dataclass
class IngestStats:
    """Counters of one ingestion process (read by tests, benchmarks and logs)."""

    messages: int = 0
    readings: int = 0
    dead_letters: int = 0
    unstorable: int = 0  # messages not even a dead letter could hold: logged and acknowledged
    duplicates: int = 0  # readings already stored: redeliveries (after a crash) or re-sent
    batches: int = 0
    acked: int = 0
    db_retries: int = 0
    largest_batch: int = 0
    busy_s: float = 0.0  # time spent decoding, storing and acknowledging


@dataclasses.dataclass
class Decoded:
    """A batch turned into what is to be written."""

    readings: list[SensorReading] = dataclasses.field(default_factory=list)
    letters: list[Letter] = dataclasses.field(default_factory=list)
    statuses: list[tuple[str, str, Incoming]] = dataclasses.field(default_factory=list)


def topics(settings: Settings) -> list[str]:
    """The subscriptions: everything under the prefix, and the retained status topic when shared.

    The whole prefix, not only `+/readings` and `+/status`: a message on a mistyped topic or with
    an extra level must reach the dead letters instead of vanishing in the broker (issue 12).
    """
    prefix = settings.mqtt_topic_prefix.rstrip("/")
    if not settings.mqtt_shared_group:
        return [f"{prefix}/#"]
    # Status is also subscribed unshared: retained messages never reach shared subscriptions
    # (MQTT 5.0 4.8.2), and applying an online/offline twice is harmless.
    return [f"$share/{settings.mqtt_shared_group}/{prefix}/#", f"{prefix}/+/status"]


def parse_limits(settings: Settings) -> ParseLimits:
    """Parsing limits from the [ingest] settings."""
    reading = ReadingLimits(
        settings.ingest_min_temp_c,
        settings.ingest_max_temp_c,
        settings.ingest_max_future_s,
        dt.datetime.fromisoformat(settings.ingest_earliest_ts).astimezone(dt.UTC),
    )
    return ParseLimits(
        reading, settings.ingest_max_payload_bytes, settings.ingest_max_batch_readings
    )


class Ingestor:
    """Batches messages from the broker into the database and acknowledges them once committed."""

    def __init__(self, runtime: Runtime, client_id: str | None = None):
        self.runtime = runtime
        self.settings = runtime.settings
        self.stats = IngestStats()
        self._limits = parse_limits(self.settings)
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        if not self.settings.mqtt_url:
            raise ValueError(
                "no broker configured: set mqtt.url (COLDCHAIN_MQTT_URL) or run `coldchain demo`"
            )
        address = parse_broker_url(
            self.settings.mqtt_url, self.settings.mqtt_username, self.settings.mqtt_password
        )
        self.connection = MqttConnection(
            self.settings,
            address,
            client_id or self.settings.mqtt_client_id,
            topics(self.settings),
            self._queue.put,
        )

    def start(self) -> None:
        """Start the writer thread and connect to the broker."""
        self._writer = threading.Thread(target=self.run_writer, name="ingest-writer", daemon=True)
        self._writer.start()
        self.connection.start()

    def threads(self) -> list[threading.Thread]:
        """The threads this ingestion needs: its writer and paho's network loop."""
        network = getattr(self.connection.client, "_thread", None)
        return [thread for thread in (self._writer, network) if thread is not None]

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in hand, then disconnect; unacknowledged messages stay queued."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout_s)
        self.connection.stop()

    def run_writer(self) -> None:
        """Take batches off the queue and store them until stopped."""
        try:
            while not self._stop.is_set():
                batch = self.next_batch()
                if batch:
                    self.process(batch)
        except Stopping:
            return

    def next_batch(self) -> list[Incoming]:
        """Wait for a first message, then gather more until the batch is full or its timer ends."""
        try:
            batch = [self._queue.get(timeout=0.25)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.settings.ingest_flush_interval_ms / 1000
        size = self.settings.ingest_batch_size
        while len(batch) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def process(self, batch: Sequence[Incoming]) -> None:
        """Store a batch (retrying while the database is down), then acknowledge its messages.

        A crash between the commit and the acknowledgements makes the broker deliver them again:
        their readings are dropped as duplicates and their units asked for once more (harmless).
        """
        started = time.perf_counter()
        decoded = self.decode(batch)
        try:
            self._retrying(lambda: self.write(decoded))
        except Stopping:
            raise
        except Exception:  # a bug or bad data in one message: isolate it instead of blocking all
            log.exception("batch of %d failed; storing its messages one by one", len(batch))
            self._write_singly(batch)
        metrics.observe_commit((m.received_at for m in batch), dt.datetime.now(dt.UTC))
        for message in batch:
            self.stats.acked += self.connection.ack(message)
        self.stats.batches += 1
        self.stats.messages += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.busy_s += time.perf_counter() - started

    def decode(self, batch: Sequence[Incoming]) -> Decoded:
        """Parse each message; rejected ones become dead letters (payload logged cut short)."""
        decoded = Decoded()
        prefix = self.settings.mqtt_topic_prefix
        for message in batch:
            parsed = parse_message(
                message.topic, message.payload, prefix, self._limits, message.received_at
            )
            decoded.readings.extend(parsed.readings)
            if parsed.status and parsed.sensor_id:
                decoded.statuses.append((parsed.sensor_id, parsed.status, message))
            whole = message.payload if parsed.whole_message else None
            for rejection, raw in parsed.rejections:
                self._log_rejection(message, rejection)
                decoded.letters.append(
                    Letter(
                        message.topic, parsed.sensor_id, rejection, raw, message.received_at, whole
                    )
                )
        return decoded

    def _log_rejection(self, message: Incoming, rejection: Rejection) -> None:
        log.warning(
            "dead letter (%s: %s) on %s: %r",
            rejection.reason,
            rejection.detail,
            message.topic,
            message.payload[: self.settings.ingest_log_payload_chars],
        )

    def write(self, decoded: Decoded) -> None:
        """Commit one decoded batch and the evaluation requests of its units, in one transaction."""
        chars = self.settings.ingest_dead_letter_payload_chars
        now = dt.datetime.now(dt.UTC)
        tally = ReadingTally()
        with self.runtime.uow() as uow:
            touched = record_readings(
                uow,
                decoded.readings,
                now,
                late_after_s=self.settings.ingest_late_after_s,
                payload_chars=chars,
                tally=tally,
            )
            request_evaluation(uow, touched, now)
            letters = decoded.letters + [
                _unknown_sensor_letter(sensor_id, message)
                for sensor_id, status, message in decoded.statuses
                if not record_status(uow, sensor_id, status, message.received_at)
            ]
            record_dead_letters(uow, letters, chars)
            uow.commit()
        tally.dead_letters += len(letters)
        metrics.count_ingested(tally.stored, tally.duplicates, tally.dead_letters)
        self.stats.readings += len(decoded.readings)
        self.stats.dead_letters += len(letters)
        self.stats.duplicates += tally.duplicates

    def _write_singly(self, batch: Sequence[Incoming]) -> None:
        for message in batch:
            try:
                self._retrying(lambda m=message: self.write(self.decode([m])))
            except Stopping:
                raise
            except Exception as exc:
                log.exception("message on %s failed: %r", message.topic, message.payload[:200])
                letter = Letter(
                    message.topic,
                    None,
                    Rejection("handler_error", repr(exc)[:300]),
                    message.payload.decode("utf-8", "replace"),
                    message.received_at,
                    message.payload,
                )
                self._last_resort(message, letter)

    def _last_resort(self, message: Incoming, letter: Letter) -> None:
        """Store the dead letter of a message that failed; if even that fails, log and count it.

        It is acknowledged either way: a message the broker would redeliver after every restart
        would stop the ingestion again each time.
        """
        try:
            self._retrying(lambda: self.write(Decoded(letters=[letter])))
        except Stopping:
            raise
        except Exception:
            self.stats.unstorable += 1
            log.exception(
                "UNSTORABLE message on %r (acknowledged; %d so far): %r",
                message.topic,
                self.stats.unstorable,
                message.payload[:200],
            )

    def _retrying(self, work: Callable[[], T]) -> T:
        """Run a database step until it succeeds; back off while the database is unreachable."""
        delay = self.settings.ingest_retry_min_s
        while True:
            try:
                return work()
            except (OperationalError, DBAPIError) as exc:
                if not _is_transient(exc):
                    raise
                self.stats.db_retries += 1
                metrics.INGEST_DB_RETRIES.inc()
                log.warning(
                    "database unavailable (%s); retrying in %.1fs, nothing acknowledged",
                    str(exc).splitlines()[0][:200],
                    delay,
                )
            if self._stop.wait(delay):
                raise Stopping()
            delay = min(delay * 2, self.settings.ingest_retry_max_s)


def _unknown_sensor_letter(sensor_id: str, message: Incoming) -> Letter:
    return Letter(
        message.topic,
        sensor_id,
        Rejection("unknown_sensor", f"status of sensor {sensor_id!r}, which is not registered"),
        message.payload.decode("utf-8", "replace"),
        message.received_at,
        message.payload,
    )


def _is_transient(exc: DBAPIError) -> bool:
    """Connection trouble (retry), as opposed to a statement the database refuses (a bug)."""
    return is_unavailable(exc)


def readiness(ingestor: Ingestor) -> tuple[bool, str]:
    """Ready only while both the broker and the database answer."""
    if not ingestor.connection.subscribed.is_set():  # cleared on disconnect, set on SUBACK
        return False, "not connected to the broker"
    return metrics.database_answers(ingestor.runtime)


def run_until_stopped(
    runtime: Runtime,
    stop: threading.Event,
    client_id: str | None = None,
    also_watch: Callable[[], list[threading.Thread]] = list,
    metrics_port: int = 0,
) -> IngestStats:
    """Run an ingestion until `stop` is set (the `coldchain ingest` command and the demo).

    Raises ThreadDied when the writer, the network thread or one in `also_watch` has died.
    With a `metrics_port`, serve /metrics and /health/{live,ready} there (metrics.ingest_port).
    """
    ingestor = Ingestor(runtime, client_id)
    endpoints = metrics.serve_process_metrics(runtime, metrics_port, lambda: readiness(ingestor))
    ingestor.start()
    try:
        watch(stop, lambda: ingestor.threads() + also_watch())
    finally:
        ingestor.stop()
        if endpoints is not None:
            endpoints.stop()
    return ingestor.stats
