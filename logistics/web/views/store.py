"""Store: stock by product, lot and unit, recent movements, and the forms of the ledger.

Each form stands for one API endpoint (named for the policy check) and calls the same service.
With htmx a form swaps itself (errors next to fields, or a fresh form and a message) and the
stock table reloads; without JavaScript the page posts, then redirects (or shows the errors).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flask import (
    flash,
    get_flashed_messages,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from logistics.api.context import settings
from logistics.clock import local_date
from logistics.db import UnitOfWork
from logistics.domain import stock as rules
from logistics.domain.errors import DomainError
from logistics.services import catalog, stock, trace
from logistics.web import access
from logistics.web.blueprint import web
from logistics.web.forms import Form, FormState, Outcome, field_errors, submit_once
from logistics.web.i18n import number

FREEZE_STATES = ("ok", "alarm", "absent")
# Movements in the store page's table, and in the table alone when htmx reloads it.
RECENT_MOVEMENTS = 15


@dataclasses.dataclass(frozen=True)
class StoreForm:
    """A form of the store page: its template, the API endpoint it stands for, its handler."""

    name: str
    endpoint: str
    handler: Callable[[Form, int], tuple[dict[str, Any], Callable[[UnitOfWork], str]] | None]


def _rec(client_id: str) -> stock.Recorded:
    return stock.recorded(
        access.principal().username, access.entry_time(), client_id, settings().site_timezone
    )


def _today() -> Any:
    return local_date(access.now(), settings().site_timezone)


# --- reading each form into the policy's values and a use case ----------------------------------


def _receipt(form: Form, store_id: int) -> Any:
    unit_id = form.integer("unit_id")
    doses = form.integer("doses")
    gs1 = form.text("gs1", max_length=200)
    lot = (
        {"gs1": gs1}
        if gs1
        else {
            "product_id": form.integer("product_id", required=False),
            "lot_number": form.text("lot_number", max_length=64),
            "expiry_date": form.day("expiry_date", required=False),
        }
    )
    lot["manufacturer"] = form.text("manufacturer", max_length=200)
    vvm = form.integer("vvm_stage", minimum=1, maximum=4, required=False) or 1
    freeze = form.choice("freeze_indicator", FREEZE_STATES, required=False)
    supplier = form.text("supplier", max_length=200)
    client_id = form.client_id()
    if form.errors:
        return None
    lot = {k: v for k, v in lot.items() if v is not None}

    def action(uow: UnitOfWork) -> str:
        movement = stock.receive_stock(
            uow,
            store_id=store_id,
            unit_id=unit_id,
            doses=doses,
            rec=_rec(client_id),
            lot=lot,
            vvm_stage=vvm,
            supplier=supplier,
            freeze_indicator=freeze,
            logger_alarm=form.data.get("logger_alarm") == "on",
        )
        lot_number = movement.entries[0].lot.lot_number
        return _(
            "Received %(doses)s doses of lot %(lot)s (movement %(id)s).",
            doses=number(doses),
            lot=lot_number,
            id=movement.id,
        )

    return {"store_id": store_id, "unit_id": unit_id}, action


def _issue(form: Form, store_id: int) -> Any:
    to_store_id = form.integer("to_store_id")
    product_id = form.integer("product_id", required=False)
    lot_id = form.integer("lot_id", required=False)
    doses = form.integer("doses")
    client_id = form.client_id()
    if form.errors:
        return None

    def action(uow: UnitOfWork) -> str:
        movement = stock.issue_stock(
            uow,
            store_id=store_id,
            to_store_id=to_store_id,
            doses=doses,
            rec=_rec(client_id),
            product_id=product_id,
            lot_id=lot_id,
        )
        return _(
            "Issued %(doses)s doses (shipment %(id)s, in transit until received).",
            doses=number(doses),
            id=movement.shipment_id,
        )

    return {"store_id": store_id, "to_store_id": to_store_id}, action


def _receive(form: Form, store_id: int) -> Any:
    shipment_id = form.integer("shipment_id")
    unit_id = form.integer("unit_id")
    client_id = form.client_id()
    lines = []
    for key in form.data:
        if key.startswith("received_"):
            lot_id = int(key.removeprefix("received_")) if key[9:].isdigit() else None
            doses = form.integer(key, minimum=0, required=False)
            reason = form.choice(f"reason_{lot_id}", rules.SHORT_RECEIPT_REASONS, required=False)
            if lot_id and doses is not None:
                lines.append(
                    {
                        "lot_id": lot_id,
                        "doses_received": doses,
                        **({"reason": reason} if reason else {}),
                    }
                )
    if form.errors:
        return None

    def action(uow: UnitOfWork) -> str:
        shipment = stock.get_shipment(uow, shipment_id)
        issued = {line.lot_id: line.doses_issued for line in shipment.lines}
        reported = [
            line
            for line in lines
            if line["doses_received"] != issued.get(line["lot_id"]) or "reason" in line
        ]
        stock.receive_shipment(
            uow,
            store_id=store_id,
            unit_id=unit_id,
            shipment_id=shipment_id,
            rec=_rec(client_id),
            lines=reported,
        )
        return _("Shipment %(id)s received.", id=shipment_id)

    return {"store_id": store_id, "unit_id": unit_id, "shipment_id": shipment_id}, action


def _transfer(form: Form, store_id: int) -> Any:
    from_unit = form.integer("from_unit_id")
    to_unit = form.integer("to_unit_id")
    lot_id = form.integer("lot_id")
    doses = form.integer("doses")
    client_id = form.client_id()
    if form.errors:
        return None

    def action(uow: UnitOfWork) -> str:
        stock.transfer_stock(
            uow,
            store_id=store_id,
            from_unit_id=from_unit,
            to_unit_id=to_unit,
            lot_id=lot_id,
            doses=doses,
            rec=_rec(client_id),
        )
        return _("Moved %(doses)s doses between units.", doses=number(doses))

    return {"store_id": store_id, "from_unit_id": from_unit, "to_unit_id": to_unit}, action


def _wastage(form: Form, store_id: int) -> Any:
    unit_id, lot_id, doses = form.integer("unit_id"), form.integer("lot_id"), form.integer("doses")
    reason = form.choice("reason", rules.WASTAGE_REASONS)
    note = form.text("note")
    client_id = form.client_id()
    if form.errors:
        return None

    def action(uow: UnitOfWork) -> str:
        stock.record_wastage(
            uow,
            store_id=store_id,
            unit_id=unit_id,
            lot_id=lot_id,
            doses=doses,
            reason=reason,
            actor=access.principal().username,
            client_id=client_id,
            note=note,
            occurred_at=access.entry_time(),
        )
        return _("Recorded %(doses)s doses wasted.", doses=number(doses))

    return {"store_id": store_id, "unit_id": unit_id}, action


def _consumption(form: Form, store_id: int) -> Any:
    unit_id, lot_id, doses = form.integer("unit_id"), form.integer("lot_id"), form.integer("doses")
    client_id = form.client_id()
    if form.errors:
        return None

    def action(uow: UnitOfWork) -> str:
        stock.record_consumption(
            uow,
            store_id=store_id,
            unit_id=unit_id,
            lot_id=lot_id,
            doses=doses,
            actor=access.principal().username,
            client_id=client_id,
            site_timezone=settings().site_timezone,
            occurred_at=access.entry_time(),
        )
        return _("Recorded %(doses)s doses given.", doses=number(doses))

    return {"store_id": store_id, "unit_id": unit_id}, action


def _count(form: Form, store_id: int) -> Any:
    unit_id, lot_id = form.integer("unit_id"), form.integer("lot_id")
    counted = form.integer("counted_doses", minimum=0)
    client_id = form.client_id()
    if form.errors:
        return None

    def action(uow: UnitOfWork) -> str:
        movement = stock.record_count(
            uow,
            store_id=store_id,
            unit_id=unit_id,
            lot_id=lot_id,
            counted_doses=counted,
            rec=_rec(client_id),
        )
        difference = sum(e.doses for e in movement.entries)
        return _(
            "Count recorded: %(counted)s doses (difference %(diff)s).",
            counted=number(counted),
            diff=number(difference),
        )

    return {"store_id": store_id, "unit_id": unit_id}, action


def _reversal(form: Form, store_id: int) -> Any:
    movement_id = form.integer("movement_id", maximum=2**62)
    reason = form.text("reason", required=True, max_length=40)
    client_id = form.client_id()
    if form.errors:
        return None

    def action(uow: UnitOfWork) -> str:
        original = stock.get_movement(uow, movement_id)
        if original.store_id != store_id:
            raise DomainError(
                _("Movement %(id)s is not of this store.", id=movement_id), field="movement_id"
            )
        stock.reverse_movement(
            uow,
            movement_id=movement_id,
            actor=access.principal().username,
            client_id=client_id,
            reason=reason,
        )
        return _("Movement %(id)s reversed.", id=movement_id)

    return {"movement_id": movement_id}, action


FORMS = {
    form.name: form
    for form in (
        StoreForm("receipt", "stock.Receipts", _receipt),
        StoreForm("issue", "stock.Issues", _issue),
        StoreForm("receive", "stock.Receipts", _receive),
        StoreForm("transfer", "stock.Transfers", _transfer),
        StoreForm("wastage", "stock.Wastages", _wastage),
        StoreForm("consumption", "stock.Consumptions", _consumption),
        StoreForm("count", "stock.Counts", _count),
        StoreForm("reversal", "stock.Reversal", _reversal),
    )
}


# --- the page ----------------------------------------------------------------------------------


def _page_data(uow: UnitOfWork, store_id: int) -> dict[str, Any]:
    store = access.visible_store(uow, store_id)
    config = settings()
    stock_view = trace.store_stock(
        uow,
        store_id,
        now=access.now(),
        window_days=config.ledger_consumption_window_days,
        site_timezone=config.site_timezone,
    )
    units = catalog.unit_rows(uow, store_id)
    incoming = stock.shipments_coming_to(uow, store_id)
    return {
        "store": store,
        "stock": stock_view,
        "units": units,
        "unit_codes": {unit.id: unit.code for unit in units},
        "children": catalog.child_store_rows(uow, store_id),
        "products": catalog.product_rows(uow),
        "lots": [lot for product in stock_view["products"] for lot in product["lots"]],
        "incoming": incoming,
        "movements": stock.recent_movements(uow, store_id=store_id, limit=RECENT_MOVEMENTS),
        "reasons": rules.WASTAGE_REASONS,
        "short_reasons": rules.SHORT_RECEIPT_REASONS,
        "freeze_states": FREEZE_STATES,
    }


def _render(store_id: int, states: dict[str, FormState] | None = None, status: int = 200) -> Any:
    with access.read_uow() as uow:
        data = _page_data(uow, store_id)
        states = {name: (states or {}).get(name) or FormState() for name in FORMS}
        body = render_template("store.html", forms=states, notices=get_flashed_messages(), **data)
    return body, status


@web.route("/stores/<int:store_id>")
def store(store_id: int) -> Any:
    """A store's stock, recent movements and forms."""
    return _render(store_id)


