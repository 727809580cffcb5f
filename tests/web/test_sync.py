"""POST /sync/entries: queued offline entries recorded once, refusals with their reason, and 503
(not 500) while the database is unreachable (issue 15)."""

from __future__ import annotations

import datetime as dt
import socket
import uuid

import pytest
from sqlalchemy import delete, select

from logistics.app import create_app
from logistics.config import load_settings
from logistics.db import make_engine, make_session_factory
from logistics.models.stock import IdempotencyRecord, Movement
from logistics.runtime import Runtime
from logistics.services import stock
from logistics.web.access import TOKEN_KEY
from tests.web.conftest import csrf_of

pytestmark = pytest.mark.integration
CENTRE = "PUN-PHC-BARAMATI"


@pytest.fixture
def officer(person, demo):
    client = person("centre_officer", CENTRE)
    html = client.get(f"/stores/{demo['stores'][CENTRE]}").get_data(as_text=True)
    client.environ_base["HTTP_X_CSRF_TOKEN"] = csrf_of(html)
    return client


@pytest.fixture
def held(runtime, demo):
    """(unit_id, lot_id, doses) of the centre's largest balance."""
    with runtime.uow() as uow:
        rows = [
            (b.unit_id, b.lot_id, b.doses - b.quarantined_doses)
            for b in stock.store_balances(uow, demo["stores"][CENTRE])
        ]
    return max(rows, key=lambda row: row[2])


def _entry(store_id: int, unit_id: int, lot_id: int, doses: int, client_id: str | None = None):
    client_id = client_id or str(uuid.uuid4())
    return {
        "client_id": client_id,
        "action": f"/stores/{store_id}/forms/consumption",
        "fields": {
            "client_id": client_id,
            "unit_id": str(unit_id),
            "lot_id": str(lot_id),
            "doses": str(doses),
        },
    }


def _movements(runtime, client_id: str) -> list[int]:
    with runtime.uow() as uow:
        rows = uow.session.scalars(select(Movement).where(Movement.client_id == client_id))
        return [sum(e.doses for e in m.entries) for m in rows]


def _doses(runtime, store_id: int, unit_id: int, lot_id: int) -> int:
    with runtime.uow() as uow:
        return next(
            b.doses
            for b in stock.store_balances(uow, store_id)
            if b.unit_id == unit_id and b.lot_id == lot_id
        )


def test_entries_are_recorded_once_even_when_sent_again_after_the_keys_expired(
    officer, demo, held, runtime
):
    store_id = demo["stores"][CENTRE]
    unit_id, lot_id, _ = held
    before = _doses(runtime, store_id, unit_id, lot_id)
    entries = [_entry(store_id, unit_id, lot_id, n) for n in (2, 3)]
    first = officer.post("/sync/entries", json={"entries": entries}).get_json()["results"]
    assert [r["status"] for r in first] == ["recorded", "recorded"]
    again = officer.post("/sync/entries", json={"entries": entries}).get_json()["results"]
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert again[0]["message"] == first[0]["message"]  # the first answer, replayed
    with runtime.uow() as uow:  # a long outage: the replay records are gone (ttl 24 h)
        uow.session.execute(delete(IdempotencyRecord))
        uow.commit()
    late = officer.post("/sync/entries", json={"entries": entries}).get_json()["results"]
    assert [r["status"] for r in late] == ["duplicate", "duplicate"]
    assert [_movements(runtime, e["client_id"]) for e in entries] == [[-2], [-3]]
    assert _doses(runtime, store_id, unit_id, lot_id) == before - 5


def test_a_form_posted_directly_then_synced_from_the_queue_is_recorded_once(
    officer, demo, held, runtime
):
    store_id = demo["stores"][CENTRE]
    unit_id, lot_id, _ = held
    entry = _entry(store_id, unit_id, lot_id, 4)
    posted = officer.post(entry["action"], data={**entry["fields"]}, headers={"HX-Request": "true"})
    assert posted.status_code == 200
    synced = officer.post("/sync/entries", json={"entries": [entry]}).get_json()["results"]
    assert synced[0]["status"] == "duplicate"
    assert _movements(runtime, entry["client_id"]) == [-4]


