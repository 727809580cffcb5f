"""No slot is sold twice and no doses are promised twice under concurrent requests (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from logistics.domain.errors import DomainError
from logistics.models.sessions import Booking, Slot
from logistics.services import sessions as svc
from tests.support.sessions_fixtures import SITE_TZ, day, make_site, now

pytestmark = pytest.mark.integration

THREADS = 40


def _run_together(count: int, work) -> Counter:
    """Start `count` threads at once; count their outcomes ("ok" or the error's class name)."""
    barrier, outcomes, lock = threading.Barrier(count), Counter(), threading.Lock()

    def run(n: int) -> None:
        barrier.wait()
        try:
            work(n)
            outcome = "ok"
        except DomainError as exc:
            outcome = type(exc).__name__
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def _open(runtime, site, capacity, slots=1):
    request = svc.SessionRequest(site.centre.id, site.product.id, day(1), capacity, "1", 18)
    with runtime.uow() as uow:
        session = svc.open_session(
            uow, request, actor="t", now=now(), site_timezone=SITE_TZ, **_slot_settings(slots)
        )
        uow.commit()
        return session.id, [slot.id for slot in session.slots]


def _slot_settings(count: int) -> dict:
    return {"day_start": dt.time(9), "slot_minutes": 60, "slot_count": count}


def test_concurrent_bookings_never_sell_a_seat_twice(runtime, uow):
    site = make_site(uow, doses=500)
    session_id, (slot_id,) = _open(runtime, site, 10)

    def book(n: int) -> None:
        with runtime.uow() as work:
            svc.book_slot(
                work,
                session_id=session_id,
                slot_id=slot_id,
                beneficiary=f"B{n}",
                actor="t",
                now=now(),
                site_timezone=SITE_TZ,
            )
            work.commit()

    outcomes = _run_together(THREADS, book)
    assert outcomes == {"ok": 10, "Conflict": THREADS - 10}
    assert uow.session.get(Slot, slot_id).booked == 10
    assert uow.session.scalar(select(func.count()).where(Booking.status == "booked")) == 10


def test_concurrent_bookings_and_cancellations_keep_the_count_exact(runtime, uow):
    site = make_site(uow, doses=500)
    session_id, (slot_id,) = _open(runtime, site, 20)
    booked_ids = []
    for n in range(10):
        with runtime.uow() as work:
            booked_ids.append(
                svc.book_slot(
                    work,
                    session_id=session_id,
                    slot_id=slot_id,
                    beneficiary=f"A{n}",
                    actor="t",
                    now=now(),
                    site_timezone=SITE_TZ,
                ).id
            )
            work.commit()

    def book_or_cancel(n: int) -> None:
        with runtime.uow() as work:
            if n < 10:  # five bookings each cancelled twice at once: only one gives the seat back
                svc.cancel_booking(work, booking_id=booked_ids[n // 2], actor="t", now=now())
                work.commit()
            else:
                svc.book_slot(
                    work,
                    session_id=session_id,
                    slot_id=slot_id,
                    beneficiary=f"C{n}",
                    actor="t",
                    now=now(),
                    site_timezone=SITE_TZ,
                )
                work.commit()

    _run_together(THREADS, book_or_cancel)
    live = uow.session.scalar(select(func.count()).where(Booking.status == "booked"))
    slot = uow.session.get(Slot, slot_id)
    uow.session.refresh(slot)
    assert slot.booked == live <= 20
    assert uow.session.scalar(select(func.count()).where(Booking.status == "cancelled")) == 5


def test_concurrent_openings_never_promise_the_same_doses_twice(runtime, uow):
    site = make_site(uow, doses=500)

    def open_one(n: int) -> None:
        _open(runtime, site, 300)

    outcomes = _run_together(8, open_one)
    assert outcomes == {"ok": 1, "InsufficientStock": 7}
