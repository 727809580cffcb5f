"""Benchmark of the stock ledger on PostgreSQL, through the HTTP API served by gunicorn.

(a) movements recorded per second by several concurrent clients (each on its own lot, then all on
    one shared lot, where every movement waits for the balance row lock), next to the request rate
    of the no-database health endpoint in the same run as a baseline (goal: at least 0.4 of it);
    every guarantee stays on: idempotency keys, the negative-stock and back-dating checks, the
    audit log and the re-check of the store's session promises. The CPU milliseconds each answer
    cost this benchmark's client threads, the web server and PostgreSQL are reported for the
    movements and for health (psutil, over the same seconds): where the cores went;
(b) SQL statements per movement (POST /api/consumptions, counted with a SQLAlchemy
    before_cursor_execute event through the Flask test client), for this tree and for the code of
    `--before REV` (default: the commit before issue 17), each on a fresh database of its own;
(c) history-dependent paths of a lot with 1,000,000 movements against a lot with 1,000 in the same
    ledger, measured in alternating rounds (3 each, medians of the rounds' medians), and their
    ratios (goal: at most 2 each): a consumption back-dated to before the lot's last 500
    entries (which it must keep covered: the same 500 at both sizes); the first page and a middle
    page of the lot's movements (newest first, keyset `before_id`); the first page and a middle
    page of its trace (oldest first, keyset `after_entry_id`). The balance read of the lot with
    1,000 movements and of the lot with 1,000,000 is measured the same way, in alternating rounds
    (goal: ratio at most 1.5); the read before the bulk load is reported apart.

Everything runs on 127.0.0.1: fresh databases (dropped at the end) and a gunicorn server (stopped
at the end). Usage: python benchmarks/ledger.py [--workers 4] [--clients 8] [--seconds 8]
[--before REV]. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import requests

HERE = Path(__file__).resolve().parents[1]
# The code measured: this tree, or (for the statement count of `--before`) an exported revision.
ROOT = Path(os.environ.get("LEDGER_BENCH_CODE", HERE))
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
PAGE_READS = 30
BACKDATED = 20
HISTORY_ROUNDS = 3
LATER_ENTRIES = 500  # a back-dated movement must keep this many later entries covered
PAGE = 100
BEFORE_REV = "1a5a47d"  # the integration branch before issue 17


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
            for i in range(clients + 3)
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
        "small_lot": lots[-3],
        "read_lot": lots[-1],
        "token": token,
    }


def bulk_ledger(url: str, store: int, unit: int, lot: int, count: int) -> None:
    """Append `count` movements (receipt +10 / consumption -10 alternately, an even count so the
    balance is unchanged) to one unit and lot with SQL, in the past; the balance stays exact."""
    count -= count % 2  # an odd count would leave a receipt the stored balance never saw
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


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return float(times.user + times.system)


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by this benchmark (its client threads), the web server (gunicorn's
    arbiter and workers) and PostgreSQL's processes (every backend of the local server: run the
    benchmark on a quiet machine)."""
    server = psutil.Process(server_pid)
    web = [server, *server.children(recursive=True)]
    postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"].startswith("postgres")]
    return {
        "client": _cpu_s(psutil.Process()),
        "web": sum(_cpu_s(p) for p in web),
        "postgresql": sum(_cpu_s(p) for p in postgres),
    }


def hammer(
    base: str, token: str | None, seconds: float, clients: int, make_request, server_pid: int
) -> dict:
    """Run `clients` threads sending requests for `seconds`; count 2xx answers and refusals, and
    the CPU milliseconds each answer cost the client, the web server and PostgreSQL."""
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
    cpu_before = cpu_seconds(server_pid)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu_after = cpu_seconds(server_pid)
    cpu_ms = {
        name: round((cpu_after[name] - cpu_before[name]) * 1000 / max(counts["ok"], 1), 3)
        for name in cpu_before
    }
    return {**counts, "per_s": round(counts["ok"] / elapsed, 1), "cpu_ms_per_answer": cpu_ms}


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


def median_read_ms(base: str, ctx: dict, lot: int) -> float:
    session = session_for(ctx["token"])
    url = f"{base}/api/balances?unit_id={ctx['unit']}&lot_id={lot}"
    for _ in range(30):  # warm up connections and caches
        session.get(url, timeout=30).raise_for_status()
    timings = []
    for _ in range(READS):
        started = time.perf_counter()
        session.get(url, timeout=30).raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def alternating(ctx: dict, measure) -> tuple[list, list]:
    """`measure(lot)` of the small lot (1,000 movements) and the big one (1,000,000) in
    HISTORY_ROUNDS alternating rounds, in the same minutes; the results of each, in order."""
    runs: dict[str, list] = {"small": [], "big": []}
    lots = {"small": ctx["small_lot"], "big": ctx["read_lot"]}
    for number in range(HISTORY_ROUNDS):
        for size in ("small", "big") if number % 2 == 0 else ("big", "small"):
            runs[size].append(measure(lots[size]))
    return runs["small"], runs["big"]


