"""Stock ledger use cases: receipts, issues, transfers, consumption, wastage, counts, reversals.

Every movement function adds the movement, its ledger entries and the updated balances to
`uow.session` and does NOT commit (no service does): the edge commits once, so the HTTP layer
can store the idempotent response in the same transaction (logistics/api/idempotency.py), and
other areas (sessions, quarantine review) can record stock in their own transaction.

Balances are locked before they change: `SELECT ... FOR UPDATE` on PostgreSQL (rows locked in
(unit, lot) order so concurrent movements cannot deadlock), SQLite serialises writers itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, exists, func, insert, or_, select, text, update
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from logistics.clock import utcnow
from logistics.db import UnitOfWork, insert_for, is_postgres
from logistics.domain import stock as rules
from logistics.domain.errors import (
    Conflict,
    InsufficientStock,
    Invalid,
    NotFound,
)
from logistics.domain.ids import MAX_BIG_ID
from logistics.models.alerts import Alert
from logistics.models.catalog import Lot, StorageUnit, Store
from logistics.models.sessions import Session as VaccinationSession
from logistics.models.stock import (
    LedgerEntry,
    Movement,
    Shipment,
    ShipmentLine,
    StockBalance,
)
from logistics.services import audit, catalog, holds, recalled
from logistics.services.commitments import OVERCOMMITTED, check_commitments
from logistics.services.lookup import get_or_404, in_bound_subtree, subtree_params

UTC = dt.UTC


@dataclasses.dataclass(frozen=True)
class Recorded:
    """Who records a movement, when it happened and when it was recorded."""

    actor: str
    occurred_at: dt.datetime
    client_id: str
    recorded_at: dt.datetime
    site_timezone: str = "UTC"

    @property
    def local_date(self) -> dt.date:
        """The day the movement happened at the site (expiry dates are site-local days)."""
        return self.occurred_at.astimezone(ZoneInfo(self.site_timezone)).date()


def recorded(
    actor: str,
    occurred_at: dt.datetime | None,
    client_id: str | None,
    site_timezone: str = "UTC",
    now: dt.datetime | None = None,
) -> Recorded:
    """Build the who/when of a movement; occurred_at defaults to now, never in the future."""
    now = now or utcnow()
    occurred_at = occurred_at or now
    if occurred_at.tzinfo is None:
        raise Invalid("occurred_at needs a time zone", field="occurred_at")
    if occurred_at > now + dt.timedelta(minutes=5):
        raise Invalid("occurred_at is in the future", field="occurred_at")
    return Recorded(
        actor, occurred_at.astimezone(UTC), client_id or str(uuid.uuid4()), now, site_timezone
    )


# --- balances and entries ----------------------------------------------------------------------


def _lock_balance(
    session: Session, store_id: int, unit_id: int, lot_id: int, now: dt.datetime
) -> StockBalance:
    """The balance row of (unit, lot), created at 0 if missing, locked for this transaction."""
    query = _LOCK_BALANCE if is_postgres(session) else _READ_BALANCE
    params = {"unit_id": unit_id, "lot_id": lot_id}
    balance = session.scalars(query, params).first()
    if balance is not None:
        return balance
    insert = (
        insert_for(session)(StockBalance)
        .values(
            store_id=store_id,
            unit_id=unit_id,
            lot_id=lot_id,
            doses=0,
            quarantined_doses=0,
            vvm_stage=1,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["unit_id", "lot_id"])
    )
    session.execute(insert)
    return session.scalars(query, params).one()


# Built once: every movement locks its balances (SQLite has no row locks: its writer lock, taken
# first by every movement, serialises them instead).
_READ_BALANCE = (
    select(StockBalance)
    .where(StockBalance.unit_id == bindparam("unit_id"), StockBalance.lot_id == bindparam("lot_id"))
    .execution_options(populate_existing=True)
)
_LOCK_BALANCE = _READ_BALANCE.with_for_update(of=StockBalance)


def later_changes(session: Session, unit_id: int, lot_id: int, after: dt.datetime) -> list[int]:
    """Signed doses of (unit, lot) entries that happened after `after`, in time order (entries
    are only written by statements, `_insert_rows`: none wait in the session for a flush)."""
    params = {"unit_id": unit_id, "lot_id": lot_id, "after": after}
    return list(session.connection().scalars(_LATER_CHANGES, params))


# Built once: every debit reads it, after its balance's lock.
_LATER_CHANGES = (
    select(LedgerEntry.doses)
    .where(
        LedgerEntry.unit_id == bindparam("unit_id"),
        LedgerEntry.lot_id == bindparam("lot_id"),
        LedgerEntry.occurred_at > bindparam("after"),
    )
    .order_by(LedgerEntry.occurred_at, LedgerEntry.id)
)


@dataclasses.dataclass(frozen=True)
class Change:
    """A signed change of one lot in one unit, with how the balance's holds follow it."""

    unit_id: int
    lot_id: int
    doses: int
    vvm_stage: int | None = None
    usable_only: bool = False
    from_quarantine: bool = False


def lot_stock(balance: StockBalance, recalled: bool = False) -> rules.LotStock:
    """The stored balance as the pure rules see it (FEFO, usable doses)."""
    return rules.LotStock(
        balance.unit_id,
        balance.lot_id,
        balance.lot.expiry_date,
        balance.doses,
        balance.quarantined_doses,
        balance.vvm_stage,
        balance.lot.quarantined or recalled,
    )


