"""drop two work_item indexes that cost more than they served

* ``ix_work_item_intake_file_id``: intake finds the items a batch created by id range (ids
  only grow), so nothing reads work items by intake file through an index any more;
* ``ix_work_item_state_due``: breach queries go through the SIE and holder indexes, and the
  whole-table scans (hourly scan, reassignment check) read most of the table anyway.

Both cost every intake insert or every assignment an index entry.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_work_item_intake_file_id", table_name="work_item")
    op.drop_index("ix_work_item_state_due", table_name="work_item")


def downgrade() -> None:
    op.create_index(
        "ix_work_item_state_due",
        "work_item",
        ["state", "due_on"],
        unique=False,
        sqlite_where=sa.text("due_on IS NOT NULL"),
        postgresql_where=sa.text("due_on IS NOT NULL"),
    )
    op.create_index("ix_work_item_intake_file_id", "work_item", ["intake_file_id"], unique=False)
