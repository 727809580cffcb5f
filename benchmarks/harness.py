"""What every benchmark needs: a throwaway database, a free port, gunicorn, a token, a log.

Benchmarks run as `python benchmarks/NAME.py`, so this module is importable as `harness`. Every
process and database it starts is on 127.0.0.1 and is stopped or dropped by the caller's
`finally`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("COLDCHAIN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def log(message: str) -> None:
    """Progress on stderr; stdout ends with the JSON line."""
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_database() -> str:
    """A fresh, empty PostgreSQL database for this run; returns its SQLAlchemy URL."""
    name = f"coldchain_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{urlsplit(PG_ADMIN_URL).netloc}/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by create_database, closing its connections."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[-1]}" WITH (FORCE)')


def start_gunicorn(
    url: str, port: int, workers: int | None = None, threads: int | None = None
) -> subprocess.Popen:
    """The production web set-up on 127.0.0.1:port, once /api/health answers.

    The same command as `coldchain serve` (gunicorn with config/gunicorn.conf.py); `workers`
    overrides the configured count (default: one per CPU core), `threads` switches to gthread
    workers for comparison. Rate limiting is off: every request of a load test comes from the
    same address.
    """
    from logistics.cli import gunicorn_argv

    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": url,
        "COLDCHAIN_DATABASE_POOL_SIZE": "4",
        "COLDCHAIN_AUTH_RATE_LIMIT": "",
        "PYTHONPATH": str(ROOT),
    }
    command = gunicorn_argv("127.0.0.1", port, workers)
    if threads:
        command += ["--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "30"]
    command += ["--log-level", "warning"]
    server = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    stop(server)
    raise RuntimeError("gunicorn did not come up within 60 s")


def gunicorn_workers(workers: int | None = None) -> tuple[int, str]:
    """How many workers of which class start_gunicorn runs (config/gunicorn.conf.py's choice)."""
    import runpy

    from logistics.config import CONFIG_DIR

    config = runpy.run_path(str(CONFIG_DIR / "gunicorn.conf.py"))
    return workers or config["workers"], config["worker_class"]


def stop(process: subprocess.Popen, wait_s: float = 30) -> None:
    """Stop a process started in its own session, and everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def admin_token(uow) -> str:  # noqa: ANN001 (a logistics UnitOfWork; imported lazily by callers)
    """A bearer token of a service account with the admin role."""
    from logistics.services.auth import create_user, issue_token

    create_user(uow, username="bench-admin", password=None, roles=["admin"])
    return issue_token(uow, username="bench-admin", ttl_s=3600)


def start_coldchain(command: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    """`coldchain COMMAND` in a process of its own (e.g. ingest, evaluate), configured by env."""
    return subprocess.Popen(
        [sys.executable, "-c", "from logistics.cli import main; main()", command, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