def stock_at(
    session: Session, balance: StockBalance, at: dt.datetime, later: Sequence[int] | None = None
) -> rules.LotStock:
    """The balance as it was usable at `at` (issue 11, point 2): what a back-dated debit may take.

    Doses: the lowest running balance from `at` until now (later entries must stay covered).
    Held: only what reviews of alarms that had fired by `at` hold; a recall only if in force
    at `at`. Expiry is judged on the caller's date; the VVM stage is today's (it only rises).
    """
    if later is None:
        later = later_changes(session, balance.unit_id, balance.lot_id, at)
    held = recalled.recalled_lots(session, balance.store_id, [balance.lot_id], at)
    # A network-wide recall sets Lot.quarantined now; at `at` only its record tells.
    flagged = balance.lot.quarantined and not recalled.has_network_recall(session, balance.lot_id)
    return rules.LotStock(
        balance.unit_id,
        balance.lot_id,
        balance.lot.expiry_date,
        rules.lowest_running_balance(balance.doses, later),
        holds.blocking_held(session, balance.unit_id, balance.lot_id, at)
        if balance.quarantined_doses
        else 0,
        balance.vvm_stage,
        flagged or bool(held),
    )


def _check_usable(
    session: Session, balance: StockBalance, change: Change, rec: Recorded, later: Sequence[int]
) -> None:
    usable = rules.usable_doses(stock_at(session, balance, rec.occurred_at, later), rec.local_date)
    if usable < -change.doses:
        raise InsufficientStock(
            f"lot {balance.lot.lot_number} has {usable} usable doses in unit {balance.unit_id} "
            f"at {rec.occurred_at.isoformat()} (expired, quarantined, recalled or VVM-unusable "
            f"stock is never used), {-change.doses} asked",
            field="doses",
            available_doses=usable,
        )


def _apply(
    session: Session, store_id: int, change: Change, rec: Recorded, written: list[audit.Written]
) -> StockBalance:
    """Lock the balance, check the change against it and write it (noted in `written`)."""
    balance = _lock_balance(session, store_id, change.unit_id, change.lot_id, rec.recorded_at)
    if change.doses < 0:
        later = later_changes(session, change.unit_id, change.lot_id, rec.occurred_at)
        rules.check_debit(balance.doses, later, -change.doses, rec.occurred_at)
        if change.usable_only:
            _check_usable(session, balance, change, rec, later)
        if change.from_quarantine and balance.quarantined_doses < -change.doses:
            # 409: the stored hold is smaller, as InsufficientStock for usable doses.
            raise Conflict(f"only {balance.quarantined_doses} doses are quarantined", field="doses")
    before = {key: getattr(balance, key) for key in _WRITTEN}
    # The new values are set as if stored, so the holds below see them; one statement stores
    # them all at the end (the database checks held <= doses on every write of the row).
    set_committed_value(balance, "doses", balance.doses + change.doses)
    if change.vvm_stage is not None and change.doses > 0:
        set_committed_value(balance, "vvm_stage", max(balance.vvm_stage, change.vvm_stage))
    set_committed_value(balance, "updated_at", rec.recorded_at)
    # Held doses follow the pending reviews, kept in one place (logistics.services.holds).
    holds.follow(
        session,
        balance,
        change.doses,
        rec.occurred_at,
        rec.recorded_at,
        from_held=change.from_quarantine,
    )
    _write_balance(session, balance, before, written)
    return balance


_WRITTEN = ("doses", "quarantined_doses", "vvm_stage", "updated_at")


def _write_balance(
    session: Session,
    balance: StockBalance,
    before: dict[str, Any],
    written: list[audit.Written],
) -> None:
    """Store the balance's new values with one statement built once (not a flush); the loaded
    object holds them as stored, and the change is noted in `written` for the audit log."""
    after = {key: getattr(balance, key) for key in _WRITTEN}
    session.connection().execute(_UPDATE_BALANCE, {**after, "balance_id": balance.id})
    set_committed_value(balance, "quarantined_doses", after["quarantined_doses"])
    changed = [key for key in _WRITTEN if after[key] != before[key]]
    written.append(
        audit.Written(
            "update",
            "stock_balances",
            str(balance.id),
            {k: before[k] for k in changed},
            {k: after[k] for k in changed},
        )
    )


_BALANCES = cast(Table, StockBalance.__table__)  # a mapped class's table is a Table
_UPDATE_BALANCE = (
    update(_BALANCES)
    .where(_BALANCES.c.id == bindparam("balance_id"))
    .values(
        doses=bindparam("doses"),
        quarantined_doses=bindparam("quarantined_doses"),
        vvm_stage=bindparam("vvm_stage"),
        updated_at=bindparam("updated_at"),
    )
)
_MOVEMENTS = cast(Table, Movement.__table__)
_ENTRIES = cast(Table, LedgerEntry.__table__)
_MOVEMENT_COLUMNS = [c.key for c in _MOVEMENTS.columns if c.key != "id"]
_ENTRY_COLUMNS = [c.key for c in _ENTRIES.columns if c.key != "id"]
_INSERT_MOVEMENT = insert(_MOVEMENTS).returning(_MOVEMENTS.c.id)
_INSERT_ENTRIES = insert(_ENTRIES).returning(_ENTRIES.c.id, sort_by_parameter_order=True)


