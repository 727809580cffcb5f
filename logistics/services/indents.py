"""Use cases of indents: a store asks its parent for doses; the parent approves or rejects; an
approved indent is shipped through the ledger's issue and received through its receipt.

Every change of state adds an IndentEvent (who, when, what was said) in the same transaction; the
audit log records the rows as well when the change comes through the API. Shipping calls
logistics.services.stock.issue_stock and receiving calls receive_shipment: the ledger is only
ever written through its own use cases. A shipment received through /api/receipts, or an issue
reversed, is noticed by `sync_shipments` (the scheduler's indents job, and before each change).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import object_session

from logistics.clock import local_date
from logistics.db import UnitOfWork, is_postgres
from logistics.domain import indents as rules
from logistics.domain import stock as stock_rules
from logistics.domain.alerts import level_in_doses
from logistics.domain.errors import Conflict, Invalid, NotFound
from logistics.domain.ids import MAX_ID
from logistics.models.alerts import StockLevel
from logistics.models.catalog import Store
from logistics.models.paperwork import Indent, IndentEvent
from logistics.models.stock import Shipment
from logistics.services import catalog, commitments, sessions, stock
from logistics.services.alerts import SYSTEM_ACTOR, Condition, sync_conditions
from logistics.services.lookup import get_or_404

UNANSWERED_KIND = "indent_unanswered"


@dataclasses.dataclass(frozen=True)
class Planning:
    """How far ahead an indent plans: the supply period and the consumption window."""

    period_days: int
    window_days: int
    timezone: str


def _usable_on_hand(uow: UnitOfWork, store_id: int, product_id: int, on: dt.date) -> int:
    return sum(
        stock_rules.usable_doses(stock.lot_stock(b), on)
        for b in stock.store_balances(uow, store_id)
        if b.lot.product_id == product_id
    )


def _max_level(uow: UnitOfWork, store_id: int, product_id: int) -> float | None:
    level = uow.session.scalars(
        select(StockLevel).where(
            StockLevel.store_id == store_id, StockLevel.product_id == product_id
        )
    ).first()
    if level is None:
        return None
    return level_in_doses(level.max_value, level.basis, level.daily_consumption_doses)


def _session_doses(
    uow: UnitOfWork, store_id: int, product_id: int, start: dt.date, end: dt.date
) -> int:
    """Capacity of the open sessions planned on [start, end)."""
    return sum(
        p.doses for p in commitments.promises(uow, store_id, product_id) if start <= p.on_date < end
    )


def needs_of(
    uow: UnitOfWork,
    *,
    store_id: int,
    product_id: int,
    needed_by: dt.date,
    plan: Planning,
    now: dt.datetime,
) -> rules.IndentNeeds:
    """What the store's ledger, sessions and levels say about its need for the product."""
    from logistics.services.reports import consumed_doses

    product = catalog.get_product(uow, product_id)
    today = local_date(now, plan.timezone)
    consumed = consumed_doses(
        uow, store_id, product_id, now - dt.timedelta(days=plan.window_days), now
    )
    period_end = needed_by + dt.timedelta(days=plan.period_days)
    return rules.IndentNeeds(
        daily_consumption_doses=stock_rules.daily_rate(consumed, plan.window_days),
        lead_days=max((needed_by - today).days, 0),
        period_days=plan.period_days,
        sessions_before_doses=_session_doses(uow, store_id, product_id, today, needed_by),
        sessions_after_doses=_session_doses(uow, store_id, product_id, needed_by, period_end),
        on_hand_doses=_usable_on_hand(uow, store_id, product_id, today),
        in_transit_doses=sessions.in_transit_doses(uow, store_id, product_id),
        max_level_doses=_max_level(uow, store_id, product_id),
        doses_per_vial=product.doses_per_vial,
    )


def _requesting_store(uow: UnitOfWork, store_id: int) -> Store:
    store = catalog.get_store(uow, store_id, "from_store_id")
    if store.parent_id is None:
        # 409: a fact of the stored network, not of the request's form.
        raise Conflict(f"store {store.code} has no parent store to ask", field="from_store_id")
    return store


def _check_needed_by(needed_by: dt.date, today: dt.date) -> None:
    if needed_by < today:
        raise Invalid("the needed-by date has passed", field="needed_by")
    if needed_by > today + dt.timedelta(days=366):
        raise Invalid("plan at most a year ahead", field="needed_by")


def suggest_indent(
    uow: UnitOfWork,
    *,
    store_id: int,
    product_id: int,
    needed_by: dt.date,
    plan: Planning,
    now: dt.datetime,
) -> tuple[rules.IndentNeeds, rules.Suggestion]:
    """The quantity a store should ask for, with what it was worked out from."""
    _requesting_store(uow, store_id)
    _check_needed_by(needed_by, local_date(now, plan.timezone))
    needs = needs_of(
        uow, store_id=store_id, product_id=product_id, needed_by=needed_by, plan=plan, now=now
    )
    return needs, rules.suggest(needs)


