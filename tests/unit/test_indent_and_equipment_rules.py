"""Indent suggestions and states, and where a broken unit's doses can go (issue 19.3, 19.4)."""

from __future__ import annotations

import pytest

from logistics.domain import equipment, indents
from logistics.domain.errors import Conflict, Invalid


def needs(**changes):
    base = dict(
        daily_consumption_doses=40.0,
        lead_days=5,
        period_days=30,
        sessions_before_doses=0,
        sessions_after_doses=0,
        on_hand_doses=600,
        in_transit_doses=0,
        max_level_doses=None,
        doses_per_vial=10,
    )
    return indents.IndentNeeds(**{**base, **changes})


def test_suggestion_from_the_consumption_rate_alone():
    got = indents.suggest(needs())
    # use before delivery 40 x 5 = 200; period needs 40 x 30 = 1200; minimum 25 % = 300;
    # maximum 1200 + 300 = 1500; available at delivery 600 - 200 = 400; ask 1500 - 400 = 1100.
    assert got == indents.Suggestion(200, 1200, 300, 1500, 400, 1100)


def test_planned_sessions_above_the_rate_raise_the_needs():
    got = indents.suggest(needs(sessions_before_doses=500, sessions_after_doses=2000))
    # use before 500 (sessions); period needs 2000; minimum 500; maximum 2500;
    # available 600 - 500 = 100; ask 2400.
    assert got == indents.Suggestion(500, 2000, 500, 2500, 100, 2400)


def test_the_stores_own_maximum_and_stock_in_transit_count():
    got = indents.suggest(needs(max_level_doses=1000, in_transit_doses=300))
    # maximum 1000 (set for the store); available 600 + 300 - 200 = 700; ask 300.
    assert got.maximum_doses == 1000 and got.suggested_doses == 300


def test_the_suggestion_rounds_up_to_whole_vials_and_never_goes_negative():
    assert indents.suggest(needs(max_level_doses=405)).suggested_doses == 10  # 5 -> 1 vial
    assert indents.suggest(needs(on_hand_doses=5000)).suggested_doses == 0


def test_no_consumption_and_no_sessions_suggests_nothing():
    got = indents.suggest(needs(daily_consumption_doses=None, on_hand_doses=0))
    assert got == indents.Suggestion(0, 0, 0, 0, 0, 0)


def test_indent_states_follow_request_approval_shipment_receipt():
    indents.check_transition(1, "requested", "approved")
    indents.check_transition(1, "approved", "shipped")
    indents.check_transition(1, "shipped", "received")
    for state, new in (
        ("requested", "shipped"),
        ("rejected", "approved"),
        ("received", "cancelled"),
        ("shipped", "cancelled"),
    ):
        with pytest.raises(Conflict):
            indents.check_transition(1, state, new)


def test_approving_fewer_doses_needs_a_reason_and_never_more_than_asked():
    indents.check_approval(1000, 1000, None)
    indents.check_approval(1000, 600, "district stock is low")
    for approved, reason in ((600, None), (600, "  "), (0, "x")):
        with pytest.raises(Invalid):
            indents.check_approval(1000, approved, reason)
    with pytest.raises(Conflict):
        indents.check_approval(1000, 1001, "x")


# --- equipment ----------------------------------------------------------------------------------


def test_tree_distance_counts_steps_through_the_store_tree():
    assert equipment.tree_distance("/1/4/17/", "/1/4/17/") == 0
    assert equipment.tree_distance("/1/4/17/", "/1/4/") == 1
    assert equipment.tree_distance("/1/4/17/", "/1/4/18/") == 2
    assert equipment.tree_distance("/1/4/17/", "/1/5/20/") == 4
    assert (equipment.steps_up("/1/4/17/", "/1/4/18/"), equipment.steps_up("/1/4/17/", "/1/")) == (
        1,
        2,
    )


def space(unit_id, path, free=1000, **changes):
    base = dict(
        unit_id=unit_id,
        store_id=int(path.strip("/").split("/")[-1]),
        store_path=path,
        working_status="working",
        active=True,
        min_temp_c=2.0,
        max_temp_c=8.0,
        capacity_doses=free + 100,
        held_doses=100,
    )
    return equipment.UnitSpace(**{**base, **changes})


def test_nearest_store_with_room_same_store_first_then_up_the_tree():
    centre = "/1/4/17/"
    spaces = [
        space(1, "/1/4/17/", capacity_doses=None),  # capacity unknown: not offered
        space(2, "/1/4/18/"),  # sibling centre: 2 steps
        space(3, "/1/4/"),  # the district: 1 step
        space(4, "/1/4/17/", free=50),  # same store but too small
        space(5, "/1/4/17/", working_status="needs_repair"),
        space(6, "/1/4/17/", min_temp_c=-25, max_temp_c=-15),  # a freezer: wrong range
        space(7, "/1/", free=9000),  # the state store: 2 steps too, but both of them up
        space(8, "/1/4/17/", active=False),
    ]
    got = equipment.nearest_with_room(centre, spaces, 500, [(2.0, 8.0)], exclude_unit=9)
    assert [s.unit_id for s in got] == [3, 2, 7]


def test_the_broken_unit_itself_is_never_offered():
    spaces = [space(1, "/1/"), space(2, "/1/")]
    got = equipment.nearest_with_room("/1/", spaces, 10, [(2.0, 8.0)], exclude_unit=1)
    assert [s.unit_id for s in got] == [2]


def test_functional_counts_include_units_needing_repair():
    counts = equipment.count_statuses(["working", "working", "needs_repair", "not_working"])
    assert (counts.working, counts.needs_repair, counts.not_working) == (2, 1, 1)
    assert (counts.functional, counts.total, counts.functional_pct) == (3, 4, 75.0)
    assert equipment.count_statuses([]).functional_pct is None
