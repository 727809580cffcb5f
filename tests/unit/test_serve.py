"""`coldchain serve` runs gunicorn with config/gunicorn.conf.py, the production web set-up."""

from __future__ import annotations

import gc
import runpy
import sys

import pytest
from click.testing import CliRunner

from logistics import cli
from logistics.config import CONFIG_DIR

GUNICORN_CONF = CONFIG_DIR / "gunicorn.conf.py"


def _config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict:
    for name in ("COLDCHAIN_HTTP_HOST", "COLDCHAIN_HTTP_PORT", "COLDCHAIN_HTTP_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_config_runs_sync_workers_one_per_core_by_default(monkeypatch):
    config = _config(monkeypatch)
    assert config["worker_class"] == "sync"
    assert config["workers"] == config["cpu_cores"]() >= 1
    assert config["wsgi_app"] == "logistics.wsgi:app"
    assert config["bind"] == ["127.0.0.1:5000"]


def test_config_takes_address_and_workers_from_the_settings(monkeypatch):
    config = _config(
        monkeypatch,
        COLDCHAIN_HTTP_HOST="0.0.0.0",
        COLDCHAIN_HTTP_PORT="8000",
        COLDCHAIN_HTTP_WORKERS="3",
    )
    assert config["workers"] == 3
    assert config["bind"] == ["0.0.0.0:8000"]


def test_gunicorn_reads_the_config_and_command_line_overrides_it(monkeypatch):
    from gunicorn.app.wsgiapp import WSGIApplication

    _config(monkeypatch, COLDCHAIN_HTTP_WORKERS="3")
    monkeypatch.setattr(sys, "argv", cli.gunicorn_argv(port=8123)[2:])
    loaded = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
    assert loaded.worker_class_str == "sync"
    assert loaded.workers == 3
    assert loaded.bind == ["127.0.0.1:8123"]
    assert loaded.wsgi_app == "logistics.wsgi:app"
    assert loaded.post_worker_init.__module__ != "gunicorn.config"  # the hook of the file

    monkeypatch.setattr(sys, "argv", cli.gunicorn_argv(workers=5)[2:])
    assert WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg.workers == 5


def test_worker_freezes_what_the_app_loaded():
    hook = runpy.run_path(str(GUNICORN_CONF))["post_worker_init"]
    try:
        hook(None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_serve_execs_gunicorn_with_the_config(monkeypatch):
    monkeypatch.delenv("COLDCHAIN_HTTP_HOST", raising=False)
    # Several workers share their rate-limit counters (serve refuses memory:// there, issue 12).
    monkeypatch.setenv("COLDCHAIN_AUTH_RATE_LIMIT_STORAGE", "redis://127.0.0.1:6379/0")
    calls = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append((path, argv)))
    result = CliRunner().invoke(cli.cli, ["serve", "--port", "8123", "--workers", "3"])
    assert result.exit_code == 0, result.output
    ((path, argv),) = calls
    assert path == sys.executable
    assert argv[:5] == [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)]
    assert argv[5:] == ["--bind", "127.0.0.1:8123", "--workers", "3"]


def test_serve_without_options_leaves_everything_to_the_config(monkeypatch):
    monkeypatch.setenv("COLDCHAIN_AUTH_RATE_LIMIT_STORAGE", "redis://127.0.0.1:6379/0")
    calls = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append(argv))
    assert CliRunner().invoke(cli.cli, ["serve"]).exit_code == 0
    assert calls == [[sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)]]
