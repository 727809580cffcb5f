"""Every role against every write endpoint of the app, over a store tree.

The endpoints come from the app's URL map, so a new write endpoint is covered without editing this
file. For each one, the test names stores inside and outside each user's subtree in the way the
policy's rule says the request names its store (body field, URL variable, an entity of a store),
and expects exactly what the policy's scope rules decide. The views are swapped for a stub: what
is tested is the one gate every request passes, not the views behind it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from logistics.app import create_app
from logistics.auth import web
from logistics.config import load_settings
from logistics.domain import policy
from logistics.domain.policy import Grant, Role
from logistics.models.alerts import Alert, Excursion, QuarantineReview
from logistics.models.catalog import Lot, Product, Store
from logistics.models.paperwork import Indent
from logistics.models.readings import Sensor, SensorAssignment
from logistics.models.sessions import Booking, Session, Slot
from logistics.models.stock import Movement, Shipment
from logistics.runtime import Runtime
from logistics.services import auth as auth_service
from tests.integration.test_auth_http import store_tree  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
# (role, the store key of its grant; None: the whole network)
USERS = (
    (Role.ADMIN, None),
    (Role.STATE_OFFICER, "state"),
    (Role.DISTRICT_OFFICER, "district_a"),
    (Role.CENTRE_OFFICER, "centre_a1"),
    (Role.PLANNER, "centre_a1"),
    (Role.VIEWER, "state"),
    (Role.DISTRICT_OFFICER, "district_b"),
)
# Stores the requests act on: inside district A's centre, district A itself, and district B.
TARGET_STORES = ("centre_a1", "district_a", "centre_b1")


def _is_api(endpoint: str) -> bool:
    # The pages (blueprint "web") log in by session cookie and check each form against the rule
    # of the API endpoint it stands for: tests/web/test_access.py covers them.
    return not endpoint.startswith("web.")


def _write_endpoints() -> list[tuple[str, str]]:
    app = create_app(load_settings({"database_url": "sqlite://"}))
    found = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods & policy.WRITE_METHODS
        if not policy.is_public(rule.endpoint, method, rule.rule) and _is_api(rule.endpoint)
    }
    return sorted(found)


WRITE_ENDPOINTS = _write_endpoints()


def test_the_app_has_write_endpoints_to_check():
    assert len(WRITE_ENDPOINTS) > 20


@pytest.mark.parametrize(("endpoint", "method"), WRITE_ENDPOINTS)
def test_every_write_endpoint_has_an_explicit_rule(endpoint, method):
    # Without one it is admin-only (fail closed); an explicit entry shows someone decided.
    assert policy.has_explicit_rule(endpoint, method), f"add {endpoint} to policy.WRITE_RULES"


class World:
    """Entities of every kind a rule can name, made on demand in a given store."""

    def __init__(self, runtime: Runtime, stores: dict[str, Store]):
        self.runtime, self.stores = runtime, stores
        self.made: dict[tuple[str, str], Any] = {}
        self.seq = itertools.count(1)

    def value(self, kind: str, store_key: str) -> Any:
        """The id of an entity of `kind` that belongs to the store `store_key`."""
        if (kind, store_key) not in self.made:
            make = getattr(self, f"_{kind}", None)
            assert make is not None, f"the role test cannot make a {kind!r}; add World._{kind}"
            with self.runtime.uow() as uow:
                self.made[kind, store_key] = make(uow.session, self.stores[store_key])
                uow.commit()
        return self.made[kind, store_key]

    def _store(self, _session, store: Store) -> int:
        return store.id

    def _unit(self, session, store: Store) -> int:
        return session.get(Store, store.id).units[0].id

    def _product_and_lot(self, session) -> tuple[int, int]:
        if "lot" not in self.made:
            product = Product(
                code=f"P{uuid.uuid4().hex[:6]}",
                name="p",
                doses_per_vial=10,
                min_temp_c=2,
                max_temp_c=8,
            )
            session.add(product)
            session.flush()
            lot = Lot(
                product_id=product.id,
                lot_number="L1",
                manufacturer="m",
                expiry_date=dt.date(2030, 1, 1),
            )
            session.add(lot)
            session.flush()
            self.made["lot"] = (product.id, lot.id)
        return self.made["lot"]

    def _add(self, session, row: Any) -> Any:
        session.add(row)
        session.flush()
        return row.id

    def _session(self, session, store: Store) -> int:
        product_id, _ = self._product_and_lot(session)
        return self._add(
            session,
            Session(
                store_id=store.id,
                district_id=store.parent_id or store.id,
                product_id=product_id,
                session_date=dt.date(2026, 3, 2),
                capacity=10,
                dose_number="1",
                min_age=18,
                created_at=NOW,
                created_by="t",
                updated_at=NOW,
            ),
        )

    def _booking(self, session, store: Store) -> int:
        session_id = self._session(session, store)
        slot_id = self._add(
            session,
            Slot(
                session_id=session_id,
                starts_at=dt.time(9),
                ends_at=dt.time(11),
                capacity=10,
                booked=1,
            ),
        )
        return self._add(
            session,
            Booking(
                session_id=session_id,
                slot_id=slot_id,
                beneficiary="b",
                booked_at=NOW,
                booked_by="t",
            ),
        )

    def _movement(self, session, store: Store) -> int:
        return self._add(
            session,
            Movement(
                client_id=str(uuid.uuid4()),
                kind="receipt",
                store_id=store.id,
                actor="t",
                occurred_at=NOW,
                recorded_at=NOW,
            ),
        )

    def _shipment(self, session, store: Store) -> int:
        return self._add(
            session,
            Shipment(
                from_store_id=store.parent_id or store.id, to_store_id=store.id, issued_at=NOW
            ),
        )

    def _alert(self, session, store: Store) -> int:
        return self._add(
            session,
            Alert(
                kind="test",
                subject_type="store",
                subject_id=f"{store.id}-{next(self.seq)}",
                store_id=store.id,
                store_path=store.path,
                severity="warning",
                message="m",
                opened_at=NOW,
                updated_at=NOW,
            ),
        )

    def _review(self, session, store: Store) -> int:
        _, lot_id = self._product_and_lot(session)
        unit_id = self._unit(session, store)
        excursion_id = self._add(
            session,
            Excursion(
                unit_id=unit_id,
                store_id=store.id,
                kind="heat_alarm",
                started_at=NOW,
                triggered_at=NOW,
                peak_temp_c=9.5,
                minutes_outside=700,
                thresholds={},
                updated_at=NOW,
            ),
        )
        return self._add(
            session,
            QuarantineReview(
                excursion_id=excursion_id,
                unit_id=unit_id,
                store_id=store.id,
                lot_id=lot_id,
                doses=10,
                reason="heat_exposure",
                proposed_decision="review",
                created_at=NOW,
            ),
        )

    def _indent(self, session, store: Store, from_store: int, to_store: int) -> int:
        product_id, _ = self._product_and_lot(session)
        return self._add(
            session,
            Indent(
                from_store_id=from_store,
                to_store_id=to_store,
                product_id=product_id,
                needed_by=dt.date(2026, 3, 9),
                doses_requested=100,
                doses_suggested=100,
                requested_by="t",
                requested_at=NOW,
                updated_at=NOW,
            ),
        )

    def _indent_from(self, session, store: Store) -> int:
        return self._indent(session, store, store.id, store.parent_id or store.id)

    def _indent_to(self, session, store: Store) -> int:
        return self._indent(session, store, store.id, store.id)

    def _sensor(self, session, store: Store) -> str:
        sensor_id = f"S-{store.code}"
        session.add(Sensor(sensor_id=sensor_id, registered_at=NOW))
        session.flush()
        session.add(
            SensorAssignment(
                sensor_id=sensor_id, unit_id=self._unit(session, store), valid_from=NOW
            )
        )
        return sensor_id


def _request_for(
    app: Flask, world: World, endpoint: str, method: str, store_key: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """URL, JSON body and query naming `store_key` wherever the endpoint's rule looks."""
    rule = policy.write_rule(endpoint, method)
    url_rule = next(r for r in app.url_map.iter_rules(endpoint=endpoint) if method in r.methods)
    args: dict[str, Any] = {}
    body: dict[str, Any] = {}
    query: dict[str, Any] = {}
    for target in rule.targets:
        where = {"view": args, "json": body, "query": query}[target.source]
        where[target.name] = world.value(target.kind, store_key)
    for name in url_rule.arguments - set(args):  # variables the rule does not look at
        args[name] = 1 if "int" in str(url_rule._converters[name]).lower() else "x"
    url = app.url_map.bind("localhost").build(endpoint, args, method=method)
    return url, body, query


