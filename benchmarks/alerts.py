"""Benchmark: time from a reading published over MQTT to its alert visible through the HTTP API.

A probe unit carries a rule "heat alarm after 1 minute at or above +8 C" and already holds one
reading at 9 C; the probe publishes the next reading (one minute later in sensor time, 9 C) and
polls GET /api/alerts until the unit's heat alarm is listed. Measured twice in the same run:
(a) baseline, no other traffic; (b) while background publishers send ~1,000 in-range readings a
second (QoS 1) from 200 sensors. Prints p50/p99 of both, their ratio, and the background rate
actually stored. Goal: p99 under 2 s under load.

Everything runs on 127.0.0.1 and stops by itself: a fresh PostgreSQL database (dropped at the
end), a private Mosquitto (project configuration), the `coldchain ingest` and `coldchain evaluate`
processes and gunicorn.
Usage: python benchmarks/alerts.py [--rate 1000] [--probes 20] [--workers 2]
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
TOPIC = "coldchain/sensors/{}/readings"


def iso(ts: dt.datetime) -> str:
    return ts.isoformat()


def setup(url: str, probes: int, start: dt.datetime) -> dict:
    """Stores, units, sensors; probe units with a 1-minute heat alarm and a first reading at 9 C."""
    from logistics.domain.readings import SensorReading
    from logistics.services.excursions import evaluate_units
    from logistics.services.readings import record_readings
    from logistics.services.sensors import register_sensor
    from logistics.services.temperature_rules import RuleInput, set_rules

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
        for i in range(probes * 2 + 1):  # the last one warms the path up, untimed
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
            set_rules(
                uow,
                unit_id=unit.id,
                min_temp_c=2,
                max_temp_c=8,
                actor="bench",
                now=start,
                rules=[RuleInput("heat", "alarm", 8.0, "consecutive", 1)],
            )
            uow.commit()
            probe_units[f"probe-{i}"] = unit.id
        first = [
            SensorReading(sensor_id=s, ts=start, temp_c=9.0, received_at=start) for s in probe_units
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


def background(
    port: int, sensors: range, rate: float, seconds: float, start: dt.datetime, counter
) -> None:
    """Publish in-range readings round-robin over `sensors` at `rate` a second, in small chunks."""
    client = mqtt_client(port, f"bench-bg-{os.getpid()}")
    step, sent, began = 0.02, 0, time.monotonic()
    tick = 0
    while time.monotonic() - began < seconds:
        due = int((time.monotonic() - began) * rate)
        infos = []
        while sent < due:
            sensor = sensors[sent % len(sensors)]
            ts = start + dt.timedelta(seconds=10 + sent // len(sensors))
            payload = json.dumps({"ts": iso(ts), "temp_c": 4.0 + (sent % 20) / 10})
            infos.append(client.publish(TOPIC.format(f"bg-{sensor}"), payload, qos=1))
            sent += 1
        tick += 1
        if tick % 25 == 0 and infos:
            infos[-1].wait_for_publish(5)
        time.sleep(step)
    time.sleep(1)
    client.loop_stop()
    client.disconnect()
    counter.value = sent


def probe_once(
    client,
    http: requests.Session,
    base: str,
    sensor_id: str,
    unit_id: int,
    store_id: int,
    start: dt.datetime,
    timeout_s: float = 30,
) -> float | None:
    """Publish the reading that completes the alarm; seconds until the API lists the alert."""
    payload = json.dumps({"ts": iso(start + dt.timedelta(minutes=1)), "temp_c": 9.0})
    began = time.perf_counter()
    client.publish(TOPIC.format(sensor_id), payload, qos=1)
    params = {"store_id": store_id, "kind": "heat_alarm", "state": "open", "limit": 500}
    while time.perf_counter() - began < timeout_s:
        alerts = http.get(f"{base}/api/alerts", params=params, timeout=10).json()
        if any(a["subject_id"] == str(unit_id) for a in alerts):
            return time.perf_counter() - began
        time.sleep(0.02)
    return None


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {
        "n": len(values),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(p99, 3),
        "max_s": round(ordered[-1], 3),
    }


def stored_readings(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute("SELECT count(*) FROM readings").fetchone()[0]


def run(args: argparse.Namespace) -> dict:
    from sensors.mosquitto import PrivateMosquitto

    url = create_database()
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).replace(microsecond=0)
    procs: list[subprocess.Popen] = []
    broker = PrivateMosquitto()
    try:
        log("setting up the database")
        seeded = setup(url, args.probes, start)
        broker.start()
        port = free_port()
        procs.append(start_gunicorn(url, port, args.workers))
        procs.append(start_ingest(url, broker.url))
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
        warm_sensor, warm_unit = probes.pop()
        probe_once(client, http, base, warm_sensor, warm_unit, seeded["probe_store"], start)
        log("baseline: probes without background traffic")
        idle = _probes(client, http, base, probes[: args.probes], seeded["probe_store"], start)
        log(f"background: {args.rate:.0f} readings/s from {BACKGROUND_SENSORS} sensors")
        before = stored_readings(url)
        seconds = args.probes * 1.5 + 15
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
        loaded = _probes(client, http, base, probes[args.probes :], seeded["probe_store"], start)
        stored_rate = (stored_readings(url) - count_at) / (time.monotonic() - began)
        for proc in workers:
            proc.join(seconds + 30)
        published = sum(c.value for c in counters)
        time.sleep(3)
        client.loop_stop()
        result = {
            "benchmark": "alerts",
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
    for sensor_id, unit_id in probes:
        out.append(probe_once(client, http, base, sensor_id, unit_id, store_id, start))
        log(f"  {sensor_id}: {out[-1]}")
        time.sleep(0.2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
