"""Offline support of the centre pages: the service worker, the reference data, queued entries.

A centre keeps recording when the server, the network or the database is down (docs/offline.md).
The browser keeps each entry in IndexedDB with the client id of its form and sends the queue here
in order once the server answers. Each entry is judged by the same code as the form posted
directly (same checks, same `submit_once` record), so the rules stay on the server and a repeat
is recognised whichever way it came first.

Answers per entry: `recorded`, `duplicate` (recorded before: the first answer is replayed, or,
after the idempotency records expired, the movement with this client id exists) or `refused`
(with the reason; the browser keeps it until the officer corrects or drops it). A database outage
answers 503 problem+json with Retry-After, so the browser keeps the queue and retries.

An entry is recorded at the time it was made, not when it reached the server: the browser sends
each entry's `made_at` and, once per batch, its own clock at sending (`sent_at`). The server takes
the entry's age on the phone's clock (sent_at - made_at) back from its own clock, so a phone whose
clock is wrong still dates its entries right; the ledger's back-dating rules then apply as for
any late entry.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from flask import Response, current_app, g, render_template, request
from flask_babel import gettext as _
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from logistics.api.context import settings
from logistics.clock import local_date
from logistics.domain.errors import DomainError
from logistics.services import catalog, stock, trace
from logistics.services import sessions as svc
from logistics.web import access
from logistics.web.blueprint import web
from logistics.web.forms import Form, Outcome, field_errors
from logistics.web.views import planner, store

MAX_ENTRIES = 50
MAX_FIELDS = 100
RETRY_AFTER_S = 5
WORKER = Path(__file__).resolve().parent.parent / "static" / "sw.js"


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


@web.errorhandler(OperationalError)
@web.errorhandler(InterfaceError)
def database_down(error: Exception) -> Response:
    """The database does not answer: 503 with Retry-After, so the pages queue and retry."""
    current_app.logger.warning("database unreachable: %s", str(error)[:200])
    message = _("The database is not reachable; entries stay queued.")
    if request.path.startswith("/sync/"):
        response = _problem(503, "Service unavailable", message)
    else:
        response = Response(render_template("error.html", status=503, message=message), 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


@web.route("/sw.js")
def service_worker() -> Response:
    """The service worker, served from the root so that its scope covers every page.

    Open like the static files (it is one, and holds no personal data): the browser checks it
    for updates on its own, and a login redirect there fails the registration, which then stops
    serving the centre's pages from its cache (seen in tests/browser/test_offline.py).
    """
    response = Response(WORKER.read_text(encoding="utf-8"), mimetype="text/javascript")
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _lots(uow: Any, store_id: int) -> list[dict[str, Any]]:
    config = settings()
    view = trace.store_stock(
        uow,
        store_id,
        now=access.now(),
        window_days=config.ledger_consumption_window_days,
        site_timezone=config.site_timezone,
    )
    return [
        {
            "lot_id": lot["lot_id"],
            "lot_number": lot["lot_number"],
            "expiry_date": lot["expiry_date"].isoformat(),
            "doses": lot["doses"],
            "usable_doses": lot["usable_doses"],
        }
        for product in view["products"]
        for lot in product["lots"]
    ]


@web.route("/centres/<int:store_id>/offline-data")
def offline_data(store_id: int) -> Response:
    """What a centre needs offline: its units, lots with doses, and today's sessions."""
    today = local_date(access.now(), settings().site_timezone)
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
        units = [{"id": u.id, "code": u.code} for u in catalog.list_units(uow, store_id=store_id)]
        sessions = [
            {
                "id": s.id,
                "product": s.product.code,
                "capacity": s.capacity,
                "dose_number": s.dose_number,
                "status": s.status,
            }
            for s in svc.list_sessions(uow, store_id=store_id)
            if s.session_date == today
        ]
        body = {
            "store_id": store_id,
            "fetched_at": access.now().isoformat(),
            "date": today.isoformat(),
            "units": units,
            "lots": _lots(uow, store_id),
            "sessions": sessions,
        }
    return Response(json.dumps(body), mimetype="application/json")


