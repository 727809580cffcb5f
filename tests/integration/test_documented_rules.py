"""Rules the OpenAPI document states, refused as problem+json (issue 12, point 3).

tools/schemathesis_hooks.py teaches the generator the rules JSON Schema cannot state (a relation
between two fields, the clock, DNS); here each is shown refused, 422 naming the field, as are
types the document states (a JSON integer, a JSON boolean). Refusals due to the stored data
answer 409.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.support.ledger import build_network, receive

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
T0 = "2026-03-01T00:00:00+00:00"
RULE = {"side": "heat", "level": "alarm", "limit_c": 8, "mode": "consecutive", "duration_min": 600}


@pytest.fixture
def net(uow):
    return build_network(uow, dt.datetime.now(dt.UTC).date())


def _day(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def _in(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).isoformat()


def _receipt(**fields):
    """A movement's body: the fields given, with a client id of its own."""
    return {"client_id": uuid.uuid4().hex, **fields}


def _refused(response, status, field):
    assert response.status_code == status, response.json
    assert response.content_type == PROBLEM
    assert field in response.json["errors"], response.json
    return response.json


def _requests(net):
    """(name, method, path, query or body, field) for each rule refused with 422."""
    ilr, lot, district = net.state_ilr, net.lot_late, net.district
    temps = {"min_temp_c": 2, "max_temp_c": 8}
    return [
        (
            "readings end",
            "get",
            f"/api/units/{ilr}/readings",
            {"start": T0, "end": T0, "bucket": "1h"},
            "end",
        ),
        (
            "raw readings reversed",
            "get",
            f"/api/units/{ilr}/readings",
            {"start": T0, "end": "2026-02-01T00:00:00+00:00"},
            "end",
        ),
        (
            "readings buckets",
            "get",
            f"/api/units/{ilr}/readings",
            {"start": T0, "end": "2026-03-02T00:00:00+00:00", "bucket": "1s"},
            "bucket",
        ),
        ("mkt end", "get", f"/api/units/{ilr}/mkt", {"start": T0, "end": T0}, "end"),
        (
            "mkt span",
            "get",
            f"/api/units/{ilr}/mkt",
            {"start": "2025-01-01T00:00:00+00:00", "end": T0},
            "end",
        ),
        (
            "thermal end",
            "get",
            f"/api/lots/{lot}/thermal-history",
            {"start": T0, "end": "2026-02-01T00:00:00+00:00"},
            "end",
        ),
        ("journey end", "get", f"/api/lots/{lot}/journey", {"start": T0, "end": T0}, "end"),
        (
            "unit range",
            "post",
            "/api/units",
            {
                "store_id": net.state,
                "code": "ILR-X",
                "kind": "ilr",
                "min_temp_c": 8,
                "max_temp_c": 2,
            },
            "max_temp_c",
        ),
        (
            "product range",
            "post",
            "/api/products",
            {"code": "X", "name": "X", "doses_per_vial": 10, "min_temp_c": 5, "max_temp_c": 5},
            "max_temp_c",
        ),
        (
            "carrier range under the default max",
            "post",
            "/api/carriers",
            {"store_id": net.state, "code": "CB-X", "kind": "cold_box", "min_temp_c": 9},
            "max_temp_c",
        ),
        (
            "stock levels",
            "put",
            "/api/stock-levels",
            {"store_id": net.state, "product_id": net.covishield, "min_value": 5, "max_value": 5},
            "max_value",
        ),
        (
            "stock levels in days",
            "put",
            "/api/stock-levels",
            {
                "store_id": net.state,
                "product_id": net.covishield,
                "basis": "days",
                "min_value": 5,
                "max_value": 30,
            },
            "daily_consumption_doses",
        ),
        (
            "rules range",
            "put",
            f"/api/temperature-rules/units/{ilr}",
            {"min_temp_c": 8, "max_temp_c": 2, "rules": [RULE]},
            "min_temp_c",
        ),
        (
            "cumulative window",
            "put",
            f"/api/temperature-rules/units/{ilr}",
            {**temps, "rules": [{**RULE, "mode": "cumulative", "window_min": 60}]},
            "rules",
        ),
        (
            "one rule per side and level",
            "put",
            f"/api/temperature-rules/units/{ilr}",
            {**temps, "rules": [RULE, {**RULE, "limit_c": 9}]},
            "rules",
        ),
        (
            "indent needed by a past date",
            "post",
            "/api/indents",
            {"from_store_id": district, "product_id": net.covishield, "needed_by": _day(-2)},
            "needed_by",
        ),
        (
            "suggestion beyond a year",
            "get",
            "/api/indents/suggestion",
            {"store_id": district, "product_id": net.covishield, "needed_by": _day(400)},
            "needed_by",
        ),
        (
            "webhook without a secret",
            "post",
            "/api/notification-targets",
            {"store_id": net.state, "channel": "webhook", "address": "https://93.184.215.14/x"},
            "secret",
        ),
        (
            "webhook to loopback",
            "post",
            "/api/notification-targets",
            {
                "store_id": net.state,
                "channel": "webhook",
                "address": "http://127.0.0.1:9/x",
                "secret": "s3cret",
            },
            "address",
        ),
        (
            "movement in the future",
            "post",
            "/api/consumptions",
            {
                "client_id": uuid.uuid4().hex,
                "store_id": net.state,
                "unit_id": ilr,
                "lot_id": lot,
                "doses": 1,
                "occurred_at": _in(1),
            },
            "occurred_at",
        ),
        (
            "unreadable GS1 string",
            "post",
            "/api/lots",
            {"product_id": net.covishield, "gs1": "(01)08901234567891(10)L9(17)271231"},
            "gs1",
        ),
        (
            "a new lot without its manufacturer",
            "post",
            "/api/lots",
            {"product_id": net.covishield, "lot_number": "NEW1", "expiry_date": _day(300)},
            "manufacturer",
        ),
        (
            "a lot named by nothing",
            "post",
            "/api/lots",
            {"product_id": net.covishield},
            "lot_number",
        ),
        (
            "an issue naming neither product nor lot",
            "post",
            "/api/issues",
            {
                "client_id": uuid.uuid4().hex,
                "store_id": net.state,
                "to_store_id": district,
                "doses": 1,
            },
            "product_id",
        ),
        (
            "a transfer within one unit",
            "post",
            "/api/transfers",
            {
                "client_id": uuid.uuid4().hex,
                "store_id": net.state,
                "from_unit_id": ilr,
                "to_unit_id": ilr,
                "lot_id": lot,
                "doses": 1,
            },
            "to_unit_id",
        ),
        (
            "a boolean given as 0",
            "post",
            "/api/products",
            {
                "code": "Y",
                "name": "Y",
                "doses_per_vial": 10,
                "min_temp_c": 2,
                "max_temp_c": 8,
                "freeze_sensitive": 0,
            },
            "freeze_sensitive",
        ),
        (
            "an integer given as 1.5",
            "put",
            f"/api/temperature-rules/units/{ilr}",
            {**temps, "rules": [{**RULE, "duration_min": 1.5}]},
            "rules",
        ),
        (
            "admin with a store",
            "post",
            "/api/users",
            {"username": "x-admin", "roles": [{"role": "admin", "store_code": "SVS"}]},
            "roles",
        ),
    ]


