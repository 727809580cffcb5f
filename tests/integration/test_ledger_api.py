"""Stock movements through the HTTP API on PostgreSQL: each kind, FEFO, reversals, bad input."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from logistics.services import stock
from tests.support.ledger import build_network

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


@pytest.fixture
def net(uow):
    return build_network(uow, dt.datetime.now(dt.UTC).date())


def body(**fields):
    return {"client_id": uuid.uuid4().hex, **fields}


def balance(client, unit, lot):
    response = client.get(f"/api/balances?unit_id={unit}&lot_id={lot}")
    assert response.status_code == 200, response.json
    return response.json["doses"]


def receive_http(client, net, unit, lot, doses, **extra):
    response = client.post(
        "/api/receipts",
        json=body(store_id=net.state, unit_id=unit, lot_id=lot, doses=doses, **extra),
    )
    assert response.status_code == 201, response.json
    return response.json


def test_receipt_from_gs1_string_creates_the_lot_and_credits_the_unit(client, net):
    expiry = (dt.date.today() + dt.timedelta(days=300)).strftime("%y%m%d")
    response = client.post(
        "/api/receipts",
        json=body(
            store_id=net.state,
            unit_id=net.state_ilr,
            doses=5000,
            manufacturer="Serum Institute",
            gs1=f"(01)08901234567890(10)4121Z777(17){expiry}",
            vvm_stage=2,
            supplier="SII Pune",
            freeze_indicator="ok",
            logger_alarm=False,
        ),
    )
    assert response.status_code == 201, response.json
    entry = response.json["entries"][0]
    assert (entry["lot_number"], entry["doses"], entry["vials"]) == ("4121Z777", 5000, 500)
    assert response.json["actor"] == "test-admin"
    assert (response.json["vvm_stage"], response.json["freeze_indicator"]) == (2, "ok")
    assert balance(client, net.state_ilr, entry["lot_id"]) == 5000
    lot = client.get(f"/api/lots/{entry['lot_id']}").json
    assert lot["product_code"] == "COVISHIELD" and lot["gtin"] == "08901234567890"


def test_receiving_an_expired_lot_is_refused_and_stores_nothing(client, net):
    past = (dt.date.today() - dt.timedelta(days=1)).strftime("%y%m%d")
    response = client.post(
        "/api/receipts",
        json=body(
            store_id=net.state,
            unit_id=net.state_ilr,
            doses=10,
            manufacturer="SII",
            gs1=f"(01)08901234567890(10)OLD1(17){past}",
        ),
    )
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert "gs1" in response.json["errors"]
    assert client.get("/api/movements").json == []
    assert [lot["lot_number"] for lot in client.get("/api/lots").json] == ["EARLY", "CX1", "LATE"]


def test_issue_without_lot_is_fefo_and_in_transit_until_received(client, net):
    receive_http(client, net, net.state_ilr, net.lot_late, 1000)
    receive_http(client, net, net.state_wic, net.lot_early, 300)
    issued = client.post(
        "/api/issues",
        json=body(
            store_id=net.state, to_store_id=net.district, product_id=net.covishield, doses=500
        ),
    )
    assert issued.status_code == 201, issued.json
    lines = [
        (line["lot_number"], line["doses_issued"]) for line in issued.json["shipment"]["lines"]
    ]
    assert lines == [("EARLY", 300), ("LATE", 200)]
    assert issued.json["doses"] == -500
    shipment_id = issued.json["shipment_id"]
    trace = client.get(f"/api/lots/{net.lot_late}/trace").json
    assert trace["doses_in_transit"] == 200 and trace["doses_in_stock"] == 800
    received = client.post(
        "/api/receipts",
        json=body(
            store_id=net.district,
            unit_id=net.district_ilr,
            shipment_id=shipment_id,
            lines=[{"lot_id": net.lot_early, "doses_received": 290, "reason": "damaged"}],
        ),
    )
    assert received.status_code == 201, received.json
    assert balance(client, net.district_ilr, net.lot_early) == 290
    assert balance(client, net.district_ilr, net.lot_late) == 200
    shipment = client.get(f"/api/shipments/{shipment_id}").json
    assert shipment["status"] == "received"
    assert shipment["lines"][0]["difference_reason"] == "damaged"
    trace = client.get(f"/api/lots/{net.lot_early}/trace").json
    assert trace["lost_in_transit"][0]["doses"] == 10
    assert {(row["store_id"], row["doses"]) for row in trace["locations"]} == {(net.district, 290)}


def test_short_receipt_without_reason_is_refused(client, net):
    receive_http(client, net, net.state_ilr, net.lot_late, 100)
    issued = client.post(
        "/api/issues",
        json=body(store_id=net.state, to_store_id=net.district, lot_id=net.lot_late, doses=100),
    ).json
    response = client.post(
        "/api/receipts",
        json=body(
            store_id=net.district,
            unit_id=net.district_ilr,
            shipment_id=issued["shipment_id"],
            lines=[{"lot_id": net.lot_late, "doses_received": 90}],
        ),
    )
    assert response.status_code == 422 and "lines" in response.json["errors"]
    assert balance(client, net.district_ilr, net.lot_late) == 0


def test_issue_to_a_store_that_is_not_a_child_is_refused(client, net):
    receive_http(client, net, net.state_ilr, net.lot_late, 100)
    response = client.post(
        "/api/issues",
        json=body(store_id=net.state, to_store_id=net.centre, product_id=net.covishield, doses=10),
    )
    assert response.status_code == 409  # the stored network refuses it, not the form
    assert "to_store_id" in response.json["errors"]
    assert balance(client, net.state_ilr, net.lot_late) == 100


def test_issue_never_takes_quarantined_or_vvm_unusable_stock(client, net, uow):
    receive_http(client, net, net.state_ilr, net.lot_early, 100, vvm_stage=3)
    receive_http(client, net, net.state_wic, net.lot_late, 100)
    from logistics.models.stock import StockBalance

    held = uow.session.query(StockBalance).filter_by(unit_id=net.state_wic).one()
    held.quarantined_doses = 60
    uow.commit()
    response = client.post(
        "/api/issues",
        json=body(
            store_id=net.state, to_store_id=net.district, product_id=net.covishield, doses=50
        ),
    )
    assert response.status_code == 409 and response.json["available_doses"] == 40
    ok = client.post(
        "/api/issues",
        json=body(
            store_id=net.state, to_store_id=net.district, product_id=net.covishield, doses=40
        ),
    )
    assert [line["lot_id"] for line in ok.json["shipment"]["lines"]] == [net.lot_late]


def test_transfer_consumption_wastage_and_count(client, net):
    receive_http(client, net, net.state_ilr, net.lot_late, 1000)
    moved = client.post(
        "/api/transfers",
        json=body(
            store_id=net.state,
            from_unit_id=net.state_ilr,
            to_unit_id=net.state_wic,
            lot_id=net.lot_late,
            doses=400,
        ),
    )
    assert moved.status_code == 201, moved.json
    assert sorted(e["doses"] for e in moved.json["entries"]) == [-400, 400]
    consumed = client.post(
        "/api/consumptions",
        json=body(store_id=net.state, unit_id=net.state_wic, lot_id=net.lot_late, doses=100),
    )
    assert consumed.status_code == 201
    wasted = client.post(
        "/api/wastages",
        json=body(
            store_id=net.state,
            unit_id=net.state_wic,
            lot_id=net.lot_late,
            doses=10,
            reason="breakage",
        ),
    )
    assert wasted.status_code == 201 and wasted.json["reason"] == "breakage"
    counted = client.post(
        "/api/counts",
        json=body(
            store_id=net.state, unit_id=net.state_wic, lot_id=net.lot_late, counted_doses=280
        ),
    )
    assert counted.status_code == 201
    assert counted.json["doses"] == -10 and counted.json["counted_doses"] == 280
    assert balance(client, net.state_wic, net.lot_late) == 280
    assert balance(client, net.state_ilr, net.lot_late) == 600
    stock_view = client.get(f"/api/stores/{net.state}/stock").json
    product = stock_view["products"][0]
    assert product["doses"] == 880 and product["vials"] == 88
    assert product["daily_consumption"] == round(100 / 30, 2)
    assert product["days_of_stock"] == round(880 / (100 / 30), 1)


def test_backdated_debit_that_breaks_a_later_balance_is_refused(client, net):
    now = dt.datetime.now(dt.UTC)
    receive_http(
        client,
        net,
        net.state_ilr,
        net.lot_late,
        100,
        occurred_at=(now - dt.timedelta(days=5)).isoformat(),
    )
    client.post(
        "/api/consumptions",
        json=body(
            store_id=net.state,
            unit_id=net.state_ilr,
            lot_id=net.lot_late,
            doses=80,
            occurred_at=(now - dt.timedelta(days=2)).isoformat(),
        ),
    )
    receive_http(
        client,
        net,
        net.state_ilr,
        net.lot_late,
        50,
        occurred_at=(now - dt.timedelta(days=1)).isoformat(),
    )
    late_entry = body(
        store_id=net.state,
        unit_id=net.state_ilr,
        lot_id=net.lot_late,
        doses=30,
        reason="breakage",
        occurred_at=(now - dt.timedelta(days=3)).isoformat(),
    )
    response = client.post("/api/wastages", json=late_entry)
    assert response.status_code == 409
    assert response.content_type == PROBLEM
    assert "later running balance" in response.json["detail"]
    assert balance(client, net.state_ilr, net.lot_late) == 70
    late_entry.update(doses=20, client_id=uuid.uuid4().hex)
    assert client.post("/api/wastages", json=late_entry).status_code == 201
    assert balance(client, net.state_ilr, net.lot_late) == 50


def test_reversal_undoes_a_movement_once(client, net):
    receipt = receive_http(client, net, net.state_ilr, net.lot_late, 100)
    reversed_ = client.post(
        f"/api/movements/{receipt['id']}/reversal",
        json={"client_id": uuid.uuid4().hex, "reason": "typo"},
    )
    assert reversed_.status_code == 201, reversed_.json
    assert reversed_.json["kind"] == "reversal" and reversed_.json["reverses_id"] == receipt["id"]
    assert balance(client, net.state_ilr, net.lot_late) == 0
    again = client.post(
        f"/api/movements/{receipt['id']}/reversal", json={"client_id": uuid.uuid4().hex}
    )
    assert again.status_code == 409
    assert len(client.get(f"/api/lots/{net.lot_late}/trace").json["movements"]) == 2


def test_reversing_a_receipt_whose_doses_left_is_refused(client, net):
    receipt = receive_http(client, net, net.state_ilr, net.lot_late, 100)
    client.post(
        "/api/consumptions",
        json=body(store_id=net.state, unit_id=net.state_ilr, lot_id=net.lot_late, doses=60),
    )
    response = client.post(f"/api/movements/{receipt['id']}/reversal", json={"client_id": "r1"})
    assert response.status_code == 409
    assert balance(client, net.state_ilr, net.lot_late) == 40


@pytest.mark.parametrize(
    ("path", "fields", "field"),
    [
        (
            "/api/consumptions",
            {"store_id": 999, "unit_id": "UNIT", "lot_id": "LOT", "doses": 5},
            "store_id",
        ),
        ("/api/consumptions", {"unit_id": "OTHER_UNIT", "lot_id": "LOT", "doses": 5}, "unit_id"),
        (
            "/api/wastages",
            {"unit_id": "UNIT", "lot_id": 999, "doses": 5, "reason": "expired"},
            "lot_id",
        ),
        ("/api/consumptions", {"unit_id": "UNIT", "lot_id": "LOT", "doses": 0}, "doses"),
        ("/api/consumptions", {"unit_id": "UNIT", "lot_id": "LOT", "doses": -3}, "doses"),
        ("/api/consumptions", {"unit_id": "UNIT", "lot_id": "LOT", "doses": "5"}, "doses"),
        (
            "/api/wastages",
            {"unit_id": "UNIT", "lot_id": "LOT", "doses": 5, "reason": "sold"},
            "reason",
        ),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(client, net, path, fields, field):
    receive_http(client, net, net.state_ilr, net.lot_late, 100)
    fields = {"store_id": net.state, **fields}
    names = {"UNIT": net.state_ilr, "OTHER_UNIT": net.district_ilr, "LOT": net.lot_late}
    fields = {k: names.get(v, v) if k != "doses" else v for k, v in fields.items()}
    response = client.post(path, json=body(**fields))
    assert 400 <= response.status_code < 500
    assert response.content_type == PROBLEM
    assert field in response.json["errors"], response.json
    assert len(client.get("/api/movements").json) == 1


def test_malformed_json_and_oversized_bodies_are_problems(client, app, net):
    response = client.post("/api/consumptions", data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.content_type == PROBLEM
    big = b'{"client_id": "' + b"x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + b'"}'
    response = client.post("/api/consumptions", data=big, content_type="application/json")
    assert response.status_code == 413 and response.content_type == PROBLEM
    assert client.get("/api/movements").json == []


def test_ledger_sums_equal_balances_after_a_mix(client, net, uow):
    receive_http(client, net, net.state_ilr, net.lot_late, 500)
    issued = client.post(
        "/api/issues",
        json=body(
            store_id=net.state, to_store_id=net.district, product_id=net.covishield, doses=120
        ),
    )
    consumed = client.post(
        "/api/consumptions",
        json=body(store_id=net.state, unit_id=net.state_ilr, lot_id=net.lot_late, doses=30),
    )
    assert (issued.status_code, consumed.status_code) == (201, 201), (issued.json, consumed.json)
    sums = stock.ledger_sums(uow)
    from logistics.models.stock import StockBalance

    stored = {(b.unit_id, b.lot_id): b.doses for b in uow.session.query(StockBalance)}
    assert sums == {key: value for key, value in stored.items() if value or key in sums}
    assert stored[(net.state_ilr, net.lot_late)] == 500 - 120 - 30


def test_a_movement_is_audited_row_by_row_with_its_values(client, net):
    """The ledger writes with plain statements (not a flush): its rows are still logged, each with
    who, where, the values inserted, and a balance's values before and after."""
    receive_http(client, net, net.state_ilr, net.lot_late, 500)
    before = {e["id"] for e in client.get("/api/audit").json}
    response = client.post(
        "/api/consumptions",
        json=body(
            store_id=net.state, unit_id=net.state_ilr, lot_id=net.lot_late, doses=30, note="n"
        ),
    )
    assert response.status_code == 201, response.json
    movement = response.json
    new = [e for e in client.get("/api/audit").json if e["id"] not in before]
    rows = sorted((e["entity"], e["action"], e["actor"], e["method"], e["endpoint"]) for e in new)
    assert rows == [
        ("ledger_entries", "insert", "test-admin", "POST", "stock.Consumptions"),
        ("movements", "insert", "test-admin", "POST", "stock.Consumptions"),
        ("stock_balances", "update", "test-admin", "POST", "stock.Consumptions"),
    ]
    by_entity = {e["entity"]: e for e in new}
    assert by_entity["movements"]["entity_id"] == str(movement["id"])
    assert by_entity["ledger_entries"]["entity_id"] == str(
        by_entity["ledger_entries"]["after"]["id"]
    )
    inserted = by_entity["movements"]["after"]
    assert (inserted["kind"], inserted["client_id"], inserted["note"]) == (
        "consumption",
        movement["client_id"],
        "n",
    )
    assert inserted["store_id"] == net.state and inserted["reverses_id"] is None
    line = by_entity["ledger_entries"]["after"]
    assert (line["movement_id"], line["unit_id"], line["lot_id"], line["doses"]) == (
        movement["id"],
        net.state_ilr,
        net.lot_late,
        -30,
    )
    changed = by_entity["stock_balances"]
    assert changed["before"]["doses"] == 500 and changed["after"]["doses"] == 470
    assert set(changed["before"]) == set(changed["after"]) == {"doses", "updated_at"}
