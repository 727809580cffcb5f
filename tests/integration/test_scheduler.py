"""The scheduler runs each job once per interval, with one leader, even with two schedulers."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from logistics.models.alerts import Alert, JobRun, SchedulerLease
from logistics.services.alerts import raise_alert
from logistics.services.notify import add_target
from logistics.services.scheduler import Scheduler, slot_of
from tests.integration.test_notify import receiver  # noqa: F401  (fixture)
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
        # The receiver listens on loopback, which webhooks may reach only when allowed.
        "COLDCHAIN_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
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


def _wait_until(check, timeout_s: float = 30.0):
    """Poll a condition until it holds or time runs out; return its last value."""
    deadline, tick = time.monotonic() + timeout_s, threading.Event()
    while not (value := check()) and time.monotonic() < deadline:
        tick.wait(0.1)
    return value


def _raise_alerts(runtime, store_id: int, count: int, first: int = 0) -> None:
    with runtime.uow() as uow:
        for n in range(first, first + count):
            # A kind no enabled job resolves: each alert makes exactly one delivery.
            raise_alert(
                uow,
                kind="sessions_overcommitted",
                subject_type="session",
                subject_id=f"{n}",
                store_id=store_id,
                severity="alarm",
                message=f"{n}",
                details={},
                now=dt.datetime.now(dt.UTC),
            )
        uow.commit()


def _received(server) -> Counter:
    return Counter(headers["X-Coldchain-Delivery"] for headers, _ in list(server.received))


def test_two_scheduler_processes_deliver_each_notification_once(runtime, pg_url, receiver):  # noqa: F811
    """Two schedulers, then the leader killed: every webhook delivery arrives exactly once, and
    the standby takes over. Deliveries are counted at the receiver, not as rows with unique keys."""
    server = receiver()
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
        add_target(
            uow,
            store_id=tree.centre.id,
            channel="webhook",
            address=server.url,
            secret="s",
            allowed_networks="127.0.0.0/8",
        )
        uow.commit()
    _raise_alerts(runtime, tree.centre.id, 10)
    procs = [_start(pg_url, "one"), _start(pg_url, "two")]
    try:
        assert _wait_until(lambda: len(_received(server)) >= 10), _received(server)
        with runtime.uow() as uow:
            leader = uow.session.get(SchedulerLease, "coldchain-scheduler").holder
        assert {r[2] for r in _runs(runtime)} == {leader}  # one process did all the work
        # The leader dies without releasing its lease: the other takes over after the TTL.
        leader_pid = int(leader.split(":")[1])
        victim = next(p for p in procs if p.pid == leader_pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        _raise_alerts(runtime, tree.centre.id, 10, first=10)
        assert _wait_until(lambda: len(_received(server)) >= 20, 60), _received(server)
        assert len({r[2] for r in _runs(runtime)}) == 2
        assert _wait_until(
            lambda: len([r for r in _runs(runtime) if r[0] == "outbox" and r[2] != leader]) >= 3
        )
        received = _received(server)
        assert len(received) == 20 and set(received.values()) == {1}, received
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
