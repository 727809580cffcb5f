"""The audit log: every write through a session made by an audited session factory, in one place.

`install_audit` hooks SQLAlchemy's session events. Before each flush it notes the rows being
inserted, updated or deleted with their values before and after; after the flush (when new rows
have their ids) it inserts one audit row per change on the same connection, so the log commits or
rolls back with the change itself. Bulk INSERT/UPDATE/DELETE statements run through the session
are logged too, with their parameters. Who and from where come from a context provider (the web
layer reads them from the request).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import ClauseElement, Table, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.orm.base import NO_VALUE

from logistics.db import UnitOfWork
from logistics.domain.errors import Conflict
from logistics.models.auth import AuditEntry

# Not a person's write: sensors' readings and dead letters come from the ingestion and are kept
# in their own append-only tables; idempotency records and availability versions are caches
# derived from writes that are themselves logged.
UNAUDITED_TABLES = frozenset(
    {"audit_log", "readings", "dead_letters", "idempotency_records", "availability_versions"}
)
# Columns whose values never go into the log.
SECRET_COLUMNS = frozenset({"password_hash", "token_hash"})
MAX_VALUE_CHARS = 2000
PENDING_KEY = "audit_pending"
PROVIDER_KEY = "audit_provider"
AUDIT_TABLE = cast(Table, AuditEntry.__table__)  # a mapped class's table is a Table


@dataclasses.dataclass(frozen=True)
class AuditContext:
    """Who is writing, from which address, through which endpoint."""

    actor: str
    address: str | None = None
    method: str | None = None
    endpoint: str | None = None


# Who is writing now; None when the write is the machine's own (ingestion, scheduler) sharing
# the session factory in one process: those keep their own records (readings, alert events).
ContextProvider = Callable[[], AuditContext | None]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else value[:MAX_VALUE_CHARS]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return repr(value)[:MAX_VALUE_CHARS]


def _columns(obj: Any) -> list[Any]:
    return [attr for attr in inspect(obj).mapper.column_attrs if attr.key not in SECRET_COLUMNS]


def _values(obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    return {
        attr.key: _jsonable(state.attrs[attr.key].loaded_value)
        for attr in _columns(obj)
        if state.attrs[attr.key].loaded_value is not NO_VALUE
    }


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    before, after = {}, {}
    state = inspect(obj)
    for attr in _columns(obj):
        history = state.attrs[attr.key].history
        if history.has_changes():
            before[attr.key] = _jsonable(history.deleted[0] if history.deleted else None)
            after[attr.key] = _jsonable(history.added[0] if history.added else None)
    return before, after


def _identity(obj: Any) -> str | None:
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    if any(part is None for part in key):
        return None
    return "/".join(str(part) for part in key)


def _table(obj: Any) -> str:
    name: str = inspect(obj).mapper.persist_selectable.name
    return name


def _is_audited(obj: Any) -> bool:
    return not isinstance(obj, AuditEntry) and _table(obj) not in UNAUDITED_TABLES


def _refuse_changes_to_the_log(session: Session) -> None:
    if any(isinstance(obj, AuditEntry) for obj in (*session.dirty, *session.deleted)):
        raise Conflict("the audit log is append-only")


def _collect_changes(session: Session) -> None:
    pending = session.info.setdefault(PENDING_KEY, [])
    for obj in session.new:
        if _is_audited(obj):
            pending.append(("insert", obj, None))
    for obj in session.dirty:
        if _is_audited(obj) and session.is_modified(obj, include_collections=False):
            pending.append(("update", obj, _changes(obj)))
    for obj in session.deleted:
        if _is_audited(obj):
            pending.append(("delete", obj, (_values(obj), {})))


def _before_flush(provider: ContextProvider) -> Callable[[Session, Any, Any], None]:
    def before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
        _refuse_changes_to_the_log(session)
        if provider() is not None:  # the machine's own writes are not collected at all
            _collect_changes(session)

    return before_flush


def _row(
    context: AuditContext,
    now: dt.datetime,
    action: str,
    entity: str,
    entity_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "at": now,
        "actor": context.actor[:64],
        "address": context.address,
        "method": context.method,
        "endpoint": (context.endpoint or "")[:128] or None,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "before": before,
        "after": after,
    }


def _entry_for(
    context: AuditContext, now: dt.datetime, change: tuple[str, Any, Any]
) -> dict[str, Any]:
    action, obj, values = change
    if action == "insert":
        return _row(context, now, action, _table(obj), _identity(obj), None, _values(obj))
    before, after = values
    return _row(context, now, action, _table(obj), _identity(obj), before, after or None)


def _after_flush(provider: ContextProvider) -> Callable[[Session, Any], None]:
    def after_flush(session: Session, _flush_context: Any) -> None:
        pending = session.info.pop(PENDING_KEY, [])
        context = provider() if pending else None
        if context is None:
            return
        now = dt.datetime.now(dt.UTC)
        rows = [_entry_for(context, now, change) for change in pending]
        session.connection().execute(AUDIT_TABLE.insert(), rows)

    return after_flush


def _bound_params(state: ORMExecuteState) -> dict[str, Any]:
    try:
        statement = cast(ClauseElement, state.statement)  # every ORM statement is a clause
        return dict(statement.compile(dialect=state.session.get_bind().dialect).params)
    except Exception:  # a statement this dialect cannot compile alone: log it without values
        return {}


def _bulk_statement(provider: ContextProvider) -> Callable[[ORMExecuteState], None]:
    def do_orm_execute(state: ORMExecuteState) -> None:
        if not (state.is_insert or state.is_update or state.is_delete):
            return
        table = getattr(state.statement, "table", None)
        name = getattr(table, "name", None)
        if name is None or name in UNAUDITED_TABLES:
            return
        context = provider()
        if context is None:
            return
        action = "insert" if state.is_insert else "update" if state.is_update else "delete"
        params = {k: v for k, v in _bound_params(state).items() if k not in SECRET_COLUMNS}
        extra = state.parameters if isinstance(state.parameters, list) else None
        after = {"statement": action, "params": _jsonable(params)}
        if extra:
            after["rows"] = _jsonable(extra[:50])
        row = _row(context, dt.datetime.now(dt.UTC), action, name, None, None, after)
        state.session.connection().execute(AUDIT_TABLE.insert(), [row])

    return do_orm_execute


@dataclasses.dataclass(frozen=True, slots=True)
class Written:
    """A row written with a plain statement: (insert) its stored values, id included, or
    (update) the changed columns' values before and after."""

    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any]


