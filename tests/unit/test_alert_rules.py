"""Alert lifecycle and stock-state rules, without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.domain.alerts import (
    ReminderPolicy,
    check_acknowledge,
    check_resolve,
    expiry_state,
    level_in_doses,
    next_escalation_level,
    reminder_due,
    stock_state,
)
from logistics.domain.errors import Conflict, Invalid

T0 = dt.datetime(2021, 1, 10, tzinfo=dt.UTC)
POLICY = ReminderPolicy(dt.timedelta(minutes=30), escalate_after_reminders=2, max_level=2)


def test_acknowledge_needs_a_comment_and_an_open_alert():
    with pytest.raises(Invalid):
        check_acknowledge("open", "  ")
    with pytest.raises(Conflict):
        check_acknowledge("acknowledged", "seen")
    with pytest.raises(Conflict):
        check_acknowledge("resolved", "seen")
    check_acknowledge("open", "seen")


def test_resolve_by_hand_needs_a_comment_and_not_twice():
    with pytest.raises(Invalid):
        check_resolve("open", None)
    with pytest.raises(Conflict):
        check_resolve("resolved", "done")
    check_resolve("acknowledged", "done")


def test_only_open_alarms_are_reminded_at_the_interval():
    assert not reminder_due("open", "alarm", None, T0, POLICY, T0 + dt.timedelta(minutes=29))
    assert reminder_due("open", "alarm", None, T0, POLICY, T0 + dt.timedelta(minutes=30))
    assert not reminder_due("acknowledged", "alarm", None, T0, POLICY, T0 + dt.timedelta(hours=5))
    assert not reminder_due("open", "warning", None, T0, POLICY, T0 + dt.timedelta(hours=5))
    last = T0 + dt.timedelta(minutes=40)
    assert not reminder_due("open", "alarm", last, T0, POLICY, T0 + dt.timedelta(minutes=60))


def test_escalation_climbs_every_n_reminders_up_to_the_limits():
    assert next_escalation_level(1, 0, POLICY, 2) == 0
    assert next_escalation_level(2, 0, POLICY, 2) == 1
    assert next_escalation_level(4, 1, POLICY, 2) == 2
    assert next_escalation_level(6, 2, POLICY, 2) == 2
    assert next_escalation_level(2, 0, POLICY, 0) == 0  # a state store has no parent


@pytest.mark.parametrize(
    ("doses", "state"),
    [(0, "stock_out"), (99, "below_min"), (100, "ok"), (1000, "ok"), (1001, "above_max")],
)
def test_stock_state(doses, state):
    assert stock_state(doses, 100, 1000) == state


def test_levels_in_days_of_stock():
    assert level_in_doses(10, "days", 20) == 200
    assert level_in_doses(10, "days", None) is None
    assert level_in_doses(150, "doses", None) == 150


def test_expiry_state():
    expiry = dt.date(2021, 6, 30)
    assert expiry_state(expiry, dt.date(2021, 5, 30), 30) == "ok"
    assert expiry_state(expiry, dt.date(2021, 5, 31), 30) == "expiring"
    assert expiry_state(expiry, dt.date(2021, 6, 30), 30) == "expiring"
    assert expiry_state(expiry, dt.date(2021, 7, 1), 30) == "expired"