def _route(path: str) -> tuple[str, dict[str, Any]] | None:
    try:
        endpoint, args = current_app.url_map.bind("localhost").match(path, method="POST")
    except HTTPException:
        return None
    return (endpoint, args) if endpoint in ("web.submit", "web.report_session") else None


def _judge(path: str, client_id: str, form: Form) -> Outcome | None:
    """Record the entry as its form would be; None when a field is invalid."""
    found = _route(path)
    if found is None:
        raise DomainError(_("This page cannot record entries offline."))
    endpoint, args = found
    with access.read_uow() as uow:
        access.visible_store(uow, args["store_id"])
    try:
        if endpoint == "web.report_session":
            return planner.record_report(args["store_id"], args["session_id"], form, path)
        spec = store.FORMS.get(args["name"])
        if spec is None:
            raise DomainError(_("This page cannot record entries offline."))
        return store.record(spec, args["store_id"], form, path)
    except DomainError:
        # After a long outage the record that replays the first answer may be gone (kept
        # idempotency.ttl_s), but a movement's client id stays unique for ever: still a repeat.
        with access.read_uow() as uow:
            if stock.is_recorded(uow, client_id):
                return Outcome(_("Already recorded."), replayed=True)
        raise


def _fields(entry: Any) -> tuple[str, str, MultiDict[str, str]] | None:
    if not isinstance(entry, dict):
        return None
    path, fields = entry.get("action"), entry.get("fields")
    if not isinstance(path, str) or not isinstance(fields, dict) or len(fields) > MAX_FIELDS:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        return None
    client_id = fields.get("client_id")
    if not client_id or client_id != entry.get("client_id"):
        return None
    return path, client_id, MultiDict(fields)


def _instant(value: Any) -> dt.datetime | None:
    """An ISO 8601 time with its zone, as the browser's toISOString() writes it; else None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def made_at(
    entry: dict[str, Any], sent_at: dt.datetime | None, now: dt.datetime
) -> dt.datetime | None:
    """When the entry was made, on the server's clock: its age on the phone's clock (sent_at -
    made_at) taken back from now. Without sent_at the phone's made_at is taken as it is, and
    never later than now. None when the entry does not say (it is recorded as made now)."""
    made = _instant(entry.get("made_at"))
    if made is None:
        return None
    if sent_at is None:
        return min(made, now)
    age = max(sent_at - made, dt.timedelta(0))
    return now - age


def sync_one(entry: Any, sent_at: dt.datetime | None = None) -> dict[str, Any]:
    """One queued entry's outcome: recorded, duplicate or refused (with the reason)."""
    parsed = _fields(entry)
    if parsed is None:
        return {
            "client_id": str(entry.get("client_id")) if isinstance(entry, dict) else None,
            "status": "refused",
            "reason": _("This entry is unreadable."),
            "errors": {},
        }
    path, client_id, fields = parsed
    form = Form(fields)
    setattr(g, access.ENTRY_TIME_KEY, made_at(entry, sent_at, access.now()))
    try:
        outcome = _judge(path, client_id, form)
    except DomainError as exc:
        form.errors.update(field_errors(exc))
        outcome = None
    finally:
        setattr(g, access.ENTRY_TIME_KEY, None)
    if outcome is None:
        reason = "; ".join(form.errors.values())
        return {
            "client_id": client_id,
            "status": "refused",
            "reason": reason,
            "errors": form.errors,
        }
    status = "duplicate" if outcome.replayed else "recorded"
    return {"client_id": client_id, "status": status, "message": outcome.message}


@web.route("/sync/entries", methods=["POST"])
def sync_entries() -> Response:
    """Record queued entries in order; each answered recorded, duplicate or refused."""
    body = request.get_json(silent=True)
    entries = body.get("entries") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_ENTRIES:
        return _problem(400, "Bad request", _("Send 1 to %(n)s entries.", n=MAX_ENTRIES))
    sent_at = _instant(body.get("sent_at"))
    results = [sync_one(entry, sent_at) for entry in entries]
    return Response(
        json.dumps({"results": results, "at": dt.datetime.now(dt.UTC).isoformat()}),
        mimetype="application/json",
    )
