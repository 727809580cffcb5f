"""Benchmark of the stock ledger on PostgreSQL, through the HTTP API served by gunicorn.

(a) movements recorded per second by several concurrent clients (each on its own lot, then all on
    one shared lot, where every movement waits for the balance row lock), next to the request rate
    of the no-database health endpoint as a baseline;
(b) median time of a balance read with 1,000 and with 1,000,000 movements in the ledger, and their
    ratio (goal: at most 1.5, i.e. a read does not depend on the length of the history).

Everything runs on 127.0.0.1: a fresh database (dropped at the end) and a gunicorn server (stopped
at the end). Usage: python benchmarks/ledger.py [--workers 4] [--clients 8] [--seconds 8]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import admin_token, create_database, drop_database, free_port, log, start_gunicorn  # noqa: E402
from harness import stop as stop_server  # noqa: E402

from logistics.db import (  # noqa: E402
    Base,
    UnitOfWork,  # noqa: E402
    make_engine,
    make_session_factory,
)
from logistics.services import catalog, stock  # noqa: E402
from logistics.services.reference import seed_reference_data  # noqa: E402

BIG_LEDGER = 1_000_000
SMALL_LEDGER = 1_000
READS = 400


def setup(url: str, clients: int) -> dict:
    """Schema, a store with one unit, a product, a lot per client plus shared ones, stock."""
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    uow = UnitOfWork(make_session_factory(engine))
    with uow:
        seed_reference_data(uow)
        uow.commit()
        store = catalog.create_store(uow, code="SVS", name="State store", level_code="state")
        uow.commit()
        unit = catalog.create_unit(
            uow, store_id=store.id, code="WIC-1", kind="walk_in_cooler", min_temp_c=2, max_temp_c=8
        )
        uow.commit()
        product = catalog.create_product(
            uow, code="COVISHIELD", name="Covishield", doses_per_vial=10, min_temp_c=2, max_temp_c=8
        )
        uow.commit()
        expiry = dt.date.today() + dt.timedelta(days=365)
        lots = [
            catalog.create_lot(
                uow,
                {
                    "product_id": product.id,
                    "lot_number": f"L{i}",
                    "manufacturer": "SII",
                    "expiry_date": expiry,
                },
            ).id
            for i in range(clients + 2)
        ]
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        for lot in lots:
            stock.receive_stock(
                uow,
                store_id=store.id,
                unit_id=unit.id,
                doses=10_000_000,
                lot={"lot_id": lot},
                rec=stock.recorded("bench", start, None),
            )
        uow.commit()
        token = admin_token(uow)
    engine.dispose()
    return {
        "store": store.id,
        "unit": unit.id,
        "lots": lots[:clients],
        "shared_lot": lots[-2],
        "read_lot": lots[-1],
        "token": token,
    }


def bulk_ledger(url: str, store: int, unit: int, lot: int, count: int) -> None:
    """Append `count` movements (receipt +10 / consumption -10 alternately, an even count so the
    balance is unchanged) to one unit and lot with SQL, in the past; the balance stays exact."""
    pg_url = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(pg_url, autocommit=False) as conn:
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM movements").fetchone()[0]
        entry_first = conn.execute(
            "SELECT coalesce(max(id), 0) + 1 FROM ledger_entries"
        ).fetchone()[0]
        last = first + count - 1
        params = {
            "first": first,
            "last": last,
            "store": store,
            "unit": unit,
            "lot": lot,
            "entry_first": entry_first,
        }
        conn.execute(
            """
            INSERT INTO movements (id, client_id, kind, store_id, actor, occurred_at, recorded_at)
            SELECT g, 'bulk-' || g,
                   CASE WHEN (g - %(first)s) %% 2 = 0 THEN 'receipt' ELSE 'consumption' END,
                   %(store)s, 'bench',
                   now() - interval '25 days' + (g - %(first)s) * interval '1 second',
                   now()
            FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g""",
            params,
        )
        conn.execute(
            """
            INSERT INTO ledger_entries
                (id, movement_id, store_id, unit_id, lot_id, doses, occurred_at)
            SELECT m.id - %(first)s + %(entry_first)s, m.id, m.store_id, %(unit)s, %(lot)s,
                   CASE WHEN m.kind = 'receipt' THEN 10 ELSE -10 END, m.occurred_at
            FROM movements m WHERE m.id BETWEEN %(first)s AND %(last)s""",
            params,
        )
        for table in ("movements", "ledger_entries"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def check_consistent(url: str) -> bool:
    """Ledger sums equal the stored balances."""
    pg_url = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(pg_url) as conn:
        mismatches = conn.execute("""
            SELECT count(*) FROM stock_balances b
            LEFT JOIN (SELECT unit_id, lot_id, sum(doses) AS total FROM ledger_entries
                       GROUP BY unit_id, lot_id) l USING (unit_id, lot_id)
            WHERE b.doses <> coalesce(l.total, 0)""").fetchone()[0]
    return mismatches == 0


def ledger_size(url: str) -> int:
    pg_url = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM movements").fetchone()[0]


def session_for(token: str | None) -> requests.Session:
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def hammer(base: str, token: str | None, seconds: float, clients: int, make_request) -> dict:
    """Run `clients` threads sending requests for `seconds`; count 2xx answers and refusals."""
    counts = {"ok": 0, "refused": 0, "errors": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        session = session_for(token)
        while time.monotonic() < stop_at:
            response = make_request(session, base, index)
            key = "ok" if response.ok else "refused" if response.status_code < 500 else "errors"
            with lock:
                counts[key] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {**counts, "per_s": round(counts["ok"] / elapsed, 1)}


def consumption(ctx: dict, shared: bool):
    def send(session: requests.Session, base: str, index: int) -> requests.Response:
        lot = ctx["shared_lot"] if shared else ctx["lots"][index]
        body = {
            "client_id": uuid.uuid4().hex,
            "store_id": ctx["store"],
            "unit_id": ctx["unit"],
            "lot_id": lot,
            "doses": 1,
        }
        return session.post(
            f"{base}/api/consumptions",
            json=body,
            headers={"Idempotency-Key": body["client_id"]},
            timeout=30,
        )

    return send


def health(session: requests.Session, base: str, _index: int) -> requests.Response:
    return session.get(f"{base}/api/health", timeout=30)


def median_read_ms(base: str, ctx: dict) -> float:
    session = session_for(ctx["token"])
    url = f"{base}/api/balances?unit_id={ctx['unit']}&lot_id={ctx['read_lot']}"
    for _ in range(30):  # warm up connections and caches
        session.get(url, timeout=30).raise_for_status()
    timings = []
    for _ in range(READS):
        started = time.perf_counter()
        session.get(url, timeout=30).raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def run(args: argparse.Namespace) -> dict:
    url = create_database()
    server = None
    try:
        ctx = setup(url, args.clients)
        base_count = ledger_size(url)
        bulk_ledger(url, ctx["store"], ctx["unit"], ctx["read_lot"], SMALL_LEDGER - base_count)
        port = free_port()
        server = start_gunicorn(url, port, args.workers)
        base = f"http://127.0.0.1:{port}"
        small = median_read_ms(base, ctx)
        log(f"balance read, {ledger_size(url)} movements: median {small} ms")
        log(f"loading {BIG_LEDGER} movements with SQL ...")
        bulk_ledger(url, ctx["store"], ctx["unit"], ctx["read_lot"], BIG_LEDGER - ledger_size(url))
        big = median_read_ms(base, ctx)
        big_count = ledger_size(url)
        log(f"balance read, {big_count} movements: median {big} ms")
        baseline = hammer(base, ctx["token"], args.seconds, args.clients, health)
        log(f"health baseline: {baseline}")
        own_lots = hammer(base, ctx["token"], args.seconds, args.clients, consumption(ctx, False))
        log(f"movements, one lot per client: {own_lots}")
        shared = hammer(base, ctx["token"], args.seconds, args.clients, consumption(ctx, True))
        log(f"movements, one shared lot: {shared}")
        return {
            "benchmark": "ledger",
            "workers": args.workers,
            "clients": args.clients,
            "movements_per_s": own_lots["per_s"],
            "movements_per_s_shared_lot": shared["per_s"],
            "health_per_s": baseline["per_s"],
            "movements_vs_health": round(own_lots["per_s"] / baseline["per_s"], 3),
            "server_errors": own_lots["errors"] + shared["errors"],
            "balance_read_median_ms_1k": small,
            "balance_read_median_ms_1m": big,
            "ledger_movements_big": big_count,
            "read_ratio_1m_vs_1k": round(big / small, 3),
            "read_ratio_goal": 1.5,
            "read_ratio_ok": big / small <= 1.5,
            "ledger_equals_balances": check_consistent(url),
        }
    finally:
        if server is not None:
            stop_server(server)
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
