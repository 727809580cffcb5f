"""Alerts inbox (filters, acknowledge, resolve, history) and quarantine reviews."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _

from logistics.api.context import settings
from logistics.db import UnitOfWork
from logistics.domain.errors import DomainError, NotFound
from logistics.domain.ids import MAX_BIG_ID
from logistics.services import alerts as alerts_service
from logistics.services import catalog, quarantine
from logistics.web import access
from logistics.web.blueprint import web
from logistics.web.forms import Form, FormState, field_errors, submit_once
from logistics.web.views.units import chart_data

STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("alarm", "warning", "info")
REVIEW_STATES = ("pending", "released", "discarded")


def _filters() -> dict[str, str | None]:
    args = request.args
    return {
        "state": args.get("state") if args.get("state") in STATES else None,
        "severity": args.get("severity") if args.get("severity") in SEVERITIES else None,
        "kind": (args.get("kind") or "").strip()[:32] or None,
    }


def _scope_id(uow: UnitOfWork) -> int | None:
    stores = access.home_stores(uow)
    return None if access.subtree_path(uow) is None or not stores else stores[0].id


@web.route("/alerts")
def alerts() -> str:
    """The inbox of the user's subtree, newest first, narrowed by state, severity and kind."""
    chosen = _filters()
    with access.read_uow() as uow:
        flt = alerts_service.AlertFilter(store_id=_scope_id(uow), limit=200, **chosen)
        found = alerts_service.list_alerts(uow, flt)
        return render_template(
            "alerts.html", alerts=found, chosen=chosen, states=STATES, severities=SEVERITIES
        )


def _visible_alert(uow: UnitOfWork, alert_id: int) -> Any:
    alert = alerts_service.get_alert(uow, alert_id) if 0 < alert_id <= MAX_BIG_ID else None
    if alert is None or not access.can_see(alert.store_path):
        raise NotFound(f"alert {alert_id} does not exist")
    return alert


def _forms(verbs: tuple[str, ...], given: dict[str, FormState] | None) -> dict[str, FormState]:
    """A form state per action of the page (each with its own client id)."""
    return {verb: (given or {}).get(verb) or FormState() for verb in verbs}


def _alert_page(alert_id: int, given: dict[str, FormState] | None = None, status: int = 200) -> Any:
    with access.read_uow() as uow:
        alert = _visible_alert(uow, alert_id)
        return render_template(
            "alert.html",
            alert=alert,
            forms=_forms(("acknowledge", "resolve"), given),
            notices=get_flashed_messages(),
        ), status


@web.route("/alerts/<int:alert_id>")
def alert(alert_id: int) -> Any:
    """One alert with its history and the acknowledge/resolve form."""
    return _alert_page(alert_id)


def _decide(
    endpoint: str,
    values: dict[str, Any],
    action: Callable[[UnitOfWork, str], str],
    page: Callable[[FormState, int], Any],
    done_url: str,
) -> Any:
    """Read the comment, check the policy, run the use case once, then show where it stands."""
    form = Form()
    comment = form.text("comment", required=True)
    client_id = form.client_id()
    if not form.errors:
        try:
            with access.read_uow() as uow:
                access.authorize(uow, endpoint, values)
            outcome = submit_once(client_id, lambda uow: action(uow, comment))
        except DomainError as exc:
            form.errors.update(field_errors(exc))
        else:
            flash(outcome.message)
            return redirect(done_url, code=303)
    return page(form.state(), 422)


@web.route("/alerts/<int:alert_id>/<verb>", methods=["POST"])
def alert_decide(alert_id: int, verb: str) -> Any:
    """Acknowledge or resolve an alert, with a comment."""
    if verb not in ("acknowledge", "resolve"):
        raise NotFound(f"no action {verb}")
    with access.read_uow() as uow:
        _visible_alert(uow, alert_id)
    use_case = (
        alerts_service.acknowledge_alert if verb == "acknowledge" else alerts_service.resolve_alert
    )
    endpoint = "alerts.AlertAcknowledge" if verb == "acknowledge" else "alerts.AlertResolve"

    def action(uow: UnitOfWork, comment: str) -> str:
        use_case(
            uow,
            alert_id=alert_id,
            comment=comment,
            actor=access.principal().username,
            now=access.now(),
        )
        return (
            _("Alert %(id)s acknowledged.", id=alert_id)
            if verb == "acknowledge"
            else _("Alert %(id)s resolved.", id=alert_id)
        )

    return _decide(
        endpoint,
        {"alert_id": alert_id},
        action,
        lambda state, status: _alert_page(alert_id, {verb: state}, status),
        url_for("web.alert", alert_id=alert_id),
    )


# --- quarantine reviews ------------------------------------------------------------------------


@web.route("/quarantine")
def reviews() -> str:
    """Quarantine reviews of the user's subtree, waiting ones by default."""
    state = request.args.get("state", "pending")
    state = state if state in REVIEW_STATES else None
    with access.read_uow() as uow:
        found = quarantine.list_reviews(uow, store_path=access.subtree_path(uow), state=state)
        return render_template("reviews.html", reviews=found, state=state, states=REVIEW_STATES)


def _review_page(
    review_id: int, given: dict[str, FormState] | None = None, status: int = 200
) -> Any:
    with access.read_uow() as uow:
        review, excursion = quarantine.get_review(uow, review_id)
        access.visible_store(uow, review.store_id)
        unit = catalog.get_unit(uow, excursion.unit_id)
        pad = dt.timedelta(hours=6)
        end = min((excursion.ended_at or access.now()) + pad, access.now())
        chart = chart_data(uow, unit, excursion.started_at - pad, end, 60)
        lot = catalog.get_lot(uow, review.lot_id)
        return render_template(
            "review.html",
            review=review,
            excursion=excursion,
            unit=unit,
            lot=lot,
            chart=chart,
            ranges=None,
            mkt_url=None,
            forms=_forms(("release", "discard"), given),
            notices=get_flashed_messages(),
            tz=settings().site_timezone,
        ), status


@web.route("/quarantine/<int:review_id>")
def review(review_id: int) -> Any:
    """The doses held, the excursion on its chart, and the release/discard form."""
    return _review_page(review_id)


@web.route("/quarantine/<int:review_id>/<verb>", methods=["POST"])
def review_decide(review_id: int, verb: str) -> Any:
    """Release the held doses, or discard them (recorded as wastage), with a comment."""
    if verb not in ("release", "discard"):
        raise NotFound(f"no action {verb}")
    with access.read_uow() as uow:
        review_row, _excursion = quarantine.get_review(uow, review_id)
        access.visible_store(uow, review_row.store_id)
    use_case = quarantine.release_review if verb == "release" else quarantine.discard_review
    endpoint = "alerts.ReviewRelease" if verb == "release" else "alerts.ReviewDiscard"

    def action(uow: UnitOfWork, comment: str) -> str:
        use_case(
            uow,
            review_id=review_id,
            comment=comment,
            actor=access.principal().username,
            now=access.now(),
        )
        return (
            _("Held doses released.")
            if verb == "release"
            else _("Held doses discarded and recorded as wastage.")
        )

    return _decide(
        endpoint,
        {"review_id": review_id},
        action,
        lambda state, status: _review_page(review_id, {verb: state}, status),
        url_for("web.review", review_id=review_id),
    )
