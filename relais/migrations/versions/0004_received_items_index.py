"""received items indexed by state alone

``ix_work_item_routing`` (``received_on, sie_code, reference`` for received items) is replaced
by ``ix_work_item_received`` (``state`` for received items). Routing reads every received
item and sorts each capped line's candidates itself (FIFO per perimeter line), so the index
only has to find them. With one key value its entries go in rowid order: intake appends
each new item's entry instead of inserting it among the days and SIEs, and routing removes
a run of neighbouring entries.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_RECEIVED = sa.text("state = 'received'")


def upgrade() -> None:
    op.drop_index("ix_work_item_routing", table_name="work_item")
    op.create_index(
        "ix_work_item_received",
        "work_item",
        ["state"],
        unique=False,
        sqlite_where=_RECEIVED,
        postgresql_where=_RECEIVED,
    )


def downgrade() -> None:
    op.drop_index("ix_work_item_received", table_name="work_item")
    op.create_index(
        "ix_work_item_routing",
        "work_item",
        ["received_on", "sie_code", "reference"],
        unique=False,
        sqlite_where=_RECEIVED,
        postgresql_where=_RECEIVED,
    )
