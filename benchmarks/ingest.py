"""Ingestion throughput: our ingestion (commit to PostgreSQL, then ack) vs a bare paho subscriber.

Brings up a fresh PostgreSQL database and a private Mosquitto with config/mosquitto.conf on a free
loopback port. Two persistent-session client ids subscribe, disconnect, and a backlog of R readings
is queued for both; then (a) a bare paho subscriber that only parses JSON and acks and (b) our
ingestion each drain the same backlog. A live run follows: several publisher processes publish
while our ingestion stores. Our ingestion runs as in production: a `coldchain evaluate` process
beside it works through the excursion evaluations the ingestion queues, and the benchmark also
reports how long after the last reading was stored that queue was empty (catch-up). Prints rates,
their ratio, lost and doubled; the last line is JSON.

    python benchmarks/ingest.py [--readings 50000] [--sensors 200] [--live 30000] [--publishers 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402
from harness import create_database, drop_database, start_coldchain, stop
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from logistics.config import load_settings  # noqa: E402
from logistics.db import Base  # noqa: E402
from logistics.models.alerts import EvaluationRequest, UnitMonitorState  # noqa: E402
from logistics.models.catalog import StorageUnit, Store  # noqa: E402
from logistics.models.readings import Reading, Sensor, SensorAssignment  # noqa: E402
from logistics.runtime import Runtime  # noqa: E402
from logistics.services.reference import seed_reference_data  # noqa: E402
from sensors.ingest import Ingestor  # noqa: E402
from sensors.mosquitto import PrivateMosquitto  # noqa: E402
from sensors.simulate import publish_chunked  # noqa: E402

PREFIX = "coldchain/sensors"
BASE_TS = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def prepare(runtime: Runtime, sensors: int) -> list[str]:
    """Schema, one store with 20 ILRs, and the sensors registered to them."""
    Base.metadata.create_all(runtime.engine)
    ids = [f"B{i:05d}" for i in range(sensors)]
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
        store = Store(code="BENCH", name="Bench", level_code="centre", path="/")
        uow.session.add(store)
        uow.session.flush()
        units = [
            StorageUnit(store_id=store.id, code=f"ILR-{n}", kind="ilr", min_temp_c=2, max_temp_c=8)
            for n in range(20)
        ]
        uow.session.add_all(units)
        uow.session.flush()
        for index, sensor_id in enumerate(ids):
            uow.session.add(Sensor(sensor_id=sensor_id, registered_at=BASE_TS))
            uow.session.flush()
            uow.session.add(
                SensorAssignment(
                    sensor_id=sensor_id,
                    unit_id=units[index % 20].id,
                    valid_from=BASE_TS - dt.timedelta(days=400),
                )
            )
        uow.commit()
    return ids


def payloads(sensor_ids: list[str], count: int, offset: int = 0) -> list[tuple[str, bytes, bool]]:
    """`count` distinct readings round-robin over the sensors (minute steps back from BASE_TS)."""
    out = []
    for index in range(offset, offset + count):
        sensor_id = sensor_ids[index % len(sensor_ids)]
        ts = BASE_TS - dt.timedelta(minutes=index // len(sensor_ids))
        body = json.dumps(
            {
                "ts": ts.isoformat(),
                "temp_c": 4.0 + (index % 30) / 10,
                "battery_pct": 88,
                "power": "mains",
            }
        )
        out.append((f"{PREFIX}/{sensor_id}/readings", body.encode(), False))
    return out


def v5_client(client_id: str, port: int, on_message=None) -> mqtt.Client:
    """A persistent-session MQTT 5 client like the ingestion's (manual acks)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 2000
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(
        [(f"{PREFIX}/+/readings", SubscribeOptions(qos=1))]
    )
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"
    return client


