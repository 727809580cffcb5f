"""Sessions on PostgreSQL through HTTP: usable doses, opening and resizing, bookings, reports."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from logistics.models.catalog import Lot
from logistics.models.sessions import Booking
from logistics.models.stock import LedgerEntry, Movement, Shipment, ShipmentLine, StockBalance
from tests.support.sessions_fixtures import (
    add_lot,
    add_unit,
    balance,
    day,
    make_site,
    receive,
    session_body,
)

pytestmark = pytest.mark.integration


def _open(client, site, capacity, **kw):
    response = client.post("/api/sessions", json=session_body(site, capacity, **kw))
    assert response.status_code == 201, response.json
    return response.json


# --- 1. usable doses -----------------------------------------------------------------------------


def test_usable_doses_leave_out_held_expired_and_vvm_unusable_stock(client, uow):
    site = make_site(uow, doses=500)
    held = add_lot(uow, site.product, "HELD")
    short_lived = add_lot(uow, site.product, "SHORT", expires_in_days=2)
    heated = add_lot(uow, site.product, "VVM3")
    recalled = add_lot(uow, site.product, "RECALL")
    for lot, doses in ((held, 100), (short_lived, 70), (heated, 40), (recalled, 30)):
        receive(uow, site.ilr, lot, doses)
    balance(uow, site.ilr, held).quarantined_doses = 60
    balance(uow, site.ilr, heated).vvm_stage = 3
    uow.session.get(Lot, recalled.id).quarantined = True
    uow.commit()

    on_day_2 = client.get(
        f"/api/centres/{site.centre.id}/usable-doses",
        query_string={"product_id": site.product.id, "date": day(2).isoformat()},
    )
    on_day_3 = client.get(
        f"/api/centres/{site.centre.id}/usable-doses",
        query_string={"product_id": site.product.id, "date": day(3).isoformat()},
    )
    assert on_day_2.json["usable_doses"] == 500 + 40 + 70
    assert on_day_3.json["usable_doses"] == 500 + 40  # the short-lived lot has expired by then


def test_in_transit_is_shown_apart_and_promises_are_subtracted(client, uow):
    site = make_site(uow, doses=300)
    shipment = Shipment(
        from_store_id=site.district.id,
        to_store_id=site.centre.id,
        status="in_transit",
        issued_at=dt.datetime.now(dt.UTC),
    )
    shipment.lines.append(ShipmentLine(lot_id=site.lot.id, doses_issued=200))
    uow.session.add(shipment)
    uow.commit()
    _open(client, site, 100, session_date=day(1).isoformat())
    _open(client, site, 50, session_date=day(5).isoformat())

    usable = client.get(
        f"/api/centres/{site.centre.id}/usable-doses",
        query_string={"product_id": site.product.id, "date": day(3).isoformat()},
    ).json
    assert usable["usable_doses"] == 300
    assert usable["in_transit_doses"] == 200
    assert usable["promised_doses"] == 100
    assert usable["promised_later_doses"] == 50
    assert usable["available_doses"] == 150  # the later session's doses are not free either


# --- 2. opening and resizing -------------------------------------------------------------------


def test_session_gets_four_two_hour_slots(client, uow):
    site = make_site(uow)
    session = _open(client, site, 100)
    assert [s["capacity"] for s in session["slots"]] == [25, 25, 25, 25]
    assert [(s["starts_at"], s["ends_at"]) for s in session["slots"]][0] == ("09:00:00", "11:00:00")
    assert session["district_id"] == site.district.id


def test_custom_slots_are_checked(client, uow):
    site = make_site(uow)
    windows = [{"start": "10:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]
    response = client.post("/api/sessions", json=session_body(site, 50, slots=windows))
    assert response.status_code == 422
    assert "slots" in response.json["errors"]


def test_opening_beyond_usable_doses_says_what_is_possible_in_whole_vials(client, uow):
    site = make_site(uow, doses=295)
    response = client.post("/api/sessions", json=session_body(site, 300))
    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    assert response.json["possible_doses"] == 295
    assert response.json["suggested_capacity"] == 290
    assert "capacity" in response.json["errors"]


def test_second_session_counts_the_first_promise(client, uow):
    site = make_site(uow, doses=300)
    _open(client, site, 200, session_date=day(3).isoformat())
    refused = client.post("/api/sessions", json=session_body(site, 150, on=day(1)))
    assert refused.status_code == 409
    assert refused.json["possible_doses"] == 100
    _open(client, site, 100, session_date=day(1).isoformat())


def test_session_in_the_past_is_refused(client, uow):
    site = make_site(uow)
    response = client.post("/api/sessions", json=session_body(site, 10, on=day(-1)))
    assert response.status_code == 409  # a conflict with today's date (issue 12)
    assert "session_date" in response.json["errors"]


def test_enlarging_is_checked_and_shrinking_keeps_bookings(client, uow):
    site = make_site(uow, doses=200)
    session = _open(client, site, 100)
    slot = session["slots"][0]["id"]
    for n in range(20):
        assert (
            client.post(
                f"/api/sessions/{session['id']}/bookings",
                json={"slot_id": slot, "beneficiary": f"B{n}"},
            ).status_code
            == 201
        )
    too_big = client.patch(f"/api/sessions/{session['id']}", json={"capacity": 210})
    assert too_big.status_code == 409 and too_big.json["possible_doses"] == 200
    below_booked = client.patch(f"/api/sessions/{session['id']}", json={"capacity": 19})
    assert below_booked.status_code == 409
    resized = client.patch(f"/api/sessions/{session['id']}", json={"capacity": 40})
    assert resized.status_code == 200
    assert [s["capacity"] for s in resized.json["slots"]] == [20, 7, 7, 6]
    enlarged = client.patch(f"/api/sessions/{session['id']}", json={"capacity": 200})
    assert enlarged.status_code == 200 and sum(s["capacity"] for s in enlarged.json["slots"]) == 200


# --- 3. bookings and reports -------------------------------------------------------------------


def test_full_slot_is_refused_and_cancellation_gives_the_seat_back(client, uow):
    site = make_site(uow)
    session = _open(client, site, 4, slots=[{"start": "09:00", "end": "13:00"}])
    url = f"/api/sessions/{session['id']}/bookings"
    slot = session["slots"][0]["id"]
    ids = [
        client.post(url, json={"slot_id": slot, "beneficiary": f"P{n}"}).json["id"]
        for n in range(4)
    ]
    full = client.post(url, json={"slot_id": slot, "beneficiary": "P9"})
    assert full.status_code == 409 and full.content_type == "application/problem+json"
    assert client.post(f"/api/bookings/{ids[0]}/cancel").status_code == 200
    assert client.post(f"/api/bookings/{ids[0]}/cancel").status_code == 409  # once only
    assert client.post(url, json={"slot_id": slot, "beneficiary": "P9"}).status_code == 201
    assert client.get(f"/api/sessions/{session['id']}").json["slots"][0]["booked"] == 4


def test_same_beneficiary_cannot_book_twice(client, uow):
    site = make_site(uow)
    session = _open(client, site, 20)
    url = f"/api/sessions/{session['id']}/bookings"
    first = client.post(url, json={"slot_id": session["slots"][0]["id"], "beneficiary": "ABHA-1"})
    again = client.post(url, json={"slot_id": session["slots"][1]["id"], "beneficiary": "ABHA-1"})
    assert first.status_code == 201 and again.status_code == 409
    assert client.get(f"/api/sessions/{session['id']}").json["slots"][1]["booked"] == 0


def test_slot_of_another_session_is_not_found(client, uow):
    site = make_site(uow)
    one, other = _open(client, site, 20), _open(client, site, 20)
    response = client.post(
        f"/api/sessions/{one['id']}/bookings",
        json={"slot_id": other["slots"][0]["id"], "beneficiary": "X"},
    )
    assert response.status_code == 404


def test_cancelled_session_takes_no_bookings_and_frees_its_doses(client, uow):
    site = make_site(uow, doses=100)
    session = _open(client, site, 100)
    client.post(
        f"/api/sessions/{session['id']}/bookings",
        json={"slot_id": session["slots"][0]["id"], "beneficiary": "A"},
    )
    assert client.post(f"/api/sessions/{session['id']}/cancel").status_code == 200
    late = client.post(
        f"/api/sessions/{session['id']}/bookings",
        json={"slot_id": session["slots"][0]["id"], "beneficiary": "B"},
    )
    assert late.status_code == 409
    assert uow.session.scalar(select(func.count()).where(Booking.status == "booked")) == 0
    _open(client, site, 100)


def test_report_puts_consumption_and_open_vial_wastage_in_the_ledger_fefo(client, uow):
    site = make_site(uow, doses=100)  # lot expiring in 180 days in ILR-1
    second = add_unit(uow, site.centre, "ILR-2")
    early = add_lot(uow, site.product, "EARLY", expires_in_days=30)
    receive(uow, second, early, 50)
    session = _open(client, site, 100, session_date=day(0).isoformat())

    response = client.post(
        f"/api/sessions/{session['id']}/report", json={"doses_given": 72, "vials_opened": 8}
    )
    assert response.status_code == 201, response.json
    assert response.json["wasted_doses"] == 8
    assert balance(uow, second, early).doses == 0  # earliest expiry first, from the other unit
    assert balance(uow, site.ilr, site.lot).doses == 100 - 30
    query = (
        select(Movement.kind, func.sum(LedgerEntry.doses))
        .join(LedgerEntry, LedgerEntry.movement_id == Movement.id)
        .where(Movement.kind != "receipt")
        .group_by(Movement.kind)
    )
    kinds = {kind: int(doses) for kind, doses in uow.session.execute(query)}
    assert kinds == {"consumption": -72, "wastage": -8}
    assert client.get(f"/api/sessions/{session['id']}").json["status"] == "reported"
    again = client.post(
        f"/api/sessions/{session['id']}/report", json={"doses_given": 1, "vials_opened": 1}
    )
    assert again.status_code == 409


def test_report_with_more_doses_than_the_vials_held_is_refused(client, uow):
    site = make_site(uow)
    session = _open(client, site, 50, session_date=day(0).isoformat())
    response = client.post(
        f"/api/sessions/{session['id']}/report", json={"doses_given": 31, "vials_opened": 3}
    )
    assert response.status_code == 422
    assert "doses_given" in response.json["errors"]
    assert uow.session.scalar(select(func.sum(StockBalance.doses))) == 500


def test_report_beyond_usable_stock_records_nothing(client, uow):
    site = make_site(uow, doses=30)
    session = _open(client, site, 30, session_date=day(0).isoformat())
    response = client.post(
        f"/api/sessions/{session['id']}/report", json={"doses_given": 35, "vials_opened": 4}
    )
    assert response.status_code == 409
    assert uow.session.scalar(select(func.count()).select_from(Movement)) == 1  # the receipt only
    assert client.get(f"/api/sessions/{session['id']}").json["status"] == "open"


def test_future_session_cannot_be_reported(client, uow):
    site = make_site(uow)
    session = _open(client, site, 50, session_date=day(2).isoformat())
    response = client.post(
        f"/api/sessions/{session['id']}/report", json={"doses_given": 0, "vials_opened": 0}
    )
    assert response.status_code == 422


def test_ids_beyond_the_database_range_are_not_found_and_bad_names_refused(client, uow):
    site = make_site(uow)
    assert client.get("/api/sessions/92972841171").status_code == 404
    assert client.post("/api/bookings/92972841171000000000/cancel").status_code == 404
    assert client.get("/api/districts/92972841171/session-planner").status_code == 404
    session = _open(client, site, 10)
    bad = client.post(
        f"/api/sessions/{session['id']}/bookings",
        json={"slot_id": session["slots"][0]["id"], "beneficiary": "A\x00B"},
    )
    assert bad.status_code == 422 and "beneficiary" in bad.json["errors"]
