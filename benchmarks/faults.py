"""Faults while readings stream in: what each loses, doubles, and how long it takes to recover.

    python benchmarks/faults.py [--readings 20000] [--rate 4000]

Everything runs on 127.0.0.1 and is stopped at the end: a PostgreSQL cluster of this run
(harness.OwnPostgres, so it may be restarted), a private mosquitto per fault with
config/mosquitto.conf (sensors.mosquitto.PrivateMosquitto), `coldchain ingest` / `evaluate`
processes, and gunicorn (`coldchain serve`'s set-up) for the bookings.

Each fault streams `--readings` QoS 1 readings from 20 simulated loggers and injects its fault
40 % of the way through:

- ingestion_sigkill: the ingestion is SIGKILLed and started again;
- postgres_restart: the database is stopped for 2 s (fast shutdown) and started;
- mosquitto_{sigterm,sigkill}_ingestion_{up,down}: the broker is stopped or killed and started;
  "down": the ingestion was stopped (cleanly) before, so the broker held its queue, and is
  started again after the broker;
- evaluator_sigkill: a `coldchain evaluate` is SIGKILLed and started again; one logger reads a
  freeze, whose cold alarm must be raised exactly once;
- web_worker_sigkill_bookings: while 600 people book seats through two gunicorn workers (each
  retries on a lost connection), one worker is SIGKILLed.

Per fault: lost (readings the broker acknowledged to the publisher but never stored; alarms or
bookings confirmed but missing), doubled (deliveries seen twice: readings the ingestion received
again after storing them; an alarm raised twice; a booking confirmed twice), recovery_s (from
the end of the fault until work is done again: a reading received after it is stored, the
evaluation queue empty, or the worker replaced), and whether the fault met the goal of issue 12
(0 lost and 0 doubled, except the broker's window documented in docs/sensors.md: see judge()).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import harness
import paho.mqtt.client as mqtt
import psycopg
from harness import log
from paho.mqtt.enums import CallbackAPIVersion

ROOT = harness.ROOT
sys.path.insert(0, str(ROOT))
SENSORS = 20
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class Publisher:
    """QoS 1 readings at a steady rate from a thread; reconnects by itself when the broker goes."""

    def __init__(
        self,
        port: int,
        prefix: str,
        sensor_ids: list[str],
        total: int,
        rate: float,
        temp: Callable[[int], float] = lambda _i: 5.0,
    ):
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            protocol=mqtt.MQTTv5,
            client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
        )
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        self.prefix, self.sensor_ids, self.total, self.rate = prefix, sensor_ids, total, rate
        self.temp = temp
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        for index in range(self.total):
            sensor_id = self.sensor_ids[index % len(self.sensor_ids)]
            ts = NOW - dt.timedelta(minutes=index // len(self.sensor_ids))
            body = json.dumps({"ts": ts.isoformat(), "temp_c": self.temp(index)})
            self.infos.append(
                self.client.publish(f"{self.prefix}/{sensor_id}/readings", body, qos=1)
            )
            if index % 100 == 99:
                ahead = started + (index + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def published(self) -> int:
        return len(self.infos)

    def wait(self, timeout_s: float = 120) -> int:
        """Wait for every PUBACK (or the timeout); return how many the broker acknowledged."""
        self.thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.acked() < len(self.infos):
            time.sleep(0.2)
        return self.acked()

    def acked(self) -> int:
        """Messages the broker acknowledged. (A message published while the broker was away is
        queued by paho and sent on reconnect; its info's rc says "not connected", so
        is_published() would raise: the flag itself is read.)"""
        return sum(1 for info in list(self.infos) if info._published)  # noqa: SLF001

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Bench:
    """The run's database, a work directory and helpers shared by the faults."""

    def __init__(self, readings: int, rate: float):
        self.readings, self.rate = readings, rate
        self.pg = harness.OwnPostgres()
        self.pg.start()
        self.url = self.pg.url
        self.dir = Path(tempfile.mkdtemp(prefix="coldchain-faults-"))
        from logistics.migrate import upgrade

        upgrade(self.url)
        self._sql("SELECT 1")
        from logistics.config import load_settings
        from logistics.runtime import Runtime
        from logistics.services.reference import seed_reference_data

        self.runtime = Runtime.from_settings(load_settings({"database_url": self.url}))
        self.processes: list[Process] = []
        with self.runtime.uow() as uow:
            seed_reference_data(uow)
            uow.commit()

    def _sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        plain = self.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True, connect_timeout=3) as conn:
            return conn.execute(query, params).fetchall()

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run a query, retrying while the database is being restarted."""
        for _ in range(300):
            try:
                return self._sql(query, *params)
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("database did not come back")

    def sensors(self, name: str) -> tuple[list[str], list[int]]:
        """SENSORS new loggers, each in a unit of its own."""
        from tests.integration.test_ingest import make_unit, new_sensor

        units = [make_unit(self.runtime, f"{name[:8]}-{i}") for i in range(SENSORS)]
        return [new_sensor(self.runtime, unit) for unit in units], units

    def stored(self, sensor_ids: list[str]) -> int:
        return self.sql("SELECT count(*) FROM readings WHERE sensor_id = ANY(%s)", sensor_ids)[0][0]

    def env(self, broker_url: str, prefix: str) -> dict[str, str]:
        return {
            "COLDCHAIN_DATABASE_URL": self.url,
            "COLDCHAIN_DATABASE_POOL_SIZE": "4",
            "COLDCHAIN_MQTT_URL": broker_url,
            "COLDCHAIN_MQTT_TOPIC_PREFIX": prefix,
            "COLDCHAIN_INGEST_FLUSH_INTERVAL_MS": "100",
            "COLDCHAIN_INGEST_RETRY_MIN_S": "0.2",
            "COLDCHAIN_INGEST_RETRY_MAX_S": "1",
            "COLDCHAIN_MQTT_RECONNECT_MIN_S": "1",
            "COLDCHAIN_MQTT_RECONNECT_MAX_S": "2",
            "COLDCHAIN_EVALUATION_POLL_S": "0.5",
        }

    def cleanup(self) -> None:
        for process in self.processes:  # left running by a fault that failed half-way
            if process.process.poll() is None:
                process.kill()
        self.runtime.close()
        self.pg.cleanup()


class Process:
    """A `coldchain ingest` or `evaluate` with its log (its final statistics are parsed)."""

    def __init__(self, bench: Bench, command: str, env: dict[str, str], *args: str):
        self.log = bench.dir / f"{command}-{uuid.uuid4().hex[:6]}.log"
        self.process = harness.start_coldchain_logged(command, env, self.log, *args)
        bench.processes.append(self)
        if command == "ingest":
            _wait(lambda: "connected to" in self.log.read_text(), 30, f"{command} did not connect")
            time.sleep(0.3)  # the SUBACK

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> dict[str, float]:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(60)
        match = re.search(r"(?:Ingest|Evaluator)Stats\(([^)]*)\)", self.log.read_text())
        if not match:
            return {}
        return {k: float(v) for k, v in (p.split("=") for p in match.group(1).split(", "))}


def _wait(check: Callable[[], bool], timeout_s: float, what: str = "") -> float:
    """Seconds until check() held (raises after timeout_s)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def _at_fraction(publisher: Publisher, fraction: float) -> None:
    _wait(lambda: publisher.published() >= publisher.total * fraction, 120, "stream")


