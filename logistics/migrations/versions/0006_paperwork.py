"""paperwork

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:15:48.833214

Issue 19: indents and their trail, the equipment register's fields on storage units with their
repair history, and the monthly sign-off of temperature logs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import logistics.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_store_id", sa.Integer(), nullable=False),
        sa.Column("to_store_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("needed_by", sa.Date(), nullable=False),
        sa.Column("doses_requested", sa.Integer(), nullable=False),
        sa.Column("doses_suggested", sa.Integer(), nullable=False),
        sa.Column("doses_approved", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", logistics.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("shipped_at", logistics.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", logistics.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('requested', 'approved', 'rejected', 'shipped', 'received', 'cancelled')",
            name=op.f("ck_indents_state_known"),
        ),
        sa.CheckConstraint(
            "doses_approved IS NULL OR (doses_approved > 0 AND doses_approved <= doses_requested)",
            name=op.f("ck_indents_approved_within"),
        ),
        sa.CheckConstraint("doses_requested > 0", name=op.f("ck_indents_requested_positive")),
        sa.ForeignKeyConstraint(
            ["from_store_id"], ["stores.id"], name=op.f("fk_indents_from_store_id_stores")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_indents_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_indents_shipment_id_shipments")
        ),
        sa.ForeignKeyConstraint(
            ["to_store_id"], ["stores.id"], name=op.f("fk_indents_to_store_id_stores")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indents")),
        sa.UniqueConstraint("shipment_id", name=op.f("uq_indents_shipment_id")),
    )
    op.create_index(
        "ix_indents_from_store_state", "indents", ["from_store_id", "state"], unique=False
    )
    op.create_index("ix_indents_to_store_state", "indents", ["to_store_id", "state"], unique=False)
    op.create_table(
        "temperature_log_signoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("signed_by", sa.String(length=100), nullable=False),
        sa.Column("signed_at", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["storage_units.id"],
            name=op.f("fk_temperature_log_signoffs_unit_id_storage_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_temperature_log_signoffs")),
        sa.UniqueConstraint(
            "unit_id", "month", name=op.f("uq_temperature_log_signoffs_unit_id_month")
        ),
    )
    op.create_table(
        "unit_status_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "to_status IN ('working', 'needs_repair', 'not_working')",
            name=op.f("ck_unit_status_changes_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["storage_units.id"],
            name=op.f("fk_unit_status_changes_unit_id_storage_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_status_changes")),
    )
    op.create_index(
        op.f("ix_unit_status_changes_unit_id"), "unit_status_changes", ["unit_id"], unique=False
    )
    op.create_table(
        "indent_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("indent_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("doses", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", logistics.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["indent_id"], ["indents.id"], name=op.f("fk_indent_events_indent_id_indents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indent_events")),
    )
    op.create_index(
        op.f("ix_indent_events_indent_id"), "indent_events", ["indent_id"], unique=False
    )
    op.add_column("storage_units", sa.Column("make", sa.String(length=100), nullable=True))
    op.add_column("storage_units", sa.Column("model", sa.String(length=100), nullable=True))
    op.add_column("storage_units", sa.Column("pqs_code", sa.String(length=32), nullable=True))
    op.add_column("storage_units", sa.Column("year_installed", sa.Integer(), nullable=True))
    op.add_column("storage_units", sa.Column("energy_source", sa.String(length=32), nullable=True))
    op.add_column(
        "storage_units",
        sa.Column("working_status", sa.String(length=16), server_default="working", nullable=False),
    )
    op.add_column("storage_units", sa.Column("capacity_doses", sa.Integer(), nullable=True))


def downgrade() -> None:
    # SQLite drops columns only by rebuilding the table: batch mode does that on both databases.
    with op.batch_alter_table("storage_units") as batch:
        for column in (
            "capacity_doses",
            "working_status",
            "energy_source",
            "year_installed",
            "pqs_code",
            "model",
            "make",
        ):
            batch.drop_column(column)
    op.drop_index(op.f("ix_indent_events_indent_id"), table_name="indent_events")
    op.drop_table("indent_events")
    op.drop_index(op.f("ix_unit_status_changes_unit_id"), table_name="unit_status_changes")
    op.drop_table("unit_status_changes")
    op.drop_table("temperature_log_signoffs")
    op.drop_index("ix_indents_to_store_state", table_name="indents")
    op.drop_index("ix_indents_from_store_state", table_name="indents")
    op.drop_table("indents")
