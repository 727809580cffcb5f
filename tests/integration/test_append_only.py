"""The ledger and the audit log are append-only at the database, and the service's role cannot
switch that off (issue 11, point 8). Real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from logistics.app import create_app
from logistics.db import make_engine, make_session_factory
from logistics.runtime import Runtime
from logistics.services.auth import create_user, issue_token
from tests.support.ledger import build_network, receive

pytestmark = pytest.mark.integration
APP_ROLE = "coldchain_app"
APPEND_ONLY = ("movements", "ledger_entries", "audit_log")
TODAY = dt.date.today()


@pytest.fixture
def ledger(runtime, client):
    """A network with one receipt (rows in movements, ledger_entries and, via HTTP, audit_log)."""
    with runtime.uow() as uow:
        net = build_network(uow, today=TODAY)
        uow.commit()
        receive(uow, net, net.state_ilr, net.lot_late, 100)
    client.post("/api/users", json={"username": "asha", "roles": [{"role": "viewer"}]})
    with runtime.engine.connect() as conn:
        for table in APPEND_ONLY:
            assert conn.scalar(text(f"SELECT count(*) FROM {table}")) > 0
    return net


def _refused(engine: Engine, statement: str, match: str, role: str | None = None) -> None:
    with engine.connect() as conn, pytest.raises(DBAPIError, match=match):
        if role:
            conn.execute(text(f"SET ROLE {role}"))
        conn.execute(text(statement))


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement", ["UPDATE {t} SET id = id", "DELETE FROM {t}", "TRUNCATE {t} CASCADE"]
)
def test_even_the_owner_cannot_edit_delete_or_truncate(runtime, ledger, table, statement):
    # The suite connects as a superuser: only the triggers stand in its way.
    _refused(runtime.engine, statement.format(t=table), "append-only")
    with runtime.engine.connect() as conn:
        assert conn.scalar(text(f"SELECT count(*) FROM {table}")) > 0


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement", ["UPDATE {t} SET id = id", "DELETE FROM {t}", "TRUNCATE {t} CASCADE"]
)
def test_the_app_role_cannot_edit_delete_or_truncate(runtime, ledger, table, statement):
    _refused(runtime.engine, statement.format(t=table), "permission denied|append-only", APP_ROLE)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE {t} DISABLE TRIGGER {t}_no_truncate",
        "ALTER TABLE {t} DISABLE TRIGGER ALL",
        "DROP TRIGGER {t}_no_truncate ON {t}",
        "ALTER TABLE {t} OWNER TO coldchain_app",
    ],
)
@pytest.mark.parametrize("table", APPEND_ONLY)
def test_the_app_role_cannot_disable_the_triggers(runtime, ledger, table, statement):
    _refused(runtime.engine, statement.format(t=table), "must be owner|permission denied", APP_ROLE)


def test_the_app_role_cannot_turn_triggers_off_for_its_session(runtime):
    _refused(
        runtime.engine, "SET session_replication_role = replica", "permission denied", APP_ROLE
    )


def test_the_app_role_is_neither_superuser_nor_owner(runtime):
    with runtime.engine.connect() as conn:
        role = conn.execute(
            text("SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = :r"),
            {"r": APP_ROLE},
        ).one()
        owners = set(
            conn.scalars(
                text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
            )
        )
    assert tuple(role) == (False, False, False)
    assert APP_ROLE not in owners


@pytest.fixture
def app_login(settings, engine):
    """A login role that is a member of coldchain_app, as production deploys it (README)."""
    login = f"coldchain_web_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE {APP_ROLE}"))
    url = engine.url.set(username=login).render_as_string(hide_password=False)
    yield url
    with engine.begin() as conn:
        conn.execute(text(f"DROP ROLE {login}"))


def test_the_service_works_as_the_app_role(runtime, app_login):
    """Every kind of write the service makes goes through with the app role's grants."""
    app_engine = make_engine(app_login)
    try:
        app_runtime = Runtime(runtime.settings, app_engine, make_session_factory(app_engine))
        with app_runtime.uow() as uow:
            net = build_network(uow, today=TODAY)
            uow.commit()
            create_user(uow, username="root", password=None, roles=["admin"])
            uow.commit()
            token = issue_token(uow, username="root")
            uow.commit()
        client = create_app(runtime=app_runtime).test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        receipt = client.post(
            "/api/receipts",
            json={
                "client_id": "r-1",
                "store_id": net.state,
                "unit_id": net.state_ilr,
                "lot_id": net.lot_late,
                "doses": 500,
            },
        )
        assert receipt.status_code == 201, receipt.json
        issued = client.post(
            "/api/issues",
            json={
                "client_id": "i-1",
                "store_id": net.state,
                "to_store_id": net.district,
                "doses": 100,
                "lot_id": net.lot_late,
            },
        )
        assert issued.status_code == 201, issued.json
        reversal = client.post(
            f"/api/movements/{issued.json['id']}/reversal", json={"client_id": "rev-1"}
        )
        assert reversal.status_code == 201, reversal.json
        again = client.post(
            "/api/receipts",
            headers={"Idempotency-Key": "k"},
            json={
                "client_id": "r-2",
                "store_id": net.state,
                "unit_id": net.state_ilr,
                "lot_id": net.lot_late,
                "doses": 5,
            },
        )
        assert again.status_code == 201
        assert client.get("/api/audit").status_code == 200
        with app_engine.connect() as conn:
            assert conn.scalar(text("SELECT current_user")) != "postgres"
    finally:
        app_engine.dispose()