def queue_backlog(port: int, client_ids: list[str], items: list[tuple[str, bytes, bool]]) -> float:
    """Create the sessions, disconnect them, publish the backlog; return the publishing rate."""
    for client_id in client_ids:
        client = v5_client(client_id, port)
        client.disconnect()
        client.loop_stop()
    publisher = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}"
    )
    publisher.max_inflight_messages_set(500)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    started = time.perf_counter()
    publish_chunked(publisher, items)
    elapsed = time.perf_counter() - started
    publisher.disconnect()
    publisher.loop_stop()
    return len(items) / elapsed


def drain_bare(port: int, client_id: str, expected: int, timeout_s: float) -> float:
    """(a) A bare paho subscriber: parse the JSON, ack. Return readings/s."""
    done = threading.Event()
    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        json.loads(message.payload)
        client.ack(message.mid, message.qos)
        state["n"] += 1
        if state["n"] == expected:
            done.set()

    started = time.perf_counter()
    client = v5_client(client_id, port, on_message)
    done.wait(timeout_s)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return state["n"] / elapsed


def rows(runtime: Runtime) -> int:
    """Readings stored (one row per sensor and ts: the UNIQUE key cannot hold a reading twice,
    so "doubled" is counted in deliveries to the ingestion instead)."""
    with runtime.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Reading)) or 0


