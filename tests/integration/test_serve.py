"""`coldchain serve` really starts the production web set-up: gunicorn, its workers, the API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _raw_get(port: int, target: str) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:  # gunicorn closes with part of the request unread
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_serve_answers_with_the_configured_workers(tmp_path):
    port = _free_port()
    # Several workers share their rate-limit counters in Redis (serve refuses memory:// here).
    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "COLDCHAIN_AUTH_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379/0",
    }
    command = [
        sys.executable,
        "-c",
        "from logistics.cli import main; main()",
        "serve",
        "--port",
        str(port),
        "--workers",
        "3",
    ]
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline, status = time.monotonic() + 60, None
        while status is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                    status = response.status
            except OSError:
                time.sleep(0.2)
        assert status == 200
        # `serve` became the gunicorn master (exec), which runs the three workers asked for.
        assert len(_children(server.pid)) == 3
        # A request line gunicorn refuses before the app sees it is a problem document too.
        head, body = _raw_get(port, "/api/excursions?q=" + "x" * 9000)
        assert head.startswith(b"HTTP/1.1 400 ") and b"application/problem+json" in head, head
        assert json.loads(body)["status"] == 400
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(30) == 0