def _recovery(bench: Bench, sensor_ids: list[str], publisher: Publisher, started: float) -> float:
    """Seconds from the fault's end (monotonic `started`) until the ingestion stores again: the
    stored count grows, or already holds everything the broker has acknowledged."""
    base = bench.stored(sensor_ids)
    while True:
        stored = bench.stored(sensor_ids)
        if stored > base or stored >= publisher.acked():
            return round(time.monotonic() - started, 2)
        if time.monotonic() - started > 120:
            return float("nan")
        time.sleep(0.05)


def _settle(count: Callable[[], int], goal: int, quiet_s: float = 3.0, limit_s: float = 90) -> int:
    """Wait until count() reaches goal, or stops growing for quiet_s (lost ones never arrive)."""
    started = last_change = time.monotonic()
    last = count()
    while last < goal and time.monotonic() - last_change < quiet_s:
        if time.monotonic() - started > limit_s:
            break
        time.sleep(0.1)
        now = count()
        if now != last:
            last, last_change = now, time.monotonic()
    return last


def _finish(
    bench: Bench, publisher: Publisher, sensor_ids: list[str], ingestion: Process
) -> dict[str, Any]:
    acked = publisher.wait()
    publisher.close()
    _settle(lambda: bench.stored(sensor_ids), acked)
    stats = ingestion.terminate()
    stored = bench.stored(sensor_ids)
    return {
        "published": publisher.total,
        "acked": acked,
        "stored": stored,
        "lost": max(0, acked - stored),
        "doubled": int(stats.get("duplicates", 0)),
    }


