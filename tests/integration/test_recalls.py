"""Recalls and expired lots (issue 11, point 7), through HTTP on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from logistics.app import create_app
from logistics.models.auth import AuditEntry
from logistics.models.catalog import Lot
from logistics.models.stock import ShipmentLine
from logistics.runtime import Runtime
from tests.support.sessions_fixtures import (
    add_lot,
    add_store,
    add_unit,
    day,
    make_site,
    receive,
    session_body,
)

pytestmark = pytest.mark.integration
BY_CENTRE = "/api/v2/appointment/sessions/public/findByCenter"


@pytest.fixture
def site(uow):
    return make_site(uow, doses=200)


def recall(client, lot_id, store_id=None, reason="CDSCO notice: not of standard quality"):
    body = {"reason": reason} if store_id is None else {"reason": reason, "store_id": store_id}
    return client.post(f"/api/lots/{lot_id}/recalls", json=body)


def lift(client, lot_id, store_id=None, reason="retest passed"):
    body = {"reason": reason} if store_id is None else {"reason": reason, "store_id": store_id}
    return client.post(f"/api/lots/{lot_id}/recalls/lift", json=body)


def usable(client, site, on=None):
    response = client.get(
        f"/api/centres/{site.centre.id}/usable-doses",
        query_string={"product_id": site.product.id, "date": (on or day(1)).isoformat()},
    )
    assert response.status_code == 200, response.json
    return response.json["usable_doses"]


def consume(client, site, doses=10):
    return client.post(
        "/api/consumptions",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.centre.id,
            "unit_id": site.ilr.id,
            "lot_id": site.lot.id,
            "doses": doses,
        },
    )


def test_a_state_officer_recalls_a_lot_in_their_state_and_lifts_it(
    client, client_as, runtime, site
):
    officer = client_as("state_officer", site.state.id)
    session = client.post("/api/sessions", json=session_body(site, 100, on=day(1)))
    assert session.status_code == 201, session.json
    # A web process that asks for the district's version on every request (no 0.5 s reuse).
    eager = Runtime(
        runtime.settings.replace(availability_version_check_s=0),
        runtime.engine,
        runtime.session_factory,
    )
    public = create_app(runtime=eager).test_client()
    query = {"center_id": site.centre.id, "date": day(1).strftime("%d-%m-%Y")}

    def seats():
        return public.get(BY_CENTRE, query_string=query).json["sessions"][0]["available_capacity"]

    assert seats() == 100
    assert usable(client, site) == 200

    placed = recall(officer, site.lot.id, site.state.id)
    assert placed.status_code == 201, placed.json
    assert placed.json["store_id"] == site.state.id and placed.json["lifted_at"] is None
    # Respected everywhere: usable doses, consumption, sessions, the public availability.
    assert usable(client, site) == 0
    refused = consume(client, site)
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    again = client.post("/api/sessions", json=session_body(site, 10, on=day(2)))
    assert again.status_code == 409, again.json
    assert seats() == 0
    assert recall(officer, site.lot.id, site.state.id).status_code == 409  # already held there

    lifted = lift(officer, site.lot.id, site.state.id)
    assert lifted.status_code == 200, lifted.json
    assert lifted.json["lift_reason"] == "retest passed" and lifted.json["lifted_by"]
    assert usable(client, site) == 200
    assert consume(client, site).status_code == 201
    assert seats() == 100
    listed = client.get(f"/api/lots/{site.lot.id}/recalls").json
    assert [(r["reason"], r["lift_reason"]) for r in listed] == [
        ("CDSCO notice: not of standard quality", "retest passed")
    ]
    with runtime.uow() as uow:
        audited = [
            (entry.action, entry.endpoint)
            for entry in uow.session.scalars(
                select(AuditEntry).where(AuditEntry.entity == "lot_recalls").order_by(AuditEntry.id)
            )
        ]
    assert audited == [("insert", "stock.LotRecalls"), ("update", "stock.LotRecallLift")]


def test_who_may_recall(client, client_as, uow, site):
    other_state = add_store(uow, "TN", "state", None)
    uow.commit()
    district_officer = client_as("district_officer", site.district.id)
    other_state_officer = client_as("state_officer", other_state.id)
    state_officer = client_as("state_officer", site.state.id)
    assert recall(district_officer, site.lot.id, site.district.id).status_code == 403
    assert recall(other_state_officer, site.lot.id, site.state.id).status_code == 403
    # The whole network is beyond a state officer; an administrator may hold it there.
    assert recall(state_officer, site.lot.id).status_code == 403
    network = recall(client, site.lot.id)
    assert network.status_code == 201 and network.json["store_id"] is None
    assert uow.session.get(Lot, site.lot.id, populate_existing=True).quarantined is True
    assert consume(client, site).status_code == 409
    assert lift(state_officer, site.lot.id).status_code == 403
    assert lift(client, site.lot.id).status_code == 200
    assert uow.session.get(Lot, site.lot.id, populate_existing=True).quarantined is False


def test_recall_errors_are_problems(client, site):
    missing = client.post(f"/api/lots/{site.lot.id}/recalls", json={"store_id": site.state.id})
    assert missing.status_code == 422 and missing.mimetype == "application/problem+json"
    assert "reason" in missing.json["errors"]
    blank = recall(client, site.lot.id, site.state.id, reason="   ")
    assert blank.status_code == 422 and blank.mimetype == "application/problem+json"
    assert lift(client, site.lot.id, site.state.id).status_code == 404
    assert recall(client, 999_999, site.state.id).status_code == 404
    assert recall(client, site.lot.id, 999_999).status_code in (403, 404)


def test_fefo_skips_a_recalled_lot(client, uow, site):
    store = add_unit(uow, site.district, "ILR-D")
    early = add_lot(uow, site.product, "EARLY", expires_in_days=30)
    late = add_lot(uow, site.product, "LATE", expires_in_days=300)
    uow.commit()
    receive(uow, store, early, 100)
    receive(uow, store, late, 100)
    assert recall(client, early.id, site.district.id).status_code == 201
    issued = client.post(
        "/api/issues",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.district.id,
            "to_store_id": site.centre.id,
            "product_id": site.product.id,
            "doses": 50,
        },
    )
    assert issued.status_code == 201, issued.json
    assert [(e["lot_id"], e["doses"]) for e in issued.json["entries"]] == [(late.id, -50)]
    # The recall holds the district's subtree only: the state's own stock is not held.
    state_unit = add_unit(uow, site.state, "ILR-S")
    uow.commit()
    receive(uow, state_unit, early, 30)
    to_district = client.post(
        "/api/issues",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.state.id,
            "to_store_id": site.district.id,
            "lot_id": early.id,
            "doses": 30,
        },
    )
    assert to_district.status_code == 201, to_district.json


def test_an_expired_lot_in_a_shipment_is_received_with_reason_expired(client, uow, site):
    store = add_unit(uow, site.district, "ILR-D")
    lot = add_lot(uow, site.product, "SHORT-LIFE", expires_in_days=-2)
    uow.commit()
    five_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=5)
    receipt = client.post(
        "/api/receipts",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.district.id,
            "unit_id": store.id,
            "lot_id": lot.id,
            "doses": 100,
            "occurred_at": five_days_ago.isoformat(),
        },
    )
    assert receipt.status_code == 201, receipt.json
    issue = client.post(
        "/api/issues",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.district.id,
            "to_store_id": site.centre.id,
            "lot_id": lot.id,
            "doses": 40,
            "occurred_at": (five_days_ago + dt.timedelta(hours=1)).isoformat(),
        },
    )
    assert issue.status_code == 201, issue.json
    shipment_id = issue.json["shipment_id"]

    def receive_lines(lines):
        return client.post(
            "/api/receipts",
            json={
                "client_id": str(uuid.uuid4()),
                "store_id": site.centre.id,
                "unit_id": site.ilr.id,
                "shipment_id": shipment_id,
                "lines": lines,
            },
        )

    refused = receive_lines([{"lot_id": lot.id, "doses_received": 40}])
    # The stored lot's expiry refuses it (409), not the request's form.
    assert refused.status_code == 409 and "reason 'expired'" in refused.json["detail"]
    received = receive_lines([{"lot_id": lot.id, "doses_received": 0, "reason": "expired"}])
    assert received.status_code == 201, received.json
    line = uow.session.scalars(
        select(ShipmentLine).where(ShipmentLine.shipment_id == shipment_id)
    ).one()
    uow.session.refresh(line)
    assert (line.doses_received, line.difference_reason) == (0, "expired")


def test_reason_expired_is_refused_for_a_lot_still_valid(client, uow, site):
    store = add_unit(uow, site.district, "ILR-D")
    uow.commit()
    receive(uow, store, site.lot, 50)
    issue = client.post(
        "/api/issues",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.district.id,
            "to_store_id": site.centre.id,
            "lot_id": site.lot.id,
            "doses": 20,
        },
    )
    assert issue.status_code == 201, issue.json
    response = client.post(
        "/api/receipts",
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.centre.id,
            "unit_id": site.ilr.id,
            "shipment_id": issue.json["shipment_id"],
            "lines": [{"lot_id": site.lot.id, "doses_received": 0, "reason": "expired"}],
        },
    )
    assert response.status_code == 409 and "has not expired" in response.json["detail"]


def test_doses_given_before_a_recall_are_still_recorded(client, site):
    before = dt.datetime.now(dt.UTC).isoformat()  # after the receipt, before each recall
    for store_id in (site.state.id, None):
        assert recall(client, site.lot.id, store_id).status_code == 201
        late_report = client.post(
            "/api/consumptions",
            json={
                "client_id": str(uuid.uuid4()),
                "store_id": site.centre.id,
                "unit_id": site.ilr.id,
                "lot_id": site.lot.id,
                "doses": 10,
                "occurred_at": before,
            },
        )
        assert late_report.status_code == 201, late_report.json
        assert consume(client, site).status_code == 409  # given now: held by the recall
        assert lift(client, site.lot.id, store_id).status_code == 200
