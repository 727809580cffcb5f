"""evaluation queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:29:49.009383

Ingestion no longer evaluates excursions before acknowledging a batch: it records which units
its readings touched, in the same transaction, and evaluators work through these requests.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import logistics.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("earliest_ts", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("latest_ts", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requested_at", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["storage_units.id"],
            name=op.f("fk_evaluation_requests_unit_id_storage_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_requests")),
    )


def downgrade() -> None:
    op.drop_table("evaluation_requests")
