"""ledger entries indexed for paging a lot's movements and trace

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:00:00

Issue 17. The index on ledger_entries(lot_id) becomes (lot_id, movement_id), so a page of a lot's
movements (newest first, keyset on the movement id) reads only that page, and
(lot_id, occurred_at, id) is added for the lot's trace, paged oldest first. Building them reads
the whole ledger once.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_lot_movement", "ledger_entries", ["lot_id", "movement_id"], unique=False
    )
    op.create_index(
        "ix_ledger_entries_lot_occurred",
        "ledger_entries",
        ["lot_id", "occurred_at", "id"],
        unique=False,
    )
    op.drop_index("ix_ledger_entries_lot", table_name="ledger_entries")


def downgrade() -> None:
    op.create_index("ix_ledger_entries_lot", "ledger_entries", ["lot_id"], unique=False)
    op.drop_index("ix_ledger_entries_lot_occurred", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_lot_movement", table_name="ledger_entries")
