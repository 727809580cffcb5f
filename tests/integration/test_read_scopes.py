"""Reads are scoped like writes (issue 11, point 4): centre and district users see their own
subtree, state officers their state, administrators (and network-wide grants) everything.

The expected answers are written out by hand below, not computed from logistics.domain.policy.
The first part swaps each view for a stub answering 204, so what is tested is the gate every
request passes; the second part reads real data and checks which stores' rows come back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask

from logistics.app import create_app
from logistics.runtime import Runtime
from logistics.services import auth as auth_service
from logistics.services import stock
from tests.integration.test_auth_http import store_tree  # noqa: F401  (fixture)
from tests.integration.test_auth_roles import World
from tests.support.ledger import build_network, rec

pytestmark = pytest.mark.integration

# user -> (role, the store key of its grant; None: the whole network)
USERS = {
    "admin": ("admin", None),
    "viewer_all": ("viewer", None),
    "state": ("state_officer", "state"),
    "district_a": ("district_officer", "district_a"),
    "centre_a1": ("centre_officer", "centre_a1"),
    "planner_a1": ("planner", "centre_a1"),
    "viewer_b": ("viewer", "district_b"),
}
# The tree (tests/integration/test_auth_http.py): state -> district_a (centre_a1, centre_a2),
# district_b (centre_b1). Answers to a read naming a store, in this order of stores:
STORES = ("state", "district_a", "centre_a1", "centre_a2", "district_b", "centre_b1")
TARGETED = {
    #              state district_a centre_a1 centre_a2 district_b centre_b1
    "admin": (204, 204, 204, 204, 204, 204),
    "viewer_all": (204, 204, 204, 204, 204, 204),
    "state": (204, 204, 204, 204, 204, 204),
    "district_a": (403, 204, 204, 204, 403, 403),
    "centre_a1": (403, 403, 204, 403, 403, 403),
    "planner_a1": (403, 403, 204, 403, 403, 403),
    "viewer_b": (403, 403, 403, 403, 204, 204),
}
# Every read that names a store (directly, or through an entity of a store), as a client sends it.
TARGETED_READS = [
    ("stock.StoreStock", "/api/stores/{store}/stock"),
    ("stock.Balances", "/api/balances?unit_id={unit}&lot_id=1"),
    ("stock.Movements", "/api/movements?store_id={store}"),
    ("stock.MovementItem", "/api/movements/{movement}"),
    ("stock.Shipments", "/api/shipments?store_id={store}"),
    ("stock.ShipmentItem", "/api/shipments/{shipment}"),
    ("readings.SensorItem", "/api/sensors/{sensor}"),
    ("readings.UnitReadings", "/api/units/{unit}/readings"),
    ("readings.StoreLatest", "/api/stores/{store}/latest-readings?subtree=true"),
    ("readings.DeadLetters", "/api/dead-letters?sensor_id={sensor}"),
    ("alerts.Alerts", "/api/alerts?store_id={store}"),
    ("alerts.AlertItem", "/api/alerts/{alert}"),
    ("alerts.Excursions", "/api/excursions?store_id={store}"),
    ("alerts.Excursions", "/api/excursions?unit_id={unit}"),
    ("alerts.Reviews", "/api/quarantine-reviews?store_id={store}"),
    ("alerts.UnitMkt", "/api/units/{unit}/mkt"),
    ("alerts.UnitRules", "/api/temperature-rules/units/{unit}"),
    ("sessions.Sessions", "/api/sessions?store_id={store}"),
    ("sessions.SessionItem", "/api/sessions/{session}"),
    ("sessions.UsableDoses", "/api/centres/{store}/usable-doses"),
    ("sessions.DistrictPlanner", "/api/districts/{store}/session-planner"),
    ("reports.StockReport", "/api/reports/stock?store_id={store}&month=2026-01"),
    ("reports.StockReportCsv", "/api/reports/stock/csv?store_id={store}&month=2026-01"),
    ("reports.StockReportPdf", "/api/reports/stock/pdf?store_id={store}&month=2026-01"),
    ("reports.TemperatureLog", "/api/temperature-logs/{unit}/2026-01"),
    ("reports.TemperatureLogCsv", "/api/temperature-logs/{unit}/2026-01/csv"),
    ("reports.TemperatureLogPdf", "/api/temperature-logs/{unit}/2026-01/pdf"),
    (
        "indents.IndentSuggestion",
        "/api/indents/suggestion?store_id={store}&product_id=1&needed_by=2026-03-01",
    ),
    ("indents.Indents", "/api/indents?store_id={store}"),
    ("indents.IndentItem", "/api/indents/{indent_from}"),
    ("equipment.UnitEquipment", "/api/units/{unit}/equipment"),
    ("equipment.UnitRepairs", "/api/units/{unit}/repairs"),
    ("equipment.FunctionalUnits", "/api/equipment/functional?within_id={store}"),
]
# Reads that name no store: (endpoint, url, {user: status}).
ALL = {
    "admin": 204,
    "viewer_all": 204,
    "state": 204,
    "district_a": 204,
    "centre_a1": 204,
    "planner_a1": 204,
    "viewer_b": 204,
}
NETWORK_ONLY = {
    "admin": 204,
    "viewer_all": 204,
    "state": 403,
    "district_a": 403,
    "centre_a1": 403,
    "planner_a1": 403,
    "viewer_b": 403,
}
ADMIN_ONLY = {
    "admin": 204,
    "viewer_all": 403,
    "state": 403,
    "district_a": 403,
    "centre_a1": 403,
    "planner_a1": 403,
    "viewer_b": 403,
}
UNTARGETED_READS = [
    # Lists that would show every store's rows unless narrowed to a store.
    ("stock.Movements", "/api/movements", NETWORK_ONLY),
    ("stock.Movements", "/api/movements?lot_id=1", NETWORK_ONLY),
    ("stock.Shipments", "/api/shipments", NETWORK_ONLY),
    ("alerts.Alerts", "/api/alerts", NETWORK_ONLY),
    ("alerts.Excursions", "/api/excursions", NETWORK_ONLY),
    ("alerts.Reviews", "/api/quarantine-reviews", NETWORK_ONLY),
    ("readings.DeadLetters", "/api/dead-letters", NETWORK_ONLY),
    ("readings.DeadLetters", "/api/dead-letters?sensor_id=UNKNOWN-1", NETWORK_ONLY),
    ("indents.Indents", "/api/indents", NETWORK_ONLY),
    ("equipment.FunctionalUnits", "/api/equipment/functional", NETWORK_ONLY),
    # Reference data every store needs (the tree, products, lots, a product's rules).
    ("catalog.Stores", "/api/stores", ALL),
    ("catalog.Units", "/api/units", ALL),
    ("catalog.Products", "/api/products", ALL),
    ("catalog.Lots", "/api/lots", ALL),
    ("catalog.StoreLevels", "/api/store-levels", ALL),
    ("alerts.ProductRules", "/api/temperature-rules/products/1", ALL),
    ("auth.Me", "/api/auth/me", ALL),
    # A lot crosses the network: its trace and history are cut to the reader's stores (below).
    ("stock.LotTrace", "/api/lots/1/trace", ALL),
    ("alerts.LotThermalHistory", "/api/lots/1/thermal-history", ALL),
    ("stock.LotRecalls", "/api/lots/1/recalls", ALL),
    # Gated by a permission of their own.
    ("auth.AuditLog", "/api/audit", ADMIN_ONLY),
    ("auth.Users", "/api/users", ADMIN_ONLY),
]


@pytest.fixture
def tokens(runtime: Runtime, store_tree) -> dict[str, str]:  # noqa: F811
    made = {}
    with runtime.uow() as uow:
        for user, (role, key) in USERS.items():
            store_id = store_tree[key].id if key else None
            auth_service.create_user(uow, username=user, password=None, roles=[(role, store_id)])
            uow.commit()
            made[user] = auth_service.issue_token(uow, username=user)
            uow.commit()
    return made


@pytest.fixture
def stub_app(runtime: Runtime) -> Callable[[str], Flask]:
    def make(endpoint: str) -> Flask:
        app = create_app(runtime=runtime)
        app.view_functions[endpoint] = lambda **_: ("", 204)
        return app

    return make


def _fill(template: str, world: World, store_key: str) -> str:
    kinds = ("store", "unit", "movement", "shipment", "sensor", "alert", "session", "indent_from")
    values = {kind: world.value(kind, store_key) for kind in kinds if f"{{{kind}}}" in template}
    return template.format(**values)


@pytest.mark.parametrize(("endpoint", "template"), TARGETED_READS)
def test_a_read_naming_a_store_is_answered_within_the_readers_subtree(
    runtime,
    store_tree,  # noqa: F811
    tokens,
    stub_app,
    endpoint,
    template,
):
    client, world = stub_app(endpoint).test_client(), World(runtime, store_tree)
    for user, expected in TARGETED.items():
        got = []
        for store_key in STORES:
            response = client.get(
                _fill(template, world, store_key),
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            got.append(response.status_code)
            if response.status_code == 403:
                assert response.mimetype == "application/problem+json"
        assert tuple(got) == expected, (user, endpoint)


@pytest.mark.parametrize(("endpoint", "url", "expected"), UNTARGETED_READS)
def test_a_read_naming_no_store(tokens, stub_app, endpoint, url, expected):
    client = stub_app(endpoint).test_client()
    got = {
        user: client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
        for user, token in tokens.items()
    }
    assert got == expected


def test_every_store_a_read_names_must_be_visible(
    runtime,
    store_tree,  # noqa: F811
    tokens,
    stub_app,
):
    client, world = stub_app("alerts.Excursions").test_client(), World(runtime, store_tree)
    mixed = (
        f"/api/excursions?store_id={world.value('store', 'district_a')}"
        f"&unit_id={world.value('unit', 'centre_b1')}"
    )
    twice = (
        f"/api/movements?store_id={world.value('store', 'centre_a1')}"
        f"&store_id={world.value('store', 'centre_b1')}"
    )
    auth = {"Authorization": f"Bearer {tokens['district_a']}"}
    assert client.get(mixed, headers=auth).status_code == 403
    assert stub_app("stock.Movements").test_client().get(twice, headers=auth).status_code == 403


# --- real data: which stores' rows come back -----------------------------------------------------

TODAY = dt.date.today()


@pytest.fixture
def lot_moved(runtime, client):
    """1,000 doses received at the state store, 300 issued to DVS (received), 200 to DVS2
    (still in transit). Network: SVS -> DVS -> PHC, SVS -> DVS2 (tests/support/ledger.py)."""
    with runtime.uow() as uow:
        net = build_network(uow, today=TODAY)
        uow.commit()
        stock.receive_stock(
            uow,
            store_id=net.state,
            unit_id=net.state_ilr,
            doses=1000,
            rec=rec(),
            lot={"lot_id": net.lot_late},
        )
        uow.commit()
        to_dvs = stock.issue_stock(
            uow,
            store_id=net.state,
            to_store_id=net.district,
            doses=300,
            rec=rec(),
            lot_id=net.lot_late,
        )
        stock.issue_stock(
            uow,
            store_id=net.state,
            to_store_id=net.other_district,
            doses=200,
            rec=rec(),
            lot_id=net.lot_late,
        )
        uow.commit()
        stock.receive_shipment(
            uow,
            store_id=net.district,
            unit_id=net.district_ilr,
            shipment_id=to_dvs.shipment_id,
            rec=rec(),
        )
        uow.commit()
    return net


@pytest.fixture
def reader(runtime, app):
    def make(role: str, store_id: int | None):
        username = f"{role}-{store_id}"
        with runtime.uow() as uow:
            auth_service.create_user(
                uow, username=username, password=None, roles=[(role, store_id)]
            )
            uow.commit()
            token = auth_service.issue_token(uow, username=username)
            uow.commit()
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return make


def test_a_lot_trace_shows_the_readers_stores_only(lot_moved, reader):
    net, codes = lot_moved, {}
    url = f"/api/lots/{net.lot_late}/trace"
    for name, client in (
        ("admin", reader("admin", None)),
        ("state", reader("state_officer", net.state)),
        ("dvs", reader("district_officer", net.district)),
        ("dvs2", reader("district_officer", net.other_district)),
        ("phc", reader("centre_officer", net.centre)),
    ):
        trace = client.get(url).json
        stores = {net.state: "SVS", net.district: "DVS", net.other_district: "DVS2"}
        codes[name] = (
            sorted(row["store_code"] for row in trace["locations"]),
            sorted(
                (stores[row["from_store_id"]], stores[row["to_store_id"]])
                for row in trace["in_transit"]
            ),
            sorted({stores[row["store_id"]] for row in trace["movements"]}),
            trace["doses_in_stock"],
            trace["doses_in_transit"],
        )
    assert codes == {
        "admin": (["DVS", "SVS"], [("SVS", "DVS2")], ["DVS", "SVS"], 800, 200),
        "state": (["DVS", "SVS"], [("SVS", "DVS2")], ["DVS", "SVS"], 800, 200),
        "dvs": (["DVS"], [], ["DVS"], 300, 0),
        "dvs2": ([], [("SVS", "DVS2")], [], 0, 200),
        "phc": ([], [], [], 0, 0),
    }


def test_store_stock_of_another_district_is_refused(lot_moved, reader):
    net = lot_moved
    dvs2 = reader("district_officer", net.other_district)
    assert dvs2.get(f"/api/stores/{net.district}/stock").status_code == 403
    own = dvs2.get(f"/api/stores/{net.other_district}/stock")
    assert own.status_code == 200 and own.json["products"] == []  # in transit, not on hand
    dvs = reader("district_officer", net.district).get(f"/api/stores/{net.district}/stock")
    assert [p["doses"] for p in dvs.json["products"]] == [300]


def test_movements_of_a_store_outside_the_subtree_are_refused(lot_moved, reader):
    net = lot_moved
    dvs = reader("district_officer", net.district)
    assert dvs.get("/api/movements", query_string={"store_id": net.state}).status_code == 403
    own = dvs.get("/api/movements", query_string={"store_id": net.district})
    assert [m["kind"] for m in own.json] == ["receipt"]
