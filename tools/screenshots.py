"""Take the README's screenshots of the web app from a running `coldchain demo`, with chromium.

    python tools/screenshots.py [--out docs/screenshots] [--wait-s 60]

Starts the demo on SQLite in a temporary folder (free ports), waits while the simulator replays
a day of readings (with its freezing fault and power cut), logs in as the demo's users and saves
one PNG per main page. Uses Debian's chromium (never a downloaded browser).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/lib/chromium/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_demo(folder: str, port: int) -> tuple[subprocess.Popen, Path]:
    log = Path(folder) / "demo.log"
    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": f"sqlite:///{folder}/demo.db",
        "COLDCHAIN_MQTT_URL": "",
        "COLDCHAIN_BROKER_PORT": str(_free_port()),
        "PYTHONPATH": str(ROOT),
    }
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from logistics.cli import main; main()",
                "demo",
                "--sensors",
                "8",
                "--speedup",
                "3000",
                "--history-h",
                "30",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,
        )
    return demo, log


def _passwords(log: Path, deadline_s: float = 120) -> dict[str, str]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = dict(re.findall(r"^  (\w+)\s+(\S+)\s+\(", log.read_text(), re.M))
        if "planner" in found:
            return found
        time.sleep(0.5)
    raise RuntimeError(log.read_text()[-3000:])


def _login(page, base: str, username: str, password: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def _shoot(page, base: str, path: str, out: Path, full: bool = True) -> None:  # noqa: ANN001
    page.goto(base + path)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out), full_page=full)
    print(f"saved {out.relative_to(ROOT)}")


def take(base: str, passwords: dict[str, str], out: Path) -> None:
    """Log in as each demo user and save the main pages."""
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
        desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-IN")
        page = desk.new_page()
        _login(page, base, "district", passwords["district"])
        _shoot(page, base, "/", out / "home-district.png")
        _shoot(page, base, "/stores/2", out / "store-district.png")
        _shoot(page, base, "/overview/2", out / "overview-district.png")
        _shoot(page, base, "/alerts", out / "alerts.png")
        page.goto(f"{base}/quarantine")
        review = page.locator("main .card a").first.get_attribute("href")
        _shoot(page, base, review, out / "quarantine-review.png")
        unit = page.locator('.facts a[href*="/units/"]').first.get_attribute("href")
        _shoot(page, base, unit, out / "unit-chart-24h.png")
        _shoot(page, base, unit + "?range=7d", out / "unit-chart-7d.png")
        planner = desk.new_page()
        _login(planner, base, "planner", passwords["planner"])
        _shoot(planner, base, "/centres/4/planner", out / "planner-centre.png")
        phone = browser.new_context(
            viewport={"width": 360, "height": 780},
            locale="hi-IN",
            extra_http_headers={"Accept-Language": "hi-IN,hi"},
        )
        mobile = phone.new_page()
        _login(mobile, base, "centre", passwords["centre"])
        _shoot(mobile, base, "/", out / "home-centre-phone-hindi.png", full=False)
        _shoot(mobile, base, "/stores/4", out / "store-centre-phone-hindi.png", full=False)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument(
        "--wait-s",
        type=float,
        default=45.0,
        help="seconds to let the simulator replay history first",
    )
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        demo, log = _start_demo(folder, port)
        try:
            passwords = _passwords(log)
            time.sleep(args.wait_s)
            take(f"http://127.0.0.1:{port}", passwords, Path(args.out))
        finally:
            os.killpg(demo.pid, signal.SIGINT)
            demo.wait(60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
