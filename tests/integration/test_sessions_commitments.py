"""Promises against stock: an alert names the over-committed sessions and clears when covered."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from logistics.models.alerts import Alert
from logistics.models.sessions import Session
from logistics.services import commitments
from logistics.services.stock import record_wastage
from tests.support.sessions_fixtures import SITE_TZ, balance, day, make_site, now, session_body

pytestmark = pytest.mark.integration


def _open(client, site, capacity, on):
    response = client.post("/api/sessions", json=session_body(site, capacity, on=on))
    assert response.status_code == 201, response.json
    return response.json["id"]


def _check(runtime, store_id):
    with runtime.uow() as uow:
        short = commitments.check_commitments(uow, store_id, now(), site_timezone=SITE_TZ)
        uow.commit()
    return short


def _open_alerts(uow):
    query = select(Alert).where(Alert.kind == commitments.OVERCOMMITTED, Alert.state != "resolved")
    return list(uow.session.scalars(query.execution_options(populate_existing=True)))


def test_quarantine_below_promises_raises_an_alert_naming_sessions_and_doses(client, runtime, uow):
    site = make_site(uow, doses=500)
    first = _open(client, site, 200, day(1))
    second = _open(client, site, 200, day(3))
    balance(uow, site.ilr, site.lot).quarantined_doses = 300
    uow.commit()

    assert _check(runtime, site.centre.id) == {second: 200}
    (alert,) = _open_alerts(uow)
    assert alert.subject_id == str(site.centre.id)
    assert alert.details["short_doses"] == 200
    assert [(s["session_id"], s["short_doses"]) for s in alert.details["sessions"]] == [
        (second, 200)
    ]
    assert f"session {second}" in alert.message and f"session {first}" not in alert.message
    assert uow.session.get(Session, second, populate_existing=True).shortfall_doses == 200

    balance(uow, site.ilr, site.lot).quarantined_doses = 0  # released after review
    uow.commit()
    assert _check(runtime, site.centre.id) == {}
    assert _open_alerts(uow) == []
    assert uow.session.get(Session, second, populate_existing=True).shortfall_doses == 0


def test_discard_through_the_ledger_then_check(client, runtime, uow):
    site = make_site(uow, doses=300)
    session_id = _open(client, site, 300, day(2))
    record_wastage(
        uow,
        store_id=site.centre.id,
        unit_id=site.ilr.id,
        lot_id=site.lot.id,
        doses=45,
        reason="breakage",
        actor="t",
    )
    uow.commit()
    assert _check(runtime, site.centre.id) == {session_id: 45}
    (alert,) = _open_alerts(uow)
    assert alert.details["sessions"][0]["short_doses"] == 45


def test_short_session_shows_and_books_only_covered_seats(client, app, runtime, uow):
    site = make_site(uow, doses=100)
    session = client.post("/api/sessions", json=session_body(site, 100, on=day(1))).json
    balance(uow, site.ilr, site.lot).quarantined_doses = 97
    uow.commit()
    _check(runtime, site.centre.id)

    public = app.test_client().get(
        "/api/v2/appointment/sessions/public/findByDistrict",
        query_string={"district_id": site.district.id, "date": day(1).strftime("%d-%m-%Y")},
    )
    assert public.json["sessions"][0]["available_capacity"] == 3
    url = f"/api/sessions/{session['id']}/bookings"
    slots = [slot["id"] for slot in session["slots"]]
    codes = [
        client.post(url, json={"slot_id": slots[n % 4], "beneficiary": f"P{n}"}).status_code
        for n in range(4)
    ]
    assert codes == [201, 201, 201, 409]


def test_cancelling_the_short_session_clears_the_alert(client, runtime, uow):
    site = make_site(uow, doses=100)
    session_id = _open(client, site, 100, day(1))
    balance(uow, site.ilr, site.lot).quarantined_doses = 50
    uow.commit()
    _check(runtime, site.centre.id)
    assert len(_open_alerts(uow)) == 1
    assert client.post(f"/api/sessions/{session_id}/cancel").status_code == 200
    assert _open_alerts(uow) == []


def test_open_refused_while_over_committed(client, runtime, uow):
    site = make_site(uow, doses=100)
    _open(client, site, 100, day(1))
    balance(uow, site.ilr, site.lot).quarantined_doses = 10
    uow.commit()
    response = client.post("/api/sessions", json=session_body(site, 10, on=day(2)))
    assert response.status_code == 409
    assert response.json["possible_doses"] == 0


def test_periodic_check_covers_every_centre(client, runtime, uow):
    site = make_site(uow, doses=100)
    _open(client, site, 100, day(1))
    balance(uow, site.ilr, site.lot).quarantined_doses = 100
    uow.commit()
    assert commitments.check_all_commitments(runtime.uow, now(), site_timezone=SITE_TZ) == 1
    assert len(_open_alerts(uow)) == 1


def test_scheduler_runs_the_commitment_check(client, runtime, uow):
    from logistics.services.scheduler import JOBS

    site = make_site(uow, doses=100)
    _open(client, site, 100, day(1))
    balance(uow, site.ilr, site.lot).quarantined_doses = 30
    uow.commit()
    assert JOBS["commitments"](runtime, now()) == {"centres_short": 1}
    (alert,) = _open_alerts(uow)
    assert alert.details["short_doses"] == 30


def test_booking_checks_stock_even_before_the_commitment_check_ran(client, uow):
    site = make_site(uow, doses=100)
    session = client.post("/api/sessions", json=session_body(site, 100, on=day(1))).json
    balance(uow, site.ilr, site.lot).quarantined_doses = 98  # no check_commitments call yet
    uow.commit()
    url = f"/api/sessions/{session['id']}/bookings"
    slot = session["slots"][0]["id"]
    codes = [
        client.post(url, json={"slot_id": slot, "beneficiary": f"P{n}"}).status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 409]


def test_a_ledger_debit_rechecks_promises_at_once(client, runtime, uow):
    """No waiting for the scheduler: the wastage's own transaction raises the alert."""
    site = make_site(uow, doses=300)
    session_id = _open(client, site, 300, day(2))
    assert _open_alerts(uow) == []
    record_wastage(
        uow,
        store_id=site.centre.id,
        unit_id=site.ilr.id,
        lot_id=site.lot.id,
        doses=20,
        reason="breakage",
        actor="t",
    )
    uow.commit()
    (alert,) = _open_alerts(uow)
    assert alert.details["sessions"][0]["session_id"] == session_id
    assert alert.details["short_doses"] == 20


def test_a_movement_clears_an_alert_left_open_without_open_sessions(client, runtime, uow):
    """The ledger skips the re-check only when there is neither an open session nor an open
    alert (issue 17): an alert whose sessions were closed elsewhere still clears."""
    site = make_site(uow, doses=100)
    session_id = _open(client, site, 100, day(1))
    balance(uow, site.ilr, site.lot).quarantined_doses = 50
    uow.commit()
    _check(runtime, site.centre.id)
    assert len(_open_alerts(uow)) == 1
    uow.session.get(Session, session_id, populate_existing=True).status = "reported"
    uow.commit()
    record_wastage(
        uow,
        store_id=site.centre.id,
        unit_id=site.ilr.id,
        lot_id=site.lot.id,
        doses=1,
        reason="breakage",
        actor="t",
    )
    uow.commit()
    assert _open_alerts(uow) == []
