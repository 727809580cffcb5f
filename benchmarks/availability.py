"""Benchmark: the public availability API under load, against /api/health of the same server.

Brings up on loopback: a fresh PostgreSQL database with a generated state of several districts
(the centres spread over them, each with stock and sessions on 7 days), the app as
`coldchain serve` runs it in production (gunicorn with config/gunicorn.conf.py: sync workers, one
per CPU core; see that file for why) on a free port, and a background process that books,
cancels, resizes sessions and quarantines/releases stock the whole time, about 30 changes a second
(every change bumps the district's availability version, so every worker's cache keeps being
invalidated). The load comes from `wrk` in another process (installed with apt-get when missing);
its requests spread over every district, a sample of centres spread over them, and all 7 dates, so
caches hold many keys, as the portal's did. Rate limiting is ON as in production (auth.rate_limit,
default 100 per 5 minutes per address), its counters in the machine's Redis (a key prefix of this
run): each request carries an X-Forwarded-For address drawn from 65,536 (one trusted proxy hop),
so the limiter counts real keys without refusing the load. Prints requests/s, p99 latency and
errors of both endpoints, and as its LAST line one JSON object. Goal (issue 5): availability >=
half the baseline's requests/s, p99 < 50 ms, no errors. While availability is loaded, a probe
books at a centre of its own and polls the public API until the answer shows the booking: the lag
is how stale answers are under load (< 1 s). The two endpoints are measured in alternating
rounds, so a noisy moment of a shared machine hits both; compare p99 with the baseline's p99 of
the same run. Stops by itself, drops its database.

wrk keeps 16 connections open (2 threads of 8): several times the workers of a small machine, so
the server is saturated the whole time and waiting in its queue shows in p99, as it would behind
a proxy with a pool of upstream connections. More connections only add queueing that no server
set-up can remove (p99 grows with connections / throughput). Sync workers close each connection
after its answer, for /api/health as for availability, so wrk reconnects for every request of
both endpoints.

    python benchmarks/availability.py [--centres 100] [--districts 8] [--duration 10] [--rounds 2]
        [--workers N] [--threads N (gthread workers instead, for comparison)] [--connections 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.request import Request, urlopen

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
    create_database,
    drop_database,
    free_port,
    gunicorn_workers,
    start_gunicorn,
)
from harness import stop as stop_process  # noqa: E402

from logistics.config import load_settings  # noqa: E402
from logistics.runtime import Runtime  # noqa: E402

SITE_TZ = "Asia/Kolkata"
DAYS = (1, 2, 3, 4, 5, 6, 7)
REDIS_URL = os.environ.get("COLDCHAIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


# --- database ----------------------------------------------------------------------------------


def build_schema(runtime: Runtime) -> None:
    """The migrations when there are any, else the models' schema (the same tables)."""
    from sqlalchemy import inspect

    import logistics.models  # noqa: F401
    from logistics.db import Base
    from logistics.migrate import upgrade

    try:
        upgrade(runtime.settings.database_url)
    except Exception as exc:  # no revision yet in this tree
        print(f"migrations not applied ({type(exc).__name__}); building the schema from the models")
    if "vaccination_sessions" not in inspect(runtime.engine).get_table_names():
        Base.metadata.create_all(runtime.engine)


def today() -> dt.date:
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(SITE_TZ)).date()


