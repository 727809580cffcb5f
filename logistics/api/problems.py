"""The one error contract of the HTTP API: application/problem+json (RFC 9457)."""

from __future__ import annotations

import http
import logging
from typing import Any

import marshmallow as ma
from apispec import BasePlugin
from flask import Response, current_app, json
from flask_smorest import Api
from flask_smorest.spec import prepare_response
from werkzeug.exceptions import HTTPException

from logistics.db import is_unavailable
from logistics.domain.errors import DomainError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class ProblemSchema(ma.Schema):
    """A problem document: what went wrong, for people and for programs."""

    type = ma.fields.String(metadata={"description": "URI naming the kind of problem"})
    title = ma.fields.String(metadata={"description": "Short summary of the kind of problem"})
    status = ma.fields.Integer(metadata={"description": "HTTP status code"})
    detail = ma.fields.String(metadata={"description": "What went wrong in this request"})
    errors = ma.fields.Dict(metadata={"description": "Messages per field (for 422)"})

    class Meta:
        # RFC 9457 lets a problem carry extension members (e.g. `possible_doses`).
        unknown = ma.INCLUDE


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build an application/problem+json response."""
    phrase = http.HTTPStatus(status).phrase
    body = {
        "type": f"https://coldchain.example/problems/{slug}" if slug else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail,
        **{key: value for key, value in extra.items() if value is not None},
    }
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def write_server_problem(sock: Any, status: int, reason: str, detail: str) -> None:
    """What gunicorn writes when it refuses a request before the app sees it (a request line or
    headers too large, a malformed request): a problem document too, not its HTML page."""
    from gunicorn import util

    body = json.dumps(
        {"type": "about:blank", "title": reason, "status": status, "detail": detail or reason}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


def _field_errors(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if not data:
        return None
    messages = data.get("errors") or data.get("messages")
    if not isinstance(messages, dict):
        return None
    # webargs nests messages by location ("json", "query", ...); flatten when there is one.
    # A message that names no field (e.g. a body that is not JSON) stays under its location.
    if len(messages) == 1 and next(iter(messages)) in {"json", "query", "form", "headers", "path"}:
        inner = next(iter(messages.values()))
        return inner if isinstance(inner, dict) else messages
    return messages


def _first_field(errors: dict[str, Any] | None) -> str | None:
    return next(iter(errors), None) if errors else None


def unavailable(error: BaseException) -> Response:
    """503 while the database cannot be reached: clients retry (never a final 4xx or a 500)."""
    log.warning("database unavailable: %s", str(error).splitlines()[0][:200])
    retry_after_s = current_app.extensions["coldchain"].settings.http_unavailable_retry_after_s
    return problem_response(
        503,
        "the database cannot be reached just now; nothing was stored: retry later",
        slug="unavailable",
        headers={"Retry-After": str(retry_after_s)},
    )


class WholeObjectRules(BasePlugin):
    """Adds to a schema's component what it states about the whole object (e.g. which fields are
    needed together), from the marshmallow schema's OPENAPI_RULES (e.g. {"anyOf": [...]})."""

    def schema_helper(self, name: str, definition: dict, **kwargs: Any) -> dict | None:
        schema = kwargs.get("schema")
        return getattr(schema, "OPENAPI_RULES", None)


class ProblemApi(Api):
    """flask-smorest's Api, answering and documenting every error as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, **options: Any) -> None:
        options["extra_plugins"] = [*options.get("extra_plugins", ()), WholeObjectRules()]
        super()._init_spec(**options)

    def _register_error_handlers(self) -> None:
        self._app.register_error_handler(HTTPException, self.handle_http_exception)
        self._app.register_error_handler(DomainError, self.handle_domain_error)
        self._app.register_error_handler(Exception, self.handle_unexpected)

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        """Render Werkzeug/webargs errors (404, 405, 413, 422 validation...) as problems."""
        data = getattr(error, "data", None) or {}
        errors = _field_errors(data)
        detail = data.get("message") or error.description or error.name
        if errors:
            detail = f"invalid value for '{_first_field(errors)}'"
        # Keep the headers Werkzeug gives the error: Allow on a 405 (RFC 9110 15.5.6), ...
        headers = {
            name: value for name, value in error.get_headers() if name.lower() != "content-type"
        }
        headers.update(data.get("headers") or {})
        return problem_response(error.code or 500, str(detail), errors=errors, headers=headers)

    def handle_domain_error(self, error: DomainError) -> Response:
        """Render a refusal by a rule of the domain."""
        errors = {error.field: [error.detail]} if error.field else None
        return problem_response(
            error.status,
            error.detail,
            title=error.title,
            slug=error.slug,
            errors=errors,
            **error.extra,
        )

    def handle_unexpected(self, error: Exception) -> Response:
        """Log a bug and answer 500 without leaking internals; a database outage answers 503."""
        if isinstance(error, HTTPException):
            return self.handle_http_exception(error)
        if is_unavailable(error):
            return unavailable(error)
        log.exception("unhandled error")
        return problem_response(500, "internal error; it has been logged")

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = PROBLEM_JSON
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)
