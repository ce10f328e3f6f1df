"""event import ledger: the rows of event files already applied or refused

``event_import_row`` records, by the SHA-256 of an event file's bytes and the row's line,
what happened to each row (an applied row in the same transaction as its event), so that a
rerun after a crash, or the same file imported again, applies nothing twice.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_import_row",
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("item_event_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "line"),
    )


def downgrade() -> None:
    op.drop_table("event_import_row")