def generate(runtime: Runtime, centres: int, districts: int) -> dict:
    """A state of `districts` districts sharing `centres` centres, stock and sessions on 7 days."""
    from logistics.models.catalog import Lot, Product, StorageUnit, Store
    from logistics.services import sessions as svc
    from logistics.services.reference import seed_reference_data
    from logistics.services.stock import receive_stock, recorded

    now = dt.datetime.now(dt.UTC)
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
        state = Store(code="BS", name="Bench State", level_code="state", path="/")
        uow.session.add(state)
        uow.session.flush()
        state.path = f"/{state.id}/"
        district_rows = []
        for d in range(districts):
            district = Store(
                code=f"BS-D{d + 1}",
                name=f"Bench District {d + 1}",
                level_code="district",
                parent_id=state.id,
            )
            uow.session.add(district)
            uow.session.flush()
            district.path = f"{state.path}{district.id}/"
            district_rows.append(district)
        product = Product(
            code="COVISHIELD",
            name="COVISHIELD",
            doses_per_vial=10,
            min_temp_c=2,
            max_temp_c=8,
            freeze_sensitive=True,
            open_vial_life_min=240,
        )
        uow.session.add(product)
        uow.session.flush()
        lot = Lot(
            product_id=product.id,
            lot_number="BENCH-1",
            manufacturer="SII",
            expiry_date=today() + dt.timedelta(days=365),
        )
        uow.session.add(lot)
        rows = []
        for n in range(centres):
            district = district_rows[n % districts]
            centre = Store(
                code=f"{district.code}-C{n:04d}",
                name=f"PHC {n:04d}",
                level_code="centre",
                parent_id=district.id,
            )
            uow.session.add(centre)
            uow.session.flush()
            centre.path = f"{district.path}{centre.id}/"
            unit = StorageUnit(
                store_id=centre.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8
            )
            uow.session.add(unit)
            uow.session.flush()
            rows.append((centre.id, unit.id))
        uow.commit()
        ids = {
            "district": district_rows[0].id,
            "districts": [d.id for d in district_rows],
            "product": product.id,
            "lot": lot.id,
            "centres": rows,
        }
    for centre_id, unit_id in rows:
        with runtime.uow() as uow:
            receive_stock(
                uow,
                store_id=centre_id,
                unit_id=unit_id,
                doses=2000,
                rec=recorded("bench", None, None, SITE_TZ),
                lot={"lot_id": ids["lot"]},
            )
            uow.commit()
        for offset in DAYS:
            for dose in ("1", "2"):
                request = svc.SessionRequest(
                    centre_id, ids["product"], today() + dt.timedelta(days=offset), 100, dose, 18
                )
                with runtime.uow() as uow:
                    svc.open_session(
                        uow,
                        request,
                        actor="bench",
                        now=now,
                        site_timezone=SITE_TZ,
                        day_start=dt.time(9),
                        slot_minutes=120,
                        slot_count=4,
                    )
                    uow.commit()
    ids["probe"] = add_probe_centre(runtime, ids["district"], ids, now)
    return ids


def add_probe_centre(runtime: Runtime, district_id: int, ids: dict, now: dt.datetime) -> dict:
    """A centre only the staleness probe books at: the probe knows exactly what it should see."""
    from logistics.models.catalog import StorageUnit, Store
    from logistics.services import sessions as svc
    from logistics.services.stock import receive_stock, recorded

    with runtime.uow() as uow:
        district = uow.session.get(Store, district_id)
        centre = Store(
            code="BS-D1-PROBE", name="PHC probe", level_code="centre", parent_id=district_id
        )
        uow.session.add(centre)
        uow.session.flush()
        centre.path = f"{district.path}{centre.id}/"
        unit = StorageUnit(store_id=centre.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8)
        uow.session.add(unit)
        uow.session.flush()
        receive_stock(
            uow,
            store_id=centre.id,
            unit_id=unit.id,
            doses=5000,
            rec=recorded("bench", None, None, SITE_TZ),
            lot={"lot_id": ids["lot"]},
        )
        uow.commit()
        request = svc.SessionRequest(
            centre.id,
            ids["product"],
            today() + dt.timedelta(days=1),
            5000,
            "1",
            18,
            windows=((dt.time(9), dt.time(17)),),
        )
        session = svc.open_session(
            uow,
            request,
            actor="bench",
            now=now,
            site_timezone=SITE_TZ,
            day_start=dt.time(9),
            slot_minutes=120,
            slot_count=4,
        )
        uow.commit()
        return {"centre": centre.id, "session": session.id, "slot": session.slots[0].id}


# --- staleness probe ---------------------------------------------------------------------------


