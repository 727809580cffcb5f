"""Alembic environment: migrations run against the URL given by logistics.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import logistics.models  # noqa: F401  (registers every table)
from logistics.db import Base, make_engine
from logistics.migrate import include_name

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


run_migrations_online()