def _insert_rows(
    session: Session, movement: Movement, entries: list[LedgerEntry]
) -> list[audit.Written]:
    """Insert the movement and its entries with two statements built once, then make the objects
    persistent as if loaded. The ledger is append-only: nothing of the ORM's flush (change
    tracking, ordering, events) is needed to write it, and the flush cost more than the SQL."""
    connection = session.connection()
    values = {key: getattr(movement, key) for key in _MOVEMENT_COLUMNS}
    movement.id = connection.execute(_INSERT_MOVEMENT, values).scalar_one()
    inserted = [
        audit.Written("insert", "movements", str(movement.id), None, {"id": movement.id, **values})
    ]
    for entry in entries:
        entry.movement_id = movement.id
    rows = [{key: getattr(e, key) for key in _ENTRY_COLUMNS} for e in entries]
    ids: Sequence[int] = connection.execute(_INSERT_ENTRIES, rows).scalars().all() if rows else []
    inserted += [
        audit.Written("insert", "ledger_entries", str(i), None, {"id": i, **row})
        for i, row in zip(ids, rows, strict=True)
    ]
    for entry, entry_id in zip(entries, ids, strict=True):
        entry.id = entry_id
        make_transient_to_detached(entry)
    make_transient_to_detached(movement)
    for key, value in values.items():  # the columns left unset are stored NULL, not unknown
        if key not in movement.__dict__:
            set_committed_value(movement, key, value)
    set_committed_value(movement, "entries", entries)
    for entry in entries:
        set_committed_value(entry, "movement", movement)
    session.add(movement)
    return inserted


def _post(
    uow: UnitOfWork, movement: Movement, changes: Sequence[Change], rec: Recorded
) -> Movement:
    """Apply the changes to locked balances (in lock order), then add the movement and its entries.

    The balances, the movement and its entries are written with statements built once, and
    logged with one audit statement; what else the changes touched (held doses' reviews, a
    shipment's status) is flushed as usual, and logged by the flush.
    """
    session = uow.session
    written: list[audit.Written] = []
    entries = []
    for change in sorted(changes, key=lambda c: (c.unit_id, c.lot_id)):
        if change.doses == 0:
            continue
        balance = _apply(session, movement.store_id, change, rec, written)
        entries.append(
            LedgerEntry(
                store_id=balance.store_id,
                unit_id=change.unit_id,
                lot_id=change.lot_id,
                # The lot the balance already holds: answering with the entry's lot reads nothing.
                lot=balance.lot,
                doses=change.doses,
                occurred_at=rec.occurred_at,
            )
        )
    audit.log_written(session, [*_insert_rows(session, movement, entries), *written])
    session.flush()
    for store_id in sorted({movement.store_id, *(e.store_id for e in entries)}):
        _recheck_commitments(uow, store_id, rec)
    return movement


def _recheck_commitments(uow: UnitOfWork, store_id: int, rec: Recorded) -> None:
    """Re-check the store's sessions against its stock in this transaction, after ANY movement.

    Fewer doses may no longer cover them, and more doses (a receipt, a reversal) may cover them
    again: either way the sessions' shortfalls, and so the public availability, change in the
    movement's own commit, not at the next periodic check (issue 11, point 6).
    """
    if _has_promises(uow.session, store_id):
        check_commitments(uow, store_id, rec.recorded_at, site_timezone=rec.site_timezone)


def _has_promises(session: Session, store_id: int) -> bool:
    """Whether the store has an open session or an open overcommitment alert: without either,
    the re-check would find nothing to store or clear. One statement instead of its three,
    built once (it runs after every movement, after the movement's flush)."""
    params = {"store_id": store_id, "subject_id": str(store_id)}
    return bool(session.connection().scalar(_PROMISES, params))


_PROMISES = select(
    or_(
        exists().where(
            VaccinationSession.store_id == bindparam("store_id"),
            VaccinationSession.status == "open",
        ),
        exists().where(
            Alert.kind == OVERCOMMITTED,
            Alert.subject_type == "store",
            Alert.subject_id == bindparam("subject_id"),
            Alert.state != "resolved",
        ),
    )
)


def _movement(kind: str, store_id: int, rec: Recorded, **fields: Any) -> Movement:
    return Movement(
        kind=kind,
        store_id=store_id,
        client_id=rec.client_id,
        actor=rec.actor,
        occurred_at=rec.occurred_at,
        recorded_at=rec.recorded_at,
        **fields,
    )


def _positive(doses: int, field: str = "doses") -> None:
    if doses <= 0:
        raise Invalid("quantity must be a positive number of doses", field=field)


def _take_sqlite_write_lock(session: Session) -> None:
    """On SQLite, start the write transaction before reading any balance.

    The sqlite3 driver opens a transaction only at the first write, so balances read before it
    could be stale by the time they are written (a lost update). A write statement first takes
    SQLite's single writer lock (waiting up to busy_timeout), which serialises movements as the
    row locks do on PostgreSQL.
    """
    if not is_postgres(session):
        session.execute(text("UPDATE stock_balances SET doses = doses WHERE 0 = 1"))


_MOVEMENT_OF_CLIENT_ID = select(Movement.id).where(Movement.client_id == bindparam("client_id"))


def _check_client_id_free(uow: UnitOfWork, client_id: str) -> None:
    _take_sqlite_write_lock(uow.session)
    if (
        uow.session.connection().scalar(_MOVEMENT_OF_CLIENT_ID, {"client_id": client_id})
        is not None
    ):
        raise _client_id_taken(client_id)


def _client_id_taken(client_id: str) -> Conflict:
    return Conflict(
        f"a movement with client_id {client_id!r} is already recorded", field="client_id"
    )


# --- receipts ----------------------------------------------------------------------------------


def receive_stock(
    uow: UnitOfWork,
    *,
    store_id: int,
    unit_id: int,
    doses: int,
    rec: Recorded,
    lot: dict[str, Any],
    vvm_stage: int = 1,
    supplier: str | None = None,
    note: str | None = None,
    freeze_indicator: str | None = None,
    logger_alarm: bool | None = None,
) -> Movement:
    """Record doses received from a supplier into a unit; the lot is named by id, fields or GS1.

    The arrival checks (VVM stage, freeze indicator, logger alarm) are kept on the movement.
    """
    _check_client_id_free(uow, rec.client_id)
    catalog.get_store(uow, store_id)
    catalog.unit_of_store(uow, unit_id, store_id)
    _positive(doses)
    found = (
        catalog.get_lot(uow, lot["lot_id"])
        if lot.get("lot_id")
        else catalog.lot_from_fields(uow, lot)
    )
    if rules.is_expired(found.expiry_date, rec.local_date):
        field = "gs1" if lot.get("gs1") else "lot_id" if lot.get("lot_id") else "expiry_date"
        # A stored lot named by id conflicts (409); an expiry the request gives is refused (422).
        error = Conflict if field == "lot_id" else Invalid
        raise error(
            f"lot {found.lot_number} expired on {found.expiry_date}; it cannot be received",
            field=field,
        )
    movement = _movement(
        rules.RECEIPT,
        store_id,
        rec,
        supplier=supplier,
        note=note,
        vvm_stage=vvm_stage,
        freeze_indicator=freeze_indicator,
        logger_alarm=logger_alarm,
    )
    return _post(uow, movement, [Change(unit_id, found.id, doses, vvm_stage=vvm_stage)], rec)


def _in_transit_shipment(uow: UnitOfWork, shipment_id: int, store_id: int) -> Shipment:
    shipment = (
        uow.session.get(Shipment, shipment_id, with_for_update=is_postgres(uow.session))
        if 0 < shipment_id < 2**31
        else None
    )
    if shipment is None:
        raise NotFound(f"no shipment with id {shipment_id}", field="shipment_id")
    if shipment.to_store_id != store_id:
        raise Conflict(
            f"shipment {shipment_id} goes to store {shipment.to_store_id}", field="shipment_id"
        )
    if shipment.status != "in_transit":
        raise Conflict(f"shipment {shipment_id} is {shipment.status}", field="shipment_id")
    return shipment


def _received_doses(line: ShipmentLine, reported: dict[int, dict[str, Any]], on: dt.date) -> int:
    report = reported.get(line.lot_id, {})
    received: int = report.get("doses_received", line.doses_issued)
    # Against the stored shipment line and lot (409); a short line without a reason is 422.
    if not 0 <= received <= line.doses_issued:
        raise Conflict(
            f"between 0 and {line.doses_issued} doses of lot {line.lot_id} can be received",
            field="lines",
        )
    if received < line.doses_issued and report.get("reason") not in rules.SHORT_RECEIPT_REASONS:
        raise Invalid(
            f"a short receipt needs a reason: {', '.join(rules.SHORT_RECEIPT_REASONS)}",
            field="lines",
        )
    expired = rules.is_expired(line.lot.expiry_date, on)
    if received and expired:
        raise Conflict(
            f"lot {line.lot.lot_number} expired on {line.lot.expiry_date}; receive 0 doses "
            "with reason 'expired'",
            field="lines",
        )
    if report.get("reason") == "expired" and received < line.doses_issued and not expired:
        raise Conflict(
            f"lot {line.lot.lot_number} expires on {line.lot.expiry_date}; it has not expired",
            field="lines",
        )
    line.doses_received, line.difference_reason = (
        received,
        report.get("reason") if received < line.doses_issued else None,
    )
    return received


def receive_shipment(
    uow: UnitOfWork,
    *,
    store_id: int,
    unit_id: int,
    shipment_id: int,
    rec: Recorded,
    lines: Sequence[dict[str, Any]] = (),
    note: str | None = None,
    vvm_stage: int | None = None,
    freeze_indicator: str | None = None,
    logger_alarm: bool | None = None,
) -> Movement:
    """Receive a parent's issue into a unit; lines report short or damaged doses with a reason.

    A VVM stage seen on arrival raises the lots' stage (it never goes back: VVMs are cumulative).
    """
    _check_client_id_free(uow, rec.client_id)
    catalog.unit_of_store(uow, unit_id, store_id)
    shipment = _in_transit_shipment(uow, shipment_id, store_id)
    if rec.occurred_at < shipment.issued_at:
        raise Conflict("a shipment cannot be received before it was issued", field="occurred_at")
    reported = {line["lot_id"]: line for line in lines}
    unknown = set(reported) - {line.lot_id for line in shipment.lines}
    if unknown:
        raise Conflict(f"lots {sorted(unknown)} are not in shipment {shipment_id}", field="lines")
    changes = [
        Change(
            unit_id,
            line.lot_id,
            _received_doses(line, reported, rec.local_date),
            vvm_stage=max(line.vvm_stage, vvm_stage or 1),
        )
        for line in shipment.lines
    ]
    shipment.status, shipment.received_at = "received", rec.occurred_at
    movement = _movement(
        rules.RECEIPT,
        store_id,
        rec,
        other_store_id=shipment.from_store_id,
        shipment_id=shipment.id,
        note=note,
        vvm_stage=vvm_stage,
        freeze_indicator=freeze_indicator,
        logger_alarm=logger_alarm,
    )
    _post(uow, movement, changes, rec)
    # Vaccines in transit (issue 18): doses a carrier's alarm held arrive held, with a review.
    from logistics.services import transit

    transit.after_receipt(uow, shipment, rec.recorded_at)
    return movement