def probe_staleness(database_url: str, port: int, probe: dict, stop, lags: list[float]) -> None:
    """Book at the probe centre, poll the public API until the answer shows it; record the lag."""
    from logistics.services import sessions as svc

    runtime = Runtime.from_settings(
        load_settings({"database_url": database_url, "database_pool_size": 1})
    )
    day = (today() + dt.timedelta(days=1)).strftime("%d-%m-%Y")
    url = (
        f"http://127.0.0.1:{port}/api/v2/appointment/sessions/public/findByCenter"
        f"?center_id={probe['centre']}&date={day}"
    )

    def seen() -> int:
        # An address of its own per poll, like the load's: the rate limit counts, never refuses.
        address = f"10.255.{random.randrange(256)}.{random.randrange(256)}"
        with urlopen(Request(url, headers={"X-Forwarded-For": address}), timeout=5) as response:
            return json.loads(response.read())["sessions"][0]["available_capacity"]

    expected = seen()
    while not stop.is_set():
        with runtime.uow() as uow:
            svc.book_slot(
                uow,
                session_id=probe["session"],
                slot_id=probe["slot"],
                beneficiary=uuid.uuid4().hex[:16],
                actor="probe",
                now=dt.datetime.now(dt.UTC),
                site_timezone=SITE_TZ,
            )
            uow.commit()
        committed, expected = time.monotonic(), expected - 1
        while seen() != expected and time.monotonic() - committed < 5:
            time.sleep(0.01)
        lags.append(time.monotonic() - committed)
        stop.wait(0.25)
    runtime.close()


# --- background changes ------------------------------------------------------------------------


def change_forever(database_url: str, ids: dict, stop: mp.Event, counter: mp.Value) -> None:
    """Book, cancel, resize and quarantine/release stock until told to stop (own process)."""
    from sqlalchemy import select

    from logistics.domain.errors import DomainError
    from logistics.models.sessions import Session, Slot
    from logistics.models.stock import StockBalance
    from logistics.services import commitments
    from logistics.services import sessions as svc

    runtime = Runtime.from_settings(
        load_settings({"database_url": database_url, "database_pool_size": 2})
    )
    rng = random.Random(7)
    with runtime.uow() as uow:
        probe = ids["probe"]["session"]
        query = select(Slot.session_id, Slot.id).where(Slot.session_id != probe)
        slots = list(uow.session.execute(query))
        sessions = list(uow.session.scalars(select(Session.id).where(Session.id != probe)))
    bookings: list[int] = []
    while not stop.is_set():
        now = dt.datetime.now(dt.UTC)
        action = rng.random()
        try:
            with runtime.uow() as uow:
                if action < 0.6 or not bookings:
                    session_id, slot_id = rng.choice(slots)
                    booking = svc.book_slot(
                        uow,
                        session_id=session_id,
                        slot_id=slot_id,
                        beneficiary=uuid.uuid4().hex[:16],
                        actor="bench",
                        now=now,
                        site_timezone=SITE_TZ,
                    )
                    uow.commit()
                    bookings.append(booking.id)
                elif action < 0.85:
                    svc.cancel_booking(
                        uow,
                        booking_id=bookings.pop(rng.randrange(len(bookings))),
                        actor="bench",
                        now=now,
                    )
                    uow.commit()
                elif action < 0.95:
                    svc.resize_session(
                        uow,
                        session_id=rng.choice(sessions),
                        capacity=rng.choice((90, 100, 110)),
                        actor="bench",
                        now=now,
                        site_timezone=SITE_TZ,
                    )
                    uow.commit()
                else:  # a temperature alarm holds stock, or the review releases it
                    centre_id, unit_id = rng.choice(ids["centres"])
                    balance = uow.session.scalars(
                        select(StockBalance).where(StockBalance.unit_id == unit_id)
                    ).one()
                    balance.quarantined_doses = 0 if balance.quarantined_doses else 1500
                    commitments.check_commitments(uow, centre_id, now, site_timezone=SITE_TZ)
                    uow.commit()
            with counter.get_lock():
                counter.value += 1
        except DomainError:
            pass  # a full slot or a refused resize is part of the traffic
        time.sleep(0.02)
    runtime.close()


