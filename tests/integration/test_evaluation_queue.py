"""The evaluation queue on real PostgreSQL and SQLite: requests, claims, crashes, notifications."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select

from logistics.db import make_engine, make_session_factory
from logistics.migrate import upgrade
from logistics.models.alerts import EvaluationRequest, Excursion, UnitMonitorState
from logistics.models.catalog import StorageUnit
from logistics.runtime import Runtime
from logistics.services import evaluation
from logistics.services.evaluation import Evaluator, drain, drain_once, request_evaluation
from logistics.services.readings import record_readings
from logistics.services.reference import seed_reference_data
from logistics.services.scheduler import Scheduler
from tests.support.alerts_fixtures import add_sensor, make_tree, readings

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
START = NOW - dt.timedelta(hours=3)


def store(runtime: Runtime, batch: list) -> list:
    """What the ingestion does in one transaction: readings plus their evaluation requests."""
    with runtime.uow() as uow:
        touched = record_readings(uow, batch, NOW)
        request_evaluation(uow, touched, NOW)
        uow.commit()
    return touched


def queued(runtime: Runtime) -> int:
    with runtime.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(EvaluationRequest)) or 0


def kinds(runtime: Runtime) -> list[str]:
    with runtime.uow() as uow:
        return sorted(e.kind for e in uow.session.scalars(select(Excursion)))


def evaluations(runtime: Runtime, unit_id: int) -> int:
    with runtime.uow() as uow:
        state = uow.session.get(UnitMonitorState, unit_id)
        return state.evaluations if state else 0


@pytest.fixture
def tree(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id)
        uow.commit()
    return tree


def test_requests_commit_with_the_readings_and_a_pass_evaluates_and_deletes_them(runtime, tree):
    # A freezing ILR stored by two batches, the second one older (a backlog sent in reverse).
    frozen = readings(START, (61, -2.0))
    store(runtime, frozen[30:])
    store(runtime, frozen[:30])
    assert queued(runtime) == 2 and kinds(runtime) == []

    done = drain_once(runtime, NOW)

    assert (done.requests, done.units, done.evaluated) == (2, frozenset({tree.ilr.id}), 1)
    assert done.oldest_requested_at == NOW
    assert queued(runtime) == 0
    assert kinds(runtime) == ["cold_alarm", "cold_warning"]


def test_a_rolled_back_batch_leaves_no_request(runtime, tree):
    with runtime.uow() as uow:
        touched = record_readings(uow, readings(START, (5, 4.0)), NOW)
        request_evaluation(uow, touched, NOW)
        uow.rollback()
    assert queued(runtime) == 0


def test_a_pass_that_dies_before_committing_leaves_the_requests_queued(runtime, tree, monkeypatch):
    store(runtime, readings(START, (61, -2.0)))

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("evaluator killed mid-pass")

    monkeypatch.setattr(evaluation, "evaluate_units", crash)
    with pytest.raises(KeyboardInterrupt):
        drain_once(runtime, NOW)
    monkeypatch.undo()

    assert queued(runtime) == 1
    assert drain_once(runtime, NOW).evaluated == 1
    assert kinds(runtime) == ["cold_alarm", "cold_warning"]


def test_two_evaluators_claim_disjoint_requests(runtime, monkeypatch):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        units = [tree.ilr.id]
        add_sensor(uow, tree.ilr.id, sensor_id="S-0")
        for n in range(1, 4):
            unit = StorageUnit(
                store_id=tree.centre.id, code=f"ILR-Q{n}", kind="ilr", min_temp_c=2, max_temp_c=8
            )
            uow.session.add(unit)
            uow.session.flush()
            add_sensor(uow, unit.id, sensor_id=f"S-{n}")
            units.append(unit.id)
        uow.commit()
    for n in range(4):
        store(runtime, readings(START, (10, 5.0), sensor_id=f"S-{n}"))
    assert queued(runtime) == 4

    # The first evaluator holds its claim (inside evaluation) while the second one passes.
    inside, release = threading.Event(), threading.Event()
    real = evaluation.evaluate_units
    claimed: list[set[int]] = []

    def slow(rt, touched, now, *rest):
        claimed.append({unit_id for unit_id, _low, _high in touched})
        if threading.current_thread().name == "first":
            inside.set()
            release.wait(20)
        return real(rt, touched, now, *rest)

    monkeypatch.setattr(evaluation, "evaluate_units", slow)
    results = {}
    first = threading.Thread(
        target=lambda: results.setdefault("first", drain_once(runtime, NOW, limit=2)),
        name="first",
    )
    first.start()
    assert inside.wait(20)
    results["second"] = drain_once(runtime, NOW)
    release.set()
    first.join(20)

    assert results["first"].requests == 2 and results["second"].requests == 2
    assert claimed[0].isdisjoint(claimed[1]) and claimed[0] | claimed[1] == set(units)
    assert queued(runtime) == 0
    assert all(evaluations(runtime, unit_id) == 1 for unit_id in units)


def test_an_idle_evaluator_wakes_on_the_notification_not_the_poll(runtime, tree):
    slow_poll = runtime.settings.replace(evaluation_poll_s=60.0, evaluation_min_interval_ms=0)
    evaluator = Evaluator(Runtime(slow_poll, runtime.engine, runtime.session_factory)).start()
    try:
        time.sleep(0.5)  # idle: it has found nothing and listens
        store(runtime, readings(START, (61, -2.0)))
        deadline = time.monotonic() + 20
        while queued(runtime) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queued(runtime) == 0, "not woken within 20 s although the poll is 60 s"
        assert evaluator.stats.wakeups >= 1
        assert kinds(runtime) == ["cold_alarm", "cold_warning"]
    finally:
        evaluator.stop()


def test_the_scheduler_drains_what_no_evaluator_took(runtime, tree):
    store(runtime, readings(START, (61, -2.0)))
    result = Scheduler(runtime, holder="a").run_job("excursions", NOW)
    assert result == {"queued": 1, "evaluated": 1}
    assert queued(runtime) == 0
    assert evaluations(runtime, tree.ilr.id) == 1  # not evaluated a second time by the catch-up


def test_the_queue_works_on_sqlite_by_polling(tmp_path):
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade(url)
    engine = make_engine(url)
    from logistics.config import load_settings

    settings = load_settings({"database_url": url}).replace(
        evaluation_poll_s=0.1, evaluation_min_interval_ms=0
    )
    runtime = Runtime(settings, engine, make_session_factory(engine))
    try:
        with runtime.uow() as uow:
            seed_reference_data(uow)
            uow.commit()
            tree = make_tree(uow)
            add_sensor(uow, tree.ilr.id)
            uow.commit()
        evaluator = Evaluator(runtime).start()
        try:
            store(runtime, readings(START, (61, -2.0)))
            deadline = time.monotonic() + 20
            while queued(runtime) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert queued(runtime) == 0
            assert kinds(runtime) == ["cold_alarm", "cold_warning"]
        finally:
            evaluator.stop()
        assert drain(runtime).requests == 0
    finally:
        engine.dispose()
