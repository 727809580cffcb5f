"""Database plumbing: the declarative base, portable column types, engines and the unit of work."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CursorResult,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Result,
    create_engine,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Integer primary keys that are 64-bit on PostgreSQL and still autoincrement on SQLite.
BigIntPK = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; timestamps must carry a zone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every table of the service."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create an engine for SQLite or PostgreSQL with the settings each needs."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def insert_for(session: Session) -> Any:
    """Return the dialect's INSERT construct, which offers ON CONFLICT on SQLite and PostgreSQL."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def is_postgres(session: Session) -> bool:
    """Tell whether the session talks to PostgreSQL (row locks and advisory locks exist there)."""
    return session.get_bind().dialect.name == "postgresql"


class UnitOfWork:
    """One business transaction: use `uow.session`, then `commit()`; leaving rolls back."""

    def __init__(self, session_factory: sessionmaker[Session]):
        self._session_factory = session_factory
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        """Commit the work done so far."""
        self.session.commit()

    def rollback(self) -> None:
        """Drop the work done so far."""
        self.session.rollback()


class ReadOnlyWork(RuntimeError):
    """A reading unit of work was asked to write."""


READ_ONLY = "coldchain_read_only"


@event.listens_for(Session, "before_flush")
def _refuse_writes(session: Session, *_args: object) -> None:
    # Registered once for all sessions (listening per session cost each request an event set-up).
    if session.info.get(READ_ONLY):
        raise ReadOnlyWork("this unit of work reads only; writes take a unit of work of their own")


def read_only(uow: UnitOfWork) -> UnitOfWork:
    """Make a fresh unit of work read in autocommit, and refuse its flushes.

    No BEGIN and ROLLBACK round trips around its reads. Each statement sees what was committed
    when it started, as inside a READ COMMITTED transaction (the service's level), so a reader
    reads exactly what it read before. It cannot write, so nothing commits behind its back.
    """
    uow.session.info[READ_ONLY] = True
    uow.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return uow


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit, so services can return them."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached now (retry later), not a bad statement.

    Connection failures, a connection lost mid-statement, a pool with no free connection, and the
    server refusing work while it shuts down or lacks resources.
    """
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig: Any = exc.orig
    sqlstate = (
        getattr(orig, "sqlstate", None)
        or getattr(getattr(orig, "diag", None), "sqlstate", None)
        or ""
    )
    # Class 08: connection exception; 57P: operator intervention; 53: insufficient resources.
    return sqlstate.startswith(("08", "57P", "53")) or "closed" in str(exc).lower()


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (executing one returns a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount
