"""Benchmark: time from a reading published over MQTT to its alert visible through the HTTP API.

The probe units keep the DEFAULT rules (30-DTR practice: heat alarm after 10 hours at or above
+8 C, freeze alarm after 60 minutes at or below -0.5 C). Each already holds back-dated readings of
an excursion just short of its alarm (every 10 minutes: 9 h 51 min at +9 C, or 51 min at -1 C,
ending 10 minutes before `start`); the probe publishes the reading at `start` that completes it
and polls GET /api/alerts until the unit's heat or freeze alarm is listed. Heat and freeze probes
alternate. Measured twice in the same run: (a) baseline, no other traffic; (b) while background
publishers send ~1,000 readings a second (QoS 1) from 200 sensors, one sensor-minute apart, 5% of
them out of range in runs of 70 minutes (freezing ones reach the freeze alarm, heat ones the heat
warning), so the background opens and closes excursions and alarms of its own. At least 100
probes under load; p99 is the 99th percentile interpolated between ranks (statistics.quantiles,
inclusive), not the largest value, which is reported apart. Prints p50/p99 of both, their
ratio, and the background rate actually stored. Goal: p99 under 2 s under load.

Everything runs on 127.0.0.1 and stops by itself: a fresh PostgreSQL database (dropped at the
end), a private Mosquitto (project configuration), the `coldchain ingest` and `coldchain evaluate`
processes and gunicorn.
Usage: python benchmarks/alerts.py [--rate 1000] [--probes 100] [--idle-probes 30] [--workers 2]
       [--evaluators 1]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
    admin_token,
    create_database,
    drop_database,
    free_port,
    log,
    start_coldchain,
    start_gunicorn,
    stop,
)

from logistics.config import load_settings  # noqa: E402
from logistics.db import Base, UnitOfWork, make_engine, make_session_factory  # noqa: E402
from logistics.runtime import Runtime  # noqa: E402
from logistics.services import catalog  # noqa: E402
from logistics.services.reference import seed_reference_data  # noqa: E402

BACKGROUND_SENSORS = 200
SEED_STEP = dt.timedelta(minutes=10)
# Back-dated excursions one step short of the default alarms (config/defaults.toml [excursions]).
EXCURSIONS = {
    "heat_alarm": (9.0, dt.timedelta(hours=10)),
    "cold_alarm": (-1.0, dt.timedelta(minutes=60)),
}
TOPIC = "coldchain/sensors/{}/readings"


def iso(ts: dt.datetime) -> str:
    return ts.isoformat()


def probe_kind(index: int) -> str:
    """Heat and freeze probes alternate."""
    return "heat_alarm" if index % 2 == 0 else "cold_alarm"


def seeded_readings(sensor_id: str, kind: str, start: dt.datetime) -> list:
    """The back-dated excursion of a probe: from one alarm duration plus a minute before `start`
    to one step before it, so only the reading at `start` reaches the alarm."""
    from logistics.domain.readings import SensorReading

    temp_c, duration = EXCURSIONS[kind]
    ts, out = start - duration - dt.timedelta(minutes=1), []
    while ts <= start - SEED_STEP:
        out.append(SensorReading(sensor_id=sensor_id, ts=ts, temp_c=temp_c, received_at=start))
        ts += SEED_STEP
    return out


def setup(url: str, probes: int, start: dt.datetime) -> dict:
    """Stores, units, sensors; probe units on the default rules with back-dated excursions."""
    from logistics.services.excursions import evaluate_units
    from logistics.services.readings import record_readings
    from logistics.services.sensors import register_sensor

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    runtime = Runtime(load_settings({"database_url": url}), engine, make_session_factory(engine))
    uow = UnitOfWork(runtime.session_factory)
    with uow:
        seed_reference_data(uow)
        uow.commit()
        state = catalog.create_store(uow, code="AS", name="Assam", level_code="state")
        uow.commit()
        bg = catalog.create_store(
            uow, code="BG", name="Background", level_code="district", parent_id=state.id
        )
        uow.commit()
        probe = catalog.create_store(
            uow, code="PR", name="Probes", level_code="district", parent_id=state.id
        )
        uow.commit()
        bg_id, probe_id = bg.id, probe.id
        token = admin_token(uow)
    with uow:
        for i in range(BACKGROUND_SENSORS):
            unit = catalog.create_unit(
                uow, store_id=bg_id, code=f"ILR-{i}", kind="ilr", min_temp_c=2, max_temp_c=8
            )
            uow.commit()
            register_sensor(
                uow,
                sensor_id=f"bg-{i}",
                unit_id=unit.id,
                valid_from=start - dt.timedelta(days=1),
                actor="bench",
                now=start,
                expected_interval_s=3600,
            )
            uow.commit()
    probe_units = {}
    with uow:
        for i in range(probes + 1):  # the last one warms the path up, untimed
            unit = catalog.create_unit(
                uow, store_id=probe_id, code=f"P-{i}", kind="ilr", min_temp_c=2, max_temp_c=8
            )
            uow.commit()
            register_sensor(
                uow,
                sensor_id=f"probe-{i}",
                unit_id=unit.id,
                valid_from=start - dt.timedelta(days=1),
                actor="bench",
                now=start,
                expected_interval_s=3600,
            )
            uow.commit()
            probe_units[f"probe-{i}"] = (unit.id, probe_kind(i))
        first = [
            reading
            for sensor_id, (_, kind) in probe_units.items()
            for reading in seeded_readings(sensor_id, kind, start)
        ]
        touched = record_readings(uow, first, start)
        uow.commit()
    evaluate_units(runtime, touched, start)
    engine.dispose()
    return {"token": token, "probe_store": probe_id, "probe_units": probe_units}


def start_ingest(url: str, broker_url: str) -> subprocess.Popen:
    return start_coldchain(
        "ingest",
        {
            "COLDCHAIN_DATABASE_URL": url,
            "COLDCHAIN_MQTT_URL": broker_url,
            "COLDCHAIN_MQTT_CLIENT_ID": f"bench-ingest-{uuid.uuid4().hex[:6]}",
        },
    )


def mqtt_client(port: int, name: str):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


BACKGROUND_STEP = dt.timedelta(minutes=1)  # sensor time between two readings of one sensor
CYCLE, RUN = 1400, 70  # per sensor, 70 readings in 1,400 (5%) outside the range, in one run


def background_temp_c(sensor: int, step: int) -> float:
    """In range but for runs of 70 sensor-minutes in every 1,400 (5%), shifted per sensor:
    freezing runs (-2 C) reach the freeze alarm (60 min), heat runs (+12 C) the heat warning."""
    phase = (step + sensor * 7) % CYCLE
    if phase < RUN:
        return -2.0 if ((step + sensor * 7) // CYCLE + sensor) % 2 else 12.0
    return 4.0 + ((sensor + step) % 20) / 10


def background(
    port: int, sensors: range, rate: float, seconds: float, start: dt.datetime, counter
) -> None:
    """Publish readings round-robin over `sensors` at `rate` a second, in small chunks."""
    client = mqtt_client(port, f"bench-bg-{os.getpid()}")
    # `pause` between chunks stays 20 ms: the reading's step (its sensor-minute) is another
    # variable. Sharing one name made the pause grow with every round of sensors, so the
    # background came in bursts of thousands of readings seconds apart, not at `rate` a second.
    pause, sent, began = 0.02, 0, time.monotonic()
    tick = 0
    while time.monotonic() - began < seconds:
        due = int((time.monotonic() - began) * rate)
        infos = []
        while sent < due:
            sensor = sensors[sent % len(sensors)]
            step = sent // len(sensors)
            ts = start + dt.timedelta(seconds=10) + step * BACKGROUND_STEP
            payload = json.dumps({"ts": iso(ts), "temp_c": background_temp_c(sensor, step)})
            infos.append(client.publish(TOPIC.format(f"bg-{sensor}"), payload, qos=1))
            sent += 1
        tick += 1
        if tick % 25 == 0 and infos:
            infos[-1].wait_for_publish(5)
        time.sleep(pause)
    time.sleep(1)
    client.loop_stop()
    client.disconnect()
    counter.value = sent


def probe_once(
    client,
    http: requests.Session,
    base: str,
    sensor_id: str,
    probe: tuple[int, str],
    store_id: int,
    start: dt.datetime,
    timeout_s: float = 30,
) -> float | None:
    """Publish the reading that completes the alarm; seconds until the API lists the alert."""
    unit_id, kind = probe
    payload = json.dumps({"ts": iso(start), "temp_c": EXCURSIONS[kind][0]})
    began = time.perf_counter()
    client.publish(TOPIC.format(sensor_id), payload, qos=1)
    params = {"store_id": store_id, "kind": kind, "state": "open", "limit": 500}
    while time.perf_counter() - began < timeout_s:
        alerts = http.get(f"{base}/api/alerts", params=params, timeout=10).json()
        if any(a["subject_id"] == str(unit_id) for a in alerts):
            return time.perf_counter() - began
        time.sleep(0.02)
    return None


def percentiles(values: list[float]) -> dict:
    """n, p50, p99 (interpolated between ranks, so not the maximum unless n is tiny) and max."""
    if len(values) < 2:
        return {"n": len(values)}
    ordered = sorted(values)
    p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98]
    return {
        "n": len(values),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(p99, 3),
        "max_s": round(ordered[-1], 3),
    }


def background_excursions(url: str) -> int:
    """Excursions the background traffic's units went through (ended or not)."""
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(
            "SELECT count(*) FROM excursions e JOIN storage_units u ON u.id = e.unit_id "
            "WHERE u.code LIKE 'ILR-%%'"
        ).fetchone()[0]


