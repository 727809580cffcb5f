"""Browser tests: Debian's chromium driven by Python Playwright (never a downloaded browser).

The pytest-playwright plugin gives each test a fresh context (`page`); the app under test is
served from a thread on a free port, on the test's own empty tables. Screenshots of each journey
go to tests/artifacts/<test>/ (git-ignored), and axe-core checks every page it visits.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.browser import scenario

CHROMIUM = "/usr/lib/chromium/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--disable-gpu", "--disable-quic", "--disable-background-networking"],
    }


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    """The app served over HTTP on 127.0.0.1 for this test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def world(runtime: Any) -> scenario.Scenario:
    """The demo network, one person per role, and a freeze in Khed's ILR."""
    return scenario.build(runtime)


class Journey:
    """A person's walk through the pages: logs in, checks accessibility, keeps screenshots."""

    def __init__(self, page: Any, base: str, name: str):
        self.page, self.base, self.step = page, base, 0
        self.folder = ARTIFACTS / re.sub(r"[^\w.-]", "_", name)
        self.folder.mkdir(parents=True, exist_ok=True)

    def go(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def login(self, username: str) -> None:
        self.go("/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(scenario.PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(re.compile(r".*/$"))

    def shot(self, label: str) -> Path:
        self.step += 1
        path = self.folder / f"{self.step:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def serious_violations(self) -> list[dict]:
        """axe-core's serious and critical violations on the page as it is now."""
        self.page.add_script_tag(path=str(AXE))
        results = self.page.evaluate("async () => await axe.run(document)")
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in results["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    def check(self, label: str) -> None:
        """Screenshot the page and assert axe finds nothing serious on it."""
        self.shot(label)
        assert self.serious_violations() == [], label


@pytest.fixture
def journey(page: Any, live: str, request: Any) -> Journey:
    page.set_default_timeout(15_000)
    return Journey(page, live, request.node.name)
