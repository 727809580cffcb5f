"""Centre planner: usable doses by date, sessions at the suggested capacity, slots, reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _

from logistics.api.context import settings
from logistics.clock import local_date
from logistics.db import UnitOfWork
from logistics.domain.errors import DomainError
from logistics.services import sessions as svc
from logistics.services import stock
from logistics.web import access
from logistics.web.blueprint import web
from logistics.web.forms import Form, FormState, Outcome, field_errors, submit_once
from logistics.web.i18n import number

DAYS_AHEAD = 7
DOSE_NUMBERS = ("1", "2", "precaution")


def _today() -> dt.date:
    return local_date(access.now(), settings().site_timezone)


def _products(uow: UnitOfWork, store_id: int, sessions: list[Any]) -> list[Any]:
    """Products the centre holds or has these sessions of: the rows of the usable-doses table."""
    held = {b.lot.product for b in stock.store_balances(uow, store_id)}
    held |= {s.product for s in sessions}
    return sorted(held, key=lambda p: p.code)


def _usable_by_date(
    uow: UnitOfWork, store_id: int, products: list[Any], today: dt.date
) -> list[tuple[Any, list[svc.Usability]]]:
    dates = [today + dt.timedelta(days=n) for n in range(DAYS_AHEAD)]
    return [
        (
            p,
            svc.usability_by_date(
                uow, store_id=store_id, product_id=p.id, dates=dates, today=today
            ),
        )
        for p in products
    ]


def _page(store_id: int, given: dict[str, FormState] | None = None, status: int = 200) -> Any:
    today = _today()
    with access.read_uow() as uow:
        store = access.visible_store(uow, store_id)
        sessions = svc.list_sessions(uow, store_id=store_id)  # read once: products and list
        products = _products(uow, store_id, sessions)
        all_sessions = [s for s in sessions if s.session_date >= today - dt.timedelta(days=7)]
        given = given or {}
        forms = {
            "open": given.get("open")
            or FormState(
                values={"min_age": 18, "dose_number": "1", "session_date": today.isoformat()}
            )
        }
        for s in all_sessions:
            forms[f"report-{s.id}"] = given.get(f"report-{s.id}") or FormState()
        return render_template(
            "planner.html",
            store=store,
            today=today,
            products=products,
            usable=_usable_by_date(uow, store_id, products, today),
            sessions=all_sessions,
            forms=forms,
            dose_numbers=DOSE_NUMBERS,
            notices=get_flashed_messages(),
        ), status


@web.route("/centres/<int:store_id>/planner")
def planner(store_id: int) -> Any:
    """The centre's planner."""
    return _page(store_id)


@web.route("/centres/<int:store_id>/suggestion")
def suggestion(store_id: int) -> Any:
    """The capacity to offer for a product and date (htmx fills the capacity field with it)."""
    form = Form(request.args)
    product_id, on_date = form.integer("product_id"), form.day("session_date")
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
        found = None
        if not form.errors:
            try:
                found = svc.usability(
                    uow, store_id=store_id, product_id=product_id, on_date=on_date, today=_today()
                )
            except DomainError:
                found = None
        return render_template(
            "planner/_capacity.html",
            usable=found,
            form=FormState(values={"capacity": found.suggested_capacity} if found else {}),
        )


def _done(store_id: int, message: str) -> Any:
    flash(message)
    return redirect(url_for("web.planner", store_id=store_id), code=303)


@web.route("/centres/<int:store_id>/sessions", methods=["POST"])
def open_session(store_id: int) -> Any:
    """Open a session; the service refuses a capacity beyond the usable doses (409)."""
    form = Form()
    product_id, on_date = form.integer("product_id"), form.day("session_date")
    capacity = form.integer("capacity")
    dose = form.choice("dose_number", DOSE_NUMBERS)
    min_age = form.integer("min_age", minimum=0, maximum=120)
    client_id = form.client_id()
    if not form.errors:
        conf = settings()
        request_ = svc.SessionRequest(store_id, product_id, on_date, capacity, dose, min_age)

        def action(uow: UnitOfWork) -> str:
            session = svc.open_session(
                uow,
                request_,
                actor=access.principal().username,
                now=access.now(),
                site_timezone=conf.site_timezone,
                day_start=dt.time.fromisoformat(conf.sessions_day_start),
                slot_minutes=conf.sessions_slot_minutes,
                slot_count=conf.sessions_slot_count,
            )
            uow.commit()
            return _("Session %(id)s opened for %(n)s doses.", id=session.id, n=number(capacity))

        try:
            with access.read_uow() as uow:
                access.authorize(uow, "sessions.Sessions", {"store_id": store_id})
            return _done(store_id, submit_once(client_id, action).message)
        except DomainError as exc:
            form.errors.update(field_errors(exc))
    return _page(store_id, {"open": form.state()}, 422)


def record_report(
    store_id: int, session_id: int, form: Form, path: str | None = None
) -> Outcome | None:
    """Check and file an end-of-session report once per client id (None: a field is invalid).

    Shared by the form posted directly and by a queued offline entry (views/sync.py).
    """
    given = form.integer("doses_given", minimum=0)
    vials = form.integer("vials_opened", minimum=0)
    client_id = form.client_id()
    if form.errors:
        return None
    conf = settings()

    def action(uow: UnitOfWork) -> str:
        report = svc.report_session(
            uow,
            session_id=session_id,
            doses_given=given,
            vials_opened=vials,
            actor=access.principal().username,
            now=access.entry_time() or access.now(),
            site_timezone=conf.site_timezone,
        )
        uow.commit()
        return _(
            "Session %(id)s reported: %(given)s doses given, %(wasted)s wasted in opened vials.",
            id=session_id,
            given=number(given),
            wasted=number(report.wasted_doses),
        )

    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
        if svc.get_session(uow, session_id).store_id != store_id:
            raise DomainError(_("This session is not of this centre."))
        access.authorize(uow, "sessions.SessionReportView", {"session_id": session_id})
    return submit_once(client_id or "", action, form.data, path)


@web.route("/centres/<int:store_id>/sessions/<int:session_id>/report", methods=["POST"])
def report_session(store_id: int, session_id: int) -> Any:
    """File the end-of-session report: doses given and vials opened (the ledger records both)."""
    form = Form()
    try:
        outcome = record_report(store_id, session_id, form)
    except DomainError as exc:
        form.errors.update(field_errors(exc))
    else:
        if outcome is not None:
            return _done(store_id, outcome.message)
    return _page(store_id, {f"report-{session_id}": form.state()}, 422)
