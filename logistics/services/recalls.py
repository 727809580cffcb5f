"""Recalls: a hold on every dose of a lot in a store's subtree, placed and lifted with a reason.

A recall (e.g. a regulator's "not of standard quality" notice, or a lot under investigation)
holds the lot wherever it sits in the subtree: FEFO skips it, usable doses and session capacity
leave it out, bookings and the public availability follow (issue 11, point 7). A recall over
the whole network also sets `Lot.quarantined`, which every reader already honours. The rows are
never deleted: placing and lifting are both recorded with who, when and why (and the audit log
keeps every write made through the API).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from logistics.db import UnitOfWork, is_postgres
from logistics.domain.errors import Conflict, Invalid, NotFound
from logistics.models.catalog import Lot, LotRecall, Store
from logistics.models.stock import StockBalance
from logistics.services.commitments import check_commitments
from logistics.services.lookup import get_or_404


def _lot_for_update(uow: UnitOfWork, lot_id: int) -> Lot:
    """The lot, locked: its recalls are placed and lifted one at a time."""
    lot = None
    if 0 < lot_id < 2**31:
        query = select(Lot).where(Lot.id == lot_id)
        if is_postgres(uow.session):
            query = query.with_for_update(of=Lot)
        lot = uow.session.scalars(query.execution_options(populate_existing=True)).first()
    if lot is None:
        raise NotFound(f"no lot {lot_id}", field="lot_id")
    return lot


def _store_path(uow: UnitOfWork, store_id: int | None) -> str | None:
    if store_id is None:
        return None
    store = get_or_404(uow, Store, store_id, f"no store {store_id}", field="store_id")
    return store.path


def _active(uow: UnitOfWork, lot_id: int) -> list[LotRecall]:
    query = select(LotRecall).where(LotRecall.lot_id == lot_id, LotRecall.lifted_at.is_(None))
    return list(uow.session.scalars(query.order_by(LotRecall.id)))


def _reason(reason: str | None, field: str = "reason") -> str:
    text = (reason or "").strip()
    if not text:
        raise Invalid("a reason is required", field=field)
    return text


def place_recall(
    uow: UnitOfWork,
    *,
    lot_id: int,
    store_id: int | None,
    reason: str,
    actor: str,
    now: dt.datetime,
) -> LotRecall:
    """Hold a lot in a store's subtree (None: the whole network). Does not commit."""
    reason = _reason(reason)
    lot = _lot_for_update(uow, lot_id)
    path = _store_path(uow, store_id)
    if any(r.store_id == store_id for r in _active(uow, lot_id)):
        raise Conflict(f"lot {lot.lot_number} is already recalled there", field="lot_id")
    recall = LotRecall(
        lot_id=lot.id,
        store_id=store_id,
        store_path=path,
        reason=reason,
        placed_by=actor,
        placed_at=now,
    )
    uow.session.add(recall)
    if store_id is None:
        lot.quarantined = True
    uow.session.flush()
    _after_change(uow, lot.id, now)
    return recall


def lift_recall(
    uow: UnitOfWork,
    *,
    lot_id: int,
    store_id: int | None,
    reason: str,
    actor: str,
    now: dt.datetime,
) -> LotRecall:
    """Lift the recall of a lot in a store's subtree (None: the network-wide one). No commit."""
    reason = _reason(reason)
    lot = _lot_for_update(uow, lot_id)
    _store_path(uow, store_id)
    recall = next((r for r in _active(uow, lot_id) if r.store_id == store_id), None)
    if recall is None:
        where = f"store {store_id}" if store_id is not None else "the whole network"
        raise NotFound(f"lot {lot.lot_number} is not recalled in {where}", field="store_id")
    recall.lifted_at, recall.lifted_by, recall.lift_reason = now, actor, reason
    if store_id is None:
        lot.quarantined = False
    uow.session.flush()
    _after_change(uow, lot.id, now)
    return recall


def list_recalls(uow: UnitOfWork, *, lot_id: int) -> list[LotRecall]:
    """Every recall of a lot, newest first (lifted ones too)."""
    _known_lot(uow, lot_id)
    query = select(LotRecall).where(LotRecall.lot_id == lot_id).order_by(LotRecall.id.desc())
    return list(uow.session.scalars(query))


def _known_lot(uow: UnitOfWork, lot_id: int) -> None:
    if (uow.session.get(Lot, lot_id) if 0 < lot_id < 2**31 else None) is None:
        raise NotFound(f"no lot {lot_id}", field="lot_id")


def _after_change(uow: UnitOfWork, lot_id: int, now: dt.datetime) -> None:
    """Usable doses changed wherever the lot sits: re-check those centres' sessions now.

    Their shortfalls reach the public availability within a second (issue 11, point 6).
    """
    stores = uow.session.scalars(
        select(StockBalance.store_id)
        .distinct()
        .where(StockBalance.lot_id == lot_id, StockBalance.doses > 0)
    )
    for store_id in sorted(stores):
        check_commitments(uow, store_id, now)
