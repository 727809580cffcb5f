"""The equipment register through the API on PostgreSQL: register fields, working status, the
not-working alarm naming the doses to move and the nearest unit with room, repair history, and
functional units by district (issue 19, point 4)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from logistics.models.alerts import Alert
from logistics.models.auth import AuditEntry
from logistics.services import catalog
from tests.support.ledger import build_network, receive

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


@pytest.fixture
def net(uow):
    """The centre's ILR holds 700 doses; a sibling centre, the district and the state have room."""
    net = build_network(uow, dt.datetime.now(dt.UTC).date())
    sibling = catalog.create_store(
        uow, code="PHC2", name="Centre 2", level_code="centre", parent_id=net.district
    )
    uow.commit()
    net.sibling_ilr = catalog.create_unit(
        uow, store_id=sibling.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8
    ).id
    net.district_df = catalog.create_unit(
        uow, store_id=net.district, code="DF-1", kind="deep_freezer", min_temp_c=-25, max_temp_c=-15
    ).id
    uow.commit()
    receive(uow, net, net.centre_ilr, net.lot_late, 500, store=net.centre)
    receive(uow, net, net.centre_ilr, net.lot_covaxin, 200, store=net.centre)
    receive(uow, net, net.district_ilr, net.lot_late, 800, store=net.district)
    return net


def register(client, unit, **fields):
    response = client.patch(f"/api/units/{unit}/equipment", json=fields)
    assert response.status_code == 200, response.json
    return response.json


def test_the_register_keeps_what_each_unit_is(client, net):
    got = register(
        client,
        net.centre_ilr,
        make="Vestfrost",
        model="MK 304",
        pqs_code="E003/070",
        year_installed=2019,
        energy_source="electricity",
        capacity_doses=3000,
    )
    assert (got["make"], got["pqs_code"], got["year_installed"], got["working_status"]) == (
        "Vestfrost",
        "E003/070",
        2019,
        "working",
    )
    got = register(client, net.centre_ilr, energy_source="solar")  # the rest stays
    assert (got["model"], got["energy_source"]) == ("MK 304", "solar")
    bad = client.patch(f"/api/units/{net.centre_ilr}/equipment", json={"year_installed": 1800})
    assert bad.status_code == 422 and bad.content_type == PROBLEM
    unknown = client.patch("/api/units/999999/equipment", json={"make": "x"})
    assert unknown.status_code == 404 and unknown.content_type == PROBLEM


def test_not_working_raises_an_alarm_naming_the_doses_and_the_nearest_unit_with_room(
    client, uow, net
):
    register(client, net.district_ilr, capacity_doses=1000)  # holds 800: no room for 700
    register(client, net.district_df, capacity_doses=50000)  # a freezer: wrong range
    register(client, net.sibling_ilr, capacity_doses=2000)  # the neighbouring centre: room
    register(client, net.state_wic, capacity_doses=100000)  # room, but further up the tree
    response = client.post(
        f"/api/units/{net.centre_ilr}/status",
        json={"status": "not_working", "note": "compressor does not start"},
    )
    assert response.status_code == 200, response.json
    evacuation = response.json["evacuation"]
    assert evacuation["doses"] == 700
    assert [(lot["lot_id"], lot["doses"]) for lot in evacuation["lots"]] == [
        (net.lot_late, 500),
        (net.lot_covaxin, 200),
    ]
    assert [
        (d["unit_id"], d["store_code"], d["steps"], d["free_doses"])
        for d in evacuation["destinations"]
    ] == [(net.sibling_ilr, "PHC2", 2, 2000), (net.state_wic, "SVS", 2, 100000)]
    alert = uow.session.scalars(select(Alert).where(Alert.kind == "unit_not_working")).one()
    assert (alert.severity, alert.state, alert.store_id) == ("alarm", "open", net.centre)
    assert "700 doses must move" in alert.message and "PHC2" in alert.message
    assert alert.details["destinations"][0]["unit_id"] == net.sibling_ilr
    # Repaired: the alarm resolves, the history keeps both changes.
    fixed = client.post(
        f"/api/units/{net.centre_ilr}/status",
        json={"status": "working", "note": "compressor replaced"},
    )
    assert fixed.status_code == 200 and fixed.json["evacuation"] is None
    uow.session.expire_all()
    assert uow.session.get(Alert, alert.id).state == "resolved"
    history = client.get(f"/api/units/{net.centre_ilr}/repairs").json
    assert [(h["from_status"], h["to_status"], h["note"], h["actor"]) for h in history] == [
        ("working", "not_working", "compressor does not start", "test-admin"),
        ("not_working", "working", "compressor replaced", "test-admin"),
    ]
    audited = uow.session.scalars(
        select(AuditEntry.after).where(
            AuditEntry.entity == "storage_units", AuditEntry.action == "update"
        )
    ).all()
    assert {"working_status": "not_working"} in audited and {"working_status": "working"} in audited


def test_without_a_unit_with_room_the_alarm_says_so(client, uow, net):
    response = client.post(f"/api/units/{net.centre_ilr}/status", json={"status": "not_working"})
    assert response.json["evacuation"]["destinations"] == []
    alert = uow.session.scalars(select(Alert).where(Alert.kind == "unit_not_working")).one()
    assert alert.message.endswith("700 doses must move; no unit with room is known")


def test_only_the_stores_officers_report_its_units(client_as, net):
    other = client_as("district_officer", net.other_district)
    refused = other.post(f"/api/units/{net.centre_ilr}/status", json={"status": "needs_repair"})
    assert refused.status_code == 403 and refused.content_type == PROBLEM
    centre = client_as("centre_officer", net.centre)
    assert (
        centre.post(
            f"/api/units/{net.centre_ilr}/status", json={"status": "needs_repair"}
        ).status_code
        == 200
    )
    bad = centre.post(f"/api/units/{net.centre_ilr}/status", json={"status": "broken"})
    assert bad.status_code == 422 and bad.content_type == PROBLEM


def test_functional_units_are_counted_by_district(client, net):
    client.post(f"/api/units/{net.centre_ilr}/status", json={"status": "not_working"})
    client.post(f"/api/units/{net.sibling_ilr}/status", json={"status": "needs_repair"})
    rows = client.get("/api/equipment/functional").json
    assert [
        (
            r["district_code"],
            r["units"],
            r["working"],
            r["needs_repair"],
            r["not_working"],
            r["functional"],
            r["functional_pct"],
        )
        for r in rows
    ] == [
        ("DVS", 4, 2, 1, 1, 3, 75.0),  # district ILR and DF, two centres' ILRs
        ("DVS2", 0, 0, 0, 0, 0, None),
    ]
    within = client.get(f"/api/equipment/functional?within_id={net.district}").json
    assert [r["district_code"] for r in within] == ["DVS"]
