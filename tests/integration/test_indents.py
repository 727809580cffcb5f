"""Indents through the API on PostgreSQL: suggestion, answer, shipment through the ledger's issue,
receipt, the trail of states, audit entries and the unanswered alert (issue 19, point 3)."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from logistics.models.alerts import Alert, StockLevel
from logistics.models.auth import AuditEntry
from logistics.models.sessions import Session
from logistics.models.stock import Movement
from logistics.services import indents, stock
from logistics.services.scheduler import JOBS
from tests.support.ledger import build_network, rec

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def now():
    return dt.datetime.now(dt.UTC)


def today():
    return now().astimezone(ZoneInfo("Asia/Kolkata")).date()


@pytest.fixture
def net(uow):
    """District holds 5000 doses; the centre received 1000, gave 600 five days ago."""
    net = build_network(uow, today())
    for store, unit, doses in (
        (net.district, net.district_ilr, 5000),
        (net.centre, net.centre_ilr, 1000),
    ):
        stock.receive_stock(
            uow,
            store_id=store,
            unit_id=unit,
            doses=doses,
            rec=rec(now() - dt.timedelta(days=10)),
            lot={"lot_id": net.lot_late},
        )
        uow.commit()
    stock.record_consumption(
        uow,
        store_id=net.centre,
        unit_id=net.centre_ilr,
        lot_id=net.lot_late,
        doses=600,
        actor="tester",
        occurred_at=now() - dt.timedelta(days=5),
    )
    uow.commit()
    return net


def add_session(uow, net, days_ahead, capacity):
    uow.session.add(
        Session(
            store_id=net.centre,
            district_id=net.district,
            product_id=net.covishield,
            session_date=today() + dt.timedelta(days=days_ahead),
            capacity=capacity,
            dose_number="1",
            min_age=18,
            status="open",
            created_at=now(),
            created_by="planner",
            updated_at=now(),
        )
    )
    uow.commit()


def suggestion(client, net, days=7):
    needed_by = today() + dt.timedelta(days=days)
    response = client.get(
        f"/api/indents/suggestion?store_id={net.centre}"
        f"&product_id={net.covishield}&needed_by={needed_by}"
    )
    assert response.status_code == 200, response.json
    return response.json


def test_the_suggestion_comes_from_consumption_sessions_and_the_maximum_level(client, uow, net):
    add_session(uow, net, 3, 200)  # before the needed-by date
    add_session(uow, net, 10, 100)  # within the supply period after it
    got = suggestion(client, net)
    # rate 600 / 30 days = 20 a day; use before delivery max(20 x 7, 200) = 200;
    # period needs max(20 x 30, 100) = 600; minimum 150; maximum 750;
    # available at delivery 400 - 200 = 200; suggested 750 - 200 = 550.
    assert (got["daily_consumption_doses"], got["on_hand_doses"]) == (20, 400)
    assert (got["sessions_before_doses"], got["sessions_after_doses"]) == (200, 100)
    assert (
        got["use_before_doses"],
        got["period_needs_doses"],
        got["minimum_doses"],
        got["maximum_doses"],
        got["available_at_delivery_doses"],
    ) == (200, 600, 150, 750, 200)
    assert got["suggested_doses"] == 550
    uow.session.add(
        StockLevel(
            store_id=net.centre,
            product_id=net.covishield,
            basis="doses",
            min_value=200,
            max_value=1000,
            updated_at=now(),
        )
    )
    uow.commit()
    assert suggestion(client, net)["suggested_doses"] == 800  # the centre's own maximum


def raise_indent(client, net, **extra):
    body = {
        "from_store_id": net.centre,
        "product_id": net.covishield,
        "needed_by": (today() + dt.timedelta(days=7)).isoformat(),
        **extra,
    }
    response = client.post("/api/indents", json=body)
    assert response.status_code == 201, response.json
    return response.json


def test_request_approval_shipment_receipt_traced_and_audited(client_as, uow, net):
    centre, district = (
        client_as("centre_officer", net.centre),
        client_as("district_officer", net.district),
    )
    indent = raise_indent(centre, net, note="measles drive next week")
    assert (indent["state"], indent["to_store_id"], indent["doses_requested"]) == (
        "requested",
        net.district,
        indent["doses_suggested"],
    )
    path = f"/api/indents/{indent['id']}"
    # The centre cannot answer its own indent; the district answers it.
    refused = centre.post(f"{path}/approve", json={})
    assert refused.status_code == 403 and refused.content_type == PROBLEM
    fewer = district.post(f"{path}/approve", json={"doses": 300})
    assert (
        fewer.status_code == 422
        and fewer.json["errors"] == {"reason": ["approving fewer doses than asked needs a reason"]}
        or "reason" in fewer.json["detail"]
    )
    approved = district.post(f"{path}/approve", json={"doses": 300, "reason": "short this month"})
    assert approved.status_code == 200, approved.json
    assert (approved.json["state"], approved.json["doses_approved"]) == ("approved", 300)
    shipped = district.post(f"{path}/ship", json={"client_id": uuid.uuid4().hex})
    assert shipped.status_code == 200, shipped.json
    shipment_id = shipped.json["shipment_id"]
    issue = uow.session.scalars(
        select(Movement).where(Movement.shipment_id == shipment_id, Movement.kind == "issue")
    ).one()
    assert (issue.store_id, issue.other_store_id) == (net.district, net.centre)
    assert sum(e.doses for e in issue.entries) == -300
    received = centre.post(
        f"{path}/receive", json={"client_id": uuid.uuid4().hex, "unit_id": net.centre_ilr}
    )
    assert received.status_code == 200, received.json
    trail = centre.get(path).json
    assert [(e["state"], e["doses"]) for e in trail["events"]] == [
        ("requested", indent["doses_requested"]),
        ("approved", 300),
        ("shipped", 300),
        ("received", 300),
    ]
    assert trail["events"][1]["comment"] == "short this month"
    assert stock.get_balance(uow, unit_id=net.centre_ilr, lot_id=net.lot_late).doses == 700
    audited = uow.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "indents", AuditEntry.entity_id == str(indent["id"]))
        .order_by(AuditEntry.id)
    ).all()
    assert [(a.action, (a.after or {}).get("state")) for a in audited] == [
        ("insert", "requested"),
        ("update", "approved"),
        ("update", "shipped"),
        ("update", "received"),
    ]


def test_a_rejection_needs_a_reason_and_ends_the_indent(client, net):
    indent = raise_indent(client, net, doses=500)
    path = f"/api/indents/{indent['id']}"
    no_reason = client.post(f"{path}/reject", json={})
    assert no_reason.status_code == 422 and no_reason.content_type == PROBLEM
    rejected = client.post(f"{path}/reject", json={"reason": "collect from the CHC instead"})
    assert (rejected.json["state"], rejected.json["decision_reason"]) == (
        "rejected",
        "collect from the CHC instead",
    )
    again = client.post(f"{path}/approve", json={})
    assert again.status_code == 409 and again.content_type == PROBLEM
    top = client.post(
        "/api/indents",
        json={
            "from_store_id": net.state,
            "product_id": net.covishield,
            "needed_by": today().isoformat(),
        },
    )
    assert top.status_code == 409 and "no parent" in top.json["detail"]
    past = client.post(
        "/api/indents",
        json={
            "from_store_id": net.centre,
            "product_id": net.covishield,
            "needed_by": (today() - dt.timedelta(days=1)).isoformat(),
        },
    )
    assert past.status_code == 422 and past.content_type == PROBLEM
    more = raise_indent(client, net, doses=100)
    too_many = client.post(f"/api/indents/{more['id']}/approve", json={"doses": 101})
    assert too_many.status_code == 409 and too_many.content_type == PROBLEM


def test_a_receipt_through_the_ledger_api_and_a_reversed_issue_are_followed(
    client, runtime, uow, net
):
    first = raise_indent(client, net, doses=100)
    client.post(f"/api/indents/{first['id']}/approve", json={})
    shipped = client.post(f"/api/indents/{first['id']}/ship", json={"client_id": "ship-1"}).json
    receipt = client.post(
        "/api/receipts",
        json={
            "client_id": uuid.uuid4().hex,
            "store_id": net.centre,
            "unit_id": net.centre_ilr,
            "shipment_id": shipped["shipment_id"],
        },
    )
    assert receipt.status_code == 201, receipt.json
    second = raise_indent(client, net, doses=50)
    client.post(f"/api/indents/{second['id']}/approve", json={})
    client.post(f"/api/indents/{second['id']}/ship", json={"client_id": "ship-2"})
    issue = uow.session.scalars(select(Movement).where(Movement.client_id == "ship-2")).one()
    reversed_ = client.post(
        f"/api/movements/{issue.id}/reversal", json={"client_id": uuid.uuid4().hex}
    )
    assert reversed_.status_code == 201, reversed_.json
    assert JOBS["indents"](runtime, now())["followed"] == 2
    assert client.get(f"/api/indents/{first['id']}").json["state"] == "received"
    back = client.get(f"/api/indents/{second['id']}").json
    assert (back["state"], back["shipment_id"]) == ("approved", None)
    assert (
        client.post(f"/api/indents/{second['id']}/ship", json={"client_id": "ship-3"}).json["state"]
        == "shipped"
    )


def test_an_indent_left_unanswered_raises_an_alert_that_resolves_once_answered(
    client, runtime, uow, net
):
    plan = indents.Planning(30, 30, "Asia/Kolkata")
    asked = indents.raise_indent(
        uow,
        from_store_id=net.centre,
        product_id=net.covishield,
        needed_by=today(),
        doses=200,
        note=None,
        actor="centre",
        plan=plan,
        now=now() - dt.timedelta(hours=47),
    )
    uow.commit()
    assert JOBS["indents"](runtime, now())["raised"] == 0  # 47 h < 48 h (config/defaults.toml)
    assert JOBS["indents"](runtime, now() + dt.timedelta(hours=2))["raised"] == 1
    alert = uow.session.scalars(select(Alert).where(Alert.kind == "indent_unanswered")).one()
    assert (alert.subject_id, alert.store_id, alert.state) == (str(asked.id), net.district, "open")
    ack = client.post(f"/api/alerts/{alert.id}/acknowledge", json={"comment": "on it"})
    assert ack.status_code == 200 and ack.json["state"] == "acknowledged"
    client.post(f"/api/indents/{asked.id}/approve", json={})
    assert JOBS["indents"](runtime, now() + dt.timedelta(hours=3))["cleared"] == 1
    uow.session.expire_all()
    assert uow.session.get(Alert, alert.id).state == "resolved"
