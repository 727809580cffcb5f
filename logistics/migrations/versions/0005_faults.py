"""faults: raw dead-letter bytes, evaluation retries, the access epoch

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:30:00

Issue 12. Dead letters keep the exact bytes received (a text column refuses NUL); a failed
evaluation request is retried after a back-off instead of being dropped; every revocation raises
one counter that each web worker checks per request.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import logistics.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("raw", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("evaluation_requests") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("not_before", logistics.db.UTCDateTime(timezone=True), nullable=True)
        )
    epoch = op.create_table(
        "access_epoch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_epoch")),
    )
    op.bulk_insert(epoch, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("access_epoch")
    with op.batch_alter_table("evaluation_requests") as batch:
        batch.drop_column("not_before")
        batch.drop_column("attempts")
    op.drop_column("dead_letters", "raw")