def ingestion_fault(bench: Bench, name: str, fault: str) -> dict[str, Any]:
    """Stream through one fault of the ingestion, the broker or the database."""
    from sensors.mosquitto import PrivateMosquitto

    broker = PrivateMosquitto().start()
    prefix = f"faults-{uuid.uuid4().hex[:6]}/sensors"
    sensor_ids, _units = bench.sensors(name)
    env = bench.env(broker.url, prefix)
    client_id = f"ingest-{name[:20]}"
    ingestion = Process(bench, "ingest", env, "--client-id", client_id)
    publisher = Publisher(broker.port, prefix, sensor_ids, bench.readings, bench.rate)
    try:
        if fault.endswith("ingestion_down"):
            _at_fraction(publisher, 0.2)
            ingestion.terminate()  # cleanly: the broker keeps the session and queues for it
        _at_fraction(publisher, 0.4)
        if fault == "ingestion_sigkill":
            ingestion.kill()
            since = time.monotonic()
            ingestion = Process(bench, "ingest", env, "--client-id", client_id)
        elif fault == "postgres_restart":
            bench.runtime.engine.dispose()
            bench.pg.stop()
            time.sleep(2)
            bench.pg.start()
            since = time.monotonic()
        else:
            if fault.endswith("ingestion_down"):
                time.sleep(0.5)  # let the broker take what was sent (PUBACKs) before the fault
            broker.kill() if "sigkill" in fault else broker.stop()
            broker.start()
            since = time.monotonic()
            if fault.endswith("ingestion_down"):
                ingestion = Process(bench, "ingest", env, "--client-id", client_id)
        recovery = _recovery(bench, sensor_ids, publisher, since)
        return {**_finish(bench, publisher, sensor_ids, ingestion), "recovery_s": recovery}
    finally:
        broker.cleanup()


def evaluator_sigkill(bench: Bench) -> dict[str, Any]:
    """The evaluator dies mid-stream; the freeze of logger 0 must give exactly one cold alarm."""
    from sensors.mosquitto import PrivateMosquitto

    broker = PrivateMosquitto().start()
    prefix = f"faults-{uuid.uuid4().hex[:6]}/sensors"
    sensor_ids, units = bench.sensors("evaluator")
    env = bench.env(broker.url, prefix)
    ingestion = Process(bench, "ingest", env, "--client-id", "ingest-evaluator")
    evaluator = Process(bench, "evaluate", env)

    def frozen(index: int) -> float:
        return -2.0 if index % SENSORS == 0 else 5.0

    publisher = Publisher(broker.port, prefix, sensor_ids, bench.readings, bench.rate, frozen)
    try:
        _at_fraction(publisher, 0.4)
        evaluator.kill()
        evaluator = Process(bench, "evaluate", env)
        restarted = time.monotonic()
        result = _finish(bench, publisher, sensor_ids, ingestion)
        queue = "SELECT count(*) FROM evaluation_requests WHERE unit_id = ANY(%s)"
        _wait(lambda: bench.sql(queue, units)[0][0] == 0, 120, "evaluation queue empty")
        recovery = round(time.monotonic() - restarted, 2)
        evaluator.terminate()
        alarms = bench.sql(
            "SELECT count(*) FROM excursions WHERE unit_id = %s AND kind = 'cold_alarm'", units[0]
        )[0][0]
        return {
            **result,
            "lost": result["lost"] + (0 if alarms else 1),
            "doubled": result["doubled"] + max(0, alarms - 1),
            "cold_alarms": alarms,
            "recovery_s": recovery,
        }
    finally:
        broker.cleanup()


