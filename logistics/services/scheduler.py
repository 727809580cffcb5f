"""Periodic jobs (sensor silence, stock states, expiry, reminders, outbox, excursion catch-up).

Exactly once per interval, however many processes or hosts run `coldchain scheduler`:
1. a lease row: one scheduler holds it and renews it; the others stay idle and take over only
   when it lapses (the holder died), and
2. each run claims its interval slot in `job_runs` (unique job + slot), so even two schedulers that
   both believe they lead (a lease handed over mid-run) never run one slot twice.
Every job is also idempotent on its own (alerts open once per subject and kind, deliveries are
locked with SKIP LOCKED), so a repeated run would change nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from logistics import metrics
from logistics.db import UnitOfWork, insert_for, rowcount
from logistics.domain.alerts import ReminderPolicy
from logistics.models.alerts import JobRun, SchedulerLease
from logistics.runtime import Runtime

log = logging.getLogger(__name__)
LEASE_NAME = "coldchain-scheduler"
JobFn = Callable[[Runtime, dt.datetime], dict[str, Any]]


def _sensor_silence(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    from logistics.services.alerts import check_sensors

    s = runtime.settings
    with runtime.uow() as uow:
        raised, cleared = check_sensors(
            uow,
            silence_factor=s.alerts_silence_factor,
            low_battery_pct=s.alerts_low_battery_pct,
            power_failure_alarm_min=s.alerts_power_failure_alarm_min,
            now=now,
        )
        uow.commit()
    return {"raised": raised, "cleared": cleared}


def _stock_states(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    from logistics.services.alerts import check_stock_states

    with runtime.uow() as uow:
        raised, cleared = check_stock_states(uow, now=now)
        uow.commit()
    return {"raised": raised, "cleared": cleared}


def _expiry(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    from logistics.services.alerts import check_expiry

    s = runtime.settings
    with runtime.uow() as uow:
        raised, cleared = check_expiry(
            uow, warn_days=s.alerts_expiry_warning_days, site_timezone=s.site_timezone, now=now
        )
        uow.commit()
    return {"raised": raised, "cleared": cleared}


def reminder_policy(runtime: Runtime) -> ReminderPolicy:
    """The reminder and escalation policy from settings."""
    s = runtime.settings
    return ReminderPolicy(
        dt.timedelta(minutes=s.alerts_remind_every_min),
        s.alerts_escalate_after_reminders,
        s.alerts_max_escalation_levels,
    )


def _reminders(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    from logistics.services.alerts import remind_and_escalate

    with runtime.uow() as uow:
        reminded = remind_and_escalate(uow, policy=reminder_policy(runtime), now=now)
        uow.commit()
    return {"reminded": reminded}


def _outbox(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    from logistics.services.notify import deliver_due

    return {"tried": deliver_due(runtime)}


def _excursions(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    """Safety net: drain the evaluation queue (evaluators down?), then catch up on units whose
    readings arrived after their last evaluation (an evaluation that failed)."""
    from logistics.services.evaluation import drain, queue_state
    from logistics.services.excursions import evaluate_units, units_needing_evaluation

    with runtime.uow() as uow:
        waiting, oldest = queue_state(uow)
    stale_after = dt.timedelta(seconds=runtime.settings.evaluation_stale_after_s)
    if oldest is not None and now - oldest > stale_after:
        log.warning(
            "%d evaluation requests waiting, the oldest since %s: is `coldchain evaluate` running?",
            waiting,
            oldest.isoformat(),
        )
    drained = drain(runtime, now)
    with runtime.uow() as uow:
        touched = [
            span
            for span in units_needing_evaluation(uow, now, dt.timedelta(days=1))
            if span[0] not in drained.units
        ]
    return {
        "queued": drained.requests,
        "evaluated": drained.evaluated + evaluate_units(runtime, touched, now),
    }


def _commitments(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    """Sessions (issue 5): alert on centres whose usable stock no longer covers their sessions."""
    from logistics.services.commitments import check_all_commitments

    short = check_all_commitments(runtime.uow, now, site_timezone=runtime.settings.site_timezone)
    return {"centres_short": short}


def _idempotency_purge(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    """Safe retries (issue 11): forget idempotency keys older than idempotency.ttl_s."""
    from logistics.services.idempotency import purge_expired

    with runtime.uow() as uow:
        purged = purge_expired(uow, now=now, ttl_s=runtime.settings.idempotency_ttl_s)
        uow.commit()
    return {"purged": purged}


def _indents(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    """Paperwork (issue 19): follow indents' shipments; alert on indents left unanswered."""
    from logistics.services.indents import check_unanswered, sync_shipments

    within = dt.timedelta(hours=runtime.settings.indents_answer_within_h)
    with runtime.uow() as uow:
        followed = sync_shipments(uow, now)
        raised, cleared = check_unanswered(uow, answer_within=within, now=now)
        uow.commit()
    return {"followed": followed, "raised": raised, "cleared": cleared}


