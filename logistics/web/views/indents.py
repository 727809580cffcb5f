"""Indents (issue 19): a store asks its parent for doses with the suggested quantity shown; the
parent approves (possibly fewer, with a reason) or rejects, ships through the ledger's issue; the
store receives through its receipt. Each form is authorised as its API endpoint and calls the same
service (logistics.services.indents); which forms show follows the states' own table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import get_flashed_messages, render_template, request, url_for
from flask_babel import gettext as _

from logistics.api.context import settings
from logistics.db import UnitOfWork
from logistics.domain import indents as rules
from logistics.domain.errors import DomainError
from logistics.models.paperwork import Indent
from logistics.services import catalog, indents
from logistics.web import access
from logistics.web.blueprint import web
from logistics.web.forms import Form, FormState, field_errors
from logistics.web.i18n import number
from logistics.web.paperforms import allowed, done, record

# The indent's forms: the state each leads to, and the API endpoint it stands for.
ACTIONS = {
    "approve": (rules.APPROVED, "indents.IndentApprove"),
    "reject": (rules.REJECTED, "indents.IndentReject"),
    "ship": (rules.SHIPPED, "indents.IndentShip"),
    "receive": (rules.RECEIVED, "indents.IndentReceive"),
    "cancel": (rules.CANCELLED, "indents.IndentCancel"),
}


def _plan() -> indents.Planning:
    config = settings()
    return indents.Planning(
        config.indents_supply_period_days,
        config.ledger_consumption_window_days,
        config.site_timezone,
    )


# --- a store's indents and the form to raise one ------------------------------------------------


def _store_page(store_id: int, form: FormState | None = None, status: int = 200) -> Any:
    with access.read_uow() as uow:
        store = access.visible_store(uow, store_id)
        rows = indents.list_indents(
            uow, store_id=store_id, direction="any", state=None, limit=100, offset=0
        )
        names = {s.id: s.name for s in catalog.list_stores(uow)}
        body = render_template(
            "indents.html",
            store=store,
            indents=rows,
            names=names,
            products=catalog.list_products(uow),
            form=form or FormState(),
            may_raise=store.parent_id is not None
            and allowed("indents.Indents", {"from_store_id": store_id}),
            notices=get_flashed_messages(),
        )
        return body, status


@web.route("/stores/<int:store_id>/indents")
def store_indents(store_id: int) -> Any:
    """The indents a store raised and was asked, and the form to ask its parent."""
    return _store_page(store_id)


@web.route("/stores/<int:store_id>/indents/suggestion")
def indent_suggestion(store_id: int) -> Any:
    """The suggested quantity for a product and date, with its working (htmx swaps it in)."""
    form = Form(request.args)
    product_id = form.integer("product_id", maximum=2**31 - 1)
    needed_by = form.day("needed_by")
    result, error = None, None
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
        if not form.errors:
            try:
                needs, suggestion = indents.suggest_indent(
                    uow,
                    store_id=store_id,
                    product_id=product_id,
                    needed_by=needed_by,
                    plan=_plan(),
                    now=access.now(),
                )
                result = {"needs": needs, "suggestion": suggestion}
            except DomainError as exc:
                error = next(iter(field_errors(exc).values()))
        return render_template("indents/_suggestion.html", result=result, error=error)


@web.route("/stores/<int:store_id>/indents", methods=["POST"])
def raise_indent(store_id: int) -> Any:
    """Ask the parent store for doses (the API's POST /api/indents)."""
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
    form = Form()
    product_id = form.integer("product_id", maximum=2**31 - 1)
    needed_by = form.day("needed_by")
    doses = form.integer("doses", required=False)
    note = form.text("note")
    form.client_id()
    if not form.errors:

        def action(uow: UnitOfWork) -> str:
            indent = indents.raise_indent(
                uow,
                from_store_id=store_id,
                product_id=product_id,
                needed_by=needed_by,
                doses=doses,
                note=note,
                actor=access.principal().username,
                plan=_plan(),
                now=access.now(),
            )
            uow.commit()
            return _(
                "Indent %(id)s raised for %(doses)s doses.",
                id=indent.id,
                doses=number(indent.doses_requested),
            )

        message = record(
            form, "indents.Indents", {"from_store_id": store_id}, action, hidden=("from_store_id",)
        )
        if message:
            return done(message, url_for("web.store_indents", store_id=store_id))
    return _store_page(store_id, form.state(), 422)


# --- one indent: its trail and the forms its state allows ---------------------------------------


def _visible_indent(uow: UnitOfWork, indent_id: int) -> Indent:
    indent = indents.get_indent(uow, indent_id)
    # The raising store is a child of the store asked: whoever sees either sees the child.
    access.visible_store(uow, indent.from_store_id)
    return indent


def _open_actions(indent: Indent, from_units: list[Any]) -> list[str]:
    """The forms to show: a next state of the indent that the user's roles allow.

    A receipt names a unit of the requesting store: the check asks about its first unit.
    """
    values = {"indent_id": indent.id, "unit_id": from_units[0].id if from_units else None}
    return [
        name
        for name, (state, endpoint) in ACTIONS.items()
        if state in rules.NEXT_STATES[indent.state] and allowed(endpoint, values)
    ]


def _indent_page(
    indent_id: int, forms: dict[str, FormState] | None = None, status: int = 200
) -> Any:
    with access.read_uow() as uow:
        indent = _visible_indent(uow, indent_id)
        from_store = catalog.get_store(uow, indent.from_store_id)
        to_store = catalog.get_store(uow, indent.to_store_id)
        from_units = catalog.list_units(uow, store_id=indent.from_store_id)
        body = render_template(
            "indent.html",
            indent=indent,
            from_store=from_store,
            to_store=to_store,
            product=catalog.get_product(uow, indent.product_id),
            actions=_open_actions(indent, from_units),
            from_units=from_units,
            to_units=catalog.list_units(uow, store_id=indent.to_store_id),
            forms={name: (forms or {}).get(name) or FormState() for name in ACTIONS},
            notices=get_flashed_messages(),
        )
        return body, status


@web.route("/indents/<int:indent_id>")
def indent(indent_id: int) -> Any:
    """One indent: what was asked, the decision, the shipment, and the trail of its states."""
    return _indent_page(indent_id)


Handler = Callable[[UnitOfWork], str]


def _approve(form: Form, indent_id: int, actor: str, now: dt.datetime) -> Handler | None:
    doses, reason = form.integer("doses", required=False), form.text("reason")

    def action(uow: UnitOfWork) -> str:
        found = indents.approve_indent(
            uow, indent_id=indent_id, doses=doses, reason=reason, actor=actor, now=now
        )
        uow.commit()
        return _("Indent approved for %(doses)s doses.", doses=number(found.doses_approved))

    return None if form.errors else action


def _reject(form: Form, indent_id: int, actor: str, now: dt.datetime) -> Handler | None:
    reason = form.text("reason", required=True)

    def action(uow: UnitOfWork) -> str:
        indents.reject_indent(uow, indent_id=indent_id, reason=reason or "", actor=actor, now=now)
        uow.commit()
        return _("Indent rejected.")

    return None if form.errors else action


def _cancel(form: Form, indent_id: int, actor: str, now: dt.datetime) -> Handler | None:
    reason = form.text("reason")

    def action(uow: UnitOfWork) -> str:
        indents.cancel_indent(uow, indent_id=indent_id, reason=reason, actor=actor, now=now)
        uow.commit()
        return _("Indent cancelled.")

    return None if form.errors else action


def _ship(form: Form, indent_id: int, actor: str, now: dt.datetime) -> Handler | None:
    unit_id, client_id = form.integer("unit_id", required=False), form.client_id()

    def action(uow: UnitOfWork) -> str:
        found = indents.ship_indent(
            uow,
            indent_id=indent_id,
            client_id=client_id or "",
            unit_id=unit_id,
            actor=actor,
            now=now,
            timezone=settings().site_timezone,
        )
        uow.commit()
        return _("Shipped: shipment %(id)s is in transit until received.", id=found.shipment_id)

    return None if form.errors else action


def _receive(form: Form, indent_id: int, actor: str, now: dt.datetime) -> Handler | None:
    unit_id, client_id = form.integer("unit_id"), form.client_id()

    def action(uow: UnitOfWork) -> str:
        indents.receive_indent(
            uow,
            indent_id=indent_id,
            unit_id=unit_id or 0,
            client_id=client_id or "",
            actor=actor,
            now=now,
            timezone=settings().site_timezone,
        )
        uow.commit()
        return _("Received into the store.")

    return None if form.errors else action


HANDLERS = {
    "approve": _approve,
    "reject": _reject,
    "cancel": _cancel,
    "ship": _ship,
    "receive": _receive,
}


@web.route("/indents/<int:indent_id>/<name>", methods=["POST"])
def indent_action(indent_id: int, name: str) -> Any:
    """Answer, ship, receive or cancel an indent (each the API endpoint of the same name)."""
    if name not in HANDLERS:
        return _indent_page(indent_id, status=404)
    with access.read_uow() as uow:
        _visible_indent(uow, indent_id)
    form = Form()
    form.client_id()
    action = HANDLERS[name](form, indent_id, access.principal().username, access.now())
    if action is not None and not form.errors:
        # The unit a shipment or receipt names is checked too (its own, unrecorded reading).
        values = {
            "indent_id": indent_id,
            "unit_id": Form().integer("unit_id", required=False, maximum=2**31 - 1),
        }
        message = record(form, ACTIONS[name][1], values, action, hidden=("indent_id", "state"))
        if message:
            return done(message, url_for("web.indent", indent_id=indent_id))
    return _indent_page(indent_id, {name: form.state()}, 422)
