"""What every benchmark needs: a throwaway database, a free port, gunicorn, a token, a log.

Benchmarks run as `python benchmarks/NAME.py`, so this module is importable as `harness`. Every
process and database it starts is on 127.0.0.1 and is stopped or dropped by the caller's
`finally`.
"""

from __future__ import annotations

import contextlib
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
    url: str,
    port: int,
    workers: int | None = None,
    threads: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """The production web set-up on 127.0.0.1:port, once /api/health answers.

    The same command as `coldchain serve` (gunicorn with config/gunicorn.conf.py); `workers`
    overrides the configured count (default: one per CPU core), `threads` switches to gthread
    workers for comparison. Rate limiting is off (every request of a load test comes from the
    same address) unless `env`, whose variables win, turns it on.
    """
    from logistics.cli import gunicorn_argv

    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": url,
        "COLDCHAIN_DATABASE_POOL_SIZE": "4",
        "COLDCHAIN_AUTH_RATE_LIMIT": "",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
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
    """Stop a process started in its own session, and everything it started.

    The leader is asked first (gunicorn's arbiter then stops its own workers in order; a SIGTERM
    sent to its workers behind its back makes it log an error after the benchmark's figures),
    then whatever of its session is left is killed.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(5)
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing of the session is left
        os.killpg(pgid, signum)


def admin_token(uow) -> str:  # noqa: ANN001 (a logistics UnitOfWork; imported lazily by callers)
    """A bearer token of a service account with the admin role."""
    from logistics.services.auth import create_user, issue_token

    create_user(uow, username="bench-admin", password=None, roles=["admin"])
    uow.commit()
    token = issue_token(uow, username="bench-admin", ttl_s=3600)
    uow.commit()
    return token


def start_coldchain(command: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    """`coldchain COMMAND` in a process of its own (e.g. ingest, evaluate), configured by env."""
    return subprocess.Popen(
        [sys.executable, "-c", "from logistics.cli import main; main()", command, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )


class OwnPostgres:
    """A PostgreSQL cluster of this run only (initdb in a temp dir, free port), so a benchmark
    may stop and restart it without touching the machine's server. Run as user postgres when
    started as root."""

    def __init__(self) -> None:
        import glob
        import shutil
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = Path(bins[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="coldchain-bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of its `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        """Stop it (fast shutdown: open connections are cut)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def cleanup(self) -> None:
        """Stop it if running and remove its files."""
        import shutil

        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_coldchain_logged(
    command: str, env: dict[str, str], log_path: Path, *args: str
) -> subprocess.Popen:
    """Like start_coldchain, keeping stdout and stderr in log_path (its final statistics)."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from logistics.cli import main; main()", command, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
