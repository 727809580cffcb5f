"""The pure rules of who may write where."""

from __future__ import annotations

import pytest

from logistics.domain import policy
from logistics.domain.policy import Grant, Permission, Role, Rule, body

STATE, DISTRICT_A, CENTRE_A1, DISTRICT_B = "/1/", "/1/2/", "/1/2/5/", "/1/3/"
STOCK_AT_STORE = Rule(Permission.STOCK, (body("store_id"),))


@pytest.mark.parametrize(
    ("grant", "target", "allowed"),
    [
        (Grant(Role.DISTRICT_OFFICER, DISTRICT_A), DISTRICT_A, True),
        (Grant(Role.DISTRICT_OFFICER, DISTRICT_A), CENTRE_A1, True),
        (Grant(Role.DISTRICT_OFFICER, DISTRICT_A), DISTRICT_B, False),
        (Grant(Role.DISTRICT_OFFICER, DISTRICT_A), STATE, False),
        (Grant(Role.DISTRICT_OFFICER, DISTRICT_A), None, False),
        (Grant(Role.STATE_OFFICER, STATE), DISTRICT_B, True),
        (Grant(Role.CENTRE_OFFICER, CENTRE_A1), CENTRE_A1, True),
        (Grant(Role.CENTRE_OFFICER, CENTRE_A1), DISTRICT_A, False),
        (Grant(Role.PLANNER, CENTRE_A1), CENTRE_A1, False),
        (Grant(Role.VIEWER, None), CENTRE_A1, False),
        (Grant(Role.ADMIN, None), CENTRE_A1, True),
        (Grant(Role.ADMIN, None), None, True),
    ],
)
def test_stock_write_is_allowed_only_within_the_grant_subtree(grant, target, allowed):
    assert policy.allows([grant], STOCK_AT_STORE, [target]) is allowed


def test_a_path_prefix_of_digits_is_not_a_subtree():
    # "/1/2/" must not cover "/1/23/": paths end with a slash for exactly this reason.
    assert not Grant(Role.DISTRICT_OFFICER, "/1/2/").covers(Permission.STOCK, "/1/23/")


def test_every_store_a_request_names_must_be_covered():
    grants = [Grant(Role.DISTRICT_OFFICER, DISTRICT_A)]
    assert not policy.allows(grants, STOCK_AT_STORE, [CENTRE_A1, DISTRICT_B])
    grants.append(Grant(Role.DISTRICT_OFFICER, DISTRICT_B))
    assert policy.allows(grants, STOCK_AT_STORE, [CENTRE_A1, DISTRICT_B])


def test_network_rules_need_the_permission_but_no_store():
    products = Rule(Permission.PRODUCTS, network=True)
    assert policy.allows([Grant(Role.STATE_OFFICER, STATE)], products, [])
    assert not policy.allows([Grant(Role.DISTRICT_OFFICER, DISTRICT_A)], products, [])


def test_planner_plans_sessions_only_at_its_centre():
    sessions = Rule(Permission.SESSIONS, (body("session_id", "Session.store_id"),))
    planner = [Grant(Role.PLANNER, CENTRE_A1)]
    assert policy.allows(planner, sessions, [CENTRE_A1])
    assert not policy.allows(planner, sessions, ["/1/2/6/"])


def test_an_endpoint_without_a_rule_is_for_admins_only():
    rule = policy.write_rule("nobody.KnowsThis", "POST")
    assert rule is policy.ADMIN_ONLY
    assert not policy.allows([Grant(Role.STATE_OFFICER, STATE)], rule, [STATE])
    assert policy.allows([Grant(Role.ADMIN, None)], rule, [])


def test_method_specific_rule_wins_over_the_endpoint_rule(monkeypatch):
    rules = {"x.Item": policy.ADMIN_ONLY, "DELETE x.Item": STOCK_AT_STORE}
    monkeypatch.setattr(policy, "WRITE_RULES", rules)
    assert policy.write_rule("x.Item", "DELETE") is STOCK_AT_STORE
    assert policy.write_rule("x.Item", "PATCH") is policy.ADMIN_ONLY


def test_only_admins_read_the_audit_log():
    permission = policy.read_permission("auth.AuditLog")
    assert policy.may_read([Grant(Role.ADMIN, None)], permission)
    assert not policy.may_read([Grant(Role.STATE_OFFICER, STATE)], permission)
    assert policy.may_read([Grant(Role.VIEWER, CENTRE_A1)], policy.read_permission("stock.X"))


@pytest.mark.parametrize(
    ("endpoint", "method", "path", "public"),
    [
        ("system.Health", "GET", "/api/health", True),
        ("auth.Login", "POST", "/api/auth/login", True),
        (
            "sessions.Availability",
            "GET",
            "/api/v2/appointment/sessions/public/findByDistrict",
            True,
        ),
        (
            "sessions.Availability",
            "POST",
            "/api/v2/appointment/sessions/public/findByDistrict",
            False,
        ),
        ("stock.Balances", "GET", "/api/stores/1/balances", False),
    ],
)
def test_public_endpoints(endpoint, method, path, public):
    assert policy.is_public(endpoint, method, path) is public


def test_viewer_reads_but_has_no_write_permission():
    assert policy.ROLE_PERMISSIONS[Role.VIEWER] == {Permission.SELF}


def test_acting_on_ones_own_account_needs_no_grant():
    assert policy.allows([], policy.write_rule("auth.Logout", "POST"), [])


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/1/", "//1//%"),
        ("/1/4/17/", "//1//4//17//%"),
        ("/a_b%/", "//a/_b/%//%"),
    ],
)
def test_a_subtree_pattern_escapes_the_path(path, pattern):
    from logistics.services.lookup import subtree_pattern

    assert subtree_pattern(path) == pattern
