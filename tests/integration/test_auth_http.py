"""Logins, bearer tokens, 401 against 403, the audit log and the rate limit, through HTTP."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from logistics import clock
from logistics.app import create_app
from logistics.domain.errors import Conflict
from logistics.models.auth import AuditEntry, User
from logistics.models.catalog import StorageUnit, Store
from logistics.runtime import Runtime
from logistics.services import auth as auth_service
from logistics.services.audit import query_audit
from tests.support import services

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


TREE = (
    ("state", "T-SVS", "state", None),
    ("district_a", "T-DVS-A", "district", "state"),
    ("centre_a1", "T-PHC-A1", "centre", "district_a"),
    ("centre_a2", "T-PHC-A2", "centre", "district_a"),
    ("district_b", "T-DVS-B", "district", "state"),
    ("centre_b1", "T-PHC-B1", "centre", "district_b"),
)


@pytest.fixture
def store_tree(runtime: Runtime) -> dict[str, Store]:
    """state -> district A (centres A1, A2) and district B (centre B1); each store has an ILR."""
    stores: dict[str, Store] = {}
    with runtime.uow() as uow:
        for key, code, level, parent in TREE:
            store = Store(
                code=code,
                name=code,
                level_code=level,
                parent_id=stores[parent].id if parent else None,
            )
            store.units = [StorageUnit(code="ILR-1", kind="ilr", min_temp_c=2.0, max_temp_c=8.0)]
            uow.session.add(store)
            uow.session.flush()
            store.path = f"{stores[parent].path if parent else '/'}{store.id}/"
            stores[key] = store
        uow.commit()
    return stores


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _user(runtime: Runtime, username: str, password: str | None = "pa55word!", roles=("viewer",)):
    with runtime.uow() as uow:
        auth_service.create_user(uow, username=username, password=password, roles=list(roles))
        uow.commit()


def _token(runtime: Runtime, username: str, **kwargs) -> str:
    with runtime.uow() as uow:
        result = auth_service.issue_token(uow, username=username, **kwargs)
        uow.commit()
        return result


def test_no_token_is_401_with_a_bearer_challenge(anon_client):
    response = anon_client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    assert response.json["status"] == 401 and response.json["type"].endswith("/unauthorized")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="coldchain"')


def test_unknown_token_is_401_invalid_token(anon_client):
    response = anon_client.get("/api/auth/me", headers=_bearer("cc_not-a-real-token"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_public_endpoints_need_no_login(anon_client):
    assert anon_client.get("/api/health").status_code == 200
    assert anon_client.get("/api/openapi.json").status_code == 200


def test_login_gives_a_token_that_identifies_the_user(runtime, anon_client):
    _user(runtime, "asha", roles=["viewer"])
    response = anon_client.post(
        "/api/auth/login", json={"username": "asha", "password": "pa55word!"}
    )
    assert response.status_code == 200, response.json
    token = response.json["access_token"]
    assert response.json["token_type"] == "Bearer"
    me = anon_client.get("/api/auth/me", headers=_bearer(token))
    assert me.status_code == 200
    assert me.json == {"username": "asha", "roles": [{"role": "viewer", "store_code": None}]}


def test_wrong_password_and_unknown_user_get_the_same_401(runtime, anon_client):
    _user(runtime, "asha")
    wrong = anon_client.post("/api/auth/login", json={"username": "asha", "password": "nope"})
    unknown = anon_client.post("/api/auth/login", json={"username": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.mimetype == PROBLEM and wrong.json["detail"] == unknown.json["detail"]
    assert "WWW-Authenticate" in wrong.headers


def test_only_a_hash_of_the_token_and_password_is_stored(runtime):
    _user(runtime, "asha")
    token = _token(runtime, "asha")
    with runtime.uow() as uow:
        user = uow.session.scalars(select(User).where(User.username == "asha")).one()
        assert user.password_hash.startswith("$argon2id$")
        stored = [t.token_hash for t in auth_service.tokens_of(uow, username="asha")]
    assert token not in stored and len(stored[0]) == 64


def test_expired_token_is_refused(runtime, anon_client):
    _user(runtime, "asha")
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    token = _token(runtime, "asha", ttl_s=3600, now=issued)
    response = anon_client.get("/api/auth/me", headers=_bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json["detail"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_logout_revokes_the_token(runtime, anon_client):
    _user(runtime, "asha")
    token = _token(runtime, "asha")
    assert anon_client.get("/api/auth/me", headers=_bearer(token)).status_code == 200
    assert anon_client.post("/api/auth/logout", headers=_bearer(token)).status_code == 204
    response = anon_client.get("/api/auth/me", headers=_bearer(token))
    assert response.status_code == 401 and "revoked" in response.json["detail"]


def test_admin_revokes_someone_elses_token(runtime, client, anon_client):
    _user(runtime, "asha")
    token = _token(runtime, "asha")
    tokens = client.get("/api/users/asha/tokens").json
    assert client.delete(f"/api/tokens/{tokens[0]['id']}").status_code == 204
    assert anon_client.get("/api/auth/me", headers=_bearer(token)).status_code == 401


def test_disabling_a_user_stops_their_tokens(runtime, client, anon_client):
    _user(runtime, "asha")
    token = _token(runtime, "asha")
    assert client.patch("/api/users/asha", json={"active": False}).status_code == 200
    assert anon_client.get("/api/auth/me", headers=_bearer(token)).status_code == 401
    login = anon_client.post("/api/auth/login", json={"username": "asha", "password": "pa55word!"})
    assert login.status_code == 401


def test_authenticated_but_not_allowed_is_403(runtime, anon_client):
    _user(runtime, "asha", roles=["viewer"])
    headers = _bearer(_token(runtime, "asha"))
    response = anon_client.post(
        "/api/users", headers=headers, json={"username": "x", "roles": [{"role": "viewer"}]}
    )
    assert response.status_code == 403
    assert response.mimetype == PROBLEM and response.json["type"].endswith("/forbidden")
    assert "WWW-Authenticate" not in response.headers
    assert anon_client.get("/api/audit", headers=headers).status_code == 403


def test_admin_creates_a_scoped_user_who_can_log_in(runtime, client, anon_client, store_tree):
    response = client.post(
        "/api/users",
        json={
            "username": "dio-pune",
            "password": "long enough pw",
            "roles": [{"role": "district_officer", "store_code": store_tree["district_a"].code}],
        },
    )
    assert response.status_code == 201, response.json
    assert response.json["roles"] == [
        {"role": "district_officer", "store_code": store_tree["district_a"].code}
    ]
    login = anon_client.post(
        "/api/auth/login", json={"username": "dio-pune", "password": "long enough pw"}
    )
    assert login.status_code == 200


def test_every_write_is_audited_with_who_where_before_and_after(runtime, client):
    created = client.post(
        "/api/users",
        json={"username": "asha", "password": "long enough pw", "roles": [{"role": "viewer"}]},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert created.status_code == 201
    client.patch("/api/users/asha", json={"active": False})
    entries = client.get("/api/audit", query_string={"entity": "users"}).json
    update, insert = entries[0], entries[1]
    assert insert["action"] == "insert" and insert["actor"] == "test-admin"
    assert insert["address"] == "10.1.2.3" and insert["method"] == "POST"
    assert insert["endpoint"] == "auth.Users" and insert["after"]["username"] == "asha"
    assert "password_hash" not in insert["after"]
    assert update["action"] == "update" and update["entity_id"] == insert["entity_id"]
    assert update["before"] == {"active": True} and update["after"] == {"active": False}
    grants = client.get("/api/audit", query_string={"entity": "role_grants"}).json
    assert grants[0]["after"]["role"] == "viewer"


def test_audit_filters_by_actor_and_time(runtime, client):
    client.post("/api/users", json={"username": "asha", "roles": [{"role": "viewer"}]})
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
    assert client.get("/api/audit", query_string={"actor": "test-admin"}).json
    assert client.get("/api/audit", query_string={"actor": "somebody-else"}).json == []
    assert client.get("/api/audit", query_string={"since": later}).json == []
    assert client.get("/api/audit", query_string={"until": later}).json


def test_a_refused_write_leaves_no_audit_entry(runtime, client):
    body = {"username": "asha", "roles": [{"role": "viewer"}]}
    assert client.post("/api/users", json=body).status_code == 201
    assert client.post("/api/users", json=body).status_code == 409
    with runtime.uow() as uow:
        inserts = [
            e.actor
            for e in query_audit(uow, entity="users")
            if e.action == "insert" and e.after["username"] == "asha"
        ]
    assert inserts == ["test-admin"]


def test_a_write_rolled_back_after_its_flush_leaves_no_audit_entry(runtime, app):
    with app.test_request_context("/api/users", method="POST"), runtime.uow() as uow:
        uow.session.add(User(username="asha", created_at=dt.datetime.now(dt.UTC)))
        uow.session.flush()  # the audit row is written here, in the same transaction
        assert [e.entity for e in query_audit(uow)] == ["users"]
        uow.rollback()
        assert query_audit(uow) == []


def test_machine_writes_outside_requests_are_not_audited(runtime, app):
    _user(runtime, "asha")
    with runtime.uow() as uow:
        assert query_audit(uow, entity="users") == []


def test_the_audit_log_is_append_only(runtime, client):
    client.post("/api/users", json={"username": "asha", "roles": [{"role": "viewer"}]})
    with runtime.uow() as uow:
        entry = uow.session.scalars(select(AuditEntry)).first()
        entry.actor = "someone else"
        with pytest.raises(Conflict):
            uow.session.flush()
        uow.rollback()
        uow.session.delete(uow.session.scalars(select(AuditEntry)).first())
        with pytest.raises(Conflict):
            uow.session.flush()


@pytest.fixture
def limited_app(runtime):
    def make(**overrides):
        overrides = {"auth_rate_limit": "3 per 1 minute", **overrides}
        settings = runtime.settings.replace(**overrides)
        app = create_app(runtime=Runtime(settings, runtime.engine, runtime.session_factory))
        app.config["TESTING"] = True
        return app

    return make


def test_public_calls_over_the_limit_get_429_with_retry_after(limited_app):
    client = limited_app().test_client()
    here, elsewhere = {"REMOTE_ADDR": "10.9.9.1"}, {"REMOTE_ADDR": "10.9.9.2"}
    body = {"username": "nobody", "password": "x"}
    codes = [
        client.post("/api/auth/login", json=body, environ_base=here).status_code for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    refused = client.post("/api/auth/login", json=body, environ_base=here)
    assert refused.mimetype == PROBLEM and refused.json["status"] == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.post("/api/auth/login", json=body, environ_base=elsewhere).status_code == 401


def test_the_limit_is_shared_by_workers_through_redis(limited_app):
    # Two apps stand for two worker processes; the counter lives in Redis, not in either one.
    storage = services.redis_url()  # fails the test, never skips it, when Redis is down
    workers = [limited_app(auth_rate_limit_storage=storage).test_client() for _ in range(2)]
    here = {"REMOTE_ADDR": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}
    body = {"username": "nobody", "password": "x"}
    codes = [
        workers[i % 2].post("/api/auth/login", json=body, environ_base=here).status_code
        for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]


def test_an_empty_limit_turns_it_off(limited_app):
    client = limited_app(auth_rate_limit="").test_client()
    body = {"username": "nobody", "password": "x"}
    assert {client.post("/api/auth/login", json=body).status_code for _ in range(6)} == {401}


def test_demo_credentials_are_made_fresh_and_scoped(runtime, anon_client, store_tree):
    with runtime.uow() as uow:
        first = auth_service.ensure_demo_credentials(uow)
        uow.commit()
    with runtime.uow() as uow:
        second = auth_service.ensure_demo_credentials(uow)
        uow.commit()
    assert first["admin"]["roles"] == [("admin", None)]
    assert first["district"]["roles"] == [("district_officer", store_tree["district_a"].code)]
    assert first["admin"]["password"] != second["admin"]["password"]
    old, new = first["admin"]["password"], second["admin"]["password"]
    for password, expected in ((old, 401), (new, 200)):
        login = anon_client.post(
            "/api/auth/login", json={"username": "admin", "password": password}
        )
        assert login.status_code == expected


def test_availability_is_public_but_rate_limited(limited_app):
    client = limited_app().test_client()
    url = "/api/v2/appointment/sessions/public/findByDistrict"
    query = {"district_id": 1, "date": "01-03-2026"}
    here = {"REMOTE_ADDR": "10.9.8.7"}
    codes = [client.get(url, query_string=query, environ_base=here).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429


def test_movements_record_the_logged_in_user_and_stay_in_the_subtree(
    runtime, client, client_as, store_tree
):
    centre_a1, centre_b1 = store_tree["centre_a1"], store_tree["centre_b1"]
    product = client.post(
        "/api/products",
        json={
            "code": "COVISHIELD",
            "name": "Covishield",
            "doses_per_vial": 10,
            "min_temp_c": 2,
            "max_temp_c": 8,
            "freeze_sensitive": True,
            "open_vial_life_min": 240,
        },
    ).json
    lot_id = None
    for store in (centre_a1, centre_b1):
        receipt = client.post(
            "/api/receipts",
            json={
                "client_id": str(uuid.uuid4()),
                "store_id": store.id,
                "unit_id": store.units[0].id,
                "doses": 100,
                "product_id": product["id"],
                "lot_number": "4121Z001",
                "manufacturer": "Serum Institute of India",
                "expiry_date": "2030-01-01",
            },
        )
        assert receipt.status_code == 201, receipt.json
        lot_id = receipt.json["entries"][0]["lot_id"]
    officer = client_as("district_officer", store_tree["district_a"].code)
    for store, expected in ((centre_a1, 201), (centre_b1, 403)):
        response = officer.post(
            "/api/consumptions",
            json={
                "client_id": str(uuid.uuid4()),
                "store_id": store.id,
                "unit_id": store.units[0].id,
                "lot_id": lot_id,
                "doses": 10,
            },
        )
        assert response.status_code == expected, response.json
        if expected == 201:
            assert response.json["actor"].startswith("test-district_officer")
    movements = client.get("/api/audit", query_string={"entity": "movements"}).json
    kinds = [(e["actor"].split("-")[1], e["after"]["kind"], e["endpoint"]) for e in movements]
    assert kinds == [
        ("district_officer", "consumption", "stock.Consumptions"),
        ("admin", "receipt", "stock.Receipts"),
        ("admin", "receipt", "stock.Receipts"),
    ]
    balances = client.get("/api/audit", query_string={"entity": "stock_balances"}).json
    assert balances and {e["actor"] for e in balances} >= {"test-admin"}


def test_openapi_document_says_which_operations_need_a_token(anon_client):
    doc = anon_client.get("/api/openapi.json").json
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    login = doc["paths"]["/api/auth/login"]["post"]
    assert login["security"] == [] and "429" in login["responses"]
    users = doc["paths"]["/api/users"]["post"]
    assert users["security"] == [{"bearerAuth": []}]
    assert {"401", "403"} <= set(users["responses"])
    assert "401" in doc["paths"]["/api/auth/me"]["get"]["responses"]


def test_public_calls_go_through_when_the_counter_store_is_down(limited_app):
    client = limited_app(auth_rate_limit_storage="redis://127.0.0.1:1/0").test_client()
    url = "/api/v2/appointment/sessions/public/findByDistrict"
    query = {"district_id": 1, "date": "01-03-2026"}
    assert {client.get(url, query_string=query).status_code for _ in range(5)} == {200}


def test_changed_roles_apply_to_the_next_request(runtime, client, anon_client, store_tree):
    _user(runtime, "asha", roles=["viewer"])
    headers = _bearer(_token(runtime, "asha"))
    body = {
        "store_id": store_tree["centre_a1"].id,
        "code": "DF-1",
        "kind": "deep_freezer",
        "min_temp_c": -25,
        "max_temp_c": -15,
    }
    assert anon_client.post("/api/units", json=body, headers=headers).status_code == 403
    roles = [{"role": "district_officer", "store_code": store_tree["district_a"].code}]
    assert client.patch("/api/users/asha", json={"roles": roles}).json["roles"] == roles
    assert anon_client.post("/api/units", json=body, headers=headers).status_code == 201


def test_other_workers_notice_a_revocation_within_the_cache_time(runtime, limited_app):
    _user(runtime, "asha")
    token = _token(runtime, "asha")
    worker = limited_app(auth_token_cache_s=0.5).test_client()
    assert worker.get("/api/auth/me", headers=_bearer(token)).status_code == 200
    with runtime.uow() as uow:  # revoked elsewhere (another worker, a command)
        token_id = auth_service.tokens_of(uow, username="asha")[0].id
        auth_service.revoke_token(uow, token_id=token_id, now=dt.datetime.now(dt.UTC))
        uow.commit()
    time.sleep(0.6)
    assert worker.get("/api/auth/me", headers=_bearer(token)).status_code == 401


def test_without_a_cache_a_revocation_applies_at_once(runtime, limited_app):
    _user(runtime, "asha")
    token = _token(runtime, "asha")
    worker = limited_app(auth_token_cache_s=0.0).test_client()
    assert worker.get("/api/auth/me", headers=_bearer(token)).status_code == 200
    with runtime.uow() as uow:
        token_id = auth_service.tokens_of(uow, username="asha")[0].id
        auth_service.revoke_token(uow, token_id=token_id, now=dt.datetime.now(dt.UTC))
        uow.commit()
    assert worker.get("/api/auth/me", headers=_bearer(token)).status_code == 401


def test_a_cached_token_still_expires_on_time(runtime, limited_app, monkeypatch):
    _user(runtime, "asha")
    token = _token(runtime, "asha", ttl_s=60)
    worker = limited_app(auth_token_cache_s=3600.0).test_client()
    assert worker.get("/api/auth/me", headers=_bearer(token)).status_code == 200
    # 61 s later (the service's clock moved on; the cache's own hour has not run out).
    later = clock.utcnow() + dt.timedelta(seconds=61)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    assert worker.get("/api/auth/me", headers=_bearer(token)).status_code == 401


def test_postgresql_itself_refuses_to_change_the_audit_log(runtime, client):
    client.post("/api/users", json={"username": "asha", "roles": [{"role": "viewer"}]})
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with runtime.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))
