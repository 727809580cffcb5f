"""After `coldchain demo` replays its history, a newcomer sees every fault it promises (issue 11).

The default demo (8 loggers in 4 ILRs, two to a unit) is run as a user would run it, only with a
faster replay. Through the HTTP API, as the printed admin, the newcomer must find:
- the freeze alarm of the freezing logger's ILR, naming that logger, with its held doses and
  their pending reviews (proposed: discard);
- the power-cut warning: the logger whose ILR lost mains reported `power: "battery"` (the sensor
  protocol, docs/sensors.md) and its ILR warmed past +8 C into a heat warning naming it;
- the silent logger's alert;
- the backlog: the offline logger's readings of its outage, arrived late in one batch.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.test_mqtt_demo import _free_port

pytestmark = pytest.mark.e2e
# The default 12 h of history in 36 s; DEMO_REPLAY_SPEEDUP=120 measures the demo's own default.
SPEEDUP = float(os.environ.get("DEMO_REPLAY_SPEEDUP", "1200"))
DEADLINE_S = 120 + 1.5 * 12 * 3600 / SPEEDUP


class Newcomer:
    """Logs in as the demo's admin and reads the API."""

    def __init__(self, base: str, password: str):
        self.base = base
        login = requests.post(
            f"{base}/api/auth/login", json={"username": "admin", "password": password}, timeout=10
        )
        assert login.status_code == 200, login.text
        self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def get(self, path: str, **params: Any) -> Any:
        url = f"{self.base}{path}"
        response = requests.get(url, params=params, headers=self.headers, timeout=30)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    def unit_of(self, sensor_id: str) -> int:
        return self.get(f"/api/sensors/{sensor_id}")["assignments"][-1]["unit_id"]

    def readings(self, sensor_id: str) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        found = self.get(
            f"/api/units/{self.unit_of(sensor_id)}/readings",
            start=(now - dt.timedelta(hours=14)).isoformat(),
            end=(now + dt.timedelta(minutes=5)).isoformat(),
        )["readings"]
        return [r for r in found if r["sensor_id"] == sensor_id]


def _what_is_missing(api: Newcomer, replay_start: dt.datetime) -> list[str]:
    missing = []
    freezing_unit = api.unit_of("SIM002")
    alarms = [
        a
        for a in api.get("/api/alerts", kind="cold_alarm", state="open")
        if a["details"].get("sensor_id") == "SIM002" and a["subject_id"] == str(freezing_unit)
    ]
    reviews = [
        r
        for r in api.get("/api/quarantine-reviews", state="pending")
        if r["unit_id"] == freezing_unit and r["reason"] == "frozen"
    ]
    held = [
        api.get("/api/balances", unit_id=r["unit_id"], lot_id=r["lot_id"])["quarantined_doses"]
        for r in reviews
    ]
    if not alarms or not reviews or any(d <= 0 for d in held):
        missing.append(f"freeze alarm {len(alarms)}, reviews {len(reviews)}, held {held}")
    elif any(r["proposed_decision"] != "discard" for r in reviews):
        missing.append("frozen Covishield/Covaxin should be proposed for discard")
    warnings = [
        e for e in api.get("/api/excursions", kind="heat_warning") if e["sensor_id"] == "SIM001"
    ]
    on_battery = [r for r in api.readings("SIM001") if r["power"] == "battery"]
    if not warnings or not on_battery:
        missing.append(f"power cut: {len(warnings)} heat warnings, {len(on_battery)} on battery")
    silent = api.get("/api/alerts", kind="sensor_silent", state="open")
    if [a["subject_id"] for a in silent] != ["SIM003"]:
        missing.append(f"silent loggers: {[a['subject_id'] for a in silent]}")
    # The offline logger's outage: simulated hours 1 to 7, one reading a minute, sent at once.
    outage = (replay_start + dt.timedelta(minutes=70), replay_start + dt.timedelta(minutes=410))
    backlog = [
        r
        for r in api.readings("SIM004")
        if r["late"] and outage[0] <= dt.datetime.fromisoformat(r["ts"]) <= outage[1]
    ]
    if len(backlog) < 300:
        missing.append(f"backlog: {len(backlog)} late readings of the outage")
    return missing


def test_a_newcomer_sees_every_fault_after_the_demo_replay(tmp_path: Path):
    http_port = _free_port()
    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "COLDCHAIN_MQTT_URL": "",
        "COLDCHAIN_BROKER_PORT": str(_free_port()),
    }
    log = tmp_path / "demo.log"
    started = time.monotonic()
    replay_start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=12)  # the demo's --history-h
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-c", "from logistics.cli import main; main()", "demo",
             "--speedup", str(SPEEDUP), "--port", str(http_port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        password = None
        while password is None and time.monotonic() - started < 90:
            time.sleep(0.5)
            admin = [line for line in log.read_text().splitlines() if line.startswith("  admin ")]
            password = admin[0].split()[1] if admin else None
        assert password, log.read_text()[-3000:]
        api = Newcomer(f"http://127.0.0.1:{http_port}", password)
        missing = ["not checked yet"]
        while missing and time.monotonic() - started < DEADLINE_S:
            time.sleep(2)
            missing = _what_is_missing(api, replay_start)
        assert not missing, missing
        print(f"everything visible {time.monotonic() - started:.0f} s after the start")
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, log.read_text()[-3000:]