# --- issues ------------------------------------------------------------------------------------


def _child_store(uow: UnitOfWork, store_id: int, to_store_id: int) -> Store:
    catalog.get_store(uow, store_id)
    child = catalog.get_store(uow, to_store_id, "to_store_id")
    if child.parent_id != store_id:
        # 409: the stored network refuses it (which store sits under which).
        raise Conflict(
            f"store {to_store_id} is not a child of store {store_id}", field="to_store_id"
        )
    return child


def _candidates(
    uow: UnitOfWork, store_id: int, product_id: int | None, lot_id: int | None, unit_id: int | None
) -> list[StockBalance]:
    """The store's balances an issue may draw on, locked in (unit, lot) order."""
    query = (
        select(StockBalance)
        .join(Lot, Lot.id == StockBalance.lot_id)
        .where(StockBalance.store_id == store_id, StockBalance.doses > 0)
        .order_by(StockBalance.unit_id, StockBalance.lot_id)
    )
    if product_id is not None:
        query = query.where(Lot.product_id == product_id)
    if lot_id is not None:
        query = query.where(StockBalance.lot_id == lot_id)
    if unit_id is not None:
        query = query.where(StockBalance.unit_id == unit_id)
    if is_postgres(uow.session):
        query = query.with_for_update(of=StockBalance)
    return list(uow.session.scalars(query.execution_options(populate_existing=True)).unique())


def _issue_target(uow: UnitOfWork, product_id: int | None, lot_id: int | None) -> None:
    if lot_id is not None:
        lot = catalog.get_lot(uow, lot_id)
        if product_id is not None and lot.product_id != product_id:
            # 409: the stored lot's product refuses it, not the request's form.
            raise Conflict(f"lot {lot_id} is not of product {product_id}", field="lot_id")
    elif product_id is not None:
        catalog.get_product(uow, product_id)
    else:
        raise Invalid("name the product (FEFO) or the lot to issue", field="product_id")


def issue_stock(
    uow: UnitOfWork,
    *,
    store_id: int,
    to_store_id: int,
    doses: int,
    rec: Recorded,
    product_id: int | None = None,
    lot_id: int | None = None,
    unit_id: int | None = None,
    note: str | None = None,
) -> Movement:
    """Issue doses to a child store, FEFO unless a lot is named; in transit until received."""
    _check_client_id_free(uow, rec.client_id)
    _child_store(uow, store_id, to_store_id)
    _positive(doses)
    _issue_target(uow, product_id, lot_id)
    if unit_id is not None:
        catalog.unit_of_store(uow, unit_id, store_id)
    balances = _candidates(uow, store_id, product_id, lot_id, unit_id)
    held = recalled.recalled_lots(uow.session, store_id, {b.lot_id for b in balances})
    allocations = rules.fefo_allocate(
        [lot_stock(b, b.lot_id in held) for b in balances], doses, rec.local_date
    )
    stages = {(b.unit_id, b.lot_id): b.vvm_stage for b in balances}
    shipment = Shipment(from_store_id=store_id, to_store_id=to_store_id, issued_at=rec.occurred_at)
    for lot_id_, group in _by_lot(allocations).items():
        stage = max(stages[(a.unit_id, a.lot_id)] for a in group)
        shipment.lines.append(
            ShipmentLine(lot_id=lot_id_, doses_issued=sum(a.doses for a in group), vvm_stage=stage)
        )
    uow.session.add(shipment)
    uow.session.flush()
    movement = _movement(
        rules.ISSUE, store_id, rec, other_store_id=to_store_id, shipment_id=shipment.id, note=note
    )
    changes = [Change(a.unit_id, a.lot_id, -a.doses, usable_only=True) for a in allocations]
    return _post(uow, movement, changes, rec)


def _by_lot(allocations: Sequence[rules.Allocation]) -> dict[int, list[rules.Allocation]]:
    grouped: dict[int, list[rules.Allocation]] = {}
    for allocation in allocations:
        grouped.setdefault(allocation.lot_id, []).append(allocation)
    return grouped


# --- movements inside a store ------------------------------------------------------------------


