"""Temperature rules can be corrected: a rule set is replaced any number of times, audited."""

from __future__ import annotations

import pytest

from tests.support.alerts_fixtures import make_tree

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _rules(heat_alarm_min: int, cold_alarm_min: int) -> dict:
    return {
        "min_temp_c": 2,
        "max_temp_c": 8,
        "rules": [
            {
                "side": "heat",
                "level": "alarm",
                "limit_c": 8,
                "mode": "consecutive",
                "duration_min": heat_alarm_min,
            },
            {
                "side": "cold",
                "level": "alarm",
                "limit_c": -0.5,
                "mode": "consecutive",
                "duration_min": cold_alarm_min,
            },
        ],
    }


@pytest.fixture
def tree(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
        return tree


@pytest.mark.parametrize("scope", ["products", "units"])
def test_rule_set_is_replaced_again_and_again(client, tree, scope):
    subject = tree.product.id if scope == "products" else tree.ilr.id
    url = f"/api/temperature-rules/{scope}/{subject}"
    for heat_min in (600, 480, 300, 300):
        put = client.put(url, json=_rules(heat_min, 60))
        assert put.status_code == 200, put.json
        got = client.get(url).json
        assert got["source"] == scope[:-1]
        assert {(r["side"], r["level"], r["duration_min"]) for r in got["rules"]} == {
            ("heat", "alarm", heat_min),
            ("cold", "alarm", 60),
        }


@pytest.mark.parametrize("scope", ["products", "units"])
def test_every_rule_change_is_audited(client, tree, scope):
    subject = tree.product.id if scope == "products" else tree.ilr.id
    url = f"/api/temperature-rules/{scope}/{subject}"
    assert client.put(url, json=_rules(600, 60)).status_code == 200
    assert client.put(url, json=_rules(480, 45)).status_code == 200
    log = client.get("/api/audit", query_string={"limit": 500}).json
    sets = [e for e in log if e["entity"] == "temperature_rule_sets"]
    rules = [e for e in log if e["entity"] == "temperature_rules"]
    assert sorted(e["action"] for e in sets) == ["insert", "update"]
    # First PUT: two rules inserted; second: those two deleted and two new ones inserted.
    assert sorted(e["action"] for e in rules) == [
        "delete",
        "delete",
        "insert",
        "insert",
        "insert",
        "insert",
    ]
    deleted = {
        (e["before"]["side"], e["before"]["duration_min"]) for e in rules if e["action"] == "delete"
    }
    assert deleted == {("heat", 600), ("cold", 60)}
    assert all(e["actor"] == "test-admin" for e in sets + rules)
