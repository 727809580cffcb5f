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
from tests.support.alerts_fixtures import add_ilr, add_sensor, ingest, make_tree, readings
from tests.support.sqlite import sqlite_runtime

pytestmark = pytest.mark.integration
T0 = dt.datetime(2021, 1, 9, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)
SEC = dt.timedelta(seconds=1)


def _tree_with_a_sensor(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id)
        uow.commit()
    return tree


@pytest.fixture
def tree(runtime):
    return _tree_with_a_sensor(runtime)


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request, tmp_path):
    """Either database: the evaluation's fast path reads each unit's span by dialect."""
    if request.param == "sqlite":
        return sqlite_runtime(tmp_path)
    return request.getfixturevalue("runtime")


@pytest.fixture
def db_tree(db):
    return _tree_with_a_sensor(db)


def excursions(runtime):
    with runtime.uow() as uow:
        rows = list(
            uow.session.scalars(select(Excursion).order_by(Excursion.kind, Excursion.started_at))
        )
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


def _evaluations(runtime, unit_id):
    with runtime.uow() as uow:
        state = uow.session.get(UnitMonitorState, unit_id)
        return state.evaluations, state.full_evaluations


def test_readings_in_order_after_a_closed_excursion_take_the_fast_path(db, db_tree):
    runtime, tree = db, db_tree
    # 70 minutes at -2 C: freeze alarm, closed by the readings back at +5 C.
    ingest(runtime, readings(T0, (30, 5.0), (70, -2.0), (5, 5.0)), T0 + 2 * H)
    assert [(e.kind, e.ended_at) for e in excursions(runtime)] == [
        ("cold_alarm", T0 + 100 * MIN),
        ("cold_warning", T0 + 100 * MIN),
    ]
    before = _evaluations(runtime, tree.ilr.id)
    # The next batches come after every reading evaluated so far and lie inside every limit: they
    # cannot change the closed excursion, however near it they are.
    # (Within CALM_TTL of the full evaluation, which re-learns the limits.)
    for batch in range(3):
        ingest(runtime, readings(T0 + (105 + 5 * batch) * MIN, (5, 5.0)), T0 + 2 * H)
    assert _evaluations(runtime, tree.ilr.id) == (before[0] + 3, before[1])
    assert [(e.kind, e.ended_at) for e in excursions(runtime)] == [
        ("cold_alarm", T0 + 100 * MIN),
        ("cold_warning", T0 + 100 * MIN),
    ]


def test_a_late_reading_inside_a_closed_excursion_is_still_evaluated_in_full(runtime, tree):
    ingest(runtime, readings(T0, (30, 5.0), (70, -2.0), (5, 5.0)), T0 + 2 * H)
    ingest(runtime, readings(T0 + 105 * MIN, (10, 5.0)), T0 + 2 * H)
    evaluations, full = _evaluations(runtime, tree.ilr.id)
    # A logger's late upload: +5 C at 30 minutes into the freeze, between two stored readings.
    ingest(runtime, readings(T0 + 60 * MIN + 30 * SEC, (1, 5.0)), T0 + 2 * H)
    assert _evaluations(runtime, tree.ilr.id) == (evaluations + 1, full + 1)
    # The 70 minutes were two runs of 30 and 38 minutes: two warnings. The alarm's record stays
    # for the officers, as it was.
    assert [(e.kind, e.started_at, e.ended_at) for e in excursions(runtime)] == [
        ("cold_alarm", T0 + 30 * MIN, T0 + 100 * MIN),
        ("cold_warning", T0 + 30 * MIN, T0 + 60 * MIN + 30 * SEC),
        ("cold_warning", T0 + 61 * MIN, T0 + 100 * MIN),
    ]


