"""Safe retries of writes: the Idempotency-Key header, or else the body's client_id (movements).

Movements, sessions (open, resize, cancel), bookings and their cancellation, end-of-session
reports and quarantine review decisions all go through `record_once`. A request's key is claimed
in the transaction of the change it makes, and its first successful answer is stored with it. A
repeat by the same user with the same key and the same body gets that answer again (with
`Idempotent-Replayed: true`) and changes nothing; the same key with a different body is refused
(409). Keys are scoped per user (two users may use the same key) and kept `idempotency.ttl_s`.
Concurrent twins meet at the claimed key: the later ones wait for the first transaction, then
replay its answer. Refusals (4xx) store nothing, so a retry after the cause is fixed (e.g. stock
arrived) is judged afresh.

Use cases never commit (the edge does): here the change, its key and its answer commit together,
once, at the end. The unit of work handed to them still only flushes on `commit`, as a guard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import Response, request
from sqlalchemy.exc import IntegrityError

from logistics.api.blueprint import kept_schema
from logistics.api.context import current_actor, new_uow, runtime, settings
from logistics.db import UnitOfWork
from logistics.domain.errors import Conflict, Invalid
from logistics.services import idempotency as keys

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 150
HEADER_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
            "description": "Retry key (per user, kept idempotency.ttl_s): a repeat returns the "
            "first response and changes nothing",
        }
    ]
}


class HeldUnitOfWork(UnitOfWork):
    """A unit of work whose `commit` only flushes; `record_once` commits it at the end."""

    def commit(self) -> None:
        """Send the work to the database, inside the request's one transaction."""
        self.session.flush()

    def commit_held(self) -> None:
        """Commit the change, its key and its answer together."""
        self.session.commit()


def request_key(client_id: str | None, owner: str) -> str | None:
    """This request's key: the user's header, else one derived from the client id."""
    header = request.headers.get(HEADER)
    if header is not None:
        if not 0 < len(header) <= MAX_KEY_LENGTH or "\x00" in header:
            raise Invalid(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters", field=HEADER)
        return _digest(f"key:{owner}\x00{header}")
    return _digest(f"client-id:{owner}\x00{client_id}") if client_id else None


def _digest(text: str) -> str:
    # Stored as a fixed-length digest: any client string fits the key column.
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint() -> str:
    """A digest of what is asked: method, path and the JSON body with its keys sorted."""
    body = json.dumps(request.get_json(silent=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path} {body}".encode()).hexdigest()


def _json(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _replay(record: keys.KeptAnswer) -> Response:
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
    status: int,
) -> Response:
    owner, digest = current_actor(), fingerprint()
    now = dt.datetime.now(dt.UTC)
    expired_before = now - dt.timedelta(seconds=settings().idempotency_ttl_s)
    with HeldUnitOfWork(runtime().session_factory) as uow:
        first = keys.claim_or_find(
            uow,
            key=key,
            client_id=client_id,
            owner=owner,
            fingerprint=digest,
            now=now,
            expired_before=expired_before,
        )
        if first is not None:
            return _replay(first)
        body = schema.dump(action(uow))
        keys.remember(uow, key, status_code=status, body=body)
        uow.commit_held()
        return _json(body, status)


def record_once(
    action: Callable[[UnitOfWork], Any],
    schema_class: type[ma.Schema],
    client_id: str | None,
    status: int = 201,
) -> Response:
    """Run a write use case once per user and key; its answer (dumped with `schema_class`'s
    kept instance) is stored in its transaction."""
    schema = kept_schema(schema_class)
    key = request_key(client_id, current_actor())
    if key is None:
        with new_uow() as uow:
            body = schema.dump(action(uow))
            uow.commit()
        return _json(body, status)
    try:
        return _attempt(action, schema, key, client_id, status)
    except IntegrityError:
        pass  # a concurrent twin committed the same key or client id first
    try:
        return _attempt(action, schema, key, client_id, status)
    except IntegrityError as exc:
        raise Conflict("this request collides with one recorded at the same time; retry") from exc