def test_each_documented_rule_is_refused_with_422_naming_its_field(client, net):
    for name, method, path, data, field in _requests(net):
        if method == "get":
            response = client.get(path, query_string=data)
        else:
            response = getattr(client, method)(path, json=data)
        assert response.status_code == 422, (name, response.json)
        assert response.content_type == PROBLEM, name
        assert field in response.json["errors"], (name, response.json)


def test_a_unit_of_another_store_is_a_conflict(client, net):
    response = client.post(
        "/api/consumptions",
        json={
            "client_id": uuid.uuid4().hex,
            "store_id": net.district,
            "unit_id": net.state_ilr,
            "lot_id": net.lot_late,
            "doses": 1,
        },
    )
    assert "does not belong" in _refused(response, 409, "unit_id")["detail"]


def test_issuing_to_a_store_that_is_not_a_child_is_a_conflict(client, net, uow):
    receive(uow, net, net.state_ilr, net.lot_late, 100)
    response = client.post(
        "/api/issues",
        json=_receipt(
            store_id=net.state, to_store_id=net.centre, doses=10, product_id=net.covishield
        ),
    )
    assert "not a child" in _refused(response, 409, "to_store_id")["detail"]


def test_issuing_a_lot_of_another_product_is_a_conflict(client, net, uow):
    receive(uow, net, net.state_ilr, net.lot_late, 100)
    response = client.post(
        "/api/issues",
        json=_receipt(
            store_id=net.state,
            to_store_id=net.district,
            doses=10,
            product_id=net.covaxin,
            lot_id=net.lot_late,
        ),
    )
    assert "not of product" in _refused(response, 409, "lot_id")["detail"]