def log_written(session: Session, written: list[Written]) -> None:
    """Log writes sent with plain statements instead of a flush, as a flush would log them.

    The ledger's hot path writes this way (logistics.services.stock): its rows are logged in one
    statement, in the same transaction, with the same who, where, before and after.
    """
    provider = session.info.get(PROVIDER_KEY)
    context = provider() if provider is not None and written else None
    if context is None:
        return
    now = dt.datetime.now(dt.UTC)
    rows = [
        _row(
            context,
            now,
            w.action,
            w.entity,
            w.entity_id,
            _jsonable(w.before) if w.before is not None else None,
            _jsonable(w.after) or None,
        )
        for w in written
    ]
    session.connection().execute(AUDIT_TABLE.insert(), rows)


def _clear_pending(session: Session, *_: Any) -> None:
    session.info.pop(PENDING_KEY, None)


def install_audit(session_factory: sessionmaker[Session], provider: ContextProvider) -> None:
    """Log every write of sessions made by `session_factory`; idempotent per factory."""
    if session_factory.kw.get("info", {}).get(PENDING_KEY + "_installed"):
        return
    session_factory.configure(
        info={
            **session_factory.kw.get("info", {}),
            PENDING_KEY + "_installed": True,
            PROVIDER_KEY: provider,
        }
    )
    event.listen(session_factory, "before_flush", _before_flush(provider))
    event.listen(session_factory, "after_flush", _after_flush(provider))
    event.listen(session_factory, "do_orm_execute", _bulk_statement(provider))
    event.listen(session_factory, "after_rollback", _clear_pending)


def query_audit(
    uow: UnitOfWork,
    *,
    actor: str | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit entries matching the filters, newest first; page on with `before_id`."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    for column, value in (
        (AuditEntry.actor, actor),
        (AuditEntry.entity, entity),
        (AuditEntry.entity_id, entity_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(uow.session.scalars(query))