def stored_readings(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute("SELECT count(*) FROM readings").fetchone()[0]


def run(args: argparse.Namespace) -> dict:
    from sensors.mosquitto import PrivateMosquitto

    url = create_database()
    # Far enough back that the background's sensor time (a minute per reading) stays in the past.
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=26)).replace(microsecond=0)
    procs: list[subprocess.Popen] = []
    broker = PrivateMosquitto()
    try:
        log("setting up the database")
        seeded = setup(url, args.idle_probes + args.probes, start)
        broker.start()
        port = free_port()
        procs.append(start_gunicorn(url, port, args.workers))
        procs.append(start_ingest(url, broker.url))
        for _ in range(args.evaluators):  # several share the queue (FOR UPDATE SKIP LOCKED)
            procs.append(start_coldchain("evaluate", {"COLDCHAIN_DATABASE_URL": url}))
        base = f"http://127.0.0.1:{port}"
        http = requests.Session()
        if seeded["token"]:
            http.headers["Authorization"] = f"Bearer {seeded['token']}"
        client = mqtt_client(broker.port, "bench-probe")
        _wait_for_ingestion(client, url, start)
        for _ in range(2 * args.workers):  # warm every web worker up (imports, pools) before timing
            http.get(f"{base}/api/alerts", params={"store_id": seeded["probe_store"]}, timeout=30)
        probes = list(seeded["probe_units"].items())
        warm_sensor, warm_probe = probes.pop()
        probe_once(client, http, base, warm_sensor, warm_probe, seeded["probe_store"], start)
        log("baseline: probes without background traffic")
        idle_probes, loaded_probes = probes[: args.idle_probes], probes[args.idle_probes :]
        idle = _probes(client, http, base, idle_probes, seeded["probe_store"], start)
        log(f"background: {args.rate:.0f} readings/s from {BACKGROUND_SENSORS} sensors")
        before = stored_readings(url)
        seconds = args.probes * 2.0 + 30
        counters, workers = [], []
        per_process = args.rate / args.publishers
        for index in range(args.publishers):
            counter = multiprocessing.Value("i", 0)
            sensors = range(index, BACKGROUND_SENSORS, args.publishers)
            proc = multiprocessing.Process(
                target=background, args=(broker.port, sensors, per_process, seconds, start, counter)
            )
            proc.start()
            counters.append(counter)
            workers.append(proc)
        time.sleep(5)
        began = time.monotonic()
        count_at = stored_readings(url)
        loaded = _probes(client, http, base, loaded_probes, seeded["probe_store"], start)
        stored_rate = (stored_readings(url) - count_at) / (time.monotonic() - began)
        for proc in workers:
            proc.join(seconds + 30)
        published = sum(c.value for c in counters)
        time.sleep(3)
        client.loop_stop()
        result = {
            "benchmark": "alerts",
            "evaluators": args.evaluators,
            "rules": "defaults (heat alarm 10 h >= +8 C, freeze alarm 60 min <= -0.5 C)",
            "background_out_of_range_share": 0.05,
            "background_excursions": background_excursions(url),
            "background_target_per_s": args.rate,
            "background_stored_per_s_during_probes": round(stored_rate, 1),
            "background_published": published,
            "background_stored": stored_readings(url) - before,
            "idle": percentiles([v for v in idle if v is not None]),
            "loaded": percentiles([v for v in loaded if v is not None]),
            "probes_timed_out": sum(v is None for v in idle + loaded),
        }
        if result["idle"].get("p50_s") and result["loaded"].get("p50_s"):
            result["p99_ratio_loaded_vs_idle"] = round(
                result["loaded"]["p99_s"] / result["idle"]["p99_s"], 2
            )
        result["goal_p99_under_2s"] = bool(result["loaded"].get("p99_s", 99) < 2.0)
        return result
    finally:
        for proc in reversed(procs):
            stop(proc)
        broker.cleanup()
        drop_database(url)


def _wait_for_ingestion(client, url: str, start: dt.datetime) -> None:
    """Publish one reading per background sensor until the ingestion has stored them."""
    deadline, already = time.monotonic() + 60, stored_readings(url)
    while time.monotonic() < deadline:
        # Until the ingestion has subscribed, the broker keeps nothing for it: publish again
        # (duplicates are stored once).
        for i in range(BACKGROUND_SENSORS):
            client.publish(
                TOPIC.format(f"bg-{i}"), json.dumps({"ts": iso(start), "temp_c": 5.0}), qos=1
            )
        for _ in range(10):
            if stored_readings(url) >= already + BACKGROUND_SENSORS:
                return
            time.sleep(0.2)
    raise RuntimeError("the ingestion stored nothing within 60 s")


def _probes(client, http, base, probes, store_id, start) -> list[float | None]:
    out = []
    for sensor_id, probe in probes:
        out.append(probe_once(client, http, base, sensor_id, probe, store_id, start))
        log(f"  {sensor_id}: {out[-1]}")
        time.sleep(0.2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--probes", type=int, default=100, help="probes under load")
    parser.add_argument("--idle-probes", type=int, default=30, help="probes without traffic")
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--evaluators", type=int, default=1, help="`coldchain evaluate` processes")
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