def _event(
    indent: Indent,
    state: str,
    actor: str,
    now: dt.datetime,
    comment: str | None = None,
    doses: int | None = None,
) -> None:
    """Add a step to the indent's trail and move it to `state`.

    Loading the trail must not flush the indent's other changes early: the whole change of
    state is one UPDATE (one audit entry) at commit.
    """
    session = object_session(indent)
    with session.no_autoflush if session is not None else contextlib.nullcontext():
        indent.events.append(
            IndentEvent(state=state, doses=doses, actor=actor, comment=comment, at=now)
        )
    indent.state, indent.updated_at = state, now


def raise_indent(
    uow: UnitOfWork,
    *,
    from_store_id: int,
    product_id: int,
    needed_by: dt.date,
    doses: int | None,
    note: str | None,
    actor: str,
    plan: Planning,
    now: dt.datetime,
) -> Indent:
    """A store asks its parent for doses by a date (default: the suggested quantity)."""
    store = _requesting_store(uow, from_store_id)
    _, suggestion = suggest_indent(
        uow, store_id=from_store_id, product_id=product_id, needed_by=needed_by, plan=plan, now=now
    )
    doses = doses if doses is not None else suggestion.suggested_doses
    if doses <= 0:
        # 409: the suggestion comes from stored stock, consumption and sessions.
        raise Conflict("nothing to ask for: the suggestion is 0 doses; give doses", field="doses")
    indent = Indent(
        from_store_id=store.id,
        to_store_id=store.parent_id,
        product_id=product_id,
        needed_by=needed_by,
        doses_requested=doses,
        doses_suggested=suggestion.suggested_doses,
        note=note,
        requested_by=actor,
        requested_at=now,
        updated_at=now,
        state=rules.REQUESTED,
    )
    _event(indent, rules.REQUESTED, actor, now, note, doses)
    uow.session.add(indent)
    uow.session.flush()
    return indent


def _locked(uow: UnitOfWork, indent_id: int) -> Indent:
    query = select(Indent).where(Indent.id == indent_id).execution_options(populate_existing=True)
    indent = (
        uow.session.scalars(query.with_for_update() if is_postgres(uow.session) else query).first()
        if 0 < indent_id <= MAX_ID
        else None
    )
    if indent is None:
        raise NotFound(f"indent {indent_id} does not exist", field="indent_id")
    return indent


def approve_indent(
    uow: UnitOfWork,
    *,
    indent_id: int,
    doses: int | None,
    reason: str | None,
    actor: str,
    now: dt.datetime,
) -> Indent:
    """The parent approves the indent, possibly for fewer doses (then with a reason)."""
    indent = _locked(uow, indent_id)
    rules.check_transition(indent.id, indent.state, rules.APPROVED)
    approved = doses if doses is not None else indent.doses_requested
    rules.check_approval(indent.doses_requested, approved, reason)
    indent.doses_approved, indent.decision_reason = approved, reason
    indent.decided_by, indent.decided_at = actor, now
    _event(indent, rules.APPROVED, actor, now, reason, approved)
    uow.session.flush()
    return indent


def reject_indent(
    uow: UnitOfWork, *, indent_id: int, reason: str, actor: str, now: dt.datetime
) -> Indent:
    """The parent rejects the indent, saying why."""
    indent = _locked(uow, indent_id)
    rules.check_transition(indent.id, indent.state, rules.REJECTED)
    if not reason.strip():
        raise Invalid("a rejection needs a reason", field="reason")
    indent.decision_reason, indent.decided_by, indent.decided_at = reason, actor, now
    _event(indent, rules.REJECTED, actor, now, reason)
    uow.session.flush()
    return indent


def cancel_indent(
    uow: UnitOfWork, *, indent_id: int, reason: str | None, actor: str, now: dt.datetime
) -> Indent:
    """The requesting store withdraws an indent not yet shipped."""
    indent = _locked(uow, indent_id)
    rules.check_transition(indent.id, indent.state, rules.CANCELLED)
    _event(indent, rules.CANCELLED, actor, now, reason)
    uow.session.flush()
    return indent


def ship_indent(
    uow: UnitOfWork,
    *,
    indent_id: int,
    client_id: str,
    actor: str,
    now: dt.datetime,
    unit_id: int | None = None,
    timezone: str = "UTC",
) -> Indent:
    """Issue the approved doses to the requesting store through the ledger's issue (FEFO)."""
    indent = _locked(uow, indent_id)
    _sync(uow, indent, now)
    rules.check_transition(indent.id, indent.state, rules.SHIPPED)
    movement = stock.issue_stock(
        uow,
        store_id=indent.to_store_id,
        to_store_id=indent.from_store_id,
        doses=indent.doses_approved or indent.doses_requested,
        rec=stock.recorded(actor, now, client_id, timezone, now=now),
        product_id=indent.product_id,
        unit_id=unit_id,
        note=f"indent {indent.id}",
    )
    indent.shipment_id, indent.shipped_at = movement.shipment_id, now
    _event(
        indent, rules.SHIPPED, actor, now, f"shipment {movement.shipment_id}", indent.doses_approved
    )
    uow.session.flush()
    return indent


