"""Idempotency records: the first answer to a retried write, kept per user for a limited time.

A record is claimed (inserted) before the write it guards runs, in the same transaction: a
concurrent twin's claim waits on the key until the first transaction ends, then either finds the
record (the first committed: the twin replays its answer) or goes through (the first was refused
and rolled back: the twin is judged afresh). So twenty identical requests at once make one change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from logistics.db import UnitOfWork, is_postgres
from logistics.domain.errors import IdempotencyMismatch
from logistics.models.stock import IdempotencyRecord

PENDING = 0  # status of a claimed record whose answer is not stored yet (never committed so)


def _match(key: str, client_id: str | None) -> Any:
    match = IdempotencyRecord.key == key
    return or_(match, IdempotencyRecord.client_id == client_id) if client_id else match


def forget_expired(
    uow: UnitOfWork, *, key: str, client_id: str | None, expired_before: dt.datetime
) -> None:
    """Drop this key's (or client id's) record if it is older than the time keys are kept."""
    uow.session.execute(
        delete(IdempotencyRecord)
        .where(_match(key, client_id), IdempotencyRecord.created_at < expired_before)
        .execution_options(synchronize_session=False)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class KeptAnswer:
    """A stored first answer: whose, to what request, and the answer itself."""

    key: str
    owner: str | None
    fingerprint: str
    status_code: int
    response_json: str
    created_at: dt.datetime


_RECORDS = cast(Table, IdempotencyRecord.__table__)  # a mapped class's table is a Table
_ANSWER_COLUMNS = (
    IdempotencyRecord.key,
    IdempotencyRecord.owner,
    IdempotencyRecord.fingerprint,
    IdempotencyRecord.status_code,
    IdempotencyRecord.response_json,
    IdempotencyRecord.created_at,
)

# Built once: every guarded write asks one of them.
_ANSWER_OF_KEY = select(*_ANSWER_COLUMNS).where(IdempotencyRecord.key == bindparam("key"))
# The key's own record first: it is the one a retry with this key must get back.
_ANSWERS_OF_KEY_OR_CLIENT_ID = (
    select(*_ANSWER_COLUMNS)
    .where(
        or_(
            IdempotencyRecord.key == bindparam("key"),
            IdempotencyRecord.client_id == bindparam("client_id"),
        )
    )
    .order_by(IdempotencyRecord.key != bindparam("key"))
)
_CLAIM = insert(_RECORDS)
# Unless the key or the client id has a record: ON CONFLICT DO NOTHING covers both of them.
# It returns the key when it was claimed.
_CLAIM_NEW_POSTGRES = postgresql.insert(_RECORDS).on_conflict_do_nothing().returning(_RECORDS.c.key)
_CLAIM_NEW_SQLITE = sqlite.insert(_RECORDS).on_conflict_do_nothing().returning(_RECORDS.c.key)
_REMEMBER = (
    update(_RECORDS)
    .where(_RECORDS.c.key == bindparam("record_key"))
    .values(status_code=bindparam("status_code"), response_json=bindparam("response_json"))
)


def find_first_response(
    uow: UnitOfWork,
    *,
    key: str,
    client_id: str | None,
    owner: str,
    fingerprint: str,
    expired_before: dt.datetime | None = None,
) -> KeptAnswer | None:
    """The stored first answer to this key (or client id); a different request is refused.

    With `expired_before`, records older than that are forgotten first (forget_expired), which
    costs a statement only when there is one: the usual new key is answered by one SELECT.
    Records are read, claimed and answered with plain statements on the connection: every
    guarded write passes here, and the ORM's objects and flushes cost more than the SQL.
    """
    query, params = (_ANSWERS_OF_KEY_OR_CLIENT_ID, {"key": key, "client_id": client_id})
    if not client_id:
        query, params = _ANSWER_OF_KEY, {"key": key}
    records = [KeptAnswer(*row) for row in uow.session.connection().execute(query, params)]
    expired = [r for r in records if expired_before and _before(r.created_at, expired_before)]
    if expired and expired_before is not None:
        forget_expired(uow, key=key, client_id=client_id, expired_before=expired_before)
        records = [r for r in records if r not in expired]
    if not records:
        return None
    record = records[0]
    field = "Idempotency-Key" if record.key == key else "client_id"
    if record.owner is not None and record.owner != owner:
        # Only a client id can meet another user's record (keys are digested with the user).
        raise IdempotencyMismatch("this client_id was already used by another user", field=field)
    if record.fingerprint != fingerprint:
        raise IdempotencyMismatch(
            "this Idempotency-Key (or client_id) was used for a different request", field=field
        )
    return record


def _before(at: dt.datetime, limit: dt.datetime) -> bool:
    # SQLite hands back naive times (stored as UTC).
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) < limit


def claim_or_find(
    uow: UnitOfWork,
    *,
    key: str,
    client_id: str | None,
    owner: str,
    fingerprint: str,
    now: dt.datetime,
    expired_before: dt.datetime | None = None,
) -> KeptAnswer | None:
    """Claim the key for this request (None), or return the first answer kept for it.

    A new key, the usual case, costs one statement: the claim is inserted unless the key or the
    client id already has a record (a concurrent twin's uncommitted claim makes it wait until
    its transaction ends). Otherwise the record is read as `find_first_response` reads it: a
    different request is refused, and an expired record is forgotten and the key claimed afresh.
    """
    values = {
        "key": key,
        "client_id": client_id,
        "owner": owner,
        "fingerprint": fingerprint,
        "status_code": PENDING,
        "response_json": "",
        "created_at": now,
    }
    statement = _CLAIM_NEW_POSTGRES if is_postgres(uow.session) else _CLAIM_NEW_SQLITE
    if uow.session.connection().execute(statement, values).first() is not None:
        return None
    first = find_first_response(
        uow,
        key=key,
        client_id=client_id,
        owner=owner,
        fingerprint=fingerprint,
        expired_before=expired_before,
    )
    if first is None:  # an expired record was forgotten: claimed afresh
        uow.session.connection().execute(_CLAIM, values)
    return first


def remember(uow: UnitOfWork, key: str, *, status_code: int, body: Any) -> None:
    """Store the answer in the claimed record; it commits with the write it answers."""
    params = {"record_key": key, "status_code": status_code, "response_json": json.dumps(body)}
    uow.session.connection().execute(_REMEMBER, params)


def purge_expired(uow: UnitOfWork, *, now: dt.datetime, ttl_s: int, batch: int = 10_000) -> int:
    """Delete up to `batch` records older than ttl_s; return how many went."""
    cutoff = now - dt.timedelta(seconds=ttl_s)
    old = select(IdempotencyRecord.key).where(IdempotencyRecord.created_at < cutoff).limit(batch)
    keys = list(uow.session.scalars(old))
    if keys:
        uow.session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.key.in_(keys))
            .execution_options(synchronize_session=False)
        )
    uow.session.flush()
    return len(keys)