# --- server and load ---------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian when missing (apt-get update only if needed)."""
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


LUA = """
local paths = {%s}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(seed * 7919 + os.time())
end
function request()
  local address = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. ".1"
  return wrk.format("GET", paths[math.random(#paths)], {["X-Forwarded-For"] = address})
end
"""


def lua_script(paths: list[str], directory: str) -> str:
    path = os.path.join(directory, "paths.lua")
    with open(path, "w") as fh:
        fh.write(LUA % ", ".join(json.dumps(p) for p in paths))
    return path


def _latency_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(wrk: str, url: str, script: str, duration_s: int, connections: int) -> dict:
    command = [
        wrk,
        "-t",
        "2",
        "-c",
        str(connections),
        "-d",
        f"{duration_s}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        script,
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = _latency_ms(re.search(r"\s99%\s+(\S+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(map(int, sockets.groups())) if sockets else 0
    )
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return {"rps": round(rps, 1), "p99_ms": round(p99, 2), "errors": errors, "requests": requests}


def availability_paths(ids: dict, centres_sample: int = 40) -> list[str]:
    """Mostly by district (the portal's question), some by centre: every district, a sample of
    centres spread over them, on all 7 session days."""
    base = "/api/v2/appointment/sessions/public"
    step = max(1, len(ids["centres"]) // centres_sample)
    paths = []
    for offset in DAYS:
        day = (today() + dt.timedelta(days=offset)).strftime("%d-%m-%Y")
        for district_id in ids["districts"]:
            paths += [f"{base}/findByDistrict?district_id={district_id}&date={day}"] * 2
        paths += [
            f"{base}/findByCenter?center_id={c}&date={day}" for c, _ in ids["centres"][::step]
        ]
    return paths


def rate_limit_env() -> dict[str, str]:
    """The production rate limit, counted in Redis under a prefix of this run only."""
    return {
        "COLDCHAIN_AUTH_RATE_LIMIT": load_settings().auth_rate_limit,
        "COLDCHAIN_AUTH_RATE_LIMIT_STORAGE": REDIS_URL,
        "COLDCHAIN_AUTH_RATE_LIMIT_KEY_PREFIX": f"bench-avail-{uuid.uuid4().hex[:8]}",
        "COLDCHAIN_AUTH_PROXY_HOPS": "1",
    }


def combine(results: list[dict]) -> dict:
    """Rounds of one endpoint: mean requests/s, the worst p99, all errors."""
    return {
        "rps": round(sum(r["rps"] for r in results) / len(results), 1),
        "p99_ms": max(r["p99_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--centres", type=int, default=100)
    parser.add_argument("--districts", type=int, default=8)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument(
        "--workers", type=int, default=None, help="default: config/gunicorn.conf.py's (per core)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="gthread workers with this many threads (default: the configured sync workers)",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per endpoint")
    parser.add_argument(
        "--no-changes", action="store_true", help="no background changes (diagnosis)"
    )
    args = parser.parse_args()

    wrk = ensure_wrk()
    database_url = create_database()
    server = changer = None
    stop = mp.Event()
    try:
        runtime = Runtime.from_settings(load_settings({"database_url": database_url}))
        build_schema(runtime)
        started = time.monotonic()
        ids = generate(runtime, args.centres, args.districts)
        runtime.close()
        print(
            f"generated {args.districts} districts, {args.centres} centres, "
            f"{args.centres * len(DAYS) * 2} sessions "
            f"in {time.monotonic() - started:.1f} s"
        )
        port = free_port()
        limits = rate_limit_env()
        server = start_gunicorn(database_url, port, args.workers, args.threads, env=limits)
        workers, worker_class = gunicorn_workers(args.workers)
        if args.threads:
            worker_class = f"gthread x{args.threads}"
        print(f"gunicorn: {workers} {worker_class} workers (config/gunicorn.conf.py)")
        counter = mp.Value("i", 0)
        changer = mp.Process(
            target=change_forever, args=(database_url, ids, stop, counter), daemon=True
        )
        if not args.no_changes:
            changer.start()
        with tempfile.TemporaryDirectory() as tmp:
            base = f"http://127.0.0.1:{port}"
            health = lua_script(["/api/health"], tmp)
            avail = lua_script(availability_paths(ids), tmp)
            for script in (health, avail):  # warm-up: imports, caches, connections of every worker
                run_wrk(wrk, base, script, 3, args.connections)
            before, started = counter.value, time.monotonic()
            runs: dict[str, list[dict]] = {"health": [], "availability": []}
            lags: list[float] = []
            for _ in range(args.rounds):  # alternate, so a noisy moment hits both endpoints alike
                runs["health"].append(run_wrk(wrk, base, health, args.duration, args.connections))
                probe_stop = threading.Event()
                prober = threading.Thread(
                    target=probe_staleness,
                    args=(database_url, port, ids["probe"], probe_stop, lags),
                )
                prober.start()
                runs["availability"].append(
                    run_wrk(wrk, base, avail, args.duration, args.connections)
                )
                probe_stop.set()
                prober.join(30)
            changes, elapsed = counter.value - before, time.monotonic() - started
        for name, results in runs.items():
            print(
                f"{name} rounds: "
                + "; ".join(f"{r['rps']} req/s p99 {r['p99_ms']} ms" for r in results)
            )
        baseline, availability = combine(runs["health"]), combine(runs["availability"])
        ratio = availability["rps"] / baseline["rps"] if baseline["rps"] else 0.0
        figures = {
            "benchmark": "availability",
            "workers": workers,
            "worker_class": worker_class,
            "connections": args.connections,
            "duration_s": args.duration,
            "centres": args.centres,
            "districts": args.districts,
            "dates": len(DAYS),
            "distinct_paths": len(set(availability_paths(ids))),
            "rate_limit": limits["COLDCHAIN_AUTH_RATE_LIMIT"],
            "rate_limit_storage": limits["COLDCHAIN_AUTH_RATE_LIMIT_STORAGE"],
            "health_rps": baseline["rps"],
            "health_p99_ms": baseline["p99_ms"],
            "health_errors": baseline["errors"],
            "availability_rps": availability["rps"],
            "availability_p99_ms": availability["p99_ms"],
            "availability_errors": availability["errors"],
            "rps_ratio": round(ratio, 2),
            "background_changes": changes,
            "background_changes_per_s": round(changes / elapsed, 1),
            "rounds": args.rounds,
            "staleness_probes": len(lags),
            "staleness_max_s": round(max(lags), 3) if lags else None,
            "staleness_p50_s": round(sorted(lags)[len(lags) // 2], 3) if lags else None,
            "availability_p99_vs_health": round(availability["p99_ms"] / baseline["p99_ms"], 2)
            if baseline["p99_ms"]
            else None,
            "goal_met": ratio >= 0.5
            and availability["p99_ms"] < 50
            and availability["errors"] == 0,
        }
        print(
            f"health:       {baseline['rps']:>9.1f} req/s  p99 {baseline['p99_ms']:.2f} ms  "
            f"errors {baseline['errors']}"
        )
        print(
            f"availability: {availability['rps']:>9.1f} req/s  p99 {availability['p99_ms']:.2f} ms "
            f"errors {availability['errors']}  (ratio {ratio:.2f}; {changes} background changes)"
        )
        if lags:
            print(
                f"staleness under load: {len(lags)} probes, median {figures['staleness_p50_s']} s, "
                f"max {figures['staleness_max_s']} s (from commit to the public answer)"
            )
        print(json.dumps(figures))
    finally:
        stop.set()
        if changer is not None and changer.pid is not None:
            changer.join(10)
            if changer.is_alive():
                changer.terminate()
        if server is not None:
            stop_process(server)
        drop_database(database_url)


if __name__ == "__main__":
    main()
