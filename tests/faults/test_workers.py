"""Two gunicorn workers (`coldchain serve --workers 2`): revocation and rate limits hold on both.

Issue 12, points 6 and 7. Each sync worker closes the connection after its answer, so successive
requests go to whichever worker is idle: a burst of requests reaches both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from click.testing import CliRunner

from logistics.cli import _load_plugins, cli, per_worker_rate_limit
from logistics.config import load_settings
from logistics.services.auth import create_user, issue_token
from tests.integration.test_serve import _children, _free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LIMIT = 10


class Served:
    """`coldchain serve --workers 2` on a free port, against the test database."""

    def __init__(self, database_url: str, **env: str):
        self.port = _free_port()
        command = [
            sys.executable,
            "-c",
            "from logistics.cli import main; main()",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            "2",
        ]
        full_env = {**os.environ, "COLDCHAIN_DATABASE_URL": database_url, **env}
        self.process = subprocess.Popen(command, env=full_env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            if len(_children(self.process.pid)) == 2 and self._health() == 200:
                return
            time.sleep(0.2)
        raise AssertionError("coldchain serve did not come up with two workers")

    def _health(self) -> int | None:
        try:
            with urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=2) as response:
                return response.status
        except OSError:
            return None

    def call(self, method: str, path: str, token: str | None = None, body: object = None) -> int:
        data = None if body is None else json.dumps(body).encode()
        request = Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urlopen(request, timeout=10) as response:
                return response.status
        except HTTPError as error:
            return error.code

    def workers(self) -> list[int]:
        return _children(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)


@pytest.fixture
def serve(settings) -> Iterator[callable]:
    started: list[Served] = []

    def start(**env: str) -> Served:
        served = Served(settings.database_url, **env)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def _user(runtime, roles: list) -> tuple[str, str]:
    name = f"u-{uuid.uuid4().hex[:8]}"
    with runtime.uow() as uow:
        create_user(uow, username=name, password=None, roles=roles)
        uow.commit()
        token = issue_token(uow, username=name)
        uow.commit()
        return name, token


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_revocation_holds_at_once_on_both_workers(runtime, serve):
    # A minute of token cache: without the access epoch, the other worker would keep accepting.
    served = serve(COLDCHAIN_AUTH_TOKEN_CACHE_S="60", COLDCHAIN_AUTH_RATE_LIMIT="")
    _admin, admin_token = _user(runtime, ["admin"])
    # Logout.
    _name, token = _user(runtime, ["viewer"])
    assert [served.call("GET", "/api/auth/me", token) for _ in range(12)] == [200] * 12
    assert served.call("POST", "/api/auth/logout", token) == 204
    assert [served.call("GET", "/api/auth/me", token) for _ in range(12)] == [401] * 12
    # A disabled user.
    name, token = _user(runtime, ["viewer"])
    assert [served.call("GET", "/api/auth/me", token) for _ in range(12)] == [200] * 12
    assert served.call("PATCH", f"/api/users/{name}", admin_token, {"active": False}) == 200
    assert [served.call("GET", "/api/auth/me", token) for _ in range(12)] == [401] * 12
    # Roles replaced by viewer: writes are refused at once.
    name, token = _user(runtime, ["admin"])
    probe = f"/api/users/{uuid.uuid4().hex[:6]}"
    assert [served.call("PATCH", probe, token, {"active": True}) for _ in range(12)] == [404] * 12
    viewer = {"roles": [{"role": "viewer"}]}
    assert served.call("PATCH", f"/api/users/{name}", admin_token, viewer) == 200
    assert [served.call("PATCH", probe, token, {"active": True}) for _ in range(12)] == [403] * 12
    assert len(served.workers()) == 2


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_the_public_rate_limit_holds_across_two_workers_through_redis(runtime, serve):
    served = serve(
        COLDCHAIN_AUTH_RATE_LIMIT=f"{LIMIT} per 1 minute",
        COLDCHAIN_AUTH_RATE_LIMIT_STORAGE="redis://127.0.0.1:6379/0",
        COLDCHAIN_AUTH_RATE_LIMIT_KEY_PREFIX=f"coldchain-test-{uuid.uuid4().hex}",
    )
    body = {"username": "nobody", "password": "wrong"}
    codes = [served.call("POST", "/api/auth/login", None, body) for _ in range(3 * LIMIT)]
    assert codes == [401] * LIMIT + [429] * (2 * LIMIT)


def test_serve_refuses_memory_storage_with_several_workers_unless_told(monkeypatch):
    settings = load_settings({"auth_rate_limit_storage": "memory://"})
    assert per_worker_rate_limit(settings, 1) is None
    assert "memory://" in per_worker_rate_limit(settings, 2)
    assert per_worker_rate_limit(settings.replace(auth_rate_limit=""), 4) is None
    shared = settings.replace(auth_rate_limit_storage="redis://127.0.0.1:6379/0")
    assert per_worker_rate_limit(shared, 4) is None
    monkeypatch.setenv("COLDCHAIN_AUTH_RATE_LIMIT_STORAGE", "memory://")
    monkeypatch.setattr(os, "execv", lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    _load_plugins()
    refused = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert refused.exit_code == 2 and "memory://" in refused.output
    told = CliRunner().invoke(cli, ["serve", "--workers", "2", "--allow-per-worker-rate-limit"])
    assert told.exit_code == 0, told.output
