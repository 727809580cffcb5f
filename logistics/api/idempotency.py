"""Safe retries of movement requests: the Idempotency-Key header, or else the body's client_id.

A request's first successful response is stored in the movement's own transaction. A repeat with
the same key (or client id) and the same body gets that response again and records nothing; the
same key with a different body is refused (409). Two concurrent twins meet at the unique key and
client id: the loser rolls back and answers with the winner's stored response. Refusals (4xx) store
nothing, so a retry after the cause is fixed (e.g. stock arrived) is evaluated afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import Response, request
from sqlalchemy.exc import IntegrityError

from logistics.api.context import new_uow
from logistics.db import UnitOfWork
from logistics.errors import Invalid
from logistics.models.stock import IdempotencyRecord
from logistics.services import stock

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 150


def request_key(client_id: str | None) -> str | None:
    """The idempotency key of this request: the header, else one derived from the client id."""
    header = request.headers.get(HEADER)
    if header is not None:
        if not 0 < len(header) <= MAX_KEY_LENGTH or "\x00" in header:
            raise Invalid(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters", field=HEADER)
        return _digest(f"key:{header}")
    return _digest(f"client-id:{client_id}") if client_id else None


def _digest(text: str) -> str:
    # Stored as a fixed-length digest: any client string fits the key column.
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint() -> str:
    """A digest of what is asked: method, path and the JSON body with its keys sorted."""
    body = json.dumps(request.get_json(silent=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path} {body}".encode()).hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(
        record.response_json, status=record.status_code, mimetype="application/json"
    )
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _attempt(
    action: Callable[[UnitOfWork], Any],
    schema: ma.Schema,
    key: str,
    client_id: str | None,
    digest: str,
    status: int,
) -> Response:
    with new_uow() as uow:
        first = stock.find_first_response(uow, key=key, client_id=client_id, fingerprint=digest)
        if first is not None:
            return _replay(first)
        body = schema.dump(action(uow))
        stock.remember_response(
            uow, key=key, client_id=client_id, fingerprint=digest, status_code=status, body=body
        )
        uow.commit()
        return Response(json.dumps(body), status=status, mimetype="application/json")


def record_once(
    action: Callable[[UnitOfWork], Any], schema: ma.Schema, client_id: str | None, status: int = 201
) -> Response:
    """Run a movement use case once per key; its response is stored with it in one transaction."""
    key, digest = request_key(client_id), fingerprint()
    if key is None:
        with new_uow() as uow:
            body = schema.dump(action(uow))
            uow.commit()
        return Response(json.dumps(body), status=status, mimetype="application/json")
    try:
        return _attempt(action, schema, key, client_id, digest, status)
    except IntegrityError:
        # A concurrent twin committed the same key or client id first: answer with its response.
        return _attempt(action, schema, key, client_id, digest, status)
