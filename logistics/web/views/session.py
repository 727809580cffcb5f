"""Logging in and out, the language switch, and what every page needs (hooks, errors)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from logistics.api.context import new_uow, settings
from logistics.domain import policy
from logistics.domain.errors import DomainError, Forbidden, NotFound, Unauthorized
from logistics.services import auth as auth_service
from logistics.web import access, csrf, i18n
from logistics.web.blueprint import web
from logistics.web.forms import Form

OPEN_ENDPOINTS = frozenset({"web.login", "web.static", "web.language"})
# Titles of the services' refusals, so that they are translated where they are shown.
ERROR_TITLES = (
    _l("Bad request"),
    _l("Not found"),
    _l("Invalid input"),
    _l("Conflict"),
    _l("Insufficient stock"),
    _l("Idempotency key reused with a different request"),
    _l("Unauthorized"),
    _l("Forbidden"),
)


def safe_next(target: str | None) -> str:
    """A local path to go back to (never another site)."""
    if not target:
        return url_for("web.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("web.home")
    return target


@web.before_request
def require_login() -> Response | None:
    """Send people who are not logged in to the login page; check CSRF on every POST."""
    if request.method == "POST" and not csrf.is_valid():
        abort(400, description=_("The form has expired. Reload the page and try again."))
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if access.load_principal() is None:
        if request.headers.get("HX-Request"):
            response = make_response("", 401)
            response.headers["HX-Redirect"] = url_for("web.login")
            return response
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    return None


web.teardown_request(access.close_read_uow)


@web.after_request
def no_session_started_by_a_refusal(response: Response) -> Response:
    """A request that came without a session cookie and is refused or fails leaves without one,
    whichever page answers it (an error page mints a CSRF token as every page does). A page kept
    offline may retry its queue while the same browser opens the login page, both sent before
    any cookie: the refusal's token must not replace the login form's (csrf.leave_unstarted)."""
    if response.status_code >= 400 and current_app.config["SESSION_COOKIE_NAME"] not in (
        request.cookies
    ):
        csrf.leave_unstarted()
    return response


@web.after_request
def no_store(response: Response) -> Response:
    """Pages hold personal data: no shared cache keeps them; vary on the language."""
    if request.endpoint != "web.static":
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.add("Vary", "Cookie, Accept-Language")
    return response


@web.app_template_global()
def csrf_token() -> str:
    """The CSRF token for a form (templates: {{ csrf_token() }})."""
    return csrf.token()


@web.context_processor
def page_context() -> dict[str, Any]:
    """What the layout shows: the user, their roles, the languages, the current language."""
    principal = g.get("principal")
    return {
        "user": principal.username if principal else None,
        "user_roles": sorted(access.roles()) if principal else [],
        "languages": i18n.LANGUAGES,
        "lang": i18n.language(),
        "can_stock": bool(principal) and access.may(policy.Permission.STOCK),
        "can_sessions": bool(principal) and access.may(policy.Permission.SESSIONS),
        "can_alerts": bool(principal) and access.may(policy.Permission.ALERTS),
    }


@web.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form (fields `username`, `password`); a session cookie on success."""
    error = None
    if request.method == "POST":
        form = Form()
        username = form.text("username", required=True, max_length=64)
        password = form.text("password", required=True, max_length=1024)
        if username and password:
            try:
                with new_uow() as uow:
                    token, _row = auth_service.login(
                        uow,
                        username=username,
                        password=password,
                        ttl_s=settings().auth_token_ttl_s,
                        now=access.now(),
                    )
                    uow.commit()
                session.clear()
                session[access.TOKEN_KEY] = token
                csrf.rotate()
                return redirect(safe_next(request.args.get("next")), code=303)
            except Unauthorized:
                error = _("Wrong username or password.")
        else:
            error = _("Enter your username and password.")
    status = 401 if error else 200
    return render_template(
        "login.html", error=error, username=request.form.get("username", "")
    ), status


@web.route("/logout", methods=["POST"])
def logout() -> Response:
    """Revoke the session's token and forget the session."""
    principal = access.principal()
    if principal.token_id is not None:
        with new_uow() as uow:
            auth_service.revoke_token(uow, token_id=principal.token_id, now=access.now())
            uow.commit()
    session.clear()
    csrf.rotate()
    return redirect(url_for("web.login"), code=303)


@web.route("/language/<code>")
def language(code: str) -> Response:
    """Switch the language; the choice is remembered in a cookie for a year."""
    if code not in i18n.LANGUAGES:
        abort(404)
    response = redirect(safe_next(request.args.get("next")), code=303)
    response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


def _error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


@web.errorhandler(NotFound)
def not_found(error: NotFound) -> tuple[str, int]:
    """A missing (or hidden) record."""
    return _error_page(404, _("Not found: %(detail)s", detail=error.detail))


@web.errorhandler(Forbidden)
def forbidden(error: Forbidden) -> tuple[str, int]:
    """An action the user's roles do not allow."""
    return _error_page(403, _("Your roles do not allow this."))


@web.errorhandler(400)
def bad_request(error: Any) -> tuple[str, int]:
    """A form without its CSRF token, or otherwise unreadable."""
    return _error_page(400, getattr(error, "description", None) or _("Bad request"))


@web.errorhandler(DomainError)
def domain_error(error: DomainError) -> tuple[str, int]:
    """Any other refusal of a service, shown on a page of its own."""
    return _error_page(error.status, f"{_(error.title)}: {error.detail}")