def test_a_refused_entry_comes_back_with_its_reason_and_records_nothing(
    officer, demo, held, runtime
):
    store_id = demo["stores"][CENTRE]
    unit_id, lot_id, doses = held
    too_many = _entry(store_id, unit_id, lot_id, doses + 1000)
    fine = _entry(store_id, unit_id, lot_id, 1)
    unreadable = {"client_id": "x", "action": 5}
    elsewhere = _entry(store_id, unit_id, lot_id, 1)
    elsewhere["action"] = "/alerts"
    answer = officer.post(
        "/sync/entries", json={"entries": [too_many, fine, unreadable, elsewhere]}
    ).get_json()
    statuses = [(r["status"], r.get("reason", "")) for r in answer["results"]]
    assert statuses[0][0] == "refused" and "Insufficient stock" in statuses[0][1]
    assert statuses[1] == ("recorded", "")
    assert statuses[2] == ("refused", "This entry is unreadable.")
    assert statuses[3][0] == "refused"
    assert statuses[3][1].endswith("This page cannot record entries offline.")
    assert _movements(runtime, too_many["client_id"]) == []
    # Refusals keep nothing: once corrected, the same client id is judged afresh.
    too_many["fields"]["doses"] = "2"
    again = officer.post("/sync/entries", json={"entries": [too_many]}).get_json()["results"]
    assert again[0]["status"] == "recorded"
    assert _movements(runtime, too_many["client_id"]) == [-2]


def test_the_sync_needs_the_csrf_header_and_a_list_of_entries(officer, demo, held):
    entry = _entry(demo["stores"][CENTRE], held[0], held[1], 1)
    assert (
        officer.post(
            "/sync/entries", json={"entries": [entry]}, headers={"X-CSRF-Token": "forged"}
        ).status_code
        == 400
    )
    empty = officer.post("/sync/entries", json={"entries": []})
    assert empty.status_code == 400 and empty.mimetype == "application/problem+json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_answers_503_with_retry_after_not_500(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/nowhere?connect_timeout=2"
    settings = load_settings({"database_url": url, "web_key_file": str(tmp_path / "key")})
    engine = make_engine(url, pool_size=1)
    app = create_app(runtime=Runtime(settings, engine, make_session_factory(engine)))
    client = app.test_client()
    with client.session_transaction() as session:
        session["csrf"] = "token"
        session[TOKEN_KEY] = "a-token-the-database-would-check"
    answer = client.post(
        "/sync/entries", json={"entries": [{"client_id": "a"}]}, headers={"X-CSRF-Token": "token"}
    )
    assert answer.status_code == 503
    assert answer.mimetype == "application/problem+json"
    assert int(answer.headers["Retry-After"]) > 0
    page = client.get("/stores/1")
    assert page.status_code == 503 and "Retry-After" in page.headers
    engine.dispose()


def _occurred(runtime, client_id: str) -> list:
    with runtime.uow() as uow:
        rows = uow.session.scalars(select(Movement).where(Movement.client_id == client_id))
        return [m.occurred_at for m in rows]


def test_a_queued_entry_is_dated_when_it_was_made_not_when_it_reached_the_server(
    officer, demo, held, runtime
):
    store_id = demo["stores"][CENTRE]
    unit_id, lot_id, _ = held
    phone_now = dt.datetime.now(dt.UTC)
    entry = _entry(store_id, unit_id, lot_id, 1)
    entry["made_at"] = (phone_now - dt.timedelta(hours=2)).isoformat()
    before = dt.datetime.now(dt.UTC)
    results = officer.post(
        "/sync/entries", json={"sent_at": phone_now.isoformat(), "entries": [entry]}
    ).get_json()["results"]
    after = dt.datetime.now(dt.UTC)
    assert [r["status"] for r in results] == ["recorded"]
    [occurred] = _occurred(runtime, entry["client_id"])
    assert before - dt.timedelta(hours=2, seconds=1) <= occurred <= after - dt.timedelta(hours=2)


def test_a_phone_whose_clock_is_a_day_ahead_still_dates_its_entries_by_their_age(
    officer, demo, held, runtime
):
    store_id = demo["stores"][CENTRE]
    unit_id, lot_id, _ = held
    phone_now = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)  # the phone's clock is wrong
    entry = _entry(store_id, unit_id, lot_id, 1)
    entry["made_at"] = (phone_now - dt.timedelta(minutes=90)).isoformat().replace("+00:00", "Z")
    before = dt.datetime.now(dt.UTC)
    results = officer.post(
        "/sync/entries",
        json={"sent_at": phone_now.isoformat().replace("+00:00", "Z"), "entries": [entry]},
    ).get_json()["results"]
    after = dt.datetime.now(dt.UTC)
    assert [r["status"] for r in results] == ["recorded"]
    [occurred] = _occurred(runtime, entry["client_id"])
    assert (
        before - dt.timedelta(minutes=90, seconds=1) <= occurred <= after - dt.timedelta(minutes=90)
    )
