"""PostgreSQL unreachable: 503 with Retry-After, never 500/401/403/404/409; public availability
answers from its last good copy; everything recovers by itself (issue 12, point 4).

The database is a cluster of this test's own (initdb in a temp dir, free port): stopping it
disturbs nobody else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from logistics.app import create_app
from logistics.config import load_settings
from logistics.migrate import upgrade
from logistics.runtime import Runtime
from logistics.services.auth import create_user, issue_token
from logistics.services.reference import seed_reference_data
from tests.support.private_pg import PrivatePostgres
from tests.support.sessions_fixtures import day, make_site, session_body

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BY_DISTRICT = "/api/v2/appointment/sessions/public/findByDistrict"
FINAL = {401, 403, 404, 409, 500}


@pytest.fixture
def own_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.destroy()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_outage_answers_503_and_public_availability_its_last_good_copy(own_pg):
    upgrade(own_pg.url)
    runtime = Runtime.from_settings(
        load_settings(
            {"database_url": own_pg.url, "auth_rate_limit": "", "availability_version_check_s": 0}
        )
    )
    try:
        with runtime.uow() as uow:
            seed_reference_data(uow)
            uow.commit()
            site = make_site(uow)
            uow.commit()
            create_user(uow, username="admin", password=None, roles=["admin"])
            uow.commit()
            create_user(
                uow,
                username="officer",
                password="a-long-password",
                roles=[("centre_officer", site.centre.id)],
            )
            uow.commit()
            admin, officer = (
                issue_token(uow, username="admin"),
                issue_token(uow, username="officer"),
            )
            uow.commit()
        app = create_app(runtime=runtime)
        client = app.test_client()
        opened = client.post("/api/sessions", json=session_body(site, 100), headers=_auth(admin))
        assert opened.status_code == 201, opened.json
        query = {"district_id": site.district.id, "date": day(1).strftime("%d-%m-%Y")}
        fresh = client.get(BY_DISTRICT, query_string=query)
        assert fresh.status_code == 200 and "Age" not in fresh.headers
        consumption = {
            "store_id": site.centre.id,
            "unit_id": site.ilr.id,
            "lot_id": site.lot.id,
            "doses": 5,
            "client_id": str(uuid.uuid4()),
        }
        calls = {
            "login": lambda: client.post(
                "/api/auth/login", json={"username": "officer", "password": "a-long-password"}
            ),
            "consumption": lambda: client.post(
                "/api/consumptions", json=consumption, headers=_auth(officer)
            ),
            "stores": lambda: client.get("/api/stores", headers=_auth(officer)),
            "store": lambda: client.get(f"/api/stores/{site.centre.id}", headers=_auth(admin)),
            "session": lambda: client.post(
                "/api/sessions", json=session_body(site, 10), headers=_auth(admin)
            ),
            "logout": lambda: client.post("/api/auth/logout", headers=_auth(officer)),
        }
        own_pg.stop()
        for name, call in calls.items():
            response = call()
            assert response.status_code == 503, (name, response.status_code, response.json)
            assert response.mimetype == "application/problem+json", name
            assert int(response.headers["Retry-After"]) > 0, name
        copy = client.get(BY_DISTRICT, query_string=query)
        assert copy.status_code == 200
        assert copy.json["sessions"] == fresh.json["sessions"]
        assert copy.json["copy_age_s"] >= 0 and int(copy.headers["Age"]) == copy.json["copy_age_s"]
        # A question never answered before has no copy: 503, not an empty list.
        unknown = client.get(
            BY_DISTRICT, query_string={**query, "date": day(2).strftime("%d-%m-%Y")}
        )
        assert unknown.status_code == 503
        own_pg.start()
        # Recovery by itself: the same calls now succeed (the pool reconnects on its own).
        recovered = calls["consumption"]()
        assert recovered.status_code == 201, recovered.json
        assert calls["stores"]().status_code == 200
        assert calls["login"]().status_code == 200
        again = client.get(BY_DISTRICT, query_string=query)
        assert again.status_code == 200 and "copy_age_s" not in again.json
    finally:
        runtime.close()
