"""Quarantine after an alarm and the officers' reviews: hold, release, discard.

The held doses themselves are kept by logistics.services.holds, their only writer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from logistics.db import UnitOfWork, is_postgres
from logistics.domain.errors import Conflict, Invalid
from logistics.domain.ids import MAX_BIG_ID
from logistics.models.alerts import Excursion, QuarantineReview
from logistics.models.stock import StockBalance
from logistics.services import holds
from logistics.services.commitments import check_commitments
from logistics.services.lookup import get_or_404, in_subtree

# --- quarantine ----------------------------------------------------------------------------------


def quarantine_unit(uow: UnitOfWork, excursion: Excursion, now: dt.datetime) -> int:
    """Hold every lot in the unit after an alarm, with one review per lot; return lots newly held.

    Idempotent: a lot already under review for this excursion is left as the officer left it.
    The held doses themselves are kept by logistics.services.holds, their only writer.
    """
    held = holds.hold_for_alarm(uow.session, excursion, now)
    if held:
        # Held doses may no longer cover the sessions the centre has opened (issue 5, point 4).
        check_commitments(uow, excursion.store_id, now)
    return held


def _review_for_update(uow: UnitOfWork, review_id: int) -> tuple[QuarantineReview, StockBalance]:
    """The pending review and its balance, both locked: the balance first, as every movement does.

    Movements lock the balance and then touch its reviews; locking in the same order here means a
    decision and a concurrent receipt of the lot into the unit never deadlock.
    """
    found = get_or_404(
        uow,
        QuarantineReview,
        review_id,
        f"quarantine review {review_id} does not exist",
        max_id=MAX_BIG_ID,
    )
    query = select(StockBalance).where(
        StockBalance.unit_id == found.unit_id, StockBalance.lot_id == found.lot_id
    )
    balance = uow.session.scalars(
        _locked(uow, query, StockBalance).execution_options(populate_existing=True)
    ).one()
    review_query = select(QuarantineReview).where(QuarantineReview.id == review_id)
    review = uow.session.scalars(
        _locked(uow, review_query, QuarantineReview).execution_options(populate_existing=True)
    ).one()
    if review.state != "pending":
        raise Conflict(f"quarantine review {review_id} is already {review.state}")
    return review, balance


def _locked(uow: UnitOfWork, query: Any, model: Any) -> Any:
    """Lock the rows of `model` the query reads on PostgreSQL (SQLite serialises writers)."""
    return query.with_for_update(of=model) if is_postgres(uow.session) else query


def _usable_stock_changed(uow: UnitOfWork, store_id: int, now: dt.datetime) -> None:
    """Sessions and the public availability see a decision at once (issue 11, point 6)."""
    check_commitments(uow, store_id, now)


def release_review(
    uow: UnitOfWork, *, review_id: int, comment: str, actor: str, now: dt.datetime
) -> QuarantineReview:
    """An officer judges the lot usable: what no other pending review holds is no longer held."""
    if not (comment or "").strip():
        raise Invalid("a comment is required to release quarantined doses", field="comment")
    review, balance = _review_for_update(uow, review_id)
    _decide(review, "released", comment, actor, now)
    holds.settle(uow.session, balance)
    balance.updated_at = now
    _usable_stock_changed(uow, review.store_id, now)
    uow.session.flush()
    return review


def discard_review(
    uow: UnitOfWork, *, review_id: int, comment: str | None, actor: str, now: dt.datetime
) -> QuarantineReview:
    """Discard the held doses: recorded once as wastage (heat_exposure or frozen) by the ledger.

    Other pending reviews of the lot in the unit keep what stays held; those left holding nothing
    are closed as discarded under this review, with no second wastage.
    """
    from logistics.services.stock import record_wastage

    review, balance = _review_for_update(uow, review_id)
    doses = review.doses  # never more than the unit holds (logistics.services.holds)
    _decide(review, "discarded", comment, actor, now)
    if doses > 0:
        record_wastage(
            uow,
            store_id=review.store_id,
            unit_id=review.unit_id,
            lot_id=review.lot_id,
            doses=doses,
            reason=review.reason,
            actor=actor,
            occurred_at=now,
            client_id=holds.discard_client_id(review),
            note=comment,
            from_quarantine=True,
        )
    holds.close_emptied(uow.session, balance, by=review, actor=actor, now=now)
    _usable_stock_changed(uow, review.store_id, now)
    uow.session.flush()
    return review


def _decide(
    review: QuarantineReview, state: str, comment: str | None, actor: str, now: dt.datetime
) -> None:
    review.state, review.comment, review.decided_by, review.decided_at = state, comment, actor, now


def list_reviews(
    uow: UnitOfWork, *, store_path: str | None, state: str | None, limit: int = 100, offset: int = 0
) -> list[QuarantineReview]:
    """Quarantine reviews of a store subtree, pending first."""
    from logistics.models.catalog import Store

    query = select(QuarantineReview)
    if store_path is not None:
        query = query.join(Store, Store.id == QuarantineReview.store_id).where(
            in_subtree(Store.path, store_path)
        )
    if state is not None:
        query = query.where(QuarantineReview.state == state)
    return list(
        uow.session.scalars(query.order_by(QuarantineReview.id.desc()).limit(limit).offset(offset))
    )


def get_review(uow: UnitOfWork, review_id: int) -> tuple[QuarantineReview, Excursion]:
    """One quarantine review with the excursion that caused it."""
    review = get_or_404(
        uow,
        QuarantineReview,
        review_id,
        f"quarantine review {review_id} does not exist",
        max_id=MAX_BIG_ID,
    )
    excursion = uow.session.get(Excursion, review.excursion_id)
    assert excursion is not None  # the review's foreign key keeps its excursion
    return review, excursion
