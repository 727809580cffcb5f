"""A centre keeps recording when the server, the network or the database is down (issue 15).

Real Chromium, a real server process stopped and started again, a lossy proxy, and a PostgreSQL
cluster of the test's own that is stopped mid-sync. Each test counts the movements recorded under
the client ids the browser made (not rows under a UNIQUE constraint) and checks the balance.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from logistics.app import create_app
from logistics.clock import local_date
from logistics.config import load_settings
from logistics.db import make_engine, make_session_factory
from logistics.runtime import Runtime
from logistics.services import sessions, stock
from logistics.services.auth import create_user
from logistics.services.reference import seed_reference_data
from tests.browser import scenario
from tests.browser.conftest import Journey
from tests.browser.offline_support import (
    CENTRE,
    OFFICER,
    OFFICER_PASSWORD,
    LossyProxy,
    ServerProcess,
    add_officer,
    balance,
    consumption_count,
    entries_in_queue,
    free_port,
    fullest_balance,
    movements_by_client_id,
)
from tests.support.private_pg import PrivatePostgres
from tests.support.schema import build_schema

CONTROLLED = "navigator.serviceWorker.controller !== null"
PAGE_KEPT = "async () => !!(await caches.match(location.href, { ignoreVary: true }))"
QUEUE_EMPTY = "() => document.getElementById('offline-queue').hidden"
NEW_CLIENT_ID = """old => {
  const f = document.querySelector('#form-consumption input[name=client_id]');
  return f !== null && f.value !== old; }"""


def login(page: Any, base: str, username: str = OFFICER) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(OFFICER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/$"))


def open_centre(page: Any, base: str, store_id: int) -> None:
    page.goto(f"{base}/stores/{store_id}")
    page.wait_for_function(CONTROLLED)
    wait_until_kept(page)
    expect(page.locator("#offline-data")).to_contain_text("Centre data saved at")


def wait_until_kept(page: Any) -> None:
    """Wait until the worker holds a copy of this page (evaluate awaits the promise, which
    wait_for_function would take as a truthy value at once)."""
    _wait(lambda: page.evaluate(PAGE_KEPT), "the worker never kept a copy of the page", 60)


def make_entry(page: Any, unit_id: int, lot_id: int, doses: int) -> str:
    """Record doses given with the consumption form; the client id the entry was made with."""
    form = page.locator("#form-consumption form")
    client_id = form.locator("input[name=client_id]").input_value()
    form.locator("select[name=unit_id]").select_option(str(unit_id))
    form.locator("select[name=lot_id]").select_option(str(lot_id))
    form.locator("input[name=doses]").fill(str(doses))
    form.get_by_role("button", name="Record doses given").click()
    # Sent (the server's fresh form) or kept on the device (offline.js gives a new client id).
    page.wait_for_function(NEW_CLIENT_ID, arg=client_id)
    return client_id


def wait_until_sent(page: Any, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(QUEUE_EMPTY, timeout=timeout_ms)
    assert entries_in_queue(page) == []


@pytest.fixture
def centre(runtime: Runtime, world: scenario.Scenario) -> dict[str, int]:
    add_officer(runtime)
    store_id = world.ids["stores"][CENTRE]
    unit_id, lot_id, usable = fullest_balance(runtime, store_id)
    assert usable >= 400, "the demo centre holds too few doses for these tests"
    return {"store_id": store_id, "unit_id": unit_id, "lot_id": lot_id}


def test_thirty_entries_made_while_the_server_process_is_stopped_are_recorded_once(
    page, runtime, settings, centre, tmp_path
):
    store_id, unit_id, lot_id = centre["store_id"], centre["unit_id"], centre["lot_id"]
    before = balance(runtime, store_id, unit_id, lot_id)
    server = ServerProcess(settings.database_url, free_port(), tmp_path)
    server.start()
    try:
        login(page, server.url)
        open_centre(page, server.url, store_id)
        server.stop()

        made, doses = [], []
        for round_ in range(3):
            if round_:
                page.reload()  # the worker serves the page from its cache
                page.wait_for_function(CONTROLLED)
            for _ in range(10):
                doses.append(1 + len(made) % 3)
                made.append(make_entry(page, unit_id, lot_id, doses[-1]))
            expect(page.locator("#offline-count")).to_have_text(f"Waiting to be sent: {len(made)}.")
        expect(page.locator("#offline-list li[data-state=waiting]")).to_have_count(30)
        expect(page.locator("#offline-server")).to_contain_text("cannot be reached")
        queued = entries_in_queue(page)
        assert [entry["client_id"] for entry in queued] == made  # in order, each its own id
        assert len(set(made)) == 30
        assert movements_by_client_id(runtime, made) == {}

        server.start()
        wait_until_sent(page)
        assert movements_by_client_id(runtime, made) == {
            client_id: [-n] for client_id, n in zip(made, doses, strict=True)
        }
        assert balance(runtime, store_id, unit_id, lot_id) == before - sum(doses)
    finally:
        server.stop()


def test_a_lossy_link_loses_no_entry_and_doubles_none_over_200_entries(page, runtime, live, centre):
    store_id, unit_id, lot_id = centre["store_id"], centre["unit_id"], centre["lot_id"]
    before = balance(runtime, store_id, unit_id, lot_id)
    consumed_before = consumption_count(runtime, store_id)
    upstream = int(live.rsplit(":", 1)[1])
    proxy = LossyProxy(upstream, seed=15, drop_request=0.15, drop_response=0.25)
    try:
        login(page, proxy.url)
        open_centre(page, proxy.url, store_id)
        made, doses = [], []
        for n in range(200):
            doses.append(1 + n % 2)
            made.append(make_entry(page, unit_id, lot_id, doses[-1]))
        wait_until_sent(page)
    finally:
        proxy.close()
    assert len(set(made)) == 200
    recorded = movements_by_client_id(runtime, made)
    lost = [client_id for client_id in made if client_id not in recorded]
    doubled = [client_id for client_id, rows in recorded.items() if len(rows) != 1]
    assert (lost, doubled) == ([], [])
    assert consumption_count(runtime, store_id) - consumed_before == 200
    assert balance(runtime, store_id, unit_id, lot_id) == before - sum(doses)
    # The case that matters: the server recorded the entry, and its answer never arrived.
    assert proxy.counts["lost_after_commit"] >= 10, proxy.counts
    assert proxy.counts["dropped_request"] >= 10, proxy.counts


class CutDatabaseAfterCommit:
    """WSGI wrapper: when armed, the first sync answer that recorded entries is lost (503) and
    PostgreSQL is stopped right after that commit; counts the app's own 503 answers."""

    def __init__(self, app: Any, pg: PrivatePostgres):
        self.app, self.pg = app, pg
        self.armed, self.cut = False, threading.Event()
        self.unavailable = 0

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/sync/entries":
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        if captured["status"].startswith("503"):
            self.unavailable += 1
        if self.armed and captured["status"].startswith("200") and b'"recorded"' in body:
            self.armed = False
            self.pg.stop()
            self.cut.set()
            start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "text/plain")])
            return [b"lost"]
        start_response(captured["status"], captured["headers"])
        return [body]


