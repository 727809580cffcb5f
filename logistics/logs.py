"""Logging of every process: readable text (the default, for the demo) or JSON lines.

`configure_logging` is called once by each entry point (wsgi, the `coldchain` commands). In JSON
mode each line is one object: time, level, event (the message), logger, and during an HTTP request
its request_id, user, method and route; the web app adds one line per request with status and
duration_ms. The request id is taken from the X-Request-ID header (when it is a sane token) or
made up, and returned in the response's X-Request-ID, so a user's report can be found in the logs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from logistics.config import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_HANDLER_NAME = "coldchain"
ACCESS_LOGGER = "logistics.access"
# LogRecord attributes that are not extra fields given by the caller.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
NOISY = ("amqtt", "transitions", "alembic", "apscheduler")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, logger, request fields, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RequestContextFilter(logging.Filter):
    """Add the current request's id, user, method and route to records logged during it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import g, has_request_context, request

        if has_request_context():
            record.__dict__.setdefault("request_id", g.get("request_id"))
            record.__dict__.setdefault("user", g.get("actor"))
            record.__dict__.setdefault("method", request.method)
            rule = request.url_rule.rule if request.url_rule is not None else None
            record.__dict__.setdefault("route", rule)
        return True


def configure_logging(settings: Settings, verbose: bool = False) -> None:
    """Send the root logger's records to stderr as text or JSON lines (logging.format)."""
    if settings.logging_format not in {"text", "json"}:
        raise ValueError(f"logging.format: 'text' or 'json', not {settings.logging_format!r}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if settings.logging_format == "json":
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestContextFilter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else settings.logging_level.upper())
    # Libraries' start-up chatter would bury what the operator needs (e.g. the demo's login).
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # One line per request only in JSON mode: text logs stay quiet for the demo.
    access = logging.INFO if settings.logging_format == "json" else logging.WARNING
    logging.getLogger(ACCESS_LOGGER).setLevel(access)


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a sane token, else a new one."""
    if header and _SANE_ID.match(header):
        return header
    return uuid.uuid4().hex


def init_request_logging(app: Any) -> None:
    """Give every request an id (returned in X-Request-ID) and log one line when it is answered."""
    from flask import Response, g, request

    access = logging.getLogger(ACCESS_LOGGER)

    def begin() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.log_started = time.perf_counter()

    def end(response: Response) -> Response:
        request_id = g.get("request_id") or request_id_from(None)
        response.headers[REQUEST_ID_HEADER] = request_id
        if access.isEnabledFor(logging.INFO):
            started = g.get("log_started") or time.perf_counter()
            access.info(
                "request",
                extra={
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "path": request.path,
                },
            )
        return response

    app.before_request(begin)
    app.after_request(end)