def catch_up(runtime: Runtime, timeout_s: float) -> float:
    """Seconds until the evaluation queue is empty (the evaluator has caught up)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        with runtime.uow() as uow:
            if not uow.session.scalar(select(func.count()).select_from(EvaluationRequest)):
                return time.perf_counter() - started
        time.sleep(0.02)
    raise RuntimeError(f"evaluation queue not empty after {timeout_s} s")


def units_evaluated(runtime: Runtime) -> int:
    """Units evaluated at least once."""
    with runtime.uow() as uow:
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(UnitMonitorState)
                .where(UnitMonitorState.evaluations > 0)
            )
            or 0
        )


def drain_ours(
    runtime: Runtime, client_id: str, expected: int, timeout_s: float
) -> tuple[float, Ingestor]:
    """(b) Our ingestion committing to PostgreSQL, until it has stored `expected` readings."""
    ingestor = Ingestor(runtime, client_id)
    started = time.perf_counter()
    ingestor.start()
    deadline = started + timeout_s
    while ingestor.stats.readings < expected and time.perf_counter() < deadline:
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    ingestor.stop()
    return ingestor.stats.readings / elapsed, ingestor


def _publish_process(port: int, items: list[tuple[str, bytes, bool]]) -> None:
    publisher = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-live-{uuid.uuid4().hex[:6]}"
    )
    publisher.max_inflight_messages_set(500)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    publish_chunked(publisher, items)
    publisher.disconnect()
    publisher.loop_stop()


def live_run(
    runtime: Runtime,
    port: int,
    items: list[tuple[str, bytes, bool]],
    publishers: int,
    stored_before: int,
    timeout_s: float,
) -> tuple[float, float, int]:
    """Publish from several processes while our ingestion stores; return (publish, store) rates
    and the readings delivered to the ingestion."""
    ingestor = Ingestor(runtime, f"bench-live-ingest-{uuid.uuid4().hex[:6]}")
    ingestor.start()
    assert ingestor.connection.subscribed.wait(10)
    share = [items[n::publishers] for n in range(publishers)]
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_publish_process, args=(port, part)) for part in share]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout_s)
    published_s = time.perf_counter() - started
    deadline = started + timeout_s
    while ingestor.stats.readings < len(items) and time.perf_counter() < deadline:
        time.sleep(0.05)
    stored_s = time.perf_counter() - started
    ingestor.stop()
    return len(items) / published_s, ingestor.stats.readings / stored_s, ingestor.stats.readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=50000)
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--live", type=int, default=30000)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--timeout-s", type=float, default=150)
    args = parser.parse_args()

    database_url = create_database()
    broker = PrivateMosquitto().start()
    runtime = evaluator = None
    try:
        overrides = {
            "database_url": database_url,
            "mqtt_url": broker.url,
            "mqtt_topic_prefix": PREFIX,
        }
        if args.batch_size:
            overrides["ingest_batch_size"] = args.batch_size
            overrides["mqtt_receive_maximum"] = 2 * args.batch_size
        runtime = Runtime.from_settings(load_settings(overrides))
        sensor_ids = prepare(runtime, args.sensors)
        evaluator = start_coldchain("evaluate", {"COLDCHAIN_DATABASE_URL": database_url})
        backlog = payloads(sensor_ids, args.readings)
        bare_id, ours_id = (
            f"bench-bare-{uuid.uuid4().hex[:6]}",
            f"bench-ours-{uuid.uuid4().hex[:6]}",
        )
        publish_rate = queue_backlog(broker.port, [bare_id, ours_id], backlog)
        print(f"queued {len(backlog)} readings for 2 offline sessions at {publish_rate:.0f}/s")
        bare_rate = drain_bare(broker.port, bare_id, len(backlog), args.timeout_s)
        print(f"(a) bare paho subscriber (parse + ack): {bare_rate:.0f} readings/s")
        ours_rate, ingestor = drain_ours(runtime, ours_id, len(backlog), args.timeout_s)
        caught_up = catch_up(runtime, args.timeout_s)
        total = rows(runtime)
        # Doubled: readings delivered to the ingestion beyond those published (redeliveries).
        lost, doubled = len(backlog) - total, ingestor.stats.readings - len(backlog)
        print(
            f"(b) our ingestion (commit to PostgreSQL, then ack): {ours_rate:.0f} readings/s, "
            f"{ingestor.stats.batches} batches, largest {ingestor.stats.largest_batch}, "
            f"writer busy {ingestor.stats.busy_s:.1f}s; the evaluator process caught up "
            f"{caught_up:.2f}s after the last reading was stored"
        )
        print(f"ratio (b)/(a): {ours_rate / bare_rate:.2f}; lost {lost}, doubled {doubled}")
        live = payloads(sensor_ids, args.live, offset=args.readings)
        live_pub, live_rate, live_delivered = live_run(
            runtime, broker.port, live, args.publishers, total, args.timeout_s
        )
        live_caught_up = catch_up(runtime, args.timeout_s)
        total2 = rows(runtime)
        evaluated = units_evaluated(runtime)
        live_lost = len(backlog) + len(live) - total2
        live_doubled = live_delivered - len(live)
        print(
            f"live: {args.publishers} publisher processes at {live_pub:.0f}/s; "
            f"stored {live_rate:.0f} readings/s; "
            f"lost {live_lost}, doubled {live_doubled}; evaluation caught up after "
            f"{live_caught_up:.2f}s; {evaluated} of 20 units evaluated"
        )
        print(
            json.dumps(
                {
                    "readings": len(backlog),
                    "bare_rate": round(bare_rate),
                    "ours_rate": round(ours_rate),
                    "ratio": round(ours_rate / bare_rate, 3),
                    "lost": lost,
                    "doubled": doubled,
                    "live_readings": len(live),
                    "live_publish_rate": round(live_pub),
                    "live_store_rate": round(live_rate),
                    "live_lost": live_lost,
                    "live_doubled": live_doubled,
                    "writer_busy_s": round(ingestor.stats.busy_s, 2),
                    "evaluation_catch_up_s": round(caught_up, 2),
                    "live_evaluation_catch_up_s": round(live_caught_up, 2),
                    "units_evaluated": evaluated,
                    "goal_met": ours_rate / bare_rate >= 0.7
                    and ours_rate >= 8000
                    and lost == 0
                    and doubled == 0,
                }
            )
        )
    finally:
        if evaluator is not None:
            stop(evaluator)
        if runtime is not None:
            runtime.close()
        broker.cleanup()
        drop_database(database_url)


if __name__ == "__main__":
    main()
