"""Retries never double anything (issue 11, point 3): sessions, bookings, cancellations, reports
and review decisions honour Idempotency-Key, per user, for idempotency.ttl_s. Real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select, text

from logistics.models.sessions import Session
from logistics.models.stock import StockBalance
from logistics.services.idempotency import purge_expired
from tests.support.sessions_fixtures import balance, day, make_site, receive, session_body

pytestmark = pytest.mark.integration
KEY = {"Idempotency-Key": "open-tomorrow-1"}


@pytest.fixture
def site(uow):
    return make_site(uow, doses=500)


def _sessions(runtime) -> int:
    with runtime.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Session))


def _booked_seats(runtime, session_id: int) -> int:
    # The slots' seat counters: a booking made twice counts twice here, whatever the keys.
    with runtime.uow() as uow:
        return uow.session.scalar(
            text("SELECT sum(booked) FROM session_slots WHERE session_id = :s"), {"s": session_id}
        )


def test_twenty_concurrent_identical_posts_make_one_session(runtime, client_as, site):
    planner = client_as("planner", site.centre.id)
    # One user, twenty connections (FlaskClient keeps no state between requests but cookies).
    planners = [planner.application.test_client() for _ in range(20)]
    for each in planners:
        each.environ_base.update(planner.environ_base)
    # 300 of 500 doses: a twin judged after the first committed would be refused (409), not
    # answered with the first one's session.
    body = session_body(site, 300)
    barrier, answers = threading.Barrier(20), [None] * 20

    def post(i: int) -> None:
        barrier.wait()
        answers[i] = planners[i].post("/api/sessions", json=body, headers=KEY)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 20, [a.json for a in answers]
    assert len({a.json["id"] for a in answers}) == 1
    assert [a.headers.get("Idempotent-Replayed") for a in answers].count("true") == 19
    assert _sessions(runtime) == 1
    promised = (
        planners[0]
        .get(
            f"/api/centres/{site.centre.id}/usable-doses",
            query_string={"product_id": site.product.id, "date": day(1).isoformat()},
        )
        .json["promised_doses"]
    )
    assert promised == 300


def test_five_retries_make_one_session(runtime, client, site):
    answers = [
        client.post("/api/sessions", json=session_body(site, 100), headers=KEY) for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [201] * 5
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None] + ["true"] * 4
    assert len({a.json["id"] for a in answers}) == 1
    assert answers[0].json == answers[4].json
    assert _sessions(runtime) == 1


def test_same_key_with_a_different_body_is_refused(runtime, client, site):
    assert (
        client.post("/api/sessions", json=session_body(site, 100), headers=KEY).status_code == 201
    )
    other = client.post("/api/sessions", json=session_body(site, 50), headers=KEY)
    assert other.status_code == 409
    assert other.mimetype == "application/problem+json"
    assert other.json["type"].endswith("/idempotency-key-reused")
    assert _sessions(runtime) == 1


def test_keys_are_scoped_per_user(runtime, client_as, site):
    first, second = client_as("planner", site.centre.id), client_as("planner", site.centre.id)
    a = first.post("/api/sessions", json=session_body(site, 100), headers=KEY)
    b = second.post("/api/sessions", json=session_body(site, 100), headers=KEY)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json["id"] != b.json["id"]
    assert "Idempotent-Replayed" not in b.headers
    assert _sessions(runtime) == 2


def test_a_refusal_stores_nothing_and_a_later_retry_is_judged_afresh(runtime, client, uow, site):
    too_big = client.post("/api/sessions", json=session_body(site, 900), headers=KEY)
    assert too_big.status_code == 409
    receive(uow, site.ilr, site.lot, 500)
    assert (
        client.post("/api/sessions", json=session_body(site, 900), headers=KEY).status_code == 201
    )


def test_booking_and_its_cancellation_are_not_doubled(runtime, client, site):
    session = client.post("/api/sessions", json=session_body(site, 100)).json
    slot = session["slots"][0]["id"]
    book = {"slot_id": slot, "beneficiary": "REF-1"}
    url = f"/api/sessions/{session['id']}/bookings"
    first = client.post(url, json=book, headers={"Idempotency-Key": "b1"})
    again = client.post(url, json=book, headers={"Idempotency-Key": "b1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json["id"] == first.json["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert _booked_seats(runtime, session["id"]) == 1
    cancel = f"/api/bookings/{first.json['id']}/cancel"
    c1 = client.post(cancel, headers={"Idempotency-Key": "c1"})
    c2 = client.post(cancel, headers={"Idempotency-Key": "c1"})
    assert (c1.status_code, c2.status_code) == (200, 200)
    assert c2.json == c1.json and c2.headers["Idempotent-Replayed"] == "true"
    assert _booked_seats(runtime, session["id"]) == 0
    # Without a key the repeat is judged afresh, and refused: the booking is already cancelled.
    assert client.post(cancel).status_code == 409


def test_session_cancel_and_resize_retries(runtime, client, site):
    session = client.post("/api/sessions", json=session_body(site, 100)).json
    url = f"/api/sessions/{session['id']}"
    r1 = client.patch(url, json={"capacity": 150}, headers={"Idempotency-Key": "r"})
    r2 = client.patch(url, json={"capacity": 150}, headers={"Idempotency-Key": "r"})
    assert (r1.status_code, r2.status_code) == (200, 200) and r2.json == r1.json
    c1 = client.post(f"{url}/cancel", headers={"Idempotency-Key": "x"})
    c2 = client.post(f"{url}/cancel", headers={"Idempotency-Key": "x"})
    assert (c1.status_code, c2.status_code) == (200, 200)
    assert c2.json["status"] == "cancelled" and c2.headers["Idempotent-Replayed"] == "true"


def test_end_of_session_report_is_recorded_once(runtime, client, uow, site):
    session = client.post("/api/sessions", json=session_body(site, 100, on=day(0))).json
    url = f"/api/sessions/{session['id']}/report"
    body = {"doses_given": 72, "vials_opened": 8}
    answers = [client.post(url, json=body, headers={"Idempotency-Key": "rep"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [201] * 3
    assert answers[2].json == answers[0].json
    assert balance(uow, site.ilr, site.lot).doses == 500 - 80  # 72 given, 8 open-vial wastage


@pytest.fixture
def heated(runtime):
    """A centre whose ILR held 500 doses through a 10-hour heat alarm: one pending review."""
    from logistics.services.stock import receive_stock, recorded
    from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

    t0 = dt.datetime(2021, 1, 9, 12, 0, tzinfo=dt.UTC)  # make_tree's lot is valid then
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.session.query(StockBalance).delete()
        add_sensor(uow, tree.ilr.id)
        uow.commit()
        receive_stock(
            uow,
            store_id=tree.centre.id,
            unit_id=tree.ilr.id,
            doses=500,
            rec=recorded("asha", t0 - dt.timedelta(hours=2), None),
            lot={"lot_id": tree.lot.id},
        )
        uow.commit()
    ingest(runtime, readings(t0, (30, 5.0), (601, 9.0), (30, 5.0)), t0 + dt.timedelta(hours=12))
    return tree


def test_review_decision_is_taken_once(runtime, client, heated):
    [review] = client.get(
        "/api/quarantine-reviews", query_string={"store_id": heated.centre.id, "state": "pending"}
    ).json
    url = f"/api/quarantine-reviews/{review['id']}/release"
    answers = [
        client.post(url, json={"comment": "VVM 1"}, headers={"Idempotency-Key": "d"})
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200] * 3
    assert answers[2].json == answers[0].json and answers[0].json["state"] == "released"
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    # A decision with another key is judged afresh: already decided.
    assert client.post(url, json={"comment": "VVM 1"}).status_code == 409


def test_an_expired_key_is_forgotten(runtime, client, site):
    first = client.post("/api/sessions", json=session_body(site, 100), headers=KEY)
    ttl = dt.timedelta(seconds=runtime.settings.idempotency_ttl_s)
    with runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE idempotency_records SET created_at = created_at - :age"),
            {"age": ttl + dt.timedelta(seconds=1)},
        )
    later = client.post("/api/sessions", json=session_body(site, 100), headers=KEY)
    assert later.status_code == 201 and later.json["id"] != first.json["id"]
    assert "Idempotent-Replayed" not in later.headers
    # The key is claimed afresh by the later request: a retry of it replays its answer.
    sessions = _sessions(runtime)
    retry = client.post("/api/sessions", json=session_body(site, 100), headers=KEY)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json == later.json and _sessions(runtime) == sessions


def test_the_purge_deletes_only_expired_keys(runtime, client, site):
    now = dt.datetime.now(dt.UTC)
    for key in ("old", "new"):
        client.post("/api/sessions", json=session_body(site, 10), headers={"Idempotency-Key": key})
    with runtime.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE idempotency_records SET created_at = :at WHERE created_at = "
                "(SELECT min(created_at) FROM idempotency_records)"
            ),
            {"at": now - dt.timedelta(days=2)},
        )
    with runtime.uow() as uow:
        assert purge_expired(uow, now=now, ttl_s=86400) == 1
        uow.commit()
    with runtime.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM idempotency_records")) == 1
    replay = client.post(
        "/api/sessions", json=session_body(site, 10), headers={"Idempotency-Key": "new"}
    )
    assert replay.headers.get("Idempotent-Replayed") == "true"


def test_another_users_client_id_is_refused_not_replayed(runtime, client_as, site):
    officer, other = (
        client_as("centre_officer", site.centre.id),
        client_as("centre_officer", site.centre.id),
    )
    body = {
        "client_id": "tablet-7-0001",
        "store_id": site.centre.id,
        "unit_id": site.ilr.id,
        "lot_id": site.lot.id,
        "doses": 10,
    }
    assert officer.post("/api/consumptions", json=body).status_code == 201
    stolen = other.post("/api/consumptions", json=body)
    assert stolen.status_code == 409 and "id" not in stolen.json
    assert officer.post("/api/consumptions", json=body).headers["Idempotent-Replayed"] == "true"
