"""Mains failure is an alert (issue 11, point 5): a logger on battery raises power_failure, a
warning at once and an alarm after alerts.power_failure_alarm_min; mains back resolves it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from logistics.models.alerts import Alert, NotificationDelivery
from logistics.services.alerts import acknowledge_alert, check_sensors
from logistics.services.notify import add_target
from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

pytestmark = pytest.mark.integration
EVENING = dt.datetime(2021, 1, 9, 14, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
ALARM_MIN = 120


@pytest.fixture
def tree(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id)
        uow.commit()
        add_target(
            uow,
            store_id=tree.centre.id,
            channel="webhook",
            address="http://127.0.0.1:9/hook",
            secret="s",
            allowed_networks="127.0.0.0/8",
        )
        uow.commit()
    return tree


def _power_alerts(runtime):
    with runtime.uow() as uow:
        rows = list(
            uow.session.scalars(
                select(Alert).where(Alert.kind == "power_failure").order_by(Alert.id)
            )
        )
        for row in rows:
            row.event_names = [e.event for e in row.events]
        uow.session.expunge_all()
        return rows


def _deliveries(runtime):
    with runtime.uow() as uow:
        return [
            d.event
            for d in uow.session.scalars(
                select(NotificationDelivery).order_by(NotificationDelivery.id)
            )
        ]


def _check(runtime, now):
    with runtime.uow() as uow:
        result = check_sensors(
            uow, silence_factor=1000, low_battery_pct=20, now=now, power_failure_alarm_min=ALARM_MIN
        )
        uow.commit()
        return result


def test_mains_to_battery_warns_at_once_alarms_later_and_resolves(runtime, tree):
    ingest(runtime, readings(EVENING, (30, 4.5), power="mains"), EVENING + 0.5 * H)
    assert _power_alerts(runtime) == []
    cut = EVENING + 0.5 * H
    ingest(runtime, readings(cut, (10, 4.8), power="battery", battery_pct=90), cut + 10 * MIN)
    [alert] = _power_alerts(runtime)
    assert (alert.state, alert.severity) == ("open", "warning")
    assert alert.details["on_battery_since"] == cut.isoformat()
    assert alert.store_id == tree.centre.id
    assert _check(runtime, cut + 119 * MIN) == (0, 0)  # still a warning
    assert _check(runtime, cut + 120 * MIN) == (1, 0)  # two hours on battery: the alarm
    [alert] = _power_alerts(runtime)
    assert (alert.state, alert.severity) == ("open", "alarm")
    assert alert.event_names == ["opened", "severity_raised"]
    assert _deliveries(runtime) == ["opened", "severity_raised"]
    assert _check(runtime, cut + 5 * H) == (0, 0)  # one alarm, not one per check
    back = cut + 5 * H
    ingest(runtime, readings(back, (5, 5.0), power="mains"), back + 5 * MIN)
    [alert] = _power_alerts(runtime)
    assert (alert.state, alert.resolved_by) == ("resolved", "system")
    assert _deliveries(runtime)[-1] == "resolved"


def test_an_acknowledged_warning_opens_again_as_an_alarm(runtime, tree):
    cut = EVENING
    ingest(runtime, readings(cut, (10, 4.8), power="battery"), cut + 10 * MIN)
    [alert] = _power_alerts(runtime)
    with runtime.uow() as uow:
        acknowledge_alert(
            uow, alert_id=alert.id, actor="asha", comment="generator on its way", now=cut + 15 * MIN
        )
        uow.commit()
    assert _check(runtime, cut + 3 * H) == (1, 0)
    [alert] = _power_alerts(runtime)
    assert (alert.state, alert.severity) == ("open", "alarm")


def test_a_backlog_dates_the_cut_by_its_readings(runtime, tree):
    # The logger lost its link during the cut and sends three hours of battery readings at once.
    cut = EVENING
    ingest(runtime, readings(cut - H, (60, 4.5), power="mains"), cut)
    ingest(runtime, readings(cut, (180, 5.5), power="battery"), cut + 3 * H)
    [alert] = _power_alerts(runtime)
    assert alert.details["on_battery_since"] == cut.isoformat()
    assert alert.severity == "alarm"  # three hours already: no warning stage to wait for


def test_power_off_keeps_its_own_alarm(runtime, tree):
    ingest(runtime, readings(EVENING, (10, 4.5), power="off"), EVENING + 10 * MIN)
    assert _power_alerts(runtime) == []  # "off" is the sensor_power_off alarm, as before


MIN = dt.timedelta(minutes=1)
