"""`coldchain demo` end to end: SQLite, embedded broker, simulator, HTTP, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_runs_everything_and_stops_cleanly_on_ctrl_c(tmp_path: Path):
    database = tmp_path / "demo.db"
    http_port = _free_port()
    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": f"sqlite:///{database}",
        "COLDCHAIN_MQTT_URL": "",
        "COLDCHAIN_BROKER_PORT": str(_free_port()),
    }
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from logistics.cli import main; main()",
                "demo",
                "--sensors",
                "5",
                "--speedup",
                "600",
                "--port",
                str(http_port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 90
        password = None
        while time.monotonic() < deadline and password is None:
            time.sleep(0.5)
            for line in log.read_text().splitlines():
                if line.startswith("  admin "):
                    password = line.split()[1]
        assert password, log.read_text()[-3000:]
        # The web app's address comes first, before the users (issue 14), and its login works.
        printed = log.read_text().splitlines()
        web_line = next(i for i, line in enumerate(printed) if line.startswith("Web app: "))
        assert web_line < next(i for i, line in enumerate(printed) if line.startswith("  admin "))
        docs_line = next((i for i, line in enumerate(printed) if "/api/docs" in line), None)
        assert docs_line is None or web_line < docs_line, printed
        web = requests.Session()
        address = printed[web_line].split()[2]
        form = web.get(f"{address}login", timeout=10).text
        csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        page = web.post(
            f"{address}login",
            data={"username": "admin", "password": password, "csrf_token": csrf},
            timeout=10,
        )
        assert page.status_code == 200 and "Log out" in page.text, page.text[-2000:]
        # Log in the way the demo's printed instructions say.
        login = requests.post(
            f"http://127.0.0.1:{http_port}/api/auth/login",
            json={"username": "admin", "password": password},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        deadline = time.monotonic() + 60
        latest = []
        while time.monotonic() < deadline:
            response = requests.get(
                f"http://127.0.0.1:{http_port}/api/stores/1/latest-readings?subtree=true",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            latest = [
                u for u in response.json() if u["sensor"] and u["sensor"]["last_temp_c"] is not None
            ]
            if len(latest) >= 3:
                break
            time.sleep(1)
        assert len(latest) >= 3, log.read_text()[-3000:]
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, log.read_text()[-3000:]
    with sqlite3.connect(database) as conn:
        assert conn.execute("select count(*) from readings").fetchone()[0] > 0
        assert (
            conn.execute("select count(*) from sensors where sensor_id like 'SIM%'").fetchone()[0]
            == 5
        )
