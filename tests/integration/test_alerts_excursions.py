"""Excursions evaluated as readings arrive, on real PostgreSQL: records, alerts, quarantine."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from logistics.models.alerts import Alert, Excursion, QuarantineReview, UnitMonitorState
from logistics.models.stock import StockBalance
from logistics.services.excursions import evaluate_units
from logistics.services.quarantine import release_review
from logistics.services.temperature_rules import RuleInput, rules_of_unit, set_rules
from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

pytestmark = pytest.mark.integration
T0 = dt.datetime(2021, 1, 9, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture
def tree(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id)
        uow.commit()
    return tree


def excursions(runtime):
    with runtime.uow() as uow:
        rows = list(uow.session.scalars(select(Excursion).order_by(Excursion.kind)))
        uow.session.expunge_all()
        return rows


def open_alerts(runtime):
    with runtime.uow() as uow:
        return sorted(
            a.kind
            for a in uow.session.scalars(
                select(Alert).where(Alert.state != "resolved", Alert.subject_type == "unit")
            )
        )


def test_door_opening_raises_nothing(runtime, tree):
    ingest(runtime, readings(T0, (60, 4.5), (5, 12.0), (60, 4.5)), T0 + 3 * H)
    assert excursions(runtime) == []
    assert open_alerts(runtime) == []


def test_heat_alarm_records_excursion_quarantines_and_alerts(runtime, tree):
    ingest(runtime, readings(T0, (30, 5.0), (601, 9.0)), T0 + 11 * H)
    found = {e.kind: e for e in excursions(runtime)}
    assert set(found) == {"heat_warning", "heat_alarm"}
    alarm = found["heat_alarm"]
    assert alarm.ended_at is None and alarm.minutes_outside == 600 and alarm.peak_temp_c == 9.0
    assert alarm.thresholds["rule"]["duration_min"] == 600
    assert alarm.lots == [
        {
            "lot_id": tree.lot.id,
            "lot_number": "4121Z001",
            "product_id": tree.product.id,
            "doses": 500,
        }
    ]
    assert open_alerts(runtime) == ["heat_alarm", "heat_warning"]
    with runtime.uow() as uow:
        balance = uow.session.scalars(select(StockBalance)).one()
        review = uow.session.scalars(select(QuarantineReview)).one()
        uow.session.expunge_all()
    assert balance.quarantined_doses == 500
    assert (review.reason, review.proposed_decision, review.state) == (
        "heat_exposure",
        "review",
        "pending",
    )


def test_back_in_range_ends_excursion_and_resolves_alert_but_keeps_quarantine(runtime, tree):
    ingest(runtime, readings(T0, (601, 9.0)), T0 + 11 * H)
    ingest(runtime, readings(T0 + 601 * dt.timedelta(minutes=1), (5, 5.0)), T0 + 11 * H)
    assert all(e.ended_at is not None for e in excursions(runtime))
    assert open_alerts(runtime) == []
    with runtime.uow() as uow:
        assert uow.session.scalars(select(StockBalance)).one().quarantined_doses == 500
        review = uow.session.scalars(select(QuarantineReview)).one()
        release_review(
            uow,
            review_id=review.id,
            comment="VVM stage 1, MKT 7.2 C",
            actor="asha",
            now=T0 + 12 * H,
        )
        uow.commit()
        assert uow.session.scalars(select(StockBalance)).one().quarantined_doses == 0


def test_9h59_is_warning_only_and_freeze_60_min_proposes_discard(runtime, tree):
    ingest(runtime, readings(T0, (600, 9.0), (5, 5.0), (61, -1.0)), T0 + 12 * H)
    kinds = sorted(e.kind for e in excursions(runtime))
    assert kinds == ["cold_alarm", "cold_warning", "heat_warning"]
    with runtime.uow() as uow:
        review = uow.session.scalars(select(QuarantineReview)).one()
        uow.session.expunge_all()
    assert (review.reason, review.proposed_decision) == ("frozen", "discard")


def test_out_of_order_batches_give_the_same_excursions(runtime, tree):
    batch = readings(T0, (30, 5.0), (601, 9.0), (30, 5.0))
    chunks = [batch[i : i + 97] for i in range(0, len(batch), 97)]
    for chunk in reversed(chunks):
        ingest(runtime, chunk, T0 + 12 * H)
    got = [
        (e.kind, e.started_at, e.triggered_at, e.ended_at, e.minutes_outside)
        for e in excursions(runtime)
    ]
    assert got == [
        (
            "heat_alarm",
            T0 + 30 * dt.timedelta(minutes=1),
            T0 + 630 * dt.timedelta(minutes=1),
            T0 + 631 * dt.timedelta(minutes=1),
            600.0,
        ),
        (
            "heat_warning",
            T0 + 30 * dt.timedelta(minutes=1),
            T0 + 90 * dt.timedelta(minutes=1),
            T0 + 631 * dt.timedelta(minutes=1),
            600.0,
        ),
    ]


def test_concurrent_evaluations_of_one_unit_store_each_excursion_once(runtime, tree):
    from logistics.services.readings import record_readings

    batch = readings(T0, (601, 9.0))
    with runtime.uow() as uow:
        touched = record_readings(uow, batch, T0 + 11 * H)
        uow.commit()
    threads = [
        threading.Thread(target=evaluate_units, args=(runtime, touched, T0 + 11 * H))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.kind for e in excursions(runtime)) == ["heat_alarm", "heat_warning"]
    with runtime.uow() as uow:
        assert uow.session.scalars(select(QuarantineReview)).all().__len__() == 1
        assert uow.session.get(UnitMonitorState, tree.ilr.id).evaluations == 4


def test_unit_override_changes_the_rules(runtime, tree):
    with runtime.uow() as uow:
        set_rules(
            uow,
            unit_id=tree.ilr.id,
            min_temp_c=2,
            max_temp_c=8,
            actor="asha",
            now=T0,
            rules=[RuleInput("heat", "alarm", 8.0, "consecutive", 30)],
        )
        uow.commit()
        rules, source = rules_of_unit(uow, runtime.settings, tree.ilr.id)
    assert source == "unit" and [r.kind for r in rules.rules] == ["heat_alarm"]
    ingest(runtime, readings(T0, (31, 9.0)), T0 + H)
    assert [e.kind for e in excursions(runtime)] == ["heat_alarm"]


def test_discard_records_wastage_through_the_ledger(runtime, tree):
    from logistics.models.stock import Movement
    from logistics.services.quarantine import discard_review

    with runtime.uow() as uow:
        # Real ledger stock for the balance the tree seeded: a receipt through the ledger.
        uow.session.query(StockBalance).delete()
        uow.commit()
    _receive(runtime, tree, 500)
    ingest(runtime, readings(T0, (10, 4.0), (61, -1.0)), T0 + 2 * H)
    with runtime.uow() as uow:
        review = uow.session.scalars(select(QuarantineReview)).one()
        discard_review(
            uow,
            review_id=review.id,
            comment="frozen: shake test failed",
            actor="asha",
            now=T0 + 3 * H,
        )
        uow.commit()
        balance = uow.session.scalars(select(StockBalance)).one()
        wastage = uow.session.scalars(select(Movement).where(Movement.kind == "wastage")).one()
        assert (balance.doses, balance.quarantined_doses) == (0, 0)
        assert wastage.reason == "frozen"
        assert review.state == "discarded" and review.decided_by == "asha"


def _receive(runtime, tree, doses):
    from logistics.services.stock import receive_stock, recorded

    with runtime.uow() as uow:
        receive_stock(
            uow,
            store_id=tree.centre.id,
            unit_id=tree.ilr.id,
            doses=doses,
            rec=recorded("asha", T0 - H, None),
            lot={"lot_id": tree.lot.id},
        )
        uow.commit()


def test_a_backlog_holding_a_whole_alarm_still_alerts_and_quarantines(runtime, tree):
    ingest(runtime, readings(T0, (30, 5.0), (601, 9.0), (30, 5.0)), T0 + 12 * H)
    with runtime.uow() as uow:
        alarm = uow.session.scalars(select(Alert).where(Alert.kind == "heat_alarm")).one()
        assert alarm.state == "resolved" and [e.event for e in alarm.events] == [
            "opened",
            "resolved",
        ]
        assert uow.session.scalars(select(StockBalance)).one().quarantined_doses == 500


def test_calm_batches_take_the_fast_path_and_excursions_are_still_found(runtime, tree):
    batch = readings(T0, (60, 5.0), (601, 9.0), (5, 5.0), (60, 7.99), (61, -0.5))
    for i in range(0, len(batch), 5):
        ingest(runtime, batch[i : i + 5], batch[min(i + 4, len(batch) - 1)].ts)
    got = [(e.kind, e.minutes_outside) for e in excursions(runtime)]
    assert got == [
        ("cold_alarm", 60.0),
        ("cold_warning", 60.0),
        ("heat_alarm", 600.0),
        ("heat_warning", 600.0),
    ]
    with runtime.uow() as uow:
        state = uow.session.get(UnitMonitorState, tree.ilr.id)
        assert state.calm_low_c == 2.0 and state.calm_high_c == 8.0 and state.open_excursions == 2
        # Calm batches far from any excursion took the fast path.
        assert (
            state.evaluations == len(batch) // 5 + 1
            and state.evaluations - state.full_evaluations >= 5
        )


def test_a_silent_sensor_resolves_on_the_fast_path(runtime, tree):
    ingest(runtime, readings(T0, (20, 5.0)), T0 + 20 * dt.timedelta(minutes=1))
    from logistics.services.alerts import check_sensors

    with runtime.uow() as uow:
        check_sensors(
            uow, silence_factor=3, low_battery_pct=20, now=T0 + 3 * H, power_failure_alarm_min=120
        )
        uow.commit()
    ingest(runtime, readings(T0 + 3 * H, (5, 5.0)), T0 + 3 * H + 5 * dt.timedelta(minutes=1))
    with runtime.uow() as uow:
        silent = uow.session.scalars(select(Alert).where(Alert.kind == "sensor_silent")).one()
        assert silent.state == "resolved"


def test_a_freezing_logger_next_to_a_healthy_one_raises_the_freeze_alarm(runtime, tree):
    # Issue 11: two loggers in one ILR; interleaved, every interval had one end at +5 C.
    with runtime.uow() as uow:
        add_sensor(uow, tree.ilr.id, sensor_id="S-2")
        uow.commit()
    freezing = readings(T0, (600, -9.0), sensor_id="S-1")
    healthy = readings(T0 + dt.timedelta(seconds=30), (600, 5.0), sensor_id="S-2")
    ingest(runtime, freezing + healthy, T0 + 11 * H)
    found = {(e.kind, e.sensor_id): e for e in excursions(runtime)}
    assert set(found) == {("cold_warning", "S-1"), ("cold_alarm", "S-1")}
    alarm = found["cold_alarm", "S-1"]
    assert alarm.ended_at is None and alarm.peak_temp_c == -9.0
    assert open_alerts(runtime) == ["cold_alarm", "cold_warning"]
    with runtime.uow() as uow:
        review = uow.session.scalars(select(QuarantineReview)).one()
        alert = uow.session.scalars(select(Alert).where(Alert.kind == "cold_alarm")).one()
        assert (review.reason, review.proposed_decision, review.doses) == ("frozen", "discard", 500)
        assert alert.details["sensor_id"] == "S-1" and "logger S-1" in alert.message
