"""append-only ledger at the database, the service's role, idempotency keys per user

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:40:00

Issue 11, points 3 and 8.
- On PostgreSQL, movements, ledger entries and the audit log refuse UPDATE, DELETE and TRUNCATE
  through triggers (0001's audit_log_append_only trigger stays; TRUNCATE is added to it).
- The service runs as the role `coldchain_app` (README, "Running in production"): granted
  SELECT/INSERT/UPDATE/DELETE on the tables of this schema (and, through default privileges, on
  tables later migrations create), never UPDATE/DELETE/TRUNCATE on the three append-only tables,
  and never ownership: only a table's owner or a superuser may DISABLE TRIGGER or set
  session_replication_role, so the service cannot switch the triggers off. The role is created
  when the migrating user may create roles; otherwise a DBA creates it first (README). Roles are
  cluster-wide: the downgrade revokes this database's grants and leaves the role.
- Idempotency records name the user who sent the key (keys are scoped per user) and are purged
  by age (`idempotency.ttl_s`), hence the index on created_at.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APP_ROLE = "coldchain_app"
# Kept literally here (not imported from the models) so this migration never changes.
APPEND_ONLY_TABLES = ("movements", "ledger_entries", "audit_log")
REFUSE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION refuse_append_only_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP "
    "USING ERRCODE = 'insufficient_privilege'; END $$"
)
CREATE_ROLE = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}')
     AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
    CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
EXCEPTION
  -- Another database of this cluster created it at the same moment.
  WHEN duplicate_object OR unique_violation THEN NULL;
END $$
"""


def _triggers() -> list[str]:
    statements = [REFUSE_FUNCTION]
    for table in APPEND_ONLY_TABLES:
        if table != "audit_log":  # 0001 already refuses UPDATE and DELETE on the audit log
            statements.append(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change()"
            )
        statements.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change()"
        )
    return statements


def _grants() -> list[str]:
    append_only = ", ".join(APPEND_ONLY_TABLES)
    return [
        f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {append_only} FROM {APP_ROLE}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {APP_ROLE}",
        # Tables and sequences of later migrations (made by this same migrating user).
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}",
    ]


def _role_exists() -> bool:
    found = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": APP_ROLE}
    )
    return found.first() is not None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=100), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_idempotency_records_created_at"), ["created_at"], unique=False
        )
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _triggers():
        op.execute(statement)
    op.execute(CREATE_ROLE)
    if _role_exists():
        for statement in _grants():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        if _role_exists():
            op.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}"
            )
            op.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}"
            )
            op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
            op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
            op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            if table != "audit_log":
                op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS refuse_append_only_change()")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_records_created_at"))
        batch_op.drop_column("owner")