@web.route("/stores/<int:store_id>/stock")
def store_stock_table(store_id: int) -> Any:
    """The stock table alone (htmx reloads it after a form succeeds)."""
    with access.read_uow() as uow:
        data = _page_data(uow, store_id)
        return render_template("store/_stock.html", **data)


@web.route("/stores/<int:store_id>/movements")
def store_movements(store_id: int) -> Any:
    """The recent movements alone (htmx reloads them after a form succeeds)."""
    with access.read_uow() as uow:
        store_row = access.visible_store(uow, store_id)
        return render_template(
            "store/_movements.html",
            store=store_row,
            movements=stock.recent_movements(uow, store_id=store_id, limit=RECENT_MOVEMENTS),
        )


@web.route("/stores/<int:store_id>/fefo")
def fefo(store_id: int) -> Any:
    """Which lots an issue of this product and quantity would take now (earliest expiry first)."""
    form = Form(request.args)
    product_id, doses = form.integer("product_id"), form.integer("doses")
    picks, error = [], None
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
        if not form.errors:
            try:
                picks = stock.fefo_suggestion(
                    uow, store_id=store_id, product_id=product_id, doses=doses, on=_today()
                )
            except DomainError as exc:
                error = field_errors(exc)["doses" if exc.field == "doses" else exc.field or "_form"]
        lots = (
            {lot.id: lot for lot in catalog.list_lots(uow, product_id=product_id)}
            if product_id
            else {}
        )
        units = {unit.id: unit.code for unit in catalog.unit_rows(uow, store_id)}
        return render_template("store/_fefo.html", picks=picks, error=error, lots=lots, units=units)


