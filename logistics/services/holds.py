"""Doses held after temperature alarms: the only code that writes `StockBalance.quarantined_doses`.

The held doses of a (unit, lot) are what its pending quarantine reviews hold (issue 11, point 1).
Every alarm holds every dose of the lot in the unit, and held doses can neither be issued nor
booked, so the pending reviews of one lot in one unit overlap: a later review's doses include the
doses an earlier pending review still holds. The balance therefore holds the LARGEST of its pending
reviews, not their sum, and releasing one review frees only what no other pending review holds.

A review's doses follow the stock, and never exceed what the unit holds:
- an alarm holds every dose of the lot in the unit (one review per alarm and lot);
- doses that arrive while an alarm lasts join its review (or get a review of their own when the
  lot had none pending for that alarm);
- doses leaving the unit (a consumption dated before the alarm, a count, a breakage) shrink the
  reviews to what the unit still holds; doses discarded out of the held doses shrink them to what
  stays held.

Callers hold the balance row locked (logistics.services.stock locks it before any change) and
commit; nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics.db import is_postgres
from logistics.models.alerts import Excursion, QuarantineReview
from logistics.models.catalog import Product
from logistics.models.stock import StockBalance

ALARM_KINDS = ("heat_alarm", "cold_alarm")


def pending_reviews(session: Session, unit_id: int, lot_id: int) -> list[QuarantineReview]:
    """The pending reviews of a lot in a unit, oldest first."""
    query = (
        select(QuarantineReview)
        .where(
            QuarantineReview.unit_id == unit_id,
            QuarantineReview.lot_id == lot_id,
            QuarantineReview.state == "pending",
        )
        .order_by(QuarantineReview.id)
    )
    return list(session.scalars(query))


def held_doses(reviews: Sequence[QuarantineReview]) -> int:
    """What a balance holds for these pending reviews: the largest of them (they overlap)."""
    return max((review.doses for review in reviews), default=0)


def settle(session: Session, balance: StockBalance, *, taken_from_held: int = 0) -> None:
    """Shrink the pending reviews to the doses still there and hold what the largest holds.

    `taken_from_held`: doses just discarded out of the held doses; the reviews then keep at most
    what stayed held (the discarded doses were the held ones, whichever review named them).
    """
    cap = balance.doses
    if taken_from_held:
        cap = min(cap, max(0, balance.quarantined_doses - taken_from_held))
    # Before any query autoflushes the row: the database checks held <= doses.
    balance.quarantined_doses = min(balance.quarantined_doses, cap)
    reviews = pending_reviews(session, balance.unit_id, balance.lot_id)
    for review in reviews:
        review.doses = min(review.doses, cap)
    balance.quarantined_doses = held_doses(reviews)


def follow(
    session: Session,
    balance: StockBalance,
    doses: int,
    occurred_at: dt.datetime,
    now: dt.datetime,
    *,
    from_held: bool = False,
) -> None:
    """Keep the held doses right after `doses` (signed) of the lot entered or left the unit."""
    if doses > 0:
        # from_held on a credit: the doses return to the held doses (a discard reversed).
        if hold_arrival(session, balance, doses, occurred_at, now) or from_held:
            settle(session, balance)
    elif from_held:
        settle(session, balance, taken_from_held=-doses)
    elif balance.quarantined_doses > balance.doses:
        settle(session, balance)


def _alarms_at(session: Session, unit_id: int, at: dt.datetime) -> list[Excursion]:
    """The unit's alarms lasting at `at` (started by then, not ended by then)."""
    query = (
        select(Excursion)
        .where(
            Excursion.unit_id == unit_id,
            Excursion.kind.in_(ALARM_KINDS),
            Excursion.started_at <= at,
            (Excursion.ended_at.is_(None)) | (Excursion.ended_at > at),
        )
        .order_by(Excursion.id)
    )
    return list(session.scalars(query))


def hold_arrival(
    session: Session, balance: StockBalance, doses: int, occurred_at: dt.datetime, now: dt.datetime
) -> int:
    """Hold doses that arrived in a unit while an alarm lasted; return how many alarms hold them."""
    alarms = _alarms_at(session, balance.unit_id, occurred_at)
    if not alarms:
        return 0
    pending = {r.excursion_id: r for r in pending_reviews(session, balance.unit_id, balance.lot_id)}
    for excursion in alarms:
        review = pending.get(excursion.id)
        if review is not None:
            review.doses += doses
        else:
            _add_review(session, excursion, balance, doses, now)
    return len(alarms)


def hold_for_alarm(session: Session, excursion: Excursion, now: dt.datetime) -> int:
    """Hold every dose in the unit after an alarm, one review per lot; return the lots newly held.

    Idempotent: a lot already reviewed for this alarm is left as the officer left it (doses that
    arrive later while the alarm lasts are held by `hold_arrival`).
    """
    reviewed = set(
        session.scalars(
            select(QuarantineReview.lot_id).where(QuarantineReview.excursion_id == excursion.id)
        )
    )
    query = (
        select(StockBalance)
        .where(StockBalance.unit_id == excursion.unit_id, StockBalance.doses > 0)
        .order_by(StockBalance.lot_id)
    )
    if is_postgres(session):
        query = query.with_for_update(of=StockBalance)
    held = 0
    for balance in list(session.scalars(query.execution_options(populate_existing=True))):
        if balance.lot_id in reviewed:
            continue
        _add_review(session, excursion, balance, balance.doses, now)
        settle(session, balance)
        balance.updated_at = now
        held += 1
    return held


