"""The check of promised doses against stock: open sessions' shortfalls and their alert.

Anything that lowers or raises a centre's usable doses (a movement, a quarantine decision, a
recall) calls `check_commitments` in its own transaction; the scheduler checks every centre
periodically (lots expire with the calendar). Sessions and the ledger both build on this module,
which imports neither.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, select

from logistics.clock import local_date
from logistics.db import UnitOfWork, insert_for
from logistics.domain import slots as rules
from logistics.models.catalog import Lot, Store
from logistics.models.sessions import AvailabilityVersion, Session
from logistics.models.stock import StockBalance
from logistics.services.alerts import clear_alert, raise_alert
from logistics.services.catalog import get_store
from logistics.services.recalled import recalled_lots

OVERCOMMITTED = "sessions_overcommitted"


def district_of(uow: UnitOfWork, store: Store) -> int:
    """The district store above (or at) a centre; the parent when the tree has no district level."""
    ids = [int(part) for part in store.path.strip("/").split("/") if part] or [store.id]
    query = select(Store.id).where(Store.id.in_(ids), Store.level_code == "district")
    found = uow.session.scalars(query).first()
    return found if found is not None else (store.parent_id or store.id)


_STOCK_LINES = (
    select(
        StockBalance.lot_id,
        StockBalance.doses,
        StockBalance.quarantined_doses,
        StockBalance.vvm_stage,
        Lot.expiry_date,
        Lot.quarantined,
    )
    .join(Lot, Lot.id == StockBalance.lot_id)
    .where(
        StockBalance.store_id == bindparam("store_id"),
        Lot.product_id == bindparam("product_id"),
        StockBalance.doses > 0,
    )
)


def stock_lines(uow: UnitOfWork, store_id: int, product_id: int) -> list[rules.StockLine]:
    """The centre's balances of a product, in all its units, as the rules see them."""
    params = {"store_id": store_id, "product_id": product_id}
    rows: list[Any] = list(uow.session.execute(_STOCK_LINES, params))
    recalled = recalled_lots(uow.session, store_id, {row[0] for row in rows})
    return [
        rules.StockLine(doses, held, vvm, expiry, lot_held or lot_id in recalled)
        for lot_id, doses, held, vvm, expiry, lot_held in rows
    ]


_PROMISES = select(Session.id, Session.session_date, Session.capacity).where(
    Session.store_id == bindparam("store_id"),
    Session.product_id == bindparam("product_id"),
    Session.status == "open",
)
# Built once, with and without a session left out: bookings and the ledger's checks ask them.
_PROMISES_BUT = {False: _PROMISES, True: _PROMISES.where(Session.id != bindparam("exclude"))}


def promises(
    uow: UnitOfWork, store_id: int, product_id: int, exclude: int | None = None
) -> list[rules.Promise]:
    """Open sessions of the centre for a product, each promising its whole capacity."""
    params = {"store_id": store_id, "product_id": product_id, "exclude": exclude}
    found = uow.session.execute(_PROMISES_BUT[exclude is not None], params)
    return [rules.Promise(*row) for row in found]


# --- availability version ----------------------------------------------------------------------


def bump_availability(uow: UnitOfWork, district_id: int, now: dt.datetime) -> None:
    """Make every web process's cached availability of this district stale (same transaction)."""
    table = AvailabilityVersion.__table__
    stmt = insert_for(uow.session)(table).values(district_id=district_id, version=1, changed_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.district_id],
        set_={"version": table.c.version + 1, "changed_at": now},
    )
    uow.session.execute(stmt)


# --- promises against stock --------------------------------------------------------------------


def _overcommitment_details(uow: UnitOfWork, short: dict[int, int]) -> list[dict[str, object]]:
    sessions = uow.session.scalars(
        select(Session).where(Session.id.in_(short)).order_by(Session.session_date)
    )
    return [
        {
            "session_id": s.id,
            "date": s.session_date.isoformat(),
            "product": s.product.code,
            "capacity": s.capacity,
            "short_doses": short[s.id],
        }
        for s in sessions
    ]


def _apply_shortfalls(uow: UnitOfWork, store_id: int, short: dict[int, int]) -> bool:
    """Store each open session's shortfall; tell whether any changed (the public sees them)."""
    changed = False
    query = (
        select(Session)
        .where(Session.store_id == store_id, Session.status == "open")
        .order_by(Session.id)
    )
    for session in uow.session.scalars(query):
        lacking = min(short.get(session.id, 0), session.capacity)
        if session.shortfall_doses != lacking:
            session.shortfall_doses, changed = lacking, True
    return changed


def check_commitments(
    uow: UnitOfWork, store_id: int, now: dt.datetime, *, site_timezone: str | None = None
) -> dict[int, int]:
    """Compare a centre's usable stock with its open sessions' promises; alert when it falls short.

    Call after anything that lowers a centre's usable doses (quarantine, discard, an issue, a
    count, a lot hold) and periodically (lots expire with the calendar). Raises or updates the
    alert `sessions_overcommitted` naming the sessions and doses short, clears it when covered,
    and stores each session's shortfall (the public availability and booking respect it).
    Does not commit. Returns {session_id: doses short}.
    """
    today = local_date(now, site_timezone)
    product_ids = uow.session.scalars(
        select(Session.product_id)
        .distinct()
        .where(Session.store_id == store_id, Session.status == "open")
    )
    short: dict[int, int] = {}
    for product_id in list(product_ids):
        short.update(
            rules.shortfalls(
                stock_lines(uow, store_id, product_id), promises(uow, store_id, product_id), today
            )
        )
    if _apply_shortfalls(uow, store_id, short):
        store = get_store(uow, store_id)
        bump_availability(uow, district_of(uow, store), now)
    _alert_overcommitment(uow, store_id, short, now)
    return short


def _alert_overcommitment(
    uow: UnitOfWork, store_id: int, short: dict[int, int], now: dt.datetime
) -> None:
    if not short:
        clear_alert(
            uow,
            kind=OVERCOMMITTED,
            subject_type="store",
            subject_id=store_id,
            now=now,
            comment="usable stock covers every open session again",
        )
        return
    sessions = _overcommitment_details(uow, short)
    listing = ", ".join(
        f"session {s['session_id']} on {s['date']} short {s['short_doses']}" for s in sessions
    )
    raise_alert(
        uow,
        kind=OVERCOMMITTED,
        subject_type="store",
        subject_id=store_id,
        store_id=store_id,
        severity="alarm",
        message=f"usable stock no longer covers {len(sessions)} session(s): {listing}",
        details={"short_doses": sum(short.values()), "sessions": sessions},
        now=now,
    )


def centres_with_open_sessions(uow: UnitOfWork) -> list[int]:
    """Centres that have open sessions (for the periodic commitment check)."""
    return list(
        uow.session.scalars(select(Session.store_id).distinct().where(Session.status == "open"))
    )


def check_all_commitments(
    runtime_uow: Callable[[], UnitOfWork], now: dt.datetime, *, site_timezone: str | None = None
) -> int:
    """Check every centre with open sessions, one transaction each; return the centres short."""
    with runtime_uow() as uow:
        centres = centres_with_open_sessions(uow)
    short = 0
    for store_id in centres:
        with runtime_uow() as uow:
            short += bool(check_commitments(uow, store_id, now, site_timezone=site_timezone))
            uow.commit()
    return short