def _partial(name: str, store_id: int, state: FormState, status: int = 200) -> Any:
    with access.read_uow() as uow:
        data = _page_data(uow, store_id)
        body = render_template(f"store/_{name}.html", form=state, **data)
    response = make_response(body, status)
    if state.message:
        response.headers["HX-Trigger"] = "stock-changed"
    return response


def record(spec: StoreForm, store_id: int, form: Form, path: str | None = None) -> Outcome | None:
    """Check and record one form of the store once per client id (None: a field is invalid).

    Shared by the form posted directly and by a queued offline entry (views/sync.py).
    """
    parsed = spec.handler(form, store_id)
    if parsed is None:
        return None
    values, action = parsed
    with access.read_uow() as uow:
        access.authorize(uow, spec.endpoint, values)
    return submit_once(form.client_id() or "", action, form.data, path)


@web.route("/stores/<int:store_id>/forms/<name>", methods=["POST"])
def submit(store_id: int, name: str) -> Any:
    """Record one form of the store page, once per client id."""
    spec = FORMS.get(name)
    if spec is None:
        return _render(store_id, status=404)
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
    form = Form()
    try:
        outcome = record(spec, store_id, form)
    except DomainError as exc:
        form.errors.update(field_errors(exc))
        outcome = None
    if outcome is not None:
        if request.headers.get("HX-Request"):
            return _partial(name, store_id, FormState(message=outcome.message))
        flash(outcome.message)
        return redirect(url_for("web.store", store_id=store_id) + f"#{name}", code=303)
    state = form.state()
    if request.headers.get("HX-Request"):
        return _partial(name, store_id, state, 422)
    return _render(store_id, {name: state}, 422)
