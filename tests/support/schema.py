"""Build and empty the schema of a test database."""

from __future__ import annotations

from sqlalchemy import Engine, text

import logistics.models  # noqa: F401  (registers every table)
from logistics.db import Base


def build_schema(engine: Engine) -> None:
    """Create the schema the way production does: through the Alembic migrations."""
    from logistics.migrate import upgrade

    upgrade(engine.url.render_as_string(hide_password=False))


def empty_tables(engine: Engine) -> None:
    """Remove every row of every table, quickly, between tests.

    The ledger and the audit log refuse TRUNCATE through triggers (migration 0004). Test set-up
    alone steps around them: as the superuser the suite connects as, for this one transaction
    only, `session_replication_role = replica` keeps ordinary triggers from firing. The service's
    own role (coldchain_app) may not set it (tests/integration/test_append_only.py).
    """
    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