def web_worker_sigkill(bench: Bench) -> dict[str, Any]:
    """One of two gunicorn workers is SIGKILLed while people book; readings stream meanwhile."""
    from logistics.services.auth import create_user, issue_token
    from tests.support.sessions_fixtures import make_site, session_body

    with bench.runtime.uow() as uow:
        site = make_site(uow, doses=5000)
        create_user(uow, username="faults-admin", password=None, roles=["admin"])
        uow.commit()
        token = issue_token(uow, username="faults-admin", ttl_s=3600)
        uow.commit()
    from sensors.mosquitto import PrivateMosquitto

    port = harness.free_port()
    server = harness.start_gunicorn(bench.url, port, workers=2)
    base = f"http://127.0.0.1:{port}"
    broker = PrivateMosquitto().start()
    try:
        status, created = _http(base, "POST", "/api/sessions", token, session_body(site, 800))
        assert status == 201, created
        slots = [slot["id"] for slot in created["slots"]]
        people = [f"p-{i:04d}" for i in range(600)]
        confirmed: dict[str, int] = {}
        lock = threading.Lock()

        def book(person: str, slot: int) -> None:
            path = f"/api/sessions/{created['id']}/bookings"
            for _ in range(50):
                try:
                    status, body = _http(
                        base, "POST", path, token, {"slot_id": slot, "beneficiary": person}
                    )
                except (URLError, ConnectionError, OSError):
                    time.sleep(0.1)
                    continue
                if status == 201 or (status == 409 and "already holds" in body.get("detail", "")):
                    with lock:
                        confirmed[person] = confirmed.get(person, 0) + (status == 201)
                    return
                if status >= 500:
                    time.sleep(0.1)
                    continue
                raise RuntimeError(f"booking {person}: {status} {body}")

        def client(offset: int) -> None:
            for index in range(offset, len(people), 4):
                book(people[index], slots[index % len(slots)])

        prefix = f"faults-{uuid.uuid4().hex[:6]}/sensors"
        sensor_ids, _units = bench.sensors("web")
        ingestion = Process(bench, "ingest", bench.env(broker.url, prefix), "--client-id", "ing-w")
        publisher = Publisher(broker.port, prefix, sensor_ids, bench.readings, bench.rate)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        _wait(lambda: len(confirmed) >= 240, 120, "bookings under way")
        workers = _children(server.pid)
        os.kill(workers[0], signal.SIGKILL)
        killed = time.monotonic()
        _wait(
            lambda: len(_children(server.pid)) == 2 and workers[0] not in _children(server.pid),
            60,
            "worker replaced",
        )
        recovery = round(time.monotonic() - killed, 2)
        for thread in threads:
            thread.join(300)
        readings = _finish(bench, publisher, sensor_ids, ingestion)
        rows = dict(
            bench.sql(
                "SELECT beneficiary, count(*) FROM session_bookings WHERE session_id = %s "
                "GROUP BY beneficiary",
                created["id"],
            )
        )
        lost = sum(1 for person in confirmed if person not in rows)
        doubled = sum(max(0, n - 1) for n in confirmed.values()) + sum(
            max(0, n - 1) for n in rows.values()
        )
        return {
            "bookings": len(people),
            "booked": len(rows),
            "lost": lost + readings["lost"],
            "doubled": doubled + readings["doubled"],
            "readings": readings,
            "recovery_s": recovery,
        }
    finally:
        broker.cleanup()
        harness.stop(server)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _http(base: str, method: str, path: str, token: str, body: Any) -> tuple[int, Any]:
    request = Request(base + path, data=json.dumps(body).encode(), method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


FAULTS = (
    "ingestion_sigkill",
    "postgres_restart",
    "mosquitto_sigterm_ingestion_up",
    "mosquitto_sigkill_ingestion_up",
    "mosquitto_sigterm_ingestion_down",
    "mosquitto_sigkill_ingestion_down",
)


def _autosave_changes() -> int:
    """The shipped broker's snapshot interval in changes (config/mosquitto.conf)."""
    text = (ROOT / "config" / "mosquitto.conf").read_text()
    return int(re.search(r"^autosave_interval\s+(\d+)", text, re.M).group(1))


def judge(name: str, result: dict[str, Any], rate: float) -> dict[str, Any]:
    """The goal of issue 12 for one fault: 0 lost and 0 doubled, except the broker's window as
    docs/sensors.md documents it ("Broker crash: the remaining window"):
    - a broker restart (SIGTERM or SIGKILL) repeats the deliveries the ingestion had taken but not
      yet acknowledged (QoS 1 is at least once); the ingestion sees them again and stores nothing
      twice, so "doubled" may be above 0 for the broker's faults only;
    - a SIGTERM loses nothing;
    - a SIGKILL loses what came after the last snapshot: with the ingestion down, at most the
      snapshot interval (autosave_interval changes); with it up, what the broker had acknowledged
      to the loggers and not yet handed on, bounded here by half a second of traffic.
    """
    broker = name.startswith("mosquitto_")
    if not broker:
        allowed_lost, allowed_doubled = 0, 0
    elif "sigterm" in name:
        allowed_lost, allowed_doubled = 0, None
    elif name.endswith("ingestion_down"):
        allowed_lost, allowed_doubled = _autosave_changes(), None
    else:
        allowed_lost, allowed_doubled = int(rate * 0.5), None
    ok = result["lost"] <= allowed_lost and (
        allowed_doubled is None or result["doubled"] <= allowed_doubled
    )
    return {
        "allowed_lost": allowed_lost,
        "allowed_doubled": "repeats (documented)" if allowed_doubled is None else 0,
        "ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=4000.0, help="readings published per second")
    parser.add_argument("--only", default="", help="run the faults whose name holds this")
    args = parser.parse_args()
    bench = Bench(args.readings, args.rate)
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            name: (lambda name=name: ingestion_fault(bench, name, name)) for name in FAULTS
        }
        runs["evaluator_sigkill"] = lambda: evaluator_sigkill(bench)
        runs["web_worker_sigkill_bookings"] = lambda: web_worker_sigkill(bench)
        for name, run in runs.items():
            if args.only and args.only not in name:
                continue
            log(f"--- {name}")
            results[name] = run()
            log(f"{name}: {results[name]}")
    finally:
        bench.cleanup()
    verdicts = {name: judge(name, result, args.rate) for name, result in results.items()}
    for name, verdict in verdicts.items():
        log(f"{name}: {'ok' if verdict['ok'] else 'GOAL MISSED'} ({verdict})")
    print(
        json.dumps(
            {
                "readings_per_fault": args.readings,
                "seconds": round(time.monotonic() - started, 1),
                "faults": {
                    name: {
                        **{
                            key: value
                            for key, value in result.items()
                            if key in ("lost", "doubled", "recovery_s")
                        },
                        "ok": verdicts[name]["ok"],
                    }
                    for name, result in results.items()
                },
                "goal": "0 lost and 0 doubled, except the broker's documented window",
                "goal_met": all(v["ok"] for v in verdicts.values()),
                "verdicts": verdicts,
                "details": results,
            }
        )
    )


if __name__ == "__main__":
    main()