def receive_indent(
    uow: UnitOfWork,
    *,
    indent_id: int,
    unit_id: int,
    client_id: str,
    actor: str,
    now: dt.datetime,
    lines: Sequence[dict[str, Any]] = (),
    note: str | None = None,
    vvm_stage: int | None = None,
    timezone: str = "UTC",
) -> Indent:
    """The requesting store receives the indent's shipment through the ledger's receipt."""
    indent = _locked(uow, indent_id)
    _sync(uow, indent, now)
    rules.check_transition(indent.id, indent.state, rules.RECEIVED)
    stock.receive_shipment(
        uow,
        store_id=indent.from_store_id,
        unit_id=unit_id,
        shipment_id=_shipment(uow, indent).id,
        rec=stock.recorded(actor, now, client_id, timezone, now=now),
        lines=lines,
        note=note,
        vvm_stage=vvm_stage,
    )
    received = _received_doses(_shipment(uow, indent))
    indent.received_at = now
    _event(indent, rules.RECEIVED, actor, now, note, received)
    uow.session.flush()
    return indent


def _shipment(uow: UnitOfWork, indent: Indent) -> Shipment:
    """The indent's shipment, read afresh (the ledger may have received or cancelled it)."""
    shipment = uow.session.get(Shipment, indent.shipment_id, populate_existing=True)
    if shipment is None:
        raise NotFound(f"indent {indent.id} has no shipment", field="indent_id")
    return shipment


def _received_doses(shipment: Shipment) -> int:
    return sum(line.doses_received or 0 for line in shipment.lines)


def _sync(uow: UnitOfWork, indent: Indent, now: dt.datetime) -> bool:
    """Follow the shipment: received through /api/receipts, or its issue reversed."""
    if indent.state != rules.SHIPPED or indent.shipment_id is None:
        return False
    shipment = _shipment(uow, indent)
    if shipment.status == "received":
        received = _received_doses(shipment)  # loads the lines before any change is pending
        indent.received_at = shipment.received_at
        _event(
            indent, rules.RECEIVED, SYSTEM_ACTOR, now, f"shipment {shipment.id} received", received
        )
        return True
    if shipment.status == "cancelled":
        _event(
            indent,
            rules.APPROVED,
            SYSTEM_ACTOR,
            now,
            f"shipment {shipment.id} was cancelled (its issue reversed); ship again",
        )
        indent.shipment_id, indent.shipped_at = None, None
        return True
    return False


def sync_shipments(uow: UnitOfWork, now: dt.datetime) -> int:
    """Bring every shipped indent up to date with its shipment; return how many changed."""
    query = select(Indent).where(Indent.state == rules.SHIPPED).order_by(Indent.id)
    return sum(_sync(uow, indent, now) for indent in uow.session.scalars(query).all())


def check_unanswered(
    uow: UnitOfWork, *, answer_within: dt.timedelta, now: dt.datetime
) -> tuple[int, int]:
    """Alert the parent store on indents left unanswered too long; answered ones resolve."""
    query = select(Indent).where(
        Indent.state == rules.REQUESTED, Indent.requested_at <= now - answer_within
    )
    holding = [
        Condition(
            UNANSWERED_KIND,
            str(indent.id),
            indent.to_store_id,
            "warning",
            f"indent {indent.id} for {indent.doses_requested} doses, needed by "
            f"{indent.needed_by.isoformat()}, unanswered since {indent.requested_at:%Y-%m-%d %H:%M}"
            " UTC",
            {
                "indent_id": indent.id,
                "from_store_id": indent.from_store_id,
                "product_id": indent.product_id,
                "doses": indent.doses_requested,
                "needed_by": indent.needed_by.isoformat(),
            },
        )
        for indent in uow.session.scalars(query)
    ]
    return sync_conditions(
        uow,
        subject_type="indent",
        kinds=[UNANSWERED_KIND],
        subjects=None,
        holding=holding,
        now=now,
        comment="indent answered",
    )


def get_indent(uow: UnitOfWork, indent_id: int) -> Indent:
    """One indent with its trail of states."""
    indent = get_or_404(
        uow, Indent, indent_id, f"indent {indent_id} does not exist", field="indent_id"
    )
    return indent


def list_indents(
    uow: UnitOfWork,
    *,
    store_id: int | None = None,
    direction: str = "any",
    state: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Indent]:
    """Indents a store raised ("out"), was asked ("in"), or both, newest first."""
    query = select(Indent).order_by(Indent.id.desc()).limit(limit).offset(offset)
    if store_id is not None:
        catalog.get_store(uow, store_id)
        raised, asked = Indent.from_store_id == store_id, Indent.to_store_id == store_id
        query = query.where({"out": raised, "in": asked}.get(direction, raised | asked))
    if state is not None:
        query = query.where(Indent.state == state)
    return list(uow.session.scalars(query))
