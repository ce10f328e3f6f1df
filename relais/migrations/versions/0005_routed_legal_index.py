"""legal deadlines indexed once items are routed

``ix_work_item_state_legal`` (``state, legal_due_on``) leaves out received items. Intake
no longer inserts an entry per new item among the deadlines of every open item (a random
place in the index, the costliest part of an item's insert after the table itself), and
routing inserts the entry once instead of moving it from ``received`` to ``assigned``.
Received items past their legal deadline are found through ``ix_work_item_received``: the
breach queries ask for them apart (``relais.queries.legal_breached``).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ROUTED = sa.text("legal_due_on IS NOT NULL AND state <> 'received'")
_ALL = sa.text("legal_due_on IS NOT NULL")


def _recreate(where: sa.TextClause) -> None:
    op.drop_index("ix_work_item_state_legal", table_name="work_item")
    op.create_index(
        "ix_work_item_state_legal",
        "work_item",
        ["state", "legal_due_on"],
        unique=False,
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade() -> None:
    _recreate(_ROUTED)


def downgrade() -> None:
    _recreate(_ALL)
