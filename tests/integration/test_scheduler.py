"""The scheduler runs each job once per interval, with one leader, even with two schedulers."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from logistics.models.alerts import Alert, JobRun, SchedulerLease
from logistics.services.scheduler import Scheduler, slot_of
from tests.support.alerts_fixtures import add_sensor, make_tree

pytestmark = pytest.mark.integration
NOW = dt.datetime(2021, 1, 10, 2, 0, 5, tzinfo=dt.UTC)


def test_slot_is_aligned_on_the_epoch():
    assert slot_of(NOW, 60) == dt.datetime(2021, 1, 10, 2, 0, tzinfo=dt.UTC)
    assert slot_of(NOW + dt.timedelta(seconds=50), 60) == slot_of(NOW, 60)
    assert slot_of(NOW + dt.timedelta(seconds=55), 60) != slot_of(NOW, 60)


def test_only_the_lease_holder_runs_and_each_slot_once(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, interval_s=600)
        uow.commit()
    first, second = Scheduler(runtime, holder="a"), Scheduler(runtime, holder="b")
    assert first.run_job("sensor_silence", NOW) == {"raised": 1, "cleared": 0}
    assert second.run_job("sensor_silence", NOW) is None  # b does not lead
    assert (
        first.run_job("sensor_silence", NOW + dt.timedelta(seconds=10)) is None
    )  # slot already ran
    later = NOW + dt.timedelta(seconds=60)
    assert first.run_job("sensor_silence", later) == {"raised": 0, "cleared": 0}  # idempotent
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Alert)) == 1
        assert [r.holder for r in uow.session.scalars(select(JobRun))] == ["a", "a"]


def test_another_scheduler_takes_over_when_the_lease_lapses(runtime):
    first, second = Scheduler(runtime, holder="a"), Scheduler(runtime, holder="b")
    assert first.renew(NOW) and not second.renew(NOW + dt.timedelta(seconds=5))
    ttl = runtime.settings.scheduler_lease_ttl_s
    assert second.renew(NOW + dt.timedelta(seconds=ttl + 1))
    assert not first.renew(NOW + dt.timedelta(seconds=ttl + 2))
    second.stop()
    assert first.renew(NOW + dt.timedelta(seconds=ttl + 3))


def _start(pg_url, name):
    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": pg_url,
        "COLDCHAIN_SCHEDULER_OUTBOX_EVERY_S": "1",
        "COLDCHAIN_SCHEDULER_SENSOR_SILENCE_EVERY_S": "2",
        "COLDCHAIN_SCHEDULER_LEASE_TTL_S": "3",
        "COLDCHAIN_SCHEDULER_ENABLED_JOBS": "outbox,sensor_silence",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from logistics.cli import main; main()", "scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _runs(runtime):
    with runtime.uow() as uow:
        return [
            (r.job, r.slot, r.holder)
            for r in uow.session.scalars(select(JobRun).order_by(JobRun.id))
        ]


def test_two_scheduler_processes_run_each_interval_once(runtime, pg_url):
    procs = [_start(pg_url, "one"), _start(pg_url, "two")]
    try:
        time.sleep(8)
        runs = _runs(runtime)
        with runtime.uow() as uow:
            leader = uow.session.get(SchedulerLease, "coldchain-scheduler").holder
        outbox = [r for r in runs if r[0] == "outbox"]
        assert (
            len({r[2] for r in runs}) == 1 and runs[0][2] == leader
        )  # one process did all the work
        assert len(outbox) >= 4
        slots = [r[1] for r in outbox]
        assert len(slots) == len(set(slots))
        # The leader dies without releasing its lease: the other takes over after the TTL.
        leader_pid = int(leader.split(":")[1])
        victim = next(p for p in procs if p.pid == leader_pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        time.sleep(6)
        holders = {r[2] for r in _runs(runtime)}
        assert len(holders) == 2
        slots = [r[1] for r in _runs(runtime) if r[0] == "outbox"]
        assert len(slots) == len(set(slots))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def test_the_excursions_job_evaluates_readings_stored_without_evaluation(runtime):
    from logistics.models.alerts import Excursion
    from logistics.services.readings import record_readings
    from tests.support.alerts_fixtures import readings

    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id)
        uow.commit()
    start = NOW - dt.timedelta(hours=2)
    with runtime.uow() as uow:  # the ingestion crashed after committing, before evaluating
        record_readings(uow, readings(start, (61, -1.0)), NOW)
        uow.commit()
    assert Scheduler(runtime, holder="a").run_job("excursions", NOW) == {
        "queued": 0,
        "evaluated": 1,
    }
    with runtime.uow() as uow:
        assert sorted(e.kind for e in uow.session.scalars(select(Excursion))) == [
            "cold_alarm",
            "cold_warning",
        ]