def balance_rounds(base: str, ctx: dict) -> tuple[float, float]:
    """Median balance read of the lot with 1,000 movements and of the lot with 1,000,000, in
    alternating rounds (medians of the rounds' medians): a read measured before the bulk load
    and one after it also compared a quiet database with one still writing out two million new
    rows."""
    small, big = alternating(ctx, lambda lot: median_read_ms(base, ctx, lot))
    return statistics.median(small), statistics.median(big)


def count_statements(movements: int = 5) -> float:
    """SQL statements per POST /api/consumptions of the code under ROOT (median of `movements`),
    on a fresh database; BEGIN and COMMIT are not statements the event sees."""
    from sqlalchemy import event

    from logistics.app import create_app
    from logistics.config import load_settings
    from logistics.runtime import Runtime

    url = create_database()
    try:
        ctx = setup(url, 1)
        runtime = Runtime.from_settings(load_settings({"database_url": url, "auth_rate_limit": ""}))
        statements: list[str] = []
        event.listen(runtime.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        client = create_app(runtime=runtime).test_client()
        counts = []
        for _ in range(movements + 1):  # the first warms caches (reference data, epochs) up
            statements.clear()
            client_id = uuid.uuid4().hex
            response = client.post(
                "/api/consumptions",
                json={
                    "client_id": client_id,
                    "store_id": ctx["store"],
                    "unit_id": ctx["unit"],
                    "lot_id": ctx["lots"][0],
                    "doses": 1,
                },
                headers={"Authorization": f"Bearer {ctx['token']}", "Idempotency-Key": client_id},
            )
            assert response.status_code == 201, response.get_json()
            counts.append(len(statements))
        runtime.close()
        return statistics.median(counts[1:])
    finally:
        drop_database(url)


def statements_of_revision(rev: str) -> float:
    """count_statements for the code of a git revision, exported to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tree:
        archive = subprocess.run(
            ["git", "-C", str(HERE), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--count-statements"],
            env={**os.environ, "LEDGER_BENCH_CODE": tree, "PYTHONPATH": tree},
            check=True,
            capture_output=True,
            text=True,
            cwd=tree,
        ).stdout
        return float(out.strip().splitlines()[-1])


def median_ms(session: requests.Session, send, times: int) -> float:
    """Median milliseconds of `send(session, n)` over `times` calls (after 5 warm-up calls)."""
    for n in range(5):
        send(session, -1 - n).raise_for_status()
    timings = []
    for n in range(times):
        started = time.perf_counter()
        send(session, n).raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def history_point(url: str, lot: int) -> dict:
    """Ids and times to page and back-date from, read from the lot's entries."""
    pg_url = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(pg_url) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM ledger_entries WHERE lot_id = %s", (lot,)
        ).fetchone()
        later_than = conn.execute(
            "SELECT occurred_at FROM ledger_entries WHERE lot_id = %s "
            "ORDER BY occurred_at DESC, id DESC OFFSET %s LIMIT 1",
            (lot, LATER_ENTRIES),
        ).fetchone()[0]
        middle_movement, middle_entry = conn.execute(
            "SELECT movement_id, id FROM ledger_entries WHERE lot_id = %s "
            "ORDER BY occurred_at, id OFFSET %s LIMIT 1",
            (lot, count // 2),
        ).fetchone()
    return {
        "entries": count,
        "backdate_to": later_than,
        "middle_movement": middle_movement,
        "middle_entry": middle_entry,
    }


def history_paths(base: str, url: str, ctx: dict, lot: int) -> dict:
    """Median ms of the history-dependent paths of a lot at its present length."""
    point = history_point(url, lot)
    session = session_for(ctx["token"])

    def backdated(s: requests.Session, n: int) -> requests.Response:
        # Just before the lot's last LATER_ENTRIES entries; each probe a millisecond earlier.
        at = point["backdate_to"] - dt.timedelta(milliseconds=10 + n + 100)
        client_id = uuid.uuid4().hex
        return s.post(
            f"{base}/api/consumptions",
            json={
                "client_id": client_id,
                "store_id": ctx["store"],
                "unit_id": ctx["unit"],
                "lot_id": lot,
                "doses": 1,
                "occurred_at": at.isoformat(),
            },
            headers={"Idempotency-Key": client_id},
            timeout=60,
        )

    def get(path: str):
        return lambda s, _n: s.get(f"{base}{path}", timeout=60)

    movements = f"/api/movements?lot_id={lot}&limit={PAGE}"
    trace = f"/api/lots/{lot}/trace?limit={PAGE}"
    figures = {
        "entries": point["entries"],
        "backdated_movement": median_ms(session, backdated, BACKDATED),
        "movements_first_page": median_ms(session, get(movements), PAGE_READS),
        "movements_middle_page": median_ms(
            session, get(f"{movements}&before_id={point['middle_movement']}"), PAGE_READS
        ),
        "trace_first_page": median_ms(session, get(trace), PAGE_READS),
        "trace_middle_page": median_ms(
            session, get(f"{trace}&after_entry_id={point['middle_entry']}"), PAGE_READS
        ),
    }
    log(f"history paths at {point['entries']} entries of the lot: {figures}")
    return figures


def history_rounds(base: str, url: str, ctx: dict) -> tuple[dict, dict]:
    """history_paths of the small and the big lot in alternating rounds; medians per path."""
    small, big = alternating(ctx, lambda lot: history_paths(base, url, ctx, lot))

    def medians(results: list[dict]) -> dict:
        return {key: statistics.median(r[key] for r in results) for key in results[0]}

    return medians(small), medians(big)


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
        first_read = median_read_ms(base, ctx, ctx["read_lot"])
        log(f"balance read, {ledger_size(url)} movements: median {first_read} ms")
        bulk_ledger(url, ctx["store"], ctx["unit"], ctx["small_lot"], SMALL_LEDGER)
        log(f"loading {BIG_LEDGER} movements with SQL ...")
        bulk_ledger(url, ctx["store"], ctx["unit"], ctx["read_lot"], BIG_LEDGER - ledger_size(url))
        big_count = ledger_size(url)
        small, big = balance_rounds(base, ctx)
        log(f"balance read, lot of {SMALL_LEDGER} vs {big_count} movements: {small} vs {big} ms")
        small_paths, big_paths = history_rounds(base, url, ctx)
        ratios = {
            key: round(big_paths[key] / small_paths[key], 3)
            for key in small_paths
            if key != "entries"
        }
        baseline = hammer(base, ctx["token"], args.seconds, args.clients, health, server.pid)
        log(f"health baseline: {baseline}")
        own_lots = hammer(
            base, ctx["token"], args.seconds, args.clients, consumption(ctx, False), server.pid
        )
        log(f"movements, one lot per client: {own_lots}")
        shared = hammer(
            base, ctx["token"], args.seconds, args.clients, consumption(ctx, True), server.pid
        )
        log(f"movements, one shared lot: {shared}")
        before = statements_of_revision(args.before)
        after = count_statements()
        return {
            "benchmark": "ledger",
            "workers": args.workers,
            "clients": args.clients,
            "movements_per_s": own_lots["per_s"],
            "movements_per_s_shared_lot": shared["per_s"],
            "health_per_s": baseline["per_s"],
            "movements_vs_health": round(own_lots["per_s"] / baseline["per_s"], 3),
            # Where the cores went, per answer: what a movement costs next to a health check.
            "cpu_ms_per_movement": own_lots["cpu_ms_per_answer"],
            "cpu_ms_per_health": baseline["cpu_ms_per_answer"],
            "server_errors": own_lots["errors"] + shared["errors"],
            "balance_read_median_ms_before_load": first_read,
            "balance_read_median_ms_1k": small,
            "balance_read_median_ms_1m": big,
            "ledger_movements_big": big_count,
            "read_ratio_1m_vs_1k": round(big / small, 3),
            "read_ratio_goal": 1.5,
            "read_ratio_ok": big / small <= 1.5,
            "movements_vs_health_goal": 0.4,
            "sql_statements_per_movement_before": before,
            "sql_statements_per_movement_after": after,
            "before_revision": args.before,
            "history_lot_entries_small": small_paths["entries"],
            "history_lot_entries_big": big_paths["entries"],
            "history_ms_small": {k: v for k, v in small_paths.items() if k != "entries"},
            "history_ms_big": {k: v for k, v in big_paths.items() if k != "entries"},
            "history_ratios_big_vs_small": ratios,
            "history_ratio_goal": 2,
            "history_ratios_ok": all(ratio <= 2 for ratio in ratios.values()),
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
    parser.add_argument("--before", default=BEFORE_REV, help="revision whose statements to count")
    parser.add_argument("--count-statements", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_statements:  # run by statements_of_revision inside an exported tree
        print(count_statements())
        return
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