def transfer_stock(
    uow: UnitOfWork,
    *,
    store_id: int,
    from_unit_id: int,
    to_unit_id: int,
    lot_id: int,
    doses: int,
    rec: Recorded,
    note: str | None = None,
) -> Movement:
    """Move usable doses of a lot between two units of one store."""
    _check_client_id_free(uow, rec.client_id)
    catalog.get_store(uow, store_id)
    catalog.unit_of_store(uow, from_unit_id, store_id, "from_unit_id")
    catalog.unit_of_store(uow, to_unit_id, store_id, "to_unit_id")
    if from_unit_id == to_unit_id:
        raise Invalid("a transfer needs two different units", field="to_unit_id")
    catalog.get_lot(uow, lot_id)
    _positive(doses)
    # Lock both rows in (unit, lot) order, as _post does, so opposite transfers cannot deadlock.
    locked = {
        unit: _lock_balance(uow.session, store_id, unit, lot_id, rec.recorded_at)
        for unit in sorted((from_unit_id, to_unit_id))
    }
    source = locked[from_unit_id]
    changes = [
        Change(from_unit_id, lot_id, -doses, usable_only=True),
        Change(to_unit_id, lot_id, doses, vvm_stage=source.vvm_stage),
    ]
    return _post(uow, _movement(rules.TRANSFER, store_id, rec, note=note), changes, rec)


def _new_at_unit_and_lot(
    uow: UnitOfWork, client_id: str, store_id: int, unit_id: int, lot_id: int
) -> None:
    """Check the client id is new (as _check_client_id_free), then that the store, its unit and
    the lot exist: one statement of ids when the ids fit (the hot path: no rows become objects),
    the catalog's own look-ups (and their errors) when one does not exist."""
    ids = (store_id, unit_id, lot_id)
    if not all(0 < ident < 2**31 for ident in ids):
        _check_client_id_free(uow, client_id)
    else:
        _take_sqlite_write_lock(uow.session)
        params = {"client_id": client_id, "store_id": store_id, "unit_id": unit_id}
        taken, found = (
            uow.session.connection()
            .execute(_CLIENT_ID_UNIT_AND_LOT, {**params, "lot_id": lot_id})
            .one()
        )
        if taken is not None:
            raise _client_id_taken(client_id)
        if found is not None:
            return
    catalog.get_store(uow, store_id)
    catalog.unit_of_store(uow, unit_id, store_id)
    catalog.get_lot(uow, lot_id)


# Built once: the movement of the client id, and the unit of the store with the lot (catalog
# rows, not written by movements).
_CLIENT_ID_UNIT_AND_LOT = select(
    _MOVEMENT_OF_CLIENT_ID.scalar_subquery(),
    select(StorageUnit.id)
    .join(Store, Store.id == StorageUnit.store_id)
    .join(Lot, Lot.id == bindparam("lot_id"))
    .where(StorageUnit.id == bindparam("unit_id"), Store.id == bindparam("store_id"))
    .scalar_subquery(),
)


def record_consumption(
    uow: UnitOfWork,
    *,
    store_id: int,
    unit_id: int,
    lot_id: int,
    doses: int,
    actor: str,
    occurred_at: dt.datetime | None = None,
    client_id: str | None = None,
    note: str | None = None,
    site_timezone: str = "UTC",
) -> Movement:
    """Record doses given from a unit's usable stock (the edge commits)."""
    rec = recorded(actor, occurred_at, client_id, site_timezone)
    _new_at_unit_and_lot(uow, rec.client_id, store_id, unit_id, lot_id)
    _positive(doses)
    movement = _movement(rules.CONSUMPTION, store_id, rec, note=note)
    return _post(uow, movement, [Change(unit_id, lot_id, -doses, usable_only=True)], rec)


def record_wastage(
    uow: UnitOfWork,
    *,
    store_id: int,
    unit_id: int,
    lot_id: int,
    doses: int,
    reason: str,
    actor: str,
    occurred_at: dt.datetime | None = None,
    client_id: str | None = None,
    note: str | None = None,
    from_quarantine: bool = False,
) -> Movement:
    """Record discarded doses with a reason (the edge commits).

    With `from_quarantine=True` (a quarantine review ending in discard) the doses come out of the
    held doses; otherwise out of the unit's stock, the hold shrinking only if fewer doses remain.
    """
    if reason not in rules.WASTAGE_REASONS:
        raise Invalid(f"reason must be one of {', '.join(rules.WASTAGE_REASONS)}", field="reason")
    rec = recorded(actor, occurred_at, client_id)
    _new_at_unit_and_lot(uow, rec.client_id, store_id, unit_id, lot_id)
    _positive(doses)
    movement = _movement(rules.WASTAGE, store_id, rec, reason=reason, note=note)
    change = Change(unit_id, lot_id, -doses, from_quarantine=from_quarantine)
    return _post(uow, movement, [change], rec)


def record_count(
    uow: UnitOfWork,
    *,
    store_id: int,
    unit_id: int,
    lot_id: int,
    counted_doses: int,
    rec: Recorded,
    note: str | None = None,
) -> Movement:
    """Record a physical count: the balance as of its time becomes what was counted."""
    _new_at_unit_and_lot(uow, rec.client_id, store_id, unit_id, lot_id)
    balance = _lock_balance(uow.session, store_id, unit_id, lot_id, rec.recorded_at)
    later = later_changes(uow.session, unit_id, lot_id, rec.occurred_at)
    difference = rules.count_difference(counted_doses, balance.doses, later)
    movement = _movement(rules.COUNT, store_id, rec, counted_doses=counted_doses, note=note)
    return _post(uow, movement, [Change(unit_id, lot_id, difference)], rec)


# --- reversals ---------------------------------------------------------------------------------


