"""Which recalls are in force: the lots a recall holds in a store, and since when.

Read by the ledger, the check of promises and the public availability; placing and lifting a
recall are the use cases of logistics.services.recalls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from logistics.domain.stock import RecallScope
from logistics.models.catalog import LotRecall, Store

# The common case, built once: the recalls in force now of some lots (pages and the ledger ask it).
_IN_FORCE_OF_LOTS = select(LotRecall.lot_id, LotRecall.store_path).where(
    LotRecall.lot_id.in_(bindparam("lot_ids", expanding=True)), LotRecall.lifted_at.is_(None)
)

# And at a time (the ledger judges every debit at its own time).
_IN_FORCE_OF_LOTS_AT = select(LotRecall.lot_id, LotRecall.store_path).where(
    LotRecall.lot_id.in_(bindparam("lot_ids", expanding=True)),
    LotRecall.placed_at <= bindparam("at"),
    (LotRecall.lifted_at.is_(None)) | (LotRecall.lifted_at > bindparam("at")),
)


def scopes(
    session: Session, lot_ids: Iterable[int] | None = None, at: dt.datetime | None = None
) -> list[RecallScope]:
    """Recalls in force now (or at `at`), optionally of some lots only."""
    if lot_ids is not None:
        session.flush()  # as the session's own execute would (a recall placed in this work)
        if at is None:
            found = session.connection().execute(_IN_FORCE_OF_LOTS, {"lot_ids": list(lot_ids)})
        else:
            params = {"lot_ids": list(lot_ids), "at": at}
            found = session.connection().execute(_IN_FORCE_OF_LOTS_AT, params)
        return [RecallScope(lot_id, path) for lot_id, path in found]
    query = select(LotRecall.lot_id, LotRecall.store_path)  # of every lot
    if at is None:
        query = query.where(LotRecall.lifted_at.is_(None))
    else:
        query = query.where(
            LotRecall.placed_at <= at, (LotRecall.lifted_at.is_(None)) | (LotRecall.lifted_at > at)
        )
    return [RecallScope(lot_id, path) for lot_id, path in session.execute(query).all()]


def recalled_lots(
    session: Session, store_id: int, lot_ids: Iterable[int], at: dt.datetime | None = None
) -> set[int]:
    """The lots among `lot_ids` held by a recall at this store (now, or at `at`)."""
    lot_ids = list(lot_ids)
    if not lot_ids:
        return set()
    found = scopes(session, lot_ids, at)
    if not found:
        return set()
    path = session.scalar(select(Store.path).where(Store.id == store_id)) or ""
    return {s.lot_id for s in found if s.covers(path)}


def has_network_recall(session: Session, lot_id: int) -> bool:
    """Tell whether a network-wide recall of the lot is in force (it sets Lot.quarantined)."""
    query = select(LotRecall.id).where(
        LotRecall.lot_id == lot_id, LotRecall.store_id.is_(None), LotRecall.lifted_at.is_(None)
    )
    return session.scalar(query.limit(1)) is not None
