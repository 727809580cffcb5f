"""Benchmark: the web app's main pages against /api/health of the same server, under the same load.

Brings up on loopback a fresh PostgreSQL database with a district of 100 centres (each with an
ILR holding stock and open sessions, each ILR with 30 days of one-minute readings loaded with
COPY: 4.3 million rows), a few dozen open alerts, and the app as `coldchain serve` runs it
(gunicorn with config/gunicorn.conf.py). A district officer logs in through the login form.

Load: every endpoint is asked at the same fixed rate (open loop: a request starts every 1/rate
seconds whether or not the last one has answered, from a pool of client threads), one endpoint at
a time, in alternating rounds so a noisy moment of a shared machine hits each alike. A fixed rate
below saturation measures what a person waits for; at saturation p95 measures only the queue.

Pages: home, store (the district store), unit (24 h chart), the 30-day chart, alerts, quarantine,
district overview, centre planner, lot trace; and the two parts a page fetches after it is shown
(the district's session planner table, a unit's 30-day MKT). Goal (issue 14): p95 of each page
<= 5x the p95 of /api/health, and the 30-day chart sends at most 2,000 points. An endpoint's p95 is
taken over all its requests of all rounds; the worst single round's p95 (and its ratio to health's
worst round) is printed beside it. Prints a table, and as its LAST line one JSON object. Stops by
itself and drops its database.

    python benchmarks/pages.py [--centres 100] [--days 30] [--rate 10] [--duration 8]
        [--rounds 2] [--workers N]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import io
import json
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
    create_database,
    drop_database,
    free_port,
    gunicorn_workers,
    log,
    start_gunicorn,  # noqa: E402
)
from harness import stop as stop_process  # noqa: E402

from logistics.config import load_settings  # noqa: E402
from logistics.runtime import Runtime  # noqa: E402
from logistics.services.readings import HOUR_COLUMNS, hour_figures  # noqa: E402

PASSWORD = "bench password 1"
GOAL_RATIO = 5.0
MAX_CHART_POINTS = 2000


def build_schema(runtime: Runtime) -> None:
    """The migrations (the same schema the service runs on)."""
    from logistics.migrate import upgrade

    upgrade(runtime.settings.database_url)


def _store(uow, code: str, name: str, level: str, parent) -> object:
    from logistics.models.catalog import Store

    store = Store(
        code=code, name=name, level_code=level, parent_id=parent.id if parent else None, path="/"
    )
    uow.session.add(store)
    uow.session.flush()
    store.path = f"{parent.path if parent else '/'}{store.id}/"
    return store


def generate(runtime: Runtime, centres: int) -> dict:
    """State -> district -> centres, each with an ILR, stock, two open sessions and a sensor."""
    from logistics.clock import local_date
    from logistics.models.catalog import Lot, Product, StorageUnit
    from logistics.models.readings import Sensor, SensorAssignment
    from logistics.services import sessions as svc
    from logistics.services.alerts import raise_alert
    from logistics.services.auth import create_user
    from logistics.services.reference import seed_reference_data
    from logistics.services.stock import receive_stock, recorded

    now = dt.datetime.now(dt.UTC)
    today = local_date(now, "Asia/Kolkata")
    start = now - dt.timedelta(days=31)
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
        state = _store(uow, "BS", "Bench State", "state", None)
        district = _store(uow, "BS-D1", "Bench District", "district", state)
        product = Product(
            code="COVISHIELD",
            name="Covishield",
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
            expiry_date=today + dt.timedelta(days=365),
        )
        uow.session.add(lot)
        district_unit = StorageUnit(
            store_id=district.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8
        )
        uow.session.add(district_unit)
        units = []
        for n in range(centres):
            centre = _store(uow, f"BS-D1-C{n:04d}", f"PHC {n:04d}", "centre", district)
            unit = StorageUnit(
                store_id=centre.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8
            )
            uow.session.add(unit)
            uow.session.flush()
            sensor = Sensor(sensor_id=f"BS-{n:04d}", expected_interval_s=60, registered_at=start)
            uow.session.add(sensor)
            uow.session.flush()
            uow.session.add(
                SensorAssignment(sensor_id=sensor.sensor_id, unit_id=unit.id, valid_from=start)
            )
            units.append((centre.id, unit.id, sensor.sensor_id))
        uow.commit()
        create_user(
            uow,
            username="bench-district",
            password=PASSWORD,
            roles=[("district_officer", district.id)],
        )
        uow.commit()
        ids = {
            "district": district.id,
            "district_unit": district_unit.id,
            "lot": lot.id,
            "product": product.id,
            "units": units,
        }
    with runtime.uow() as uow:
        receive_stock(
            uow,
            store_id=district.id,
            unit_id=district_unit.id,
            doses=200_000,
            rec=recorded("bench", None, None),
            lot={"lot_id": lot.id},
        )
        uow.commit()
    for number, (centre_id, unit_id, _sensor) in enumerate(units):
        with runtime.uow() as uow:
            receive_stock(
                uow,
                store_id=centre_id,
                unit_id=unit_id,
                doses=2000,
                rec=recorded("bench", None, None),
                lot={"lot_id": lot.id},
            )
            if number % 3 == 0:
                raise_alert(
                    uow,
                    kind="below_min",
                    subject_type="store",
                    subject_id=centre_id,
                    store_id=centre_id,
                    severity="warning",
                    message="under minimum",
                    details={},
                    now=now,
                )
            uow.commit()
        for offset in (1, 2):
            request = svc.SessionRequest(
                centre_id, product.id, today + dt.timedelta(days=offset), 100, "1", 18
            )
            with runtime.uow() as uow:
                svc.open_session(
                    uow,
                    request,
                    actor="bench",
                    now=now,
                    site_timezone="Asia/Kolkata",
                    day_start=dt.time(9),
                    slot_minutes=120,
                    slot_count=4,
                )
                uow.commit()
    return ids


def load_readings(database_url: str, units: list, days: int) -> int:
    """`days` of one-minute readings for every unit, with COPY (the fast bulk path)."""
    import psycopg

    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = end - dt.timedelta(days=days)
    minutes = days * 1440
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    total = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for n, (_centre, unit_id, sensor_id) in enumerate(units):
            buffer = io.StringIO()
            for i in range(minutes):
                ts = start + dt.timedelta(minutes=i)
                temp = (
                    5.0
                    + ((i + n) % 120) / 60
                    - (7.5 if (i // 1440) % 9 == 4 and 600 <= i % 1440 < 700 else 0)
                )
                buffer.write(
                    f"{sensor_id}\t{unit_id}\t{ts.isoformat()}\t{temp:.2f}\t90\tmains"
                    f"\t{end.isoformat()}\tf\n"
                )
            buffer.seek(0)
            with cur.copy(
                "COPY readings (sensor_id, unit_id, ts, temp_c, battery_pct, power, "
                "received_at, late) FROM STDIN"
            ) as copy:
                copy.write(buffer.read())
            total += minutes
        # COPY bypasses the ingestion, which keeps the hourly aggregates: fill them as it would.
        cur.execute(f"INSERT INTO reading_hours {HOUR_COLUMNS} {hour_figures('readings')}")
        conn.commit()
        # Statistics of every table, as autovacuum keeps them on a running server: the district's
        # few hundred stores, sessions and balances were written too fast for it to notice.
        cur.execute("ANALYZE")
        conn.commit()
    return total


def login(base: str) -> requests.Session:
    """A browser-like session logged in through the login form."""
    session = requests.Session()
    form = session.get(f"{base}/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = session.post(
        f"{base}/login",
        data={"username": "bench-district", "password": PASSWORD, "csrf_token": token},
        timeout=30,
    )
    answer.raise_for_status()
    return session


def paths(ids: dict) -> dict[str, str]:
    centre, unit, _ = ids["units"][0]
    return {
        "home": "/",
        "store": f"/stores/{ids['district']}",
        "unit_24h": f"/units/{unit}",
        "chart_30d": f"/units/{unit}/chart?range=30d",
        "alerts": "/alerts",
        "quarantine": "/quarantine",
        "overview": f"/overview/{ids['district']}",
        "overview_planner": f"/overview/{ids['district']}/planner",
        "unit_mkt_30d": f"/units/{unit}/mkt?range=30d",
        "planner": f"/centres/{centre}/planner",
        "lot_trace": f"/lots/{ids['lot']}/trace",
    }


def measure(base: str, path: str, cookies: dict, rate: float, duration_s: float) -> dict:
    """Open-loop load at `rate` requests/s for `duration_s`: p50/p95 latency and errors."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def one() -> None:
        began = time.perf_counter()
        try:
            answer = requests.get(base + path, cookies=cookies, timeout=30, allow_redirects=False)
            ok = answer.status_code == 200
        except requests.RequestException:
            ok = False
        with lock:
            latencies.append((time.perf_counter() - began) * 1000)
            errors[0] += not ok

    count = int(rate * duration_s)
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)
    return {"latencies": latencies, "errors": errors[0]}