def _reopen_or_cancel(uow: UnitOfWork, original: Movement) -> None:
    if original.shipment_id is None:
        return
    # Locked like receive_shipment does, so a receipt and this reversal cannot both succeed.
    shipment = uow.session.get(
        Shipment,
        original.shipment_id,
        populate_existing=True,
        with_for_update=is_postgres(uow.session),
    )
    assert shipment is not None  # the movement's foreign key keeps its shipment
    if original.kind == rules.ISSUE:
        if shipment.status != "in_transit":
            raise Conflict(
                f"shipment {shipment.id} is {shipment.status}; reverse its receipt first",
                field="movement_id",
            )
        shipment.status = "cancelled"
        return
    shipment.status, shipment.received_at = "in_transit", None
    for line in shipment.lines:
        line.doses_received, line.difference_reason = None, None


def reverse_movement(
    uow: UnitOfWork,
    *,
    movement_id: int,
    actor: str,
    client_id: str | None,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Movement:
    """Correct a mistake: add a movement that undoes every entry of the original, at its time."""
    _take_sqlite_write_lock(uow.session)
    original = get_or_404(
        uow,
        Movement,
        movement_id,
        f"no movement with id {movement_id}",
        field="movement_id",
        max_id=MAX_BIG_ID,
    )
    if original.kind == rules.REVERSAL:
        raise Conflict("a reversal cannot be reversed; record a new movement", field="movement_id")
    if (
        uow.session.scalar(select(Movement.id).where(Movement.reverses_id == movement_id))
        is not None
    ):
        raise Conflict(f"movement {movement_id} is already reversed", field="movement_id")
    rec = recorded(actor, original.occurred_at, client_id, now=now)
    _check_client_id_free(uow, rec.client_id)
    _reopen_or_cancel(uow, original)
    movement = _movement(
        rules.REVERSAL,
        original.store_id,
        rec,
        reverses_id=original.id,
        other_store_id=original.other_store_id,
        shipment_id=original.shipment_id,
        reason=(reason or "")[:40] or None,
    )
    # A review's discard reversed: the doses come back held, its review pending again.
    held = original.kind == rules.WASTAGE and holds.reopen_discarded(
        uow.session, original.client_id, -sum(e.doses for e in original.entries), rec.recorded_at
    )
    changes = [
        Change(e.unit_id, e.lot_id, -e.doses, from_quarantine=held) for e in original.entries
    ]
    return _post(uow, movement, changes, rec)


# --- reads -------------------------------------------------------------------------------------


def get_movement(uow: UnitOfWork, movement_id: int) -> Movement:
    """One movement with its entries."""
    movement = get_or_404(
        uow,
        Movement,
        movement_id,
        f"no movement with id {movement_id}",
        field="movement_id",
        max_id=MAX_BIG_ID,
    )
    return movement


def list_movements(
    uow: UnitOfWork,
    *,
    store_id: int | None = None,
    lot_id: int | None = None,
    kind: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Movement]:
    """Movements, newest first, optionally of one store, one lot or one kind.

    A page (keyset on the id: `before_id`) reads only its rows however long the ledger; a lot's
    page walks that lot's entries newest first (index on lot and movement, issue 17).
    """
    movement_id = Movement.id if lot_id is None else LedgerEntry.movement_id
    # The keyset bound on the column the index walks (the planner carries only equalities over).
    query = select(movement_id).order_by(movement_id.desc()).limit(limit)
    if lot_id is not None:
        # DISTINCT: a transfer has two entries of its lot.
        query = query.where(LedgerEntry.lot_id == lot_id).distinct()
        if store_id is not None or kind is not None:
            query = query.join(Movement, Movement.id == LedgerEntry.movement_id)
    if store_id is not None:
        query = query.where(Movement.store_id == store_id)
    if kind is not None:
        query = query.where(Movement.kind == kind)
    if before_id is not None:
        query = query.where(movement_id < before_id)
    page = (
        select(Movement)
        .where(Movement.id.in_(list(uow.session.scalars(query))))
        .options(selectinload(Movement.entries), selectinload(Movement.shipment))
        .order_by(Movement.id.desc())
    )
    return list(uow.session.scalars(page))


@dataclasses.dataclass(frozen=True, slots=True)
class MovementLine:
    """A movement as a store's table of recent movements shows it: its entries' doses summed."""

    id: int
    occurred_at: dt.datetime
    kind: str
    doses: int
    actor: str
    reason: str | None


_NEWEST_MOVEMENTS = (
    select(Movement.id)
    .where(Movement.store_id == bindparam("store_id"))
    .order_by(Movement.id.desc())
    .limit(bindparam("limit"))
    .subquery()
)
_MOVEMENT_LINE = (Movement.id, Movement.occurred_at, Movement.kind, Movement.actor, Movement.reason)
# Built once: a store page shows it on every request, and building it cost more than running it.
_RECENT_MOVEMENTS = (
    select(*_MOVEMENT_LINE, func.coalesce(func.sum(LedgerEntry.doses), 0))
    .join(_NEWEST_MOVEMENTS, _NEWEST_MOVEMENTS.c.id == Movement.id)
    .outerjoin(LedgerEntry, LedgerEntry.movement_id == Movement.id)
    .group_by(*_MOVEMENT_LINE)
    .order_by(Movement.id.desc())
)


def recent_movements(uow: UnitOfWork, *, store_id: int, limit: int) -> list[MovementLine]:
    """A store's latest movements, newest first, each with the doses its entries add up to.

    One statement for a page's table (list_movements loads each movement with its entries and
    shipment, for the API: four statements).
    """
    found = uow.session.execute(_RECENT_MOVEMENTS, {"store_id": store_id, "limit": limit})
    return [
        MovementLine(movement_id, occurred_at, kind, int(doses), actor, reason)
        for movement_id, occurred_at, kind, actor, reason, doses in found
    ]


def get_balance(uow: UnitOfWork, *, unit_id: int, lot_id: int) -> StockBalance:
    """The balance of a lot in a unit: one row by its unique key, however long the ledger."""
    query = select(StockBalance).where(
        StockBalance.unit_id == unit_id, StockBalance.lot_id == lot_id
    )
    balance = uow.session.scalars(query).first()
    if balance is None:
        unit, lot = catalog.get_unit(uow, unit_id), catalog.get_lot(uow, lot_id)
        return StockBalance(
            store_id=unit.store_id,
            unit_id=unit_id,
            lot_id=lot_id,
            doses=0,
            quarantined_doses=0,
            vvm_stage=1,
            updated_at=None,
            lot=lot,
        )
    return balance


def store_balances(uow: UnitOfWork, store_id: int) -> list[StockBalance]:
    """Every non-empty balance of a store (with lot and product loaded), e.g. for usable doses:
    `rules.usable_doses(LotStock(...), on)`, i.e. doses - quarantined_doses of usable lots."""
    query = (
        select(StockBalance)
        .where(StockBalance.store_id == store_id, StockBalance.doses > 0)
        .order_by(StockBalance.unit_id, StockBalance.lot_id)
    )
    return list(uow.session.scalars(query))


def list_shipments(
    uow: UnitOfWork, *, store_id: int | None = None, status: str | None = None
) -> list[Shipment]:
    """Shipments to or from a store, optionally by status, newest first."""
    query = select(Shipment).order_by(Shipment.id.desc()).limit(500)
    if store_id is not None:
        query = query.where(
            (Shipment.to_store_id == store_id) | (Shipment.from_store_id == store_id)
        )
    if status is not None:
        query = query.where(Shipment.status == status)
    return list(uow.session.scalars(query))


_COMING_TO = (
    select(Shipment)
    .where(Shipment.to_store_id == bindparam("store_id"), Shipment.status == "in_transit")
    .options(selectinload(Shipment.lines).joinedload(ShipmentLine.lot))
    .order_by(Shipment.id.desc())
    .limit(bindparam("limit"))
)


def shipments_coming_to(uow: UnitOfWork, store_id: int, limit: int = 500) -> list[Shipment]:
    """Shipments in transit to one store, newest first, with their lines and lots (what its
    receive form offers; not the store's own issues on their way out)."""
    return list(uow.session.scalars(_COMING_TO, {"store_id": store_id, "limit": limit}))


def get_shipment(uow: UnitOfWork, shipment_id: int) -> Shipment:
    """One shipment with its lines."""
    shipment = get_or_404(
        uow, Shipment, shipment_id, f"no shipment with id {shipment_id}", field="shipment_id"
    )
    return shipment


def ledger_sums(uow: UnitOfWork) -> dict[tuple[int, int], int]:
    """Sum of ledger entries per (unit, lot): equals the stored balances (checked by tests)."""
    query = select(LedgerEntry.unit_id, LedgerEntry.lot_id, func.sum(LedgerEntry.doses)).group_by(
        LedgerEntry.unit_id, LedgerEntry.lot_id
    )
    return {(unit, lot): int(total) for unit, lot, total in uow.session.execute(query).all()}


def _in_transit_to(subtree: bool) -> Any:
    query = select(Shipment).where(Shipment.status == "in_transit")
    if subtree:
        query = query.join(Store, Store.id == Shipment.to_store_id).where(
            in_bound_subtree(Store.path)
        )
    return query.order_by(Shipment.issued_at, Shipment.id).limit(bindparam("limit"))


# Built once, for a subtree and for everywhere: every home page shows them.
_IN_TRANSIT_TO = {True: _in_transit_to(True), False: _in_transit_to(False)}


def shipments_in_transit_to(
    uow: UnitOfWork, *, store_path: str | None, limit: int = 100
) -> list[Shipment]:
    """Shipments on their way to the stores of a subtree (None: everywhere), oldest first."""
    params = {"limit": limit, **subtree_params(store_path)}
    return list(uow.session.scalars(_IN_TRANSIT_TO[store_path is not None], params))


def fefo_suggestion(
    uow: UnitOfWork, *, store_id: int, product_id: int, doses: int, on: dt.date
) -> list[rules.Allocation]:
    """The lots an issue of this product would take now (FEFO), read without locking anything.

    Raises InsufficientStock, with the usable doses, when the store cannot cover the doses.
    """
    query = (
        select(StockBalance)
        .join(Lot, Lot.id == StockBalance.lot_id)
        .where(
            StockBalance.store_id == store_id, StockBalance.doses > 0, Lot.product_id == product_id
        )
        .order_by(StockBalance.unit_id, StockBalance.lot_id)
    )
    return rules.fefo_allocate([lot_stock(b) for b in uow.session.scalars(query)], doses, on)


def is_recorded(uow: UnitOfWork, client_id: str) -> bool:
    """Tell whether a movement with this client id is recorded (client ids stay unique for ever,
    while the idempotency records that replay an answer are forgotten after idempotency.ttl_s)."""
    found = uow.session.scalar(select(Movement.id).where(Movement.client_id == client_id))
    return found is not None
