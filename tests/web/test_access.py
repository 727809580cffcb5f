"""Every page and form needs a login; every form needs the CSRF token and names an API rule."""

from __future__ import annotations

import re
import uuid

import pytest

from logistics.db import ReadOnlyWork
from logistics.domain import policy
from logistics.services.auth import create_user
from logistics.web.views import store as store_views
from tests.web.conftest import PASSWORD, csrf_of

pytestmark = pytest.mark.integration
OPEN = {"web.login", "web.static", "web.language"}


def _pages(app, methods: set[str]) -> list:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("web.") and rule.endpoint not in OPEN and rule.methods & methods
    ]


def _url(app, rule) -> str:
    args = {
        name: 1 if "int" in str(rule._converters[name]).lower() else "receipt"
        for name in rule.arguments
    }
    return app.url_map.bind("localhost").build(rule.endpoint, args)


def test_every_page_sends_a_stranger_to_the_login(app, demo):
    client = app.test_client()
    rules = _pages(app, {"GET"})
    assert len(rules) >= 15
    for rule in rules:
        response = client.get(_url(app, rule))
        assert response.status_code == 302, rule.endpoint
        assert "/login" in response.headers["Location"], rule.endpoint


def test_every_form_refuses_a_post_without_the_csrf_token(app, demo, person):
    client = person("admin")  # even an administrator, logged in
    rules = _pages(app, {"POST"}) + [
        r for r in app.url_map.iter_rules() if r.endpoint == "web.login"
    ]
    assert len(rules) >= 6
    for rule in rules:
        response = client.post(_url(app, rule), data={"client_id": str(uuid.uuid4())})
        assert response.status_code == 400, rule.endpoint


def test_every_store_form_stands_for_an_api_endpoint_with_an_explicit_rule():
    for form in store_views.FORMS.values():
        assert policy.has_explicit_rule(form.endpoint, "POST"), form.name
    assert re.search(r"\bstock\.", " ".join(f.endpoint for f in store_views.FORMS.values()))


def test_a_revoked_token_logs_the_page_out(app, demo, person, runtime):
    import datetime as dt

    from sqlalchemy import select

    from logistics.models.auth import ApiToken
    from logistics.services import auth as auth_service

    client = person("centre_officer", "PUN-PHC-KHED")
    assert client.get("/stores/4").status_code == 200
    assert client.get("/stores/4").status_code == 200  # now held in the worker's token cache
    # Revoked as the API and the logout revoke (the access epoch moves): the very next page
    # is refused, cache or not.
    with runtime.uow() as uow:
        for token_id in uow.session.scalars(select(ApiToken.id)).all():
            auth_service.revoke_token(uow, token_id=token_id, now=dt.datetime.now(dt.UTC))
        uow.commit()
    assert client.get("/stores/4").status_code == 302


def test_a_page_reads_in_one_transaction_and_a_form_checks_its_token_apart(
    app, demo, person, runtime
):
    """A GET reads the session's token and the page in one unit of work: one connection checkout
    per page. A POST keeps the token check and the recording in units of their own."""
    from sqlalchemy import event

    client = person("centre_officer", "PUN-PHC-KHED")
    checkouts: list[object] = []

    def count(*_args: object) -> None:
        checkouts.append(1)

    event.listen(runtime.engine, "checkout", count)
    try:
        for path in ("/", "/stores/4", "/alerts", "/quarantine"):
            checkouts.clear()
            assert client.get(path).status_code == 200, path
            assert len(checkouts) == 1, path
        checkouts.clear()
        page = client.get("/stores/4").get_data(as_text=True)
        checkouts.clear()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        answer = client.post(
            "/stores/4/forms/count", data={"csrf_token": token, "client_id": uuid.uuid4().hex}
        )
        assert answer.status_code == 422
        assert len(checkouts) >= 2  # the token check, then the form's own unit of work
    finally:
        event.remove(runtime.engine, "checkout", count)


def test_a_pages_unit_of_work_reads_each_statement_apart_and_refuses_to_write(app, demo):
    """The GET page's unit of work runs in autocommit (no BEGIN and ROLLBACK round trips): two
    statements see two clocks, where one transaction would see one. It cannot flush a change."""
    from sqlalchemy import func, select

    from logistics.models.catalog import Store
    from logistics.web import access

    with app.test_request_context("/", method="GET"):
        with access.read_uow() as uow:
            first = uow.session.scalar(select(func.now()))
            second = uow.session.scalar(select(func.now()))
            assert first < second
            store = uow.session.scalars(select(Store).limit(1)).one()
            store.name = "Renamed by a page"
            with pytest.raises(ReadOnlyWork):
                uow.session.flush()
        access.close_read_uow()
    # A form's: a transaction of its own.
    with app.test_request_context("/", method="POST"), access.read_uow() as uow:
        first = uow.session.scalar(select(func.now()))
        assert uow.session.scalar(select(func.now())) == first


@pytest.mark.parametrize(
    ("grants", "expected"),
    [
        ([("district_officer", "MH-DVS-PUNE")], "MH-DVS-PUNE"),
        ([("district_officer", "MH-DVS-PUNE"), ("planner", "MH-DVS-PUNE")], "MH-DVS-PUNE"),
        ([("district_officer", "MH-DVS-NASHIK"), ("viewer", "MH-SVS-PUNE")], "MH-SVS-PUNE"),
        ([("admin", None)], None),
        ([("district_officer", "MH-DVS-PUNE"), ("viewer", None)], None),
    ],
)
def test_the_home_subtree_is_the_one_grant_s_or_the_first_by_path(app, demo, grants, expected):
    # MH-SVS-PUNE (the state store, path /1/) comes before MH-DVS-NASHIK (/1/<id>/) by path.
    from flask import g

    from logistics.domain.policy import Grant, Role
    from logistics.models.catalog import Store
    from logistics.services.auth import Principal
    from logistics.web import access

    runtime = app.extensions["coldchain"]
    with runtime.uow() as uow:
        paths = {
            code: uow.session.get(Store, store_id).path for code, store_id in demo["stores"].items()
        }
    principal = Principal(1, "someone", tuple(Grant(Role(r), paths.get(c)) for r, c in grants))
    with app.test_request_context("/"), runtime.uow() as uow:
        g.principal = principal
        found = access.subtree_path(uow)
    assert found == (paths[expected] if expected else None)


def test_a_refused_post_sent_without_a_session_leaves_the_login_forms_token_alone(
    app, demo, runtime
):
    """A page kept offline retries its queue with a stale token while the same browser, its
    session cookie gone, opens the login page: both requests leave without a cookie. The refusal
    answered last must not set a session of its own, or its new token replaces the login form's
    and the login is refused as an expired form (CI failure of test_offline's browser restart)."""
    with runtime.uow() as uow:
        create_user(uow, username="web-returning", password=PASSWORD, roles=["admin"])
        uow.commit()
    browser = app.test_client()
    form = csrf_of(browser.get("/login").get_data(as_text=True))
    sent_before_the_cookie = app.test_client()
    refused = sent_before_the_cookie.post(
        "/sync/entries",
        json={"entries": [{"client_id": uuid.uuid4().hex}]},
        headers={"X-CSRF-Token": "token-of-a-page-kept-offline", "Accept": "application/json"},
    )
    assert refused.status_code == 400
    for header in refused.headers.getlist("Set-Cookie"):  # the browser takes the late answer's
        name, _, value = header.split(";")[0].partition("=")
        browser.set_cookie(name, value)
    answer = browser.post(
        "/login", data={"username": "web-returning", "password": PASSWORD, "csrf_token": form}
    )
    assert answer.status_code == 303