def p95(latencies: list[float]) -> float:
    """The 95th percentile (nearest rank) of some latencies."""
    ordered = sorted(latencies)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def summarise(rounds: list[dict]) -> dict:
    """An endpoint's figures over its rounds: p50 and p95 of all its requests, the worst round's
    p95, and the errors."""
    pooled = [ms for one in rounds for ms in one["latencies"]]
    return {
        "requests": len(pooled),
        "p50_ms": round(statistics.median(pooled), 2),
        "p95_ms": round(p95(pooled), 2),
        "worst_round_p95_ms": round(max(p95(one["latencies"]) for one in rounds), 2),
        "errors": sum(one["errors"] for one in rounds),
    }


def chart_points(base: str, path: str, cookies: dict) -> int:
    body = requests.get(base + path, cookies=cookies, timeout=60).text
    data = json.loads(
        re.search(r'type="application/json"[^>]*>(.*?)</script>', body, re.S).group(1)
    )
    return len(data["t"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--centres", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    database_url = create_database()
    server = None
    try:
        runtime = Runtime.from_settings(load_settings({"database_url": database_url}))
        build_schema(runtime)
        started = time.monotonic()
        ids = generate(runtime, args.centres)
        runtime.close()
        rows = load_readings(database_url, ids["units"], args.days)
        log(
            f"generated {args.centres} centres and {rows:,} readings in "
            f"{time.monotonic() - started:.0f} s"
        )
        port = free_port()
        server = start_gunicorn(database_url, port, args.workers)
        workers, worker_class = gunicorn_workers(args.workers)
        base = f"http://127.0.0.1:{port}"
        cookies = login(base).cookies.get_dict()
        targets = {"health": "/api/health", **paths(ids)}
        for path in targets.values():  # warm-up: imports, templates, caches of every worker
            measure(base, path, cookies, args.rate, 1.5)
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, path in targets.items():
                runs[name].append(measure(base, path, cookies, args.rate, args.duration))
        results = {name: summarise(rs) for name, rs in runs.items()}
        baseline = results["health"]["p95_ms"]
        worst_baseline = results["health"]["worst_round_p95_ms"]
        for name, result in results.items():
            result["ratio"] = round(result["p95_ms"] / baseline, 2)
            result["worst_round_ratio"] = round(result["worst_round_p95_ms"] / worst_baseline, 2)
            print(
                f"{name:<16} p50 {result['p50_ms']:>7.2f} ms  p95 {result['p95_ms']:>7.2f} ms"
                f"  x{result['ratio']:<5}  worst round p95 {result['worst_round_p95_ms']:>7.2f} ms"
                f"  x{result['worst_round_ratio']:<5}  errors {result['errors']}"
            )
        points = chart_points(base, targets["chart_30d"], cookies)
        pages = {k: v for k, v in results.items() if k != "health"}
        summary = {
            "benchmark": "pages",
            "centres": args.centres,
            "readings": rows,
            "rate_rps": args.rate,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "workers": f"{workers} {worker_class}",
            "baseline_p95_ms": baseline,
            "pages": pages,
            "chart_30d_points": points,
            "worst_ratio": max(r["ratio"] for r in pages.values()),
            "worst_round_worst_ratio": max(r["worst_round_ratio"] for r in pages.values()),
            "goal_met": all(r["ratio"] <= GOAL_RATIO and r["errors"] == 0 for r in pages.values())
            and points <= MAX_CHART_POINTS
            and results["health"]["errors"] == 0,
        }
        print(json.dumps(summary))
    finally:
        if server is not None:
            stop_process(server)
        drop_database(database_url)


if __name__ == "__main__":
    main()
