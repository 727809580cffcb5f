"""Ingestion throughput, measured fairly: our ingestion (commit, then ack) vs bare paho.

Brings up a fresh PostgreSQL database and a private Mosquitto with config/mosquitto.conf on a free
loopback port. Two persistent-session client ids (one bare, one ours) subscribe with the SAME
receive maximum (the `mqtt.receive_maximum` setting, also paho's inflight cap) and disconnect.
Each round publishes a new backlog of R readings, queued identically for both sessions; then (a) a
bare paho subscriber that only parses the JSON and acks and (b) our ingestion each drain it. The
order alternates from round to round (bare first in odd rounds, ours first in even ones), 3 rounds
each by default; the medians are reported, with every round's figures.

5% of the readings are out of the units' safe range (+2..+8 C; heat and freeze alike, spread over
sensors and time), so the `coldchain evaluate` process running beside the ingestion, as in
production, does real excursion work. "doubled" counts deliveries the store saw twice (the
readings the writer found already stored, `IngestStats.duplicates`), not rows: rows are unique by
construction. "lost" is readings published minus rows stored.

A live run follows: several publisher processes publish while our ingestion stores. They stand
for the sensors: each writes MQTT 3.1.1 QoS 1 PUBLISH packets encoded before the clock starts to
its socket and counts the PUBACKs (--live-publisher raw), so that the cores go to the broker and
the ingestion, not to encoding messages in Python; --live-publisher paho publishes with paho
clients instead (they capped the live rate at what they could publish).

Our ingestion runs as --processes N (default 2) ingestion processes on the shared subscription
$share/bench/... (as a deployment scales it: mqtt.shared_group), each with its own persistent
session, for the backlog rounds and the live run; the broker queues a backlog to the group's
sessions in turn. The bare client stays one client with one session. --processes 1 runs one
ingestion without sharing (in this process). The figures name what ran (`ingestion_processes`).

    python benchmarks/ingest.py [--readings 50000] [--rounds 3] [--sensors 200] [--live 30000]
                                [--publishers 3] [--live-publisher raw|paho] [--profile FILE]
                                [--processes 2]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import multiprocessing
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402
from harness import create_database, drop_database, log, start_coldchain, stop
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from logistics.config import Settings, load_settings  # noqa: E402
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
OUT_OF_RANGE_EVERY = 20  # 1 reading in 20 (5%) is outside +2..+8 C


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


def temperature(sensor: int, minute: int) -> float:
    """In range (+4.0..+6.9 C) but for one reading in 20, spread over sensors and minutes;
    those alternate between heat (+12.5 C) and freezing (-2.0 C)."""
    if (sensor + minute) % OUT_OF_RANGE_EVERY == 0:
        return 12.5 if minute % 2 else -2.0
    return 4.0 + ((sensor + minute) % 30) / 10


def payloads(sensor_ids: list[str], count: int, offset: int = 0) -> list[tuple[str, bytes, bool]]:
    """`count` distinct readings round-robin over the sensors (minute steps back from BASE_TS)."""
    out = []
    for index in range(offset, offset + count):
        sensor, minute = index % len(sensor_ids), index // len(sensor_ids)
        ts = BASE_TS - dt.timedelta(minutes=minute)
        body = json.dumps(
            {
                "ts": ts.isoformat(),
                "temp_c": temperature(sensor, minute),
                "battery_pct": 88,
                "power": "mains",
            }
        )
        out.append((f"{PREFIX}/{sensor_ids[sensor]}/readings", body.encode(), False))
    return out


def out_of_range_share(items: list[tuple[str, bytes, bool]]) -> float:
    """Share of the readings outside +2..+8 C (checked on the payloads actually sent)."""
    outside = sum(1 for _, body, _ in items if not 2 <= json.loads(body)["temp_c"] <= 8)
    return outside / len(items)


def v5_client(
    client_id: str, port: int, settings: Settings, on_message=None, topic: str = f"{PREFIX}/#"
) -> mqtt.Client:
    """A persistent-session MQTT 5 client with the ingestion's own connection settings
    (session expiry, receive maximum and paho's inflight cap all from `settings`)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    client.max_inflight_messages_set(settings.mqtt_receive_maximum)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = settings.mqtt_session_expiry_s
    props.ReceiveMaximum = min(65535, settings.mqtt_receive_maximum)
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe([(topic, SubscribeOptions(qos=1))])
    client.connect(
        "127.0.0.1",
        port,
        keepalive=settings.mqtt_keepalive_s,
        clean_start=False,
        properties=props,
    )
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"
    return client


def create_sessions(
    port: int, settings: Settings, client_ids: list[str], topic: str = f"{PREFIX}/#"
) -> None:
    """Subscribe each client id once and disconnect: the broker queues for them from now on."""
    for client_id in client_ids:
        client = v5_client(client_id, port, settings, topic=topic)
        client.disconnect()
        client.loop_stop()


def publish(port: int, items: list[tuple[str, bytes, bool]]) -> float:
    """Publish with QoS 1 from one client; return the publishing rate."""
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


def drain_bare(
    port: int, settings: Settings, client_id: str, expected: int, timeout_s: float
) -> float:
    """(a) A bare paho subscriber: parse the JSON, ack. Return readings/s."""
    done = threading.Event()
    state = {"n": 0}

    def on_message(client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        json.loads(message.payload)
        client.ack(message.mid, message.qos)
        state["n"] += 1
        if state["n"] == expected:
            done.set()

    started = time.perf_counter()
    client = v5_client(client_id, port, settings, on_message)
    done.wait(timeout_s)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return state["n"] / elapsed


def rows(runtime: Runtime) -> int:
    """Readings stored (one row per sensor and ts)."""
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


def evaluation_work(runtime: Runtime) -> dict[str, int]:
    """Units evaluated at least once, and evaluations run in all."""
    with runtime.uow() as uow:
        units, total = uow.session.execute(
            select(
                func.count().filter(UnitMonitorState.evaluations > 0),
                func.coalesce(func.sum(UnitMonitorState.evaluations), 0),
            )
        ).one()
    return {"units_evaluated": int(units), "evaluations": int(total)}


class Profiled:
    """cProfile of the ingestion's writer thread (decode, store, ack), when asked for."""

    def __init__(self, path: str | None):
        self.path = path
        self.profile = cProfile.Profile() if path else None

    def wrap(self, ingestor: Ingestor) -> None:
        if self.profile is None:
            return
        run, profile = ingestor.run_writer, self.profile

        def profiled() -> None:
            profile.enable()
            try:
                run()
            finally:
                profile.disable()

        ingestor.run_writer = profiled  # type: ignore[method-assign]

    def save(self) -> None:
        if self.profile is not None:
            self.profile.dump_stats(self.path)


def drain_ours(
    runtime: Runtime, client_id: str, expected: int, timeout_s: float, profiled: Profiled
) -> tuple[float, Ingestor]:
    """(b) Our ingestion committing to PostgreSQL, until it has stored `expected` readings."""
    ingestor = Ingestor(runtime, client_id)
    profiled.wrap(ingestor)
    started = time.perf_counter()
    ingestor.start()
    deadline = started + timeout_s
    while ingestor.stats.readings < expected and time.perf_counter() < deadline:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    ingestor.stop()
    return ingestor.stats.readings / elapsed, ingestor


SHARED_GROUP = "bench"


def _ingest_process(overrides: dict, client_id: str, progress, duplicates, stop) -> None:
    """One ingestion process of a shared group: `coldchain ingest` with its own client id."""
    runtime = Runtime.from_settings(load_settings(overrides))
    ingestor = Ingestor(runtime, client_id)
    ingestor.start()
    while not stop.wait(0.005):
        progress.value = ingestor.stats.readings
    ingestor.stop()
    progress.value, duplicates.value = ingestor.stats.readings, ingestor.stats.duplicates
    runtime.close()


class Processes:
    """Our ingestion as N processes on the shared subscription $share/bench/...: each has its
    own persistent session (the broker queues a backlog to the group's sessions in turn)."""

    def __init__(self, overrides: dict, client_ids: list[str]):
        self.overrides = {**overrides, "mqtt_shared_group": SHARED_GROUP}
        self.client_ids = client_ids
        self.readings = self.duplicates = 0

    @classmethod
    def sessions(cls, port: int, settings: Settings, overrides: dict, count: int) -> Processes:
        """`count` persistent sessions of the group, made before any backlog is published."""
        ids = [f"bench-ours-{uuid.uuid4().hex[:6]}-{n}" for n in range(count)]
        create_sessions(port, settings, ids, f"$share/{SHARED_GROUP}/{PREFIX}/#")
        return cls(overrides, ids)

    def start(self) -> None:
        context = multiprocessing.get_context("fork")
        self._stop = context.Event()
        self._progress = [context.Value("q", 0) for _ in self.client_ids]
        self._doubled = [context.Value("q", 0) for _ in self.client_ids]
        self._procs = [
            context.Process(
                target=_ingest_process, args=(self.overrides, client_id, done, dup, self._stop)
            )
            for client_id, done, dup in zip(
                self.client_ids, self._progress, self._doubled, strict=True
            )
        ]
        for proc in self._procs:
            proc.start()

    def stored(self) -> int:
        """Readings stored by the processes so far (after each committed batch)."""
        return sum(v.value for v in self._progress)

    def stop(self) -> None:
        self._stop.set()
        for proc in self._procs:
            proc.join(60)
        self.readings = self.stored()
        self.duplicates = sum(v.value for v in self._doubled)

    def run(self, expected: int, timeout_s: float) -> float:
        """Run the processes until they stored `expected` readings; return readings/s."""
        started = time.perf_counter()
        self.start()
        deadline = started + timeout_s
        while self.stored() < expected and time.perf_counter() < deadline:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        stored = self.stored()
        self.stop()
        return stored / elapsed


def _length(n: int) -> bytes:
    """MQTT's variable-length integer (remaining length)."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _with_header(first: int, body: bytes) -> bytes:
    return bytes([first]) + _length(len(body)) + body


def _text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return len(raw).to_bytes(2, "big") + raw


def publish_raw(port: int, items: list[tuple[str, bytes, bool]], window: int = 2000) -> float:
    """Publish with QoS 1 as a sensor fleet would, with a client that costs little CPU: MQTT
    3.1.1 PUBLISH packets encoded up front and written to the socket in chunks, at most `window`
    unacknowledged (a thread counts the PUBACKs). Return the rate, all acknowledged.

    paho encodes and tracks each message in Python (about 0.2 ms of CPU a message here): its
    publishers took the cores the broker and the ingestion share, and so capped the live rate
    at what they could publish (5,400/s), not what the ingestion stores. Sensors are devices of
    their own; on this machine only the broker should pay for their messages.
    """
    client_id = f"bench-raw-{uuid.uuid4().hex[:8]}"
    packets = [
        _with_header(
            0x32 if not retain else 0x33,
            _text(topic) + (n % 65535 + 1).to_bytes(2, "big") + payload,
        )
        for n, (topic, payload, retain) in enumerate(items)
    ]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connect = b"\x00\x04MQTT\x04\x02" + (60).to_bytes(2, "big") + _text(client_id)
    sock.sendall(_with_header(0x10, connect))
    connack = sock.recv(4)
    assert connack[:2] == b"\x20\x02" and connack[3] == 0, f"CONNACK {connack!r}"
    free = threading.Semaphore(window)
    acked = [0]

    def read_acks() -> None:
        buffer = b""
        while acked[0] < len(packets):
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            whole = len(buffer) // 4 * 4  # PUBACK: 0x40 0x02 and the packet id, 4 bytes
            count = whole // 4
            assert buffer[:whole:4] == b"\x40" * count, "a packet other than PUBACK"
            buffer = buffer[whole:]
            acked[0] += count
            for _ in range(count):
                free.release()

    reader = threading.Thread(target=read_acks, daemon=True)
    started = time.perf_counter()
    reader.start()
    step = 250
    for first in range(0, len(packets), step):
        chunk = packets[first : first + step]
        for _ in chunk:
            free.acquire()
        sock.sendall(b"".join(chunk))
    reader.join(120)
    elapsed = time.perf_counter() - started
    sock.sendall(b"\xe0\x00")
    sock.close()
    assert acked[0] == len(packets), f"{acked[0]} of {len(packets)} acknowledged"
    return len(items) / elapsed


def _publish_process(port: int, items: list[tuple[str, bytes, bool]], raw: bool) -> None:
    if raw:
        publish_raw(port, items)
    else:
        publish(port, items)


def live_run(
    runtime: Runtime,
    port: int,
    items: list[tuple[str, bytes, bool]],
    publishers: int,
    timeout_s: float,
    raw: bool = True,
    processes: Processes | None = None,
) -> tuple[float, float, int]:
    """Publish from several processes while our ingestion stores; return (publish, store) rates
    and the deliveries the ingestion found stored already (doubled)."""
    if processes is None:
        ingestor = Ingestor(runtime, f"bench-live-ingest-{uuid.uuid4().hex[:6]}")
        ingestor.start()
        assert ingestor.connection.subscribed.wait(10)
        stored = lambda: ingestor.stats.readings  # noqa: E731
    else:  # the group's sessions persist: what is published before they connect waits for them
        processes.start()
        stored = processes.stored
    share = [items[n::publishers] for n in range(publishers)]
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_publish_process, args=(port, part, raw)) for part in share]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout_s)
    published_s = time.perf_counter() - started
    deadline = started + timeout_s
    while stored() < len(items) and time.perf_counter() < deadline:
        time.sleep(0.01)
    stored_s = time.perf_counter() - started
    rate = stored() / stored_s
    if processes is None:
        ingestor.stop()
        return len(items) / published_s, rate, ingestor.stats.duplicates
    processes.stop()
    return len(items) / published_s, rate, processes.duplicates


def rounds(
    args: argparse.Namespace,
    runtime: Runtime,
    port: int,
    sensor_ids: list[str],
    profiled: Profiled,
    processes: Processes | None,
) -> dict:
    """Alternate bare and ours over `args.rounds` rounds of a fresh identical backlog each."""
    settings = runtime.settings
    bare_id, ours_id = f"bench-bare-{uuid.uuid4().hex[:6]}", f"bench-ours-{uuid.uuid4().hex[:6]}"
    create_sessions(port, settings, [bare_id] if processes else [bare_id, ours_id])
    bare_rates, ours_rates, per_round = [], [], []
    published = delivered = duplicates = 0
    share = 0.0
    for number in range(args.rounds):
        backlog = payloads(sensor_ids, args.readings, offset=number * args.readings)
        share = out_of_range_share(backlog)
        rate = publish(port, backlog)
        published += len(backlog)
        order = ("bare", "ours") if number % 2 == 0 else ("ours", "bare")
        figures: dict = {"round": number + 1, "order": "/".join(order), "publish_rate": round(rate)}
        for who in order:
            if who == "bare":
                bare = drain_bare(port, settings, bare_id, len(backlog), args.timeout_s)
                bare_rates.append(bare)
                figures["bare_rate"] = round(bare)
            elif processes is not None:
                ours = processes.run(len(backlog), args.timeout_s)
                ours_rates.append(ours)
                delivered += processes.readings
                duplicates += processes.duplicates
                figures["ours_rate"] = round(ours)
                figures["caught_up_s"] = round(catch_up(runtime, args.timeout_s), 2)
            else:
                ours, ingestor = drain_ours(
                    runtime, ours_id, len(backlog), args.timeout_s, profiled
                )
                ours_rates.append(ours)
                delivered += ingestor.stats.readings
                duplicates += ingestor.stats.duplicates
                figures["ours_rate"] = round(ours)
                figures["caught_up_s"] = round(catch_up(runtime, args.timeout_s), 2)
        figures["ratio"] = round(figures["ours_rate"] / figures["bare_rate"], 3)
        log(f"round {figures}")
        per_round.append(figures)
    bare_median, ours_median = statistics.median(bare_rates), statistics.median(ours_rates)
    return {
        "readings_per_round": args.readings,
        "rounds": args.rounds,
        "out_of_range_share": round(share, 3),
        "bare_rate_median": round(bare_median),
        "ours_rate_median": round(ours_median),
        "ratio": round(ours_median / bare_median, 3),
        "lost": published - rows(runtime),
        "doubled": duplicates,
        "delivered_beyond_published": delivered - published,
        "per_round": per_round,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--live", type=int, default=30000)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument(
        "--live-publisher",
        choices=("raw", "paho"),
        default="raw",
        help="live run's publishers: pre-encoded MQTT packets on a socket (raw), or paho clients",
    )
    parser.add_argument("--timeout-s", type=float, default=150)
    parser.add_argument("--profile", help="write a cProfile of the writer thread to this file")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="ingestion processes on a shared subscription (1: one ingestion, no sharing)",
    )
    args = parser.parse_args()

    database_url = create_database()
    broker = PrivateMosquitto().start()
    runtime = evaluator = None
    profiled = Profiled(args.profile)
    try:
        overrides = {
            "database_url": database_url,
            "mqtt_url": broker.url,
            "mqtt_topic_prefix": PREFIX,
        }
        runtime = Runtime.from_settings(load_settings(overrides))
        sensor_ids = prepare(runtime, args.sensors)
        evaluator = start_coldchain("evaluate", {"COLDCHAIN_DATABASE_URL": database_url})
        processes = None
        if args.processes > 1:
            processes = Processes.sessions(broker.port, runtime.settings, overrides, args.processes)
        backlog = rounds(args, runtime, broker.port, sensor_ids, profiled, processes)
        stored_before = rows(runtime)
        live = payloads(sensor_ids, args.live, offset=args.rounds * args.readings)
        live_pub, live_rate, live_doubled = live_run(
            runtime,
            broker.port,
            live,
            args.publishers,
            args.timeout_s,
            args.live_publisher == "raw",
            processes,
        )
        live_caught_up = catch_up(runtime, args.timeout_s)
        live_lost = stored_before + len(live) - rows(runtime)
        profiled.save()
        figures = {
            "benchmark": "ingest",
            "receive_maximum": runtime.settings.mqtt_receive_maximum,
            "batch_size": runtime.settings.ingest_batch_size,
            "ingestion_processes": args.processes,
            **backlog,
            "live_readings": len(live),
            "live_publishers": args.publishers,
            "live_publisher": args.live_publisher,
            "live_publish_rate": round(live_pub),
            "live_store_rate": round(live_rate),
            "live_lost": live_lost,
            "live_doubled": live_doubled,
            "live_evaluation_catch_up_s": round(live_caught_up, 2),
            **evaluation_work(runtime),
        }
        figures["goal_met"] = (
            figures["ratio"] >= 0.7
            and figures["ours_rate_median"] >= 8000
            and live_rate >= 7000
            and figures["lost"] == figures["doubled"] == live_lost == 0
            and figures["live_doubled"] == 0
        )
        print(json.dumps(figures))
    finally:
        if evaluator is not None:
            stop(evaluator)
        if runtime is not None:
            runtime.close()
        broker.cleanup()
        drop_database(database_url)


if __name__ == "__main__":
    main()
