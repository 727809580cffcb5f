"""PostgreSQL refuses UPDATE, DELETE and TRUNCATE of the ledger and the audit log, whatever the
client (issue 11, point 8). Migration 0004 installs these triggers; the DDL below does the same
for schemas made with `Base.metadata.create_all` (benchmarks). Alembic does not see triggers.

The triggers bind the service only because it runs as a role that does not own the tables
(`coldchain_app`, README): an owner or a superuser could DISABLE TRIGGER.
"""

from __future__ import annotations

from sqlalchemy import DDL, Table, event

from logistics.models.auth import AuditEntry
from logistics.models.stock import LedgerEntry, Movement

REFUSE_FUNCTION_SQL = (
    "CREATE OR REPLACE FUNCTION refuse_append_only_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP "
    "USING ERRCODE = 'insufficient_privilege'; END $$"
)


def _statements(table: Table) -> list[str]:
    statements = [REFUSE_FUNCTION_SQL]
    if table.name != AuditEntry.__tablename__:  # models/auth.py already refuses UPDATE/DELETE
        statements.append(
            f"CREATE TRIGGER {table.name}_append_only BEFORE UPDATE OR DELETE ON {table.name} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change()"
        )
    statements.append(
        f"CREATE TRIGGER {table.name}_no_truncate BEFORE TRUNCATE ON {table.name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change()"
    )
    return statements


APPEND_ONLY_TABLES: tuple[Table, ...] = (
    Movement.__table__,
    LedgerEntry.__table__,
    AuditEntry.__table__,  # type: ignore[assignment]
)
for _table in APPEND_ONLY_TABLES:
    for _statement in _statements(_table):
        ddl = DDL(_statement.replace("%", "%%"))  # DDL() formats its text with %
        event.listen(_table, "after_create", ddl.execute_if(dialect="postgresql"))