def _partitions(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    """Readings (issue 16): create the partitions of the coming months ahead of time."""
    from logistics.services.partitions import ensure_partitions

    created = ensure_partitions(runtime, now, runtime.settings.readings_partitions_ahead)
    return {"created": created}


def _retention(runtime: Runtime, now: dt.datetime) -> dict[str, Any]:
    """Readings (issue 16): drop (or archive, then drop) raw readings past their retention."""
    from logistics.services.partitions import apply_retention

    return apply_retention(runtime, now)


JOBS: dict[str, JobFn] = {
    "sensor_silence": _sensor_silence,
    "stock_states": _stock_states,
    "expiry": _expiry,
    "reminders": _reminders,
    "outbox": _outbox,
    "excursions": _excursions,
    "commitments": _commitments,
    "idempotency_purge": _idempotency_purge,
    "indents": _indents,
    "partitions": _partitions,
    "retention": _retention,
}


def job_interval_s(runtime: Runtime, job: str) -> int:
    """The configured interval of a job (scheduler.<job>_every_s)."""
    return int(getattr(runtime.settings, f"scheduler_{job}_every_s"))


def slot_of(now: dt.datetime, interval_s: int) -> dt.datetime:
    """The start of the interval `now` falls in (aligned on the epoch, the same on every host)."""
    seconds = int(now.timestamp()) // interval_s * interval_s
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def acquire_lease(uow: UnitOfWork, holder: str, ttl: dt.timedelta, now: dt.datetime) -> bool:
    """Take or renew the lease; True when this holder leads until now + ttl."""
    insert = insert_for(uow.session)
    uow.session.execute(
        insert(SchedulerLease)
        .values(name=LEASE_NAME, holder=holder, expires_at=now + ttl)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    result = uow.session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == LEASE_NAME,
            (SchedulerLease.holder == holder) | (SchedulerLease.expires_at < now),
        )
        .values(holder=holder, expires_at=now + ttl)
    )
    return bool(rowcount(result))


def release_lease(uow: UnitOfWork, holder: str) -> None:
    """Give the lease up at shutdown so another scheduler takes over at once."""
    uow.session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == LEASE_NAME, SchedulerLease.holder == holder)
        .values(expires_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    )
    uow.session.flush()


def claim_slot(
    uow: UnitOfWork, job: str, slot: dt.datetime, holder: str, now: dt.datetime
) -> int | None:
    """Record the run of this job for this slot; None when the slot already ran."""
    insert = insert_for(uow.session)
    result = uow.session.execute(
        insert(JobRun)
        .values(job=job, slot=slot, holder=holder, started_at=now)
        .on_conflict_do_nothing(index_elements=["job", "slot"])
        .returning(JobRun.id)
    )
    run_id = result.scalar()
    uow.session.flush()
    return run_id


