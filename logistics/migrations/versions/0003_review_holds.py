"""review holds, per-logger excursions, lot recalls

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:40:00.000000

Issue 11: held doses follow the pending quarantine reviews (a lot may get a second review of one
alarm for doses that arrive after its first was decided); each logger of a unit is evaluated on
its own, so an excursion names its logger; a state officer or an administrator can hold a whole
lot (recall) in a subtree, and lift the hold, both recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import logistics.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine_reviews") as batch:
        batch.drop_constraint("uq_quarantine_reviews_excursion_id_lot_id", type_="unique")
    op.create_index(
        "uq_quarantine_reviews_pending",
        "quarantine_reviews",
        ["excursion_id", "lot_id"],
        unique=True,
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )
    with op.batch_alter_table("excursions") as batch:
        batch.add_column(sa.Column("sensor_id", sa.String(length=64), nullable=True))
        batch.drop_constraint("uq_excursions_unit_id_kind_started_at", type_="unique")
        batch.create_unique_constraint(
            "uq_excursions_unit_id_sensor_id_kind_started_at",
            ["unit_id", "sensor_id", "kind", "started_at"],
        )
    op.create_table(
        "lot_recalls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("store_path", sa.String(length=512), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=100), nullable=False),
        sa.Column("placed_at", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", logistics.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=100), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_lot_recalls_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_lot_recalls_store_id_stores")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_recalls")),
    )
    op.create_index("ix_lot_recalls_lot_active", "lot_recalls", ["lot_id", "lifted_at"])


def downgrade() -> None:
    op.drop_index("ix_lot_recalls_lot_active", table_name="lot_recalls")
    op.drop_table("lot_recalls")
    with op.batch_alter_table("excursions") as batch:
        batch.drop_constraint("uq_excursions_unit_id_sensor_id_kind_started_at", type_="unique")
        batch.create_unique_constraint(
            "uq_excursions_unit_id_kind_started_at", ["unit_id", "kind", "started_at"]
        )
        batch.drop_column("sensor_id")
    op.drop_index("uq_quarantine_reviews_pending", table_name="quarantine_reviews")
    with op.batch_alter_table("quarantine_reviews") as batch:
        batch.create_unique_constraint(
            "uq_quarantine_reviews_excursion_id_lot_id", ["excursion_id", "lot_id"]
        )
