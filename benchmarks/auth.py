"""What authentication, the policy, the audit log and the rate limit cost per request.

In one process, through Flask's test client on a fresh PostgreSQL database (dropped at the end),
each figure next to its baseline measured in the same run with the part switched off:
(a) a public GET (/api/health) with the guard against without it;
(b) a protected read (GET /api/stores/{id}) with a bearer token against the same without the guard;
(c) a scoped district officer's consumption (store lookups for the policy + audit rows) against
    the same request with the guard and the audit log switched off;
(d) one rate-limit count in memory:// and in Redis (127.0.0.1:6379), in microseconds.

Usage: python benchmarks/auth.py [--seconds 3]. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import create_database, drop_database, log  # noqa: E402

from logistics.app import create_app  # noqa: E402
from logistics.auth import web  # noqa: E402
from logistics.config import load_settings  # noqa: E402
from logistics.db import Base, make_session_factory  # noqa: E402
from logistics.runtime import Runtime  # noqa: E402
from logistics.services import auth, catalog  # noqa: E402
from logistics.services.reference import seed_reference_data  # noqa: E402


def setup(runtime: Runtime) -> dict:
    """A state store, a district with a centre and an ILR, stock, and two users with tokens."""
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
        state = catalog.create_store(uow, code="S", name="S", level_code="state")
        uow.commit()
        district = catalog.create_store(
            uow, code="D", name="D", level_code="district", parent_id=state.id
        )
        uow.commit()
        centre = catalog.create_store(
            uow, code="C", name="C", level_code="centre", parent_id=district.id
        )
        uow.commit()
        unit = catalog.create_unit(
            uow, store_id=centre.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8
        )
        uow.commit()
        product = catalog.create_product(
            uow,
            code="P",
            name="P",
            doses_per_vial=10,
            min_temp_c=2,
            max_temp_c=8,
            freeze_sensitive=True,
            open_vial_life_min=240,
            gtin=None,
        )
        uow.commit()
        lot = catalog.create_lot(
            uow,
            {
                "product_id": product.id,
                "lot_number": "L",
                "manufacturer": "M",
                "expiry_date": dt.date(2031, 1, 1),
            },
        )
        uow.commit()
        auth.create_user(uow, username="admin", password=None, roles=["admin"])
        uow.commit()
        auth.create_user(uow, username="dio", password=None, roles=[("district_officer", "D")])
        uow.commit()
        ids = {
            "store": centre.id,
            "unit": unit.id,
            "lot": lot.id,
            "admin": auth.issue_token(uow, username="admin"),
            "dio": auth.issue_token(uow, username="dio"),
        }
        uow.commit()
    return ids


def rate(seconds: float, call: Callable[[int], object]) -> float:
    """Calls a second of `call` (sequential) over about `seconds`."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(count)
        count += 1
    return count / (time.perf_counter() - start)


def without_auth(app, runtime: Runtime) -> None:
    """Switch the guard off and give the views an unaudited session factory."""
    app.before_request_funcs[None].remove(web.guard)
    runtime.session_factory = make_session_factory(runtime.engine)


def receive(client, ids: dict, doses: int) -> None:
    """Put stock in the centre's ILR as the admin."""
    response = client.post(
        "/api/receipts",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": ids["store"],
            "unit_id": ids["unit"],
            "lot_id": ids["lot"],
            "doses": doses,
        },
        headers={"Authorization": f"Bearer {ids['admin']}"},
    )
    assert response.status_code == 201, response.json


def requests_for(client, ids: dict, token: str | None) -> dict[str, Callable[[int], object]]:
    """The three kinds of request measured, as one client sends them."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    consume = {"store_id": ids["store"], "unit_id": ids["unit"], "lot_id": ids["lot"], "doses": 1}
    return {
        "public_get_rps": lambda _: client.get("/api/health"),
        "protected_get_rps": lambda _: client.get(f"/api/stores/{ids['store']}", headers=headers),
        "consumption_rps": lambda _: client.post(
            "/api/consumptions", json={**consume, "client_id": str(uuid.uuid4())}, headers=headers
        ),
    }


def measure(url: str, seconds: float, rounds: int = 3) -> dict:
    """Every figure with its baseline, alternating rounds (best of each: the machine is shared)."""
    settings = load_settings({"database_url": url, "auth_rate_limit": ""})
    runtime = Runtime.from_settings(settings)
    Base.metadata.create_all(runtime.engine)
    ids = setup(runtime)
    guarded = create_app(runtime=runtime)
    open_runtime = Runtime(settings, runtime.engine, make_session_factory(runtime.engine))
    unguarded = create_app(runtime=open_runtime)
    without_auth(unguarded, open_runtime)
    receive(guarded.test_client(), ids, 10_000_000)
    sides = {
        "guarded": requests_for(guarded.test_client(), ids, ids["dio"]),
        "baseline": requests_for(unguarded.test_client(), ids, None),
    }
    figures: dict[str, dict[str, float]] = {"guarded": {}, "baseline": {}}
    for metric in sides["guarded"]:
        for _ in range(rounds):
            for side, calls in sides.items():
                best = max(figures[side].get(metric, 0.0), rate(seconds / rounds, calls[metric]))
                figures[side][metric] = best
        log(
            f"{metric}: guarded {figures['guarded'][metric]:.0f}/s, "
            f"baseline {figures['baseline'][metric]:.0f}/s"
        )
    runtime.close()
    return figures


def limiter_us(storage: str, calls: int = 5000) -> float:
    """Microseconds per rate-limit count in this storage."""
    settings = load_settings(
        {
            "database_url": "sqlite://",
            "auth_rate_limit": "1000000 per 5 minutes",
            "auth_rate_limit_storage": storage,
        }
    )
    limit = web.RateLimit(settings)
    key = f"bench:{uuid.uuid4().hex}"
    start = time.perf_counter()
    for _ in range(calls):
        limit.retry_after_s(key)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Seconds per figure.")
    args = parser.parse_args()
    url = create_database()
    try:
        figures = measure(url, args.seconds)
    finally:
        drop_database(url)
    guarded, baseline = figures["guarded"], figures["baseline"]
    result = {
        **{f"{k}": round(v, 1) for k, v in guarded.items()},
        **{f"baseline_{k}": round(v, 1) for k, v in baseline.items()},
        **{f"ratio_{k}": round(guarded[k] / baseline[k], 3) for k in guarded},
        "rate_limit_memory_us": round(limiter_us("memory://"), 2),
        "rate_limit_redis_us": round(limiter_us("redis://127.0.0.1:6379/0", 1000), 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
