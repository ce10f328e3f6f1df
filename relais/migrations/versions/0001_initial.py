"""initial

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("directorate", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("service", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "calendar_day",
        sa.Column("office", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("is_business", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("office", "day"),
    )
    with op.batch_alter_table("calendar_day", schema=None) as batch_op:
        batch_op.create_index("ix_calendar_day_office_ordinal", ["office", "ordinal"], unique=False)

    op.create_table(
        "calendar_span",
        sa.Column("office", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("office"),
    )
    op.create_table(
        "closure",
        sa.Column("office", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint("office", "day"),
    )
    op.create_table(
        "directorate",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "intake_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sie_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("file_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("unreadable_reason", sa.Text(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("ingested_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sie_code", "file_name", "sha256", name="uq_intake_file"),
    )
    op.create_table(
        "item_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("from_state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("to_state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("assignee", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("assignment_kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("convention_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("convention_version", sa.Integer(), nullable=True),
        sa.Column("perimeter_line_id", sa.Integer(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("recorded_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("item_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_item_event_capacity",
            ["perimeter_line_id", "as_of", "event"],
            unique=False,
            sqlite_where=sa.text("perimeter_line_id IS NOT NULL"),
            postgresql_where=sa.text("perimeter_line_id IS NOT NULL"),
        )
        batch_op.create_index("ix_item_event_item", ["item_id", "id"], unique=False)

    op.create_table(
        "perimeter_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("convention_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("process", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("all_sies", sa.Boolean(), nullable=False),
        sa.Column("target_business_days", sa.Integer(), nullable=True),
        sa.Column("daily_capacity", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("perimeter_line", schema=None) as batch_op:
        batch_op.create_index(
            "ix_perimeter_line_version", ["convention_id", "version"], unique=False
        )

    op.create_table(
        "run_lock",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("acquired_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "sla_breach",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("first_seen_on", sa.Date(), nullable=False),
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("recorded_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "kind", "deadline", name="uq_sla_breach"),
    )
    with op.batch_alter_table("sla_breach", schema=None) as batch_op:
        batch_op.create_index("ix_sla_breach_seen", ["first_seen_on"], unique=False)

    op.create_table(
        "work_item",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sie_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("process", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("siren", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("legal_due_on", sa.Date(), nullable=True),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("assignee", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("assignment_kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("convention_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("convention_version", sa.Integer(), nullable=True),
        sa.Column("perimeter_line_id", sa.Integer(), nullable=True),
        sa.Column("assigned_on", sa.Date(), nullable=True),
        sa.Column("target_business_days", sa.Integer(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("suspended_on", sa.Date(), nullable=True),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("intake_file_id", sa.Integer(), nullable=True),
        sa.Column("last_event_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sie_code", "reference", name="uq_work_item_sie_reference"),
    )
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.create_index(
            "ix_work_item_holder",
            ["assignee", "state", "due_on"],
            unique=False,
            sqlite_where=sa.text("assignee IS NOT NULL"),
            postgresql_where=sa.text("assignee IS NOT NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_work_item_intake_file_id"), ["intake_file_id"], unique=False
        )
        batch_op.create_index("ix_work_item_last_event", ["last_event_at"], unique=False)
        batch_op.create_index(
            "ix_work_item_routing",
            ["received_on", "sie_code", "reference"],
            unique=False,
            sqlite_where=sa.text("state = 'received'"),
            postgresql_where=sa.text("state = 'received'"),
        )
        batch_op.create_index(
            "ix_work_item_sie_state_due",
            ["sie_code", "state", "due_on"],
            unique=False,
            sqlite_where=sa.text("due_on IS NOT NULL"),
            postgresql_where=sa.text("due_on IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_work_item_state_due",
            ["state", "due_on"],
            unique=False,
            sqlite_where=sa.text("due_on IS NOT NULL"),
            postgresql_where=sa.text("due_on IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_work_item_state_legal",
            ["state", "legal_due_on"],
            unique=False,
            sqlite_where=sa.text("legal_due_on IS NOT NULL"),
            postgresql_where=sa.text("legal_due_on IS NOT NULL"),
        )

    op.create_table(
        "intake_rejection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("intake_file_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["intake_file_id"],
            ["intake_file.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("intake_rejection", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_rejection_intake_file_id"), ["intake_file_id"], unique=False
        )

    op.create_table(
        "perimeter_sie",
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("sie_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["perimeter_line.id"],
        ),
        sa.PrimaryKeyConstraint("line_id", "sie_code"),
    )
    op.create_table(
        "remote_service",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("town", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column(
            "host_directorate_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False
        ),
        sa.Column("agents", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_directorate_code"],
            ["directorate.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("remote_service", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_remote_service_host_directorate_code"),
            ["host_directorate_code"],
            unique=False,
        )

    op.create_table(
        "sie",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("directorate_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["directorate_code"],
            ["directorate.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("sie", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sie_directorate_code"), ["directorate_code"], unique=False
        )

    op.create_table(
        "convention_version",
        sa.Column("convention_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column(
            "exporting_directorate", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False
        ),
        sa.Column("host_directorate", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("service_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=True),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("reporting", sa.JSON(), nullable=True),
        sa.Column("project_leads", sa.JSON(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("applied_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exporting_directorate"],
            ["directorate.code"],
        ),
        sa.ForeignKeyConstraint(
            ["host_directorate"],
            ["directorate.code"],
        ),
        sa.ForeignKeyConstraint(
            ["service_code"],
            ["remote_service.code"],
        ),
        sa.PrimaryKeyConstraint("convention_id", "version"),
    )
    with op.batch_alter_table("convention_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_convention_version_service_code"), ["service_code"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("convention_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_convention_version_service_code"))

    op.drop_table("convention_version")
    with op.batch_alter_table("sie", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sie_directorate_code"))

    op.drop_table("sie")
    with op.batch_alter_table("remote_service", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remote_service_host_directorate_code"))

    op.drop_table("remote_service")
    op.drop_table("perimeter_sie")
    with op.batch_alter_table("intake_rejection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_rejection_intake_file_id"))

    op.drop_table("intake_rejection")
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_work_item_state_legal",
            sqlite_where=sa.text("legal_due_on IS NOT NULL"),
            postgresql_where=sa.text("legal_due_on IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_work_item_state_due",
            sqlite_where=sa.text("due_on IS NOT NULL"),
            postgresql_where=sa.text("due_on IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_work_item_sie_state_due",
            sqlite_where=sa.text("due_on IS NOT NULL"),
            postgresql_where=sa.text("due_on IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_work_item_routing",
            sqlite_where=sa.text("state = 'received'"),
            postgresql_where=sa.text("state = 'received'"),
        )
        batch_op.drop_index("ix_work_item_last_event")
        batch_op.drop_index(batch_op.f("ix_work_item_intake_file_id"))
        batch_op.drop_index(
            "ix_work_item_holder",
            sqlite_where=sa.text("assignee IS NOT NULL"),
            postgresql_where=sa.text("assignee IS NOT NULL"),
        )

    op.drop_table("work_item")
    with op.batch_alter_table("sla_breach", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_breach_seen")

    op.drop_table("sla_breach")
    op.drop_table("run_lock")
    with op.batch_alter_table("perimeter_line", schema=None) as batch_op:
        batch_op.drop_index("ix_perimeter_line_version")

    op.drop_table("perimeter_line")
    with op.batch_alter_table("item_event", schema=None) as batch_op:
        batch_op.drop_index("ix_item_event_item")
        batch_op.drop_index(
            "ix_item_event_capacity",
            sqlite_where=sa.text("perimeter_line_id IS NOT NULL"),
            postgresql_where=sa.text("perimeter_line_id IS NOT NULL"),
        )

    op.drop_table("item_event")
    op.drop_table("intake_file")
    op.drop_table("directorate")
    op.drop_table("closure")
    op.drop_table("calendar_span")
    with op.batch_alter_table("calendar_day", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_day_office_ordinal")

    op.drop_table("calendar_day")
    op.drop_table("api_token")
