"""The `coldchain` command; other packages (sensors) add commands by entry points."""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import click

from logistics.config import Settings, load_settings
from logistics.runtime import Runtime


@click.group()
def cli() -> None:
    """Cold-chain and vaccine stock service."""


@cli.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema to the latest migration."""
    from logistics.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    click.echo(f"schema is up to date on {settings.database_url}")


def gunicorn_argv(
    host: str | None = None, port: int | None = None, workers: int | None = None
) -> list[str]:
    """The production web server: gunicorn with config/gunicorn.conf.py, options overriding it."""
    from logistics.config import CONFIG_DIR

    argv = [sys.executable, "-m", "gunicorn", "--config", str(CONFIG_DIR / "gunicorn.conf.py")]
    if host or port:
        settings = None if host and port else load_settings()
        host, port = host or settings.http_host, port or settings.http_port
        argv += ["--bind", f"{host}:{port}"]
    if workers:
        argv += ["--workers", str(workers)]
    return argv


@cli.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: http.host setting).")
@click.option("--port", default=None, type=int, help="Port (default: http.port setting).")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="Gunicorn workers (default: http.workers setting; 0 there: one per CPU core).",
)
@click.option(
    "--dev", is_flag=True, help="Flask's development server in this one process (debugging)."
)
@click.option(
    "--allow-per-worker-rate-limit",
    is_flag=True,
    help="Start even though memory:// rate limits count per worker (the limit multiplies).",
)
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    dev: bool,
    allow_per_worker_rate_limit: bool,
) -> None:
    """Serve the HTTP API: gunicorn with config/gunicorn.conf.py (the production set-up)."""
    if dev:
        from logistics.app import create_app
        from logistics.logs import configure_logging

        settings = load_settings()
        configure_logging(settings)
        app = create_app(settings)
        app.run(host=host or settings.http_host, port=port or settings.http_port, threaded=True)
        return
    problem = per_worker_rate_limit(load_settings(), workers or configured_workers())
    if problem and not allow_per_worker_rate_limit:
        raise click.UsageError(f"{problem}; or pass --allow-per-worker-rate-limit")
    argv = gunicorn_argv(host, port, workers)
    os.execv(argv[0], argv)


def configured_workers() -> int:
    """How many workers config/gunicorn.conf.py starts (http.workers, or one per core)."""
    import runpy

    from logistics.config import CONFIG_DIR

    return int(runpy.run_path(str(CONFIG_DIR / "gunicorn.conf.py"))["workers"])


def per_worker_rate_limit(settings: Settings, workers: int) -> str | None:
    """Why these settings would not hold the documented public rate limit; None when they do.

    memory:// counts in each worker: with N workers a client gets N times the limit.
    """
    limited = bool(settings.auth_rate_limit.strip())
    if limited and workers > 1 and settings.auth_rate_limit_storage.startswith("memory://"):
        return (
            f"auth.rate_limit_storage is memory:// with {workers} workers, so each worker counts "
            "alone and clients get that many times the limit; set "
            "COLDCHAIN_AUTH_RATE_LIMIT_STORAGE=redis://HOST:6379/0"
        )
    return None  # gunicorn takes this process's place: signals reach its master


@cli.command("scheduler")
def scheduler_command() -> None:
    """Run the periodic jobs (alerts, reminders, outbox); safe to start on several hosts."""
    import signal

    from logistics.logs import configure_logging
    from logistics.metrics import serve_process_metrics
    from logistics.services.scheduler import Scheduler, build_apscheduler

    live = runtime()
    configure_logging(live.settings)
    scheduler = Scheduler(live)
    endpoints = serve_process_metrics(live, live.settings.metrics_scheduler_port)
    aps = build_apscheduler(scheduler)
    signal.signal(signal.SIGTERM, lambda *_: aps.shutdown(wait=False))
    click.echo(f"scheduler {scheduler.holder} started")
    try:
        aps.start()
    finally:
        scheduler.stop()
        if endpoints is not None:
            endpoints.stop()


@cli.command("load-demo")
def load_demo_command() -> None:
    """Load the demo stores, units, products, lots and stock (idempotent); print the ids as JSON."""
    import datetime as dt
    import json

    from logistics.services.demo import load_demo
    from logistics.services.reference import seed_reference_data

    live = runtime()
    try:
        with live.uow() as uow:
            seed_reference_data(uow)
            uow.commit()
            loaded = load_demo(uow, dt.datetime.now(dt.UTC))
            uow.commit()
            click.echo(json.dumps(loaded, indent=2))
    finally:
        live.close()


def runtime() -> Runtime:
    """Build a runtime from the configured settings (for commands that need the database)."""
    return Runtime.from_settings(load_settings())


def _load_plugins() -> None:
    from logistics.auth.cli import register as register_auth_commands

    register_auth_commands(cli)
    for entry_point in entry_points(group="coldchain.cli"):
        entry_point.load()(cli)


def main() -> None:
    """Run the `coldchain` command line."""
    _load_plugins()
    cli()