def test_a_store_under_a_store_of_its_own_level_or_lower_is_a_conflict(client, net):
    response = client.post(
        "/api/stores",
        json={
            "code": "DVS9",
            "name": "District 9",
            "level_code": "district",
            "parent_id": net.centre,
        },
    )
    assert "cannot sit under" in _refused(response, 409, "parent_id")["detail"]


def test_an_indent_of_a_store_without_a_parent_is_a_conflict(client, net):
    response = client.post(
        "/api/indents",
        json={"from_store_id": net.state, "product_id": net.covishield, "needed_by": _day(7)},
    )
    assert "no parent" in _refused(response, 409, "from_store_id")["detail"]


def test_a_gtin_no_product_carries_is_not_found(client, net):
    response = client.post(
        "/api/lots",
        json={"gs1": "(01)00000000000000(10)L9(17)271231", "manufacturer": "SII"},
    )
    assert "GTIN" in _refused(response, 404, "gtin")["detail"]


def test_a_supplier_receipt_of_a_lot_past_its_expiry_is_refused(client, net):
    response = client.post(
        "/api/receipts",
        json=_receipt(
            store_id=net.state,
            unit_id=net.state_ilr,
            doses=10,
            product_id=net.covishield,
            lot_number="OLD2",
            manufacturer="SII",
            expiry_date=_day(-3),
        ),
    )
    assert "expired" in _refused(response, 422, "expiry_date")["detail"]
    stored = client.post(
        "/api/lots",
        json={
            "product_id": net.covishield,
            "lot_number": "OLD3",
            "manufacturer": "SII",
            "expiry_date": _day(-3),
        },
    )
    assert stored.status_code == 201, stored.json
    response = client.post(
        "/api/receipts",
        json=_receipt(
            store_id=net.state, unit_id=net.state_ilr, doses=10, lot_id=stored.json["id"]
        ),
    )
    assert "expired" in _refused(response, 409, "lot_id")["detail"]


def test_a_shipment_received_by_another_store_or_beyond_its_doses_is_a_conflict(client, net, uow):
    receive(uow, net, net.state_ilr, net.lot_late, 100)
    issued = client.post(
        "/api/issues",
        json=_receipt(store_id=net.state, to_store_id=net.district, lot_id=net.lot_late, doses=50),
    )
    assert issued.status_code == 201, issued.json
    shipment = issued.json["shipment_id"]
    elsewhere = client.post(
        "/api/receipts",
        json=_receipt(store_id=net.centre, unit_id=net.centre_ilr, shipment_id=shipment),
    )
    _refused(elsewhere, 409, "shipment_id")
    beyond = client.post(
        "/api/receipts",
        json=_receipt(
            store_id=net.district,
            unit_id=net.district_ilr,
            shipment_id=shipment,
            lines=[{"lot_id": net.lot_late, "doses_received": 51, "reason": "damaged"}],
        ),
    )
    _refused(beyond, 409, "lines")