@pytest.fixture
def own_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.destroy()


def _wait(condition: Any, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # polling a condition, not timing a result


def test_postgres_stopped_mid_sync_keeps_the_queue_and_records_each_entry_once(
    page, own_pg, tmp_path
):
    settings = load_settings(
        {"database_url": own_pg.url, "web_key_file": str(Path(tmp_path) / "web_key")}
    )
    engine = make_engine(own_pg.url, pool_size=5)
    build_schema(engine)
    runtime = Runtime(settings, engine, make_session_factory(engine))
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
    world = scenario.build(runtime)
    add_officer(runtime)
    store_id = world.ids["stores"][CENTRE]
    unit_id, lot_id, _usable = fullest_balance(runtime, store_id)
    before = balance(runtime, store_id, unit_id, lot_id)
    app = create_app(runtime=runtime)
    faults = CutDatabaseAfterCommit(app.wsgi_app, own_pg)
    app.wsgi_app = faults  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        login(page, base)
        open_centre(page, base, store_id)
        own_pg.stop()  # the web server is up; the database is not: it answers 503
        made, doses = [], []
        for n in range(30):
            doses.append(1 + n % 3)
            made.append(make_entry(page, unit_id, lot_id, doses[-1]))
        expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 30.")
        _wait(lambda: faults.unavailable >= 1, "the sync endpoint never answered 503")

        faults.armed = True
        own_pg.start()
        assert faults.cut.wait(90), "no sync reached the database"
        seen = faults.unavailable
        _wait(lambda: faults.unavailable > seen, "no retry met the stopped database")
        assert len(entries_in_queue(page)) == 30  # the first batch's answer was lost: kept
        own_pg.start()
        wait_until_sent(page)
        assert movements_by_client_id(runtime, made) == {
            client_id: [-n] for client_id, n in zip(made, doses, strict=True)
        }
        assert balance(runtime, store_id, unit_id, lot_id) == before - sum(doses)
    finally:
        server.shutdown()
        engine.dispose()


def test_a_refused_entry_is_shown_with_its_reason_and_kept_until_corrected_or_dropped(
    page, context, runtime, live, centre
):
    store_id, unit_id, lot_id = centre["store_id"], centre["unit_id"], centre["lot_id"]
    usable = fullest_balance(runtime, store_id)[2]
    login(page, live)
    open_centre(page, live, store_id)
    context.set_offline(True)
    fine = make_entry(page, unit_id, lot_id, 1)
    too_many = make_entry(page, unit_id, lot_id, usable + 1000)
    dropped = make_entry(page, unit_id, lot_id, usable + 2000)
    expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 3.")
    context.set_offline(False)  # the browser's "online" event starts the sync

    refused = page.locator("#offline-list li[data-state=refused]")
    expect(refused).to_have_count(2)
    expect(refused.first).to_contain_text("Insufficient stock")
    assert movements_by_client_id(runtime, [fine, too_many, dropped]) == {fine: [-1]}
    page.reload()  # kept on the device, not dropped silently
    expect(refused).to_have_count(2)
    expect(page.locator("#offline-count")).to_contain_text("Refused: 2")
    # The queue panel is readable on a phone and has nothing serious for axe.
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shown = Journey(page, live, "offline-queue-panel")
    shown.check("refused-entries-360px")

    # Correct: the form gets the entry back (same client id); sent once fixed, it leaves the list.
    refused.filter(has_text=str(usable + 1000)).get_by_role("button", name="Correct").click()
    form = page.locator("#form-consumption form")
    expect(form.locator("input[name=client_id]")).to_have_value(too_many)
    form.locator("input[name=doses]").fill("2")
    form.get_by_role("button", name="Record doses given").click()
    expect(refused).to_have_count(1)
    # Drop: only by the officer's own hand.
    refused.get_by_role("button", name="Drop").click()
    page.wait_for_function(QUEUE_EMPTY)
    assert entries_in_queue(page) == []
    assert movements_by_client_id(runtime, [fine, too_many, dropped]) == {
        fine: [-1],
        too_many: [-2],
    }


def _shipment_and_session(
    runtime: Runtime, world: scenario.Scenario, centre_id: int, product_id: int
) -> tuple[int, int, int]:
    """A shipment on its way to the centre and an open session today: (shipment, doses, session)."""
    district_id = world.ids["stores"]["MH-DVS-PUNE"]
    conf = runtime.settings
    with runtime.uow() as uow:
        lot = max(stock.store_balances(uow, district_id), key=lambda b: b.doses).lot
        movement = stock.issue_stock(
            uow,
            store_id=district_id,
            to_store_id=centre_id,
            doses=20,
            rec=stock.recorded("dev", None, None),
            product_id=lot.product_id,
        )
        shipment_id = movement.shipment_id
        uow.commit()
    now = dt.datetime.now(dt.UTC)
    today = local_date(now, conf.site_timezone)
    with runtime.uow() as uow:
        opened = sessions.open_session(
            uow,
            sessions.SessionRequest(centre_id, product_id, today, 20, "1", 18),
            actor="priya",
            now=now,
            site_timezone=conf.site_timezone,
            day_start=dt.time.fromisoformat(conf.sessions_day_start),
            slot_minutes=conf.sessions_slot_minutes,
            slot_count=conf.sessions_slot_count,
        )
        uow.commit()
        session_id = opened.id
        uow.commit()
    return shipment_id, 20, session_id


def test_every_centre_page_of_the_issue_records_offline(
    page, runtime, settings, world, centre, tmp_path
):
    store_id, unit_id, lot_id = centre["store_id"], centre["unit_id"], centre["lot_id"]
    with runtime.uow() as uow:
        create_user(
            uow,
            username="meena",
            password=OFFICER_PASSWORD,
            roles=[("centre_officer", CENTRE), ("planner", CENTRE)],
        )
        uow.commit()
        product_id = next(
            b.lot.product_id for b in stock.store_balances(uow, store_id) if b.lot_id == lot_id
        )
    shipment_id, shipped, session_id = _shipment_and_session(runtime, world, store_id, product_id)
    before = balance(runtime, store_id, unit_id, lot_id)
    server = ServerProcess(settings.database_url, free_port(), tmp_path)
    server.start()
    try:
        login(page, server.url, "meena")
        page.goto(f"{server.url}/centres/{store_id}/planner")
        page.wait_for_function(CONTROLLED)
        wait_until_kept(page)
        open_centre(page, server.url, store_id)
        server.stop()

        made = {"consumption": make_entry(page, unit_id, lot_id, 1)}
        wastage = page.locator("#form-wastage form")
        made["wastage"] = wastage.locator("input[name=client_id]").input_value()
        wastage.get_by_label("From unit").select_option(str(unit_id))
        wastage.get_by_label("Lot").select_option(str(lot_id))
        wastage.get_by_label("Doses").fill("2")
        wastage.get_by_label("Reason").select_option("breakage")
        wastage.get_by_role("button", name="Record wastage").click()
        expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 2.")
        count = page.locator("#form-count form")
        made["count"] = count.locator("input[name=client_id]").input_value()
        count.get_by_label("Unit").select_option(str(unit_id))
        count.get_by_label("Lot").select_option(str(lot_id))
        count.get_by_label("Doses counted").fill(str(before - 10))
        count.get_by_role("button", name="Record count").click()
        expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 3.")
        receive = page.locator("#form-receive form")
        made["receive"] = receive.locator("input[name=client_id]").input_value()
        receive.get_by_label("Into unit").select_option(str(unit_id))
        receive.get_by_role("button", name=f"Receive shipment {shipment_id}").click()
        expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 4.")

        page.goto(f"{server.url}/centres/{store_id}/planner")  # today's sessions, from the cache
        today_session = page.locator(f"#h-s{session_id}").locator("..")
        expect(today_session).to_contain_text("Open")
        report = today_session.locator("form")
        made["report"] = report.locator("input[name=client_id]").input_value()
        report.get_by_label("Doses given").fill("12")
        report.get_by_label("Vials opened").fill("2")
        report.get_by_role("button", name="File report").click()
        expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 5.")
        assert [e["client_id"] for e in entries_in_queue(page)] == list(made.values())

        server.start()
        wait_until_sent(page)
    finally:
        server.stop()
    recorded = movements_by_client_id(runtime, list(made.values()))
    assert recorded[made["consumption"]] == [-1]
    assert recorded[made["wastage"]] == [-2]
    assert recorded[made["count"]] == [-7]  # counted before-10 after -1 and -2
    assert recorded[made["receive"]] == [shipped]
    with runtime.uow() as uow:
        filed = sessions.get_session(uow, session_id)
        assert filed.status == "reported"


def test_entries_kept_across_a_browser_restart_are_sent_once(
    playwright, browser_type_launch_args, runtime, settings, centre, tmp_path
):
    store_id, unit_id, lot_id = centre["store_id"], centre["unit_id"], centre["lot_id"]
    before = balance(runtime, store_id, unit_id, lot_id)
    profile = tmp_path / "profile"
    server = ServerProcess(settings.database_url, free_port(), tmp_path)
    server.start()
    try:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), **browser_type_launch_args
        )
        page = browser.new_page()
        login(page, server.url)
        open_centre(page, server.url, store_id)
        server.stop()
        made = [make_entry(page, unit_id, lot_id, 1 + n) for n in range(5)]
        expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 5.")
        browser.close()  # the browser is shut down with the entries waiting

        browser = playwright.chromium.launch_persistent_context(
            str(profile), **browser_type_launch_args
        )
        page = browser.new_page()
        page.goto(f"{server.url}/stores/{store_id}")  # the worker's copy: the server is down
        expect(page.locator("#offline-count")).to_have_text("Waiting to be sent: 5.")
        assert [e["client_id"] for e in entries_in_queue(page)] == made
        server.start()
        login(page, server.url)  # a session cookie may not outlive the browser: log in again
        page.goto(f"{server.url}/stores/{store_id}")
        wait_until_sent(page)
        browser.close()
    finally:
        server.stop()
    assert movements_by_client_id(runtime, made) == {
        client_id: [-(1 + n)] for n, client_id in enumerate(made)
    }
    assert balance(runtime, store_id, unit_id, lot_id) == before - 15
