"""Evaluation under faults: an ancient reading, a unit that fails, a thread that dies (issue 12)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from logistics.domain.readings import SensorReading
from logistics.models.alerts import EvaluationRequest, Excursion
from logistics.runtime import Runtime, ThreadDied, watch
from logistics.services import excursions
from logistics.services.evaluation import drain, drain_once, retry_delay
from tests.faults.test_payload_faults import _count
from tests.integration.test_evaluation_queue import NOW, START, store
from tests.support.alerts_fixtures import add_ilr, add_sensor, make_tree, readings

YEAR_1 = dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.UTC)


def kinds(runtime: Runtime, unit_id: int) -> list[str]:
    with runtime.uow() as uow:
        return sorted(
            e.kind
            for e in uow.session.scalars(select(Excursion).where(Excursion.unit_id == unit_id))
        )


@pytest.fixture
def tree(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, since=YEAR_1)
        other = add_ilr(uow, tree.other_centre.id, "ILR-2", "S-2")
        uow.commit()
    tree.other_unit_id = other.id
    return tree


@pytest.mark.integration
def test_a_year_0001_reading_in_a_batch_does_not_hide_the_freeze_beside_it(runtime, tree):
    """Stored before the parse check existed (its sensor registered from year 0001)."""
    ancient = SensorReading("S-1", YEAR_1, 5.0, NOW)
    store(runtime, [ancient, *readings(START, (180, -2.0))])
    done = drain(runtime, NOW)
    assert done.failed == 0
    assert kinds(runtime, tree.ilr.id) == ["cold_alarm", "cold_warning"]
    # The scheduler's re-evaluation of the same unit (from the ancient reading) works too.
    with runtime.uow() as uow:
        excursions.evaluate_unit(uow, runtime.settings, tree.ilr.id, YEAR_1, NOW)


@pytest.mark.integration
def test_a_failing_unit_is_retried_with_back_off_and_never_holds_up_another(
    runtime, tree, monkeypatch
):
    real = excursions.evaluate_unit
    broken = {tree.ilr.id}

    def flaky(uow, settings, unit_id, earliest, now):
        if unit_id in broken:
            raise RuntimeError("injected evaluation fault")
        return real(uow, settings, unit_id, earliest, now)

    monkeypatch.setattr(excursions, "evaluate_unit", flaky)
    store(runtime, readings(START, (180, -2.0)))
    store(runtime, readings(START, (180, -2.0), sensor_id="S-2"))
    first = drain(runtime, NOW)
    assert first.failed == 1
    assert kinds(runtime, tree.other_unit_id) == ["cold_alarm", "cold_warning"]
    assert kinds(runtime, tree.ilr.id) == []
    with runtime.uow() as uow:
        retry = uow.session.scalars(select(EvaluationRequest)).one()
        assert (retry.unit_id, retry.attempts) == (tree.ilr.id, 1)
        assert retry.not_before == NOW + retry_delay(1, 5.0, 900.0)
    # Not due yet: nothing is claimed. Due and still failing: the back-off doubles.
    assert drain_once(runtime, NOW + dt.timedelta(seconds=1)).requests == 0
    later = NOW + dt.timedelta(seconds=6)
    assert drain(runtime, later).failed == 1
    with runtime.uow() as uow:
        retry = uow.session.scalars(select(EvaluationRequest)).one()
        assert retry.attempts == 2 and retry.not_before == later + dt.timedelta(seconds=10)
    # Fixed: the next due pass evaluates it and the queue empties.
    broken.clear()
    assert drain(runtime, later + dt.timedelta(seconds=10)).failed == 0
    assert kinds(runtime, tree.ilr.id) == ["cold_alarm", "cold_warning"]
    assert _count(runtime, EvaluationRequest) == 0


def test_retry_delay_doubles_and_is_capped():
    assert [retry_delay(n, 5, 60).total_seconds() for n in (1, 2, 3, 4, 5, 50)] == [
        5,
        10,
        20,
        40,
        60,
        60,
    ]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_thread_ends_the_watch():
    def die() -> None:
        raise RuntimeError("writer bug")

    thread = threading.Thread(target=die, name="ingest-writer")
    thread.start()
    thread.join()
    with pytest.raises(ThreadDied, match="ingest-writer"):
        watch(threading.Event(), lambda: [thread])


def test_the_ingest_command_exits_non_zero_when_a_thread_dies(monkeypatch):
    import sensors.ingest
    from logistics.cli import _load_plugins, cli

    def dies(*_args, **_kwargs):
        raise ThreadDied("ingest-writer")

    monkeypatch.setattr(sensors.ingest, "run_until_stopped", dies)
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", "sqlite://")
    _load_plugins()
    result = CliRunner().invoke(cli, ["ingest"])
    assert result.exit_code == 70, result.output
