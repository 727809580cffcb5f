"""The Alembic migrations build the same schema as the models, on PostgreSQL and on SQLite."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from logistics.db import Base, make_engine
from logistics.migrate import include_name, upgrade
from tests.support import services

pytestmark = pytest.mark.integration


def _diff(engine: Engine) -> list:
    with engine.connect() as conn:
        # Partitions of readings (PostgreSQL) are parts of one modelled table, not tables of their
        # own.
        opts = {"compare_type": True, "include_name": include_name}
        context = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(context, Base.metadata)


@pytest.fixture
def fresh_pg_url():
    url = services.create_database()
    yield url
    services.drop_database(url)


def test_migrations_match_models_on_postgresql(fresh_pg_url):
    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    try:
        assert _diff(engine) == []
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_match_models_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(tmp_path):
    url = f"sqlite:///{tmp_path / 'again.db'}"
    upgrade(url)
    upgrade(url)
    engine = make_engine(url)
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_audit_log_trigger_is_created_by_the_migration(fresh_pg_url):
    from sqlalchemy import text

    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    try:
        with engine.connect() as conn:
            names = set(conn.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
        assert "audit_log_append_only" in names
    finally:
        engine.dispose()
