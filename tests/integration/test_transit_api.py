"""The transit API (issue 18): carriers, issues packed in carriers, trips, a lot's journey."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.alerts_fixtures import ingest, readings
from tests.support.transit_fixtures import make_route, receive

pytestmark = pytest.mark.integration
UTC = dt.UTC
PROBLEM = "application/problem+json"


@pytest.fixture
def route(runtime, uow):
    return make_route(uow, runtime.settings)


def _issue(client, route, carriers, client_id="issue-1", doses=300, at=None):
    body = {
        "client_id": client_id,
        "store_id": route.district.id,
        "to_store_id": route.centre.id,
        "lot_id": route.lot.id,
        "doses": doses,
        "carriers": carriers,
    }
    if at is not None:
        body["occurred_at"] = at.isoformat()
    return client.post("/api/carried-issues", json=body)


def test_a_registered_carrier_gets_transport_rules_and_its_logger(client, route):
    got = client.post(
        "/api/carriers",
        json={
            "store_id": route.district.id,
            "code": "VC-7",
            "kind": "vaccine_carrier",
            "sensor_id": "VC-7-LOG",
        },
    )
    assert got.status_code == 201, got.json
    assert (got.json["kind"], got.json["min_temp_c"], got.json["max_temp_c"]) == (
        "vaccine_carrier",
        2.0,
        8.0,
    )
    rules = client.get(f"/api/temperature-rules/units/{got.json['id']}").json
    stages = {
        (r["side"], r["level"]): (r["limit_c"], r["mode"], r["duration_min"])
        for r in rules["rules"]
    }
    assert stages[("cold", "alarm")] == (-0.5, "consecutive", 20)
    assert stages[("heat", "alarm")] == (8.0, "cumulative", 120)
    assert client.get("/api/sensors/VC-7-LOG").status_code == 200
    listed = client.get("/api/carriers", query_string={"store_id": route.district.id}).json
    assert {c["code"] for c in listed} == {"CB-1", "VC-7"}


def test_an_ilr_is_not_a_carrier(client, route):
    got = client.post(
        "/api/carriers", json={"store_id": route.district.id, "code": "X", "kind": "ilr"}
    )
    assert got.status_code == 422 and got.content_type == PROBLEM
    assert "kind" in got.json["errors"]
    got = _issue(client, route, [{"unit_id": route.dvs_ilr.id}])
    assert got.status_code == 422 and got.content_type == PROBLEM
    assert "not a carrier" in got.json["detail"]


def test_an_issue_names_its_carrier_and_the_trip_shows_what_it_carries(client, route):
    got = _issue(client, route, [{"unit_id": route.cold_box.id}])
    assert got.status_code == 201, got.json
    trip = client.get(f"/api/shipments/{got.json['shipment_id']}/trip").json
    assert trip["status"] == "in_transit" and trip["held"] is False
    (carrier,) = trip["carriers"]
    assert carrier["code"] == "CB-1"
    assert carrier["lots"] == [{"lot_id": route.lot.id, "doses": 300}]


def test_several_carriers_must_account_for_every_dose(client, route, runtime, uow):
    from logistics.services import transit

    second = transit.register_carrier(
        uow,
        runtime.settings,
        store_id=route.district.id,
        code="CB-2",
        kind="cold_box",
        actor="t",
        now=dt.datetime.now(UTC),
    )
    uow.commit()
    got = _issue(
        client,
        route,
        [
            {"unit_id": route.cold_box.id, "lines": [{"lot_id": route.lot.id, "doses": 200}]},
            {"unit_id": second.id, "lines": [{"lot_id": route.lot.id, "doses": 50}]},
        ],
    )
    assert got.status_code == 422 and got.content_type == PROBLEM
    assert "carriers" in got.json["errors"] and "the shipment has" in got.json["detail"]
    # Nothing was issued: the whole request was refused.
    assert client.get("/api/shipments", query_string={"store_id": route.district.id}).json == []
    got = _issue(
        client,
        route,
        [
            {"unit_id": route.cold_box.id, "lines": [{"lot_id": route.lot.id, "doses": 200}]},
            {"unit_id": second.id, "lines": [{"lot_id": route.lot.id, "doses": 100}]},
        ],
        client_id="issue-2",
    )
    assert got.status_code == 201, got.json
    trip = client.get(f"/api/shipments/{got.json['shipment_id']}/trip").json
    assert [(c["code"], c["lots"][0]["doses"]) for c in trip["carriers"]] == [
        ("CB-1", 200),
        ("CB-2", 100),
    ]


def test_carriers_can_be_named_after_a_paper_issue_but_not_after_the_receipt(client, route, uow):
    issued = client.post(
        "/api/issues",
        json={
            "client_id": "paper-1",
            "store_id": route.district.id,
            "to_store_id": route.centre.id,
            "lot_id": route.lot.id,
            "doses": 100,
        },
    )
    shipment_id = issued.json["shipment_id"]
    named = client.post(
        f"/api/shipments/{shipment_id}/carriers",
        json={"carriers": [{"unit_id": route.cold_box.id}]},
    )
    assert named.status_code == 201, named.json
    assert named.json["carriers"][0]["lots"] == [{"lot_id": route.lot.id, "doses": 100}]
    again = client.post(
        f"/api/shipments/{shipment_id}/carriers",
        json={"carriers": [{"unit_id": route.cold_box.id}]},
    )
    assert again.status_code == 409 and again.content_type == PROBLEM
    receive(uow, route, shipment_id, dt.datetime.now(UTC), "receipt-1")
    issued = client.post(
        "/api/issues",
        json={
            "client_id": "paper-2",
            "store_id": route.district.id,
            "to_store_id": route.centre.id,
            "lot_id": route.lot.id,
            "doses": 100,
        },
    )
    receive(uow, route, issued.json["shipment_id"], dt.datetime.now(UTC), "receipt-2")
    late = client.post(
        f"/api/shipments/{issued.json['shipment_id']}/carriers",
        json={"carriers": [{"unit_id": route.cold_box.id}]},
    )
    assert late.status_code == 409 and late.content_type == PROBLEM
    assert client.get("/api/shipments/999999/trip").status_code == 404


def test_the_lot_journey_gives_mkt_and_minutes_outside_per_leg_and_in_all(
    client, route, runtime, uow
):
    t0 = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=8)
    got = _issue(client, route, [{"unit_id": route.cold_box.id}], at=t0)
    ingest(
        runtime,
        readings(t0, (60, 5.0), (32, 10.0), (148, 5.0), sensor_id="CB-1-LOG"),
        t0 + dt.timedelta(hours=4),
    )
    receive(uow, route, got.json["shipment_id"], t0 + dt.timedelta(hours=4), "receipt-1")
    journey = client.get(
        f"/api/lots/{route.lot.id}/journey",
        query_string={
            "start": (t0 - dt.timedelta(hours=2)).isoformat(),
            "end": (t0 + dt.timedelta(hours=5)).isoformat(),
        },
    )
    assert journey.status_code == 200, journey.json
    legs = journey.json["legs"]
    assert [(leg["kind"], leg["unit_code"]) for leg in legs] == [
        ("stay", "DVS-ILR"),
        ("trip", "CB-1"),
        ("stay", "ILR-1"),
    ]
    assert legs[1]["minutes_outside"] == 32.0
    assert legs[1]["shipment_id"] == got.json["shipment_id"]
    assert journey.json["totals"]["minutes_outside"] == 32.0
    assert journey.json["trips"]["mkt_c"] > 5.0
    assert journey.json["gaps"] == []
    # 32 readings at +10 C (31 min in a row) reach the heat warning (30 min): both stores know.
    alerts = client.get("/api/alerts", query_string={"kind": "transit_heat_warning"}).json
    assert {a["store_id"] for a in alerts} == {route.district.id, route.centre.id}
    bad = client.get(
        f"/api/lots/{route.lot.id}/journey",
        query_string={"start": t0.isoformat(), "end": t0.isoformat()},
    )
    assert bad.status_code == 422 and bad.content_type == PROBLEM


def test_a_centre_reader_sees_its_legs_and_not_the_senders_name(client_as, route, client):
    got = _issue(client, route, [{"unit_id": route.cold_box.id}])
    assert got.status_code == 201, got.json
    now = dt.datetime.now(UTC)
    journey = client_as("centre_officer", route.centre.id).get(
        f"/api/lots/{route.lot.id}/journey",
        query_string={"start": (now - dt.timedelta(days=3)).isoformat(), "end": now.isoformat()},
    )
    assert journey.status_code == 200, journey.json
    (leg,) = journey.json["legs"]  # the district's ILR stay is left out; the trip to it stays
    assert (leg["kind"], leg["to_store_id"], leg["from_store_id"], leg["from_store_code"]) == (
        "trip",
        route.centre.id,
        None,
        None,
    )