def test_an_episode_too_short_to_count_is_still_completed_by_a_late_upload(runtime, tree):
    # 25 minutes at -2 C, then a hole of 10 minutes, then in range: no warning (30 min).
    ingest(runtime, readings(T0, (30, 5.0), (25, -2.0)), T0 + 55 * MIN)
    ingest(runtime, readings(T0 + 65 * MIN, (10, 5.0)), T0 + 75 * MIN)
    assert excursions(runtime) == []
    evaluations, full = _evaluations(runtime, tree.ilr.id)
    # The logger uploads the hole late, still freezing: 35 minutes below -0.5 C, a warning.
    ingest(runtime, readings(T0 + 55 * MIN, (10, -2.0)), T0 + 80 * MIN)
    assert _evaluations(runtime, tree.ilr.id) == (evaluations + 1, full + 1)
    assert [(e.kind, e.started_at, e.ended_at) for e in excursions(runtime)] == [
        ("cold_warning", T0 + 30 * MIN, T0 + 65 * MIN),
    ]


def test_readings_a_full_evaluation_read_ahead_take_the_fast_path(db, db_tree):
    runtime, tree = db, db_tree
    from logistics.services.readings import record_readings

    ingest(runtime, readings(T0, (30, 5.0), (70, -2.0), (5, 5.0)), T0 + 2 * H)
    # Two batches stored before the evaluator gets to them: one with a reading outside, then
    # readings in range after it. The first unit's full evaluation reads both.
    with runtime.uow() as uow:
        first = record_readings(uow, readings(T0 + 105 * MIN, (1, 9.0), (4, 5.0)), T0 + 2 * H)
        uow.commit()
    with runtime.uow() as uow:
        second = record_readings(uow, readings(T0 + 110 * MIN, (5, 5.0)), T0 + 2 * H)
        uow.commit()
    evaluations, full = _evaluations(runtime, tree.ilr.id)
    evaluate_units(runtime, first, T0 + 2 * H)
    evaluate_units(runtime, second, T0 + 2 * H)
    assert _evaluations(runtime, tree.ilr.id) == (evaluations + 2, full + 1)


def test_a_late_reading_that_moves_an_excursions_end_is_evaluated_in_full(db, db_tree):
    runtime, tree = db, db_tree
    # Freezing from T0+30 to T0+99; the logger's reading at T0+100 comes late, after the rest.
    ingest(runtime, readings(T0, (30, 5.0), (70, -2.0)), T0 + 2 * H)
    ingest(runtime, readings(T0 + 101 * MIN, (5, 5.0)), T0 + 2 * H)
    assert {e.ended_at for e in excursions(runtime)} == {T0 + 101 * MIN}
    evaluations, full = _evaluations(runtime, tree.ilr.id)
    ingest(runtime, readings(T0 + 100 * MIN, (1, 5.0)), T0 + 2 * H)
    assert _evaluations(runtime, tree.ilr.id) == (evaluations + 1, full + 1)
    assert {e.ended_at for e in excursions(runtime)} == {T0 + 100 * MIN}


def test_a_late_upload_in_one_unit_leaves_the_others_on_the_fast_path(db, db_tree):
    runtime, tree = db, db_tree
    with runtime.uow() as uow:
        other_id = add_ilr(uow, tree.centre.id, "ILR-2", "S-2").id
        uow.commit()
    # ILR-2 froze for 40 minutes in the morning (a warning, closed), then kept reporting in range.
    ingest(runtime, readings(T0, (60, 5.0), (40, -2.0), (60, 5.0), sensor_id="S-2"), T0 + 3 * H)
    ingest(runtime, readings(T0, (160, 5.0)), T0 + 3 * H)
    evaluations, full = _evaluations(runtime, other_id)
    # One pass: ILR-2's next readings, in order and in range, and ILR-1's logger uploading a
    # reading from the morning. Each unit's own span decides: ILR-2 has nothing to re-read.
    batch = readings(T0 + 160 * MIN, (5, 5.0), sensor_id="S-2")
    ingest(runtime, batch + readings(T0 + 30 * MIN + 30 * SEC, (1, 5.0)), T0 + 3 * H)
    assert _evaluations(runtime, other_id) == (evaluations + 1, full)
    assert [(e.kind, e.unit_id) for e in excursions(runtime)] == [("cold_warning", other_id)]


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