def _add_review(
    session: Session, excursion: Excursion, balance: StockBalance, doses: int, now: dt.datetime
) -> QuarantineReview:
    review = QuarantineReview(
        excursion_id=excursion.id,
        unit_id=excursion.unit_id,
        store_id=excursion.store_id,
        lot_id=balance.lot_id,
        doses=doses,
        reason=review_reason(excursion.kind),
        proposed_decision=proposal(excursion.kind, balance.lot.product),
        state="pending",
        created_at=now,
    )
    session.add(review)
    return review


def review_reason(kind: str) -> str:
    """The wastage reason a discard of this alarm's doses records."""
    return "heat_exposure" if kind.startswith("heat") else "frozen"


def proposal(kind: str, product: Product) -> str:
    """A frozen freeze-sensitive vaccine is discarded (shared/domain.md); else an officer judges."""
    if kind == "cold_alarm" and product.freeze_sensitive:
        return "discard"
    return "review"


def blocking_held(session: Session, unit_id: int, lot_id: int, at: dt.datetime) -> int:
    """Held doses that were already unusable at `at`: those of alarms that had fired by then.

    A record of what happened is judged against the stock usable when it happened (issue 11,
    point 2): doses given before an excursion began, or before its alarm fired (the rule's time
    outside was not yet reached, so the doses were usable), are never blocked by it. The
    excursion's record and the lot's thermal history still show what those doses went through.
    """
    query = (
        select(QuarantineReview.doses)
        .join(Excursion, Excursion.id == QuarantineReview.excursion_id)
        .where(
            QuarantineReview.unit_id == unit_id,
            QuarantineReview.lot_id == lot_id,
            QuarantineReview.state == "pending",
            Excursion.triggered_at <= at,
        )
    )
    return max(session.scalars(query), default=0)


REVIEW_DISCARD_PREFIX = "quarantine-review-"


def discard_client_id(review: QuarantineReview) -> str:
    """The client id of the wastage a review's discard records (once per review)."""
    return f"{REVIEW_DISCARD_PREFIX}{review.id}"


def reopen_discarded(session: Session, client_id: str, doses: int, now: dt.datetime) -> bool:
    """A reversed discard brings its doses back held: its review is pending again.

    Returns whether the movement was a review's discard (its reversal's doses go back held).
    """
    if not client_id.startswith(REVIEW_DISCARD_PREFIX):
        return False
    review = session.get(QuarantineReview, int(client_id[len(REVIEW_DISCARD_PREFIX) :]))
    if review is None:
        return False
    twin = next(
        (
            r
            for r in pending_reviews(session, review.unit_id, review.lot_id)
            if r.excursion_id == review.excursion_id
        ),
        None,
    )
    if twin is not None:  # doses that arrived since hold a pending review of the same alarm
        twin.doses += doses
        return True
    review.state, review.doses, review.decided_at, review.decided_by = "pending", doses, None, None
    review.comment = f"discard reversed at {now.isoformat()}; was: {review.comment or ''}"[:2000]
    return True


def close_emptied(
    session: Session, balance: StockBalance, *, by: QuarantineReview, actor: str, now: dt.datetime
) -> list[QuarantineReview]:
    """After a discard, decide the other pending reviews left holding nothing: their doses are gone.

    The ledger records the discarded doses once (under `by`); these reviews only say so.
    """
    closed = []
    for review in pending_reviews(session, balance.unit_id, balance.lot_id):
        if review.doses == 0:
            review.state, review.decided_by, review.decided_at = "discarded", actor, now
            review.comment = f"doses discarded under quarantine review {by.id}"
            closed.append(review)
    return closed


def hold_after_trip(
    session: Session, excursion: Excursion, balance: StockBalance, doses: int, now: dt.datetime
) -> QuarantineReview | None:
    """Hold doses that sat through a carrier's alarm, in the unit that received them (issue 18).

    The review names the carrier's alarm and the receiving unit and store; `doses` never more
    than the unit holds. Idempotent per alarm and lot: doses of a second shipment of the lot in
    the same carrier join the pending review; None when nothing is held.
    """
    doses = min(doses, balance.doses)
    if doses <= 0:
        return None
    pending = session.scalars(
        select(QuarantineReview).where(
            QuarantineReview.excursion_id == excursion.id,
            QuarantineReview.lot_id == balance.lot_id,
            QuarantineReview.state == "pending",
        )
    ).first()
    if pending is not None:
        if pending.unit_id != balance.unit_id:
            return None  # the lot is under review for this alarm elsewhere (docs/transit.md)
        pending.doses += doses
        review = pending
    else:
        review = _add_review(session, excursion, balance, doses, now)
        review.unit_id, review.store_id = balance.unit_id, balance.store_id
    settle(session, balance)
    balance.updated_at = now
    return review
