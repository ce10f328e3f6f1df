"""drop the index of work_item.intake_file_id

Intake finds the items a batch created by id range (ids only grow), so nothing reads
work_item by intake file through an index any more; the index cost every intake insert and
every assignment an entry.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_work_item_intake_file_id", table_name="work_item")


def downgrade() -> None:
    op.create_index("ix_work_item_intake_file_id", "work_item", ["intake_file_id"], unique=False)