@dataclasses.dataclass
class Scheduler:
    """One scheduler process's view: its name, whether it leads, and how it runs a job."""

    runtime: Runtime
    holder: str = dataclasses.field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    leading: bool = False

    def renew(self, now: dt.datetime | None = None) -> bool:
        """Take or renew the lease."""
        now = now or dt.datetime.now(dt.UTC)
        with self.runtime.uow() as uow:
            was, self.leading = (
                self.leading,
                acquire_lease(
                    uow,
                    self.holder,
                    dt.timedelta(seconds=self.runtime.settings.scheduler_lease_ttl_s),
                    now,
                ),
            )
            uow.commit()
        metrics.SCHEDULER_LEADING.set(1 if self.leading else 0)
        if self.leading != was:
            log.info("scheduler %s %s the lease", self.holder, "holds" if self.leading else "lost")
        return self.leading

    def run_job(self, job: str, now: dt.datetime | None = None) -> dict[str, Any] | None:
        """Run a job for the current slot if this scheduler leads and nobody ran the slot yet."""
        now = now or dt.datetime.now(dt.UTC)
        if not self.renew(now):
            return None
        slot = slot_of(now, job_interval_s(self.runtime, job))
        with self.runtime.uow() as uow:
            run_id = claim_slot(uow, job, slot, self.holder, now)
            uow.commit()
        if run_id is None:
            return None
        summary, ok = _run(self.runtime, job, now)
        finished_at = dt.datetime.now(dt.UTC)
        with self.runtime.uow() as uow:
            run = uow.session.get(JobRun, run_id)
            assert run is not None
            run.finished_at, run.ok, run.summary = finished_at, ok, summary
            uow.commit()
        metrics.count_job_run(job, ok, finished_at)
        return summary

    def stop(self) -> None:
        """Release the lease if held."""
        if self.leading:
            with self.runtime.uow() as uow:
                release_lease(uow, self.holder)
                uow.commit()
            self.leading = False


def _run(runtime: Runtime, job: str, now: dt.datetime) -> tuple[dict[str, Any], bool]:
    try:
        return JOBS[job](runtime, now), True
    except Exception as exc:  # a failing job must not kill the scheduler; the next slot retries
        log.exception("job %s failed", job)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}, False


def enabled_jobs(runtime: Runtime) -> list[str]:
    """Jobs named in scheduler.enabled_jobs."""
    names = [n.strip() for n in runtime.settings.scheduler_enabled_jobs.split(",") if n.strip()]
    unknown = set(names) - set(JOBS)
    if unknown:
        raise ValueError(f"unknown scheduler jobs: {sorted(unknown)}")
    return names


def build_apscheduler(scheduler: Scheduler, blocking: bool = True) -> Any:
    """An APScheduler 3 scheduler with one interval job per enabled job plus lease renewal."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    aps = BlockingScheduler(timezone=dt.UTC) if blocking else BackgroundScheduler(timezone=dt.UTC)
    ttl = scheduler.runtime.settings.scheduler_lease_ttl_s
    aps.add_job(
        scheduler.renew,
        "interval",
        seconds=max(1, ttl // 3),
        id="lease",
        next_run_time=dt.datetime.now(dt.UTC),
        max_instances=1,
        coalesce=True,
    )
    now = dt.datetime.now(dt.UTC)
    for job in enabled_jobs(scheduler.runtime):
        every = job_interval_s(scheduler.runtime, job)
        # Fire on slot boundaries (plus a little), so each firing falls in its own slot.
        start = slot_of(now, every) + dt.timedelta(seconds=every, milliseconds=200)
        aps.add_job(
            scheduler.run_job,
            "interval",
            args=[job],
            seconds=every,
            start_date=start,
            id=job,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=30,
        )
    return aps


def recent_runs(uow: UnitOfWork, job: str | None = None, limit: int = 100) -> list[JobRun]:
    """The latest job runs, newest first."""
    query = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
    if job:
        query = query.where(JobRun.job == job)
    return list(uow.session.scalars(query))
