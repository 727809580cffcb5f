"""Hostile HTTP input answers 4xx problem+json, never 500 (issue 12, point 3).

The cases of the report: JSON nested 50,000-100,000 levels (also on the public login), NUL in the
login user name, in a path and in a query, lone surrogates in string fields, datetimes that leave
the calendar once their offset is applied, and a 405 without Allow.
"""

from __future__ import annotations

import pytest

from tests.support.ledger import build_network

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.mimetype == PROBLEM
    return response.get_json()


@pytest.mark.parametrize("depth", [50_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_refused_before_parsing(anon_client, client, depth, opener):
    closer = "]" if opener == "[" else "}"
    body = opener * depth + "1" + closer * depth
    for who, path in ((anon_client, "/api/auth/login"), (client, "/api/stores")):
        response = who.post(path, data=body, content_type="application/json")
        assert "nested deeper" in _problem(response, 400)["detail"]


def test_a_body_over_the_size_limit_is_413(anon_client, runtime):
    body = b'{"username":"' + b"x" * (runtime.settings.http_max_body_bytes + 10) + b'"}'
    _problem(anon_client.post("/api/auth/login", data=body, content_type="application/json"), 413)


def test_nul_in_the_login_user_name(anon_client):
    response = anon_client.post("/api/auth/login", json={"username": "a\x00b", "password": "x"})
    assert "username" in _problem(response, 422)["errors"]


def test_nul_in_a_path_and_in_a_query(client):
    _problem(client.get("/api/users/%00"), 400)
    errors = _problem(client.get("/api/audit?actor=%00"), 422)["errors"]
    assert "actor" in errors


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/login", '{"username": "\\ud800", "password": "x"}'),
        ("/api/stores", '{"code": "X\\udfff", "name": "n", "level_code": "state"}'),
        ("/api/stores", '{"code": "X", "name": "n", "level_code": "state", "\\ud800": 1}'),
    ],
)
def test_lone_surrogates_in_strings_and_keys(client, path, body):
    _problem(client.post(path, data=body, content_type="application/json"), 422)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:30", "9999-12-31T23:59:59-14:00"])
def test_datetimes_are_range_checked_after_their_offset(client, runtime, when):
    with runtime.uow() as uow:
        net = build_network(uow)
    body = {
        "client_id": "c-1",
        "store_id": net.centre,
        "unit_id": net.centre_ilr,
        "lot_id": net.lot_late,
        "doses": 10,
        "occurred_at": when,
    }
    _problem(client.post("/api/consumptions", json=body), 422)
    _problem(client.get(f"/api/audit?since={when.replace('+', '%2B')}"), 422)
    _problem(client.get(f"/api/units/{net.centre_ilr}/readings?start={when}&end={when}"), 422)


def test_an_id_beyond_64_bits_is_refused_not_sent_to_the_database(client):
    errors = _problem(client.get("/api/audit?before_id=25305769696662090940416"), 422)["errors"]
    assert "before_id" in errors


def test_a_405_names_the_allowed_methods(client):
    response = client.open("/api/stores", method="TRACE")
    _problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_replacing_a_rule_set_twice_is_not_a_500(client, runtime):
    with runtime.uow() as uow:
        net = build_network(uow)
    body = {
        "min_temp_c": 2,
        "max_temp_c": 8,
        "rules": [
            {
                "side": "cold",
                "level": "alarm",
                "limit_c": 0.0,
                "mode": "cumulative",
                "duration_min": 1,
                "window_min": 60,
            }
        ],
    }
    for _ in range(2):
        response = client.put(f"/api/temperature-rules/products/{net.covishield}", json=body)
        assert response.status_code == 200, response.get_json()
