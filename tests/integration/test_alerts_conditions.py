"""Sensor silence, battery, power; stock states; expiry; reminders and escalation."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select

from logistics.domain.alerts import ReminderPolicy
from logistics.models.alerts import Alert, NotificationDelivery, StockLevel
from logistics.models.catalog import StorageUnit
from logistics.models.stock import StockBalance
from logistics.services.alerts import (
    acknowledge_alert,
    check_expiry,
    check_sensors,
    check_stock_states,
    remind_and_escalate,
)
from logistics.services.notify import add_target
from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

pytestmark = pytest.mark.integration
EVENING = dt.datetime(2021, 1, 9, 14, 0, tzinfo=dt.UTC)  # 19:30 in Silchar
H = dt.timedelta(hours=1)


def alerts(runtime, kind=None):
    with runtime.uow() as uow:
        query = select(Alert).order_by(Alert.id)
        if kind:
            query = query.where(Alert.kind == kind)
        rows = list(uow.session.scalars(query))
        uow.session.expunge_all()
        return rows


def _check_sensors(runtime, now):
    with runtime.uow() as uow:
        result = check_sensors(
            uow, silence_factor=3, low_battery_pct=20, now=now, power_failure_alarm_min=120
        )
        uow.commit()
        return result


@pytest.fixture
def tree(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, interval_s=600)
        uow.commit()
    return tree


def test_sensor_silent_overnight_raises_then_resolves_when_readings_resume(runtime, tree):
    ingest(runtime, readings(EVENING, (60, 4.5), step_min=10), EVENING + H)
    assert _check_sensors(runtime, EVENING + H) == (0, 0)
    assert _check_sensors(runtime, EVENING + 1.2 * H) == (
        0,
        0,
    )  # 30 min of silence: 3 x 10 min not passed
    assert _check_sensors(runtime, EVENING + 2 * H) == (1, 0)
    assert _check_sensors(runtime, EVENING + 10 * H) == (
        0,
        0,
    )  # one alert all night, not one per check
    [silent] = alerts(runtime, "sensor_silent")
    assert (
        silent.state == "open" and silent.severity == "alarm" and silent.store_id == tree.centre.id
    )
    morning = EVENING + 12 * H
    ingest(runtime, readings(morning, (10, 4.0), step_min=10), morning)
    [silent] = alerts(runtime, "sensor_silent")
    assert silent.state == "resolved" and silent.resolved_by == "system"


def test_low_battery_and_power_off_resolve_themselves(runtime, tree):
    ingest(
        runtime,
        readings(EVENING, (20, 4.5), step_min=10, battery_pct=12, power="off"),
        EVENING + 0.4 * H,
    )
    assert sorted(a.kind for a in alerts(runtime) if a.state == "open") == [
        "sensor_low_battery",
        "sensor_power_off",
    ]
    ingest(
        runtime,
        readings(EVENING + 0.5 * H, (10, 4.5), step_min=10, battery_pct=90, power="mains"),
        EVENING + 0.6 * H,
    )
    assert all(a.state == "resolved" for a in alerts(runtime))
    assert len(alerts(runtime)) == 2  # the records stay


def _stock(runtime, tree, doses, level=None):
    with runtime.uow() as uow:
        balance = uow.session.scalars(select(StockBalance)).one()
        balance.doses = doses
        if level:
            uow.session.add(
                StockLevel(
                    store_id=tree.centre.id, product_id=tree.product.id, updated_at=EVENING, **level
                )
            )
        uow.commit()
        result = check_stock_states(uow, now=EVENING)
        uow.commit()
        return result


def test_stock_states_are_raised_on_change_only(runtime, tree):
    assert _stock(runtime, tree, 500, {"basis": "doses", "min_value": 100, "max_value": 1000}) == (
        0,
        0,
    )
    assert _stock(runtime, tree, 50) == (1, 0)
    assert _stock(runtime, tree, 40) == (0, 0)
    assert _stock(runtime, tree, 0) == (1, 1)  # below_min resolved, stock_out opened
    assert _stock(runtime, tree, 2000) == (1, 1)
    assert [(a.kind, a.state) for a in alerts(runtime)] == [
        ("below_min", "resolved"),
        ("stock_out", "resolved"),
        ("above_max", "open"),
    ]


def test_levels_in_days_of_stock(runtime, tree):
    # 10 days minimum at 20 doses a day: 200 doses.
    assert _stock(
        runtime,
        tree,
        150,
        {"basis": "days", "min_value": 10, "max_value": 60, "daily_consumption_doses": 20},
    ) == (1, 0)
    assert alerts(runtime)[0].details["min_doses"] == 200


def test_expiry_alerts(runtime, tree):
    def check(today):
        with runtime.uow() as uow:
            result = check_expiry(
                uow,
                warn_days=30,
                site_timezone="Asia/Kolkata",
                now=dt.datetime.combine(today, dt.time(6), dt.UTC),
            )
            uow.commit()
            return result

    assert check(dt.date(2021, 5, 1)) == (0, 0)
    assert check(dt.date(2021, 6, 1)) == (1, 0)  # expires 30 June: within 30 days
    assert check(dt.date(2021, 6, 30)) == (0, 0)
    assert check(dt.date(2021, 7, 1)) == (1, 1)
    assert [(a.kind, a.state) for a in alerts(runtime)] == [
        ("lot_expiring", "resolved"),
        ("lot_expired", "open"),
    ]


def test_unacknowledged_alarm_is_reminded_then_escalated_to_the_parent_store(runtime, tree):
    with runtime.uow() as uow:
        for store in (tree.centre, tree.district, tree.state):
            add_target(
                uow,
                store_id=store.id,
                channel="email",
                address=f"{store.code}@example",
                secret=None,
            )
            uow.commit()
    _check_sensors(runtime, EVENING)  # never heard since registration: silent
    policy = ReminderPolicy(
        remind_every=dt.timedelta(minutes=30), escalate_after_reminders=2, max_level=2
    )

    def remind(at):
        with runtime.uow() as uow:
            count = remind_and_escalate(uow, policy=policy, now=at)
            uow.commit()
            return count

    assert remind(EVENING + dt.timedelta(minutes=10)) == 0
    assert remind(EVENING + dt.timedelta(minutes=30)) == 1
    assert alerts(runtime)[0].escalation_level == 0
    assert remind(EVENING + dt.timedelta(minutes=60)) == 1
    assert alerts(runtime)[0].escalation_level == 1
    with runtime.uow() as uow:
        told = [
            d.target.address
            for d in uow.session.scalars(
                select(NotificationDelivery).order_by(NotificationDelivery.id)
            )
        ]
    assert told == [
        "AS-CAC-SIL@example",
        "AS-CAC-SIL@example",
        "AS-CAC-SIL@example",
        "AS-CAC@example",
    ]
    with runtime.uow() as uow:
        acknowledge_alert(
            uow, alert_id=alerts(runtime)[0].id, comment="on my way", actor="dio", now=EVENING
        )
        uow.commit()
    assert remind(EVENING + dt.timedelta(minutes=120)) == 0


def test_a_check_of_one_unit_reads_and_changes_only_its_own_sensors_alerts(runtime, tree):
    with runtime.uow() as uow:
        other = StorageUnit(
            store_id=tree.other_centre.id, code="ILR-9", kind="ilr", min_temp_c=2, max_temp_c=8
        )
        uow.session.add(other)
        uow.session.flush()
        add_sensor(uow, other.id, sensor_id="S-9", interval_s=600)
        uow.commit()
    ingest(runtime, readings(EVENING, (60, 4.5), step_min=10), EVENING + H)
    ingest(runtime, readings(EVENING, (60, 4.5), step_min=10, sensor_id="S-9"), EVENING + H)
    assert _check_sensors(runtime, EVENING + 3 * H) == (2, 0)  # both silent: a network check

    # S-1 speaks again: evaluating its unit resolves its alert, and leaves S-9's open.
    ingest(runtime, readings(EVENING + 3 * H, (10, 4.5), step_min=10), EVENING + 3 * H)
    assert {a.subject_id: a.state for a in alerts(runtime, "sensor_silent")} == {
        "S-1": "resolved",
        "S-9": "open",
    }
    # S-1 silent again: a check of its unit raises its alert, reading none of S-9's.
    read: list[str] = []

    def loaded(alert: Alert, _context: object) -> None:
        read.append(alert.subject_id)

    event.listen(Alert, "load", loaded)
    try:
        with runtime.uow() as uow:
            result = check_sensors(
                uow,
                silence_factor=3,
                low_battery_pct=20,
                now=EVENING + 6 * H,
                unit_ids=[tree.ilr.id],
                power_failure_alarm_min=120,
            )
            uow.commit()
    finally:
        event.remove(Alert, "load", loaded)
    assert result == (1, 0)
    assert "S-9" not in read
    states = sorted((a.subject_id, a.state) for a in alerts(runtime, "sensor_silent"))
    assert states == [("S-1", "open"), ("S-1", "resolved"), ("S-9", "open")]