@pytest.fixture
def users(runtime: Runtime, store_tree) -> list[tuple[Grant, str]]:  # noqa: F811
    """One user per (role, scope), with the grant the policy sees and a bearer token."""
    made = []
    with runtime.uow() as uow:
        for n, (role, key) in enumerate(USERS):
            store = store_tree[key] if key else None
            username = f"u{n}-{role.value}"
            auth_service.create_user(
                uow,
                username=username,
                password=None,
                roles=[(role.value, store.id if store else None)],
            )
            uow.commit()
            token = auth_service.issue_token(uow, username=username)
            uow.commit()
            made.append((Grant(role, store.path if store else None), token))
    return made


@pytest.fixture
def gate_app(runtime: Runtime) -> Callable[[str], Flask]:
    """The app with one endpoint's view replaced by a stub that answers 204."""

    def make(endpoint: str) -> Flask:
        app = create_app(runtime=runtime)
        app.config["TESTING"] = True
        app.view_functions[endpoint] = lambda **_: ("", 204)
        return app

    return make


@pytest.mark.parametrize(("endpoint", "method"), WRITE_ENDPOINTS)
def test_each_role_may_write_exactly_where_the_policy_says(
    endpoint,
    method,
    runtime,
    store_tree,  # noqa: F811
    users,
    gate_app,
):
    app = gate_app(endpoint)
    client = app.test_client()
    world = World(runtime, store_tree)
    rule = policy.write_rule(endpoint, method)
    outcomes = []
    for store_key in TARGET_STORES:
        url, body, query = _request_for(app, world, endpoint, method, store_key)
        paths = [store_tree[store_key].path] * len(rule.targets)
        for grant, token in users:
            response = client.open(
                url,
                method=method,
                json=body,
                query_string=query,
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code in (204, 403), (grant, url, response.json)
            expected = policy.allows([grant], rule, paths)
            outcomes.append(
                (
                    grant.role.value,
                    grant.store_path,
                    store_key,
                    response.status_code == 204,
                    expected,
                )
            )
    wrong = [o for o in outcomes if o[3] != o[4]]
    assert not wrong, f"(role, scope, target, allowed, expected): {wrong}"
    assert any(o[3] for o in outcomes)  # the admin at least got through


def test_the_table_distinguishes_subtrees(runtime, store_tree, users, gate_app):  # noqa: F811
    """A district officer records consumption in its district's centre, not in another's."""
    app = gate_app("stock.Consumptions")
    client = app.test_client()
    world = World(runtime, store_tree)
    district_a = next(
        token
        for grant, token in users
        if grant.role is Role.DISTRICT_OFFICER and grant.store_path == store_tree["district_a"].path
    )
    for store_key, status in (
        ("centre_a1", 204),
        ("centre_a2", 204),
        ("centre_b1", 403),
        ("state", 403),
    ):
        body = {
            "store_id": world.value("store", store_key),
            "unit_id": world.value("unit", store_key),
        }
        response = client.post(
            "/api/consumptions", json=body, headers={"Authorization": f"Bearer {district_a}"}
        )
        assert response.status_code == status, store_key


def test_a_unit_of_another_store_is_refused(runtime, store_tree, users, gate_app):  # noqa: F811
    """Naming one's own store but a unit of a store outside the subtree is refused."""
    app = gate_app("stock.Consumptions")
    world = World(runtime, store_tree)
    centre_a1 = next(token for grant, token in users if grant.role is Role.CENTRE_OFFICER)
    body = {
        "store_id": world.value("store", "centre_a1"),
        "unit_id": world.value("unit", "centre_b1"),
    }
    response = app.test_client().post(
        "/api/consumptions", json=body, headers={"Authorization": f"Bearer {centre_a1}"}
    )
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_unknown_or_missing_store_is_refused_to_scoped_users(
    runtime,
    store_tree,  # noqa: F811
    users,
    gate_app,
):
    app = gate_app("stock.Consumptions")
    client = app.test_client()
    by_role = {grant.role: token for grant, token in users}
    for body in (
        {"store_id": 999999, "unit_id": 999999},
        {},
        {"store_id": "x"},
        {"store_id": 2**40, "unit_id": 2**70},
        [{"store_id": None}],
    ):
        for role, expected in ((Role.STATE_OFFICER, 403), (Role.ADMIN, 204)):
            response = client.post(
                "/api/consumptions", json=body, headers={"Authorization": f"Bearer {by_role[role]}"}
            )
            assert response.status_code == expected, (role, body)


def _read_endpoints() -> list[str]:
    app = create_app(load_settings({"database_url": "sqlite://"}))
    return sorted(
        {
            rule.endpoint
            for rule in app.url_map.iter_rules()
            if "GET" in rule.methods
            and not policy.is_public(rule.endpoint, "GET", rule.rule)
            and _is_api(rule.endpoint)
        }
    )


@pytest.mark.parametrize("endpoint", _read_endpoints())
def test_reads_need_a_login_and_some_need_more(endpoint, runtime, users, gate_app):
    """Every read needs a login; a network read needs its permission, if any. Which stores a
    store-scoped user may read is checked against a table written by hand in
    tests/integration/test_read_scopes.py."""
    app = gate_app(endpoint)
    client = app.test_client()
    url_rule = next(r for r in app.url_map.iter_rules(endpoint=endpoint) if "GET" in r.methods)
    args = {
        name: 1 if "int" in str(url_rule._converters[name]).lower() else "x"
        for name in url_rule.arguments
    }
    url = app.url_map.bind("localhost").build(endpoint, args, method="GET")
    assert client.get(url).status_code == 401
    for grant, token in users:
        if grant.store_path is not None and not policy.read_scope(endpoint).network:
            continue  # depends on the store read: the hand-written table's job
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        expected = policy.may_read([grant], policy.read_permission(endpoint))
        assert (response.status_code == 204) is expected, (grant, url, response.status_code)


@pytest.mark.parametrize("endpoint", _read_endpoints())
def test_every_read_endpoint_has_an_explicit_scope(endpoint):
    # Without one it is readable by network-wide grants only (fail closed).
    assert endpoint in policy.READ_SCOPES, f"add {endpoint} to policy.READ_SCOPES"


def _body_fields(doc: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = schema.get("schema", {})
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return set(schema.get("properties", {}))


@pytest.mark.parametrize(("endpoint", "method"), WRITE_ENDPOINTS)
def test_rules_name_fields_the_endpoint_really_takes(endpoint, method):
    """A rule looking for `store_id` in a body that calls it otherwise would lock officers out."""
    app = create_app(load_settings({"database_url": "sqlite://"}))
    doc = app.test_client().get("/api/openapi.json").json
    url_rule = next(r for r in app.url_map.iter_rules(endpoint=endpoint) if method in r.methods)
    path = web._openapi_path(url_rule.rule)
    operation = doc["paths"][path][method.lower()]
    for target in policy.write_rule(endpoint, method).targets:
        if target.source == "view":
            assert target.name in url_rule.arguments, (endpoint, target)
        elif target.source == "json":
            assert target.name in _body_fields(doc, operation), (endpoint, target)
