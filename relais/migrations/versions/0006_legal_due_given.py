"""work items say whether their legal deadline was given, instead of a fingerprint

Intake told a duplicate row from a conflicting one by a SHA-256 of the row's normalised values,
computed for every row and stored in ``work_item.fingerprint`` (64 characters). It now compares
the stored values themselves, and only for rows whose reference is already taken
(``relais.domain.intake.row_content``). The one thing the values did not say is whether the
legal deadline came with the row or was computed: ``legal_due_given`` says it. It is derived
here from the fingerprint (a row gave its deadline when the fingerprint is the one of its
values with that deadline), then the fingerprint is dropped.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 10_000


def _fingerprint(
    process: str,
    siren: str,
    received_on: object,
    amount_cents: int | None,
    given: object | None,
    label: str | None,
) -> str:
    """The fingerprint intake stored (dates as ISO text; ``given``: the deadline the row gave)."""
    text = "\x1f".join(
        (
            process,
            siren,
            str(received_on),
            "" if amount_cents is None else str(amount_cents),
            "" if given is None else str(given),
            "" if label is None else label,
        )
    )
    return sha256(text.encode("utf-8")).hexdigest()


def _pages(connection: sa.Connection, query: str) -> Iterator[list[sa.Row]]:
    """The rows of ``query`` (``id > :last … ORDER BY id LIMIT :batch``), a page at a time."""
    last = 0
    while rows := connection.execute(sa.text(query), {"last": last, "batch": _BATCH}).all():
        yield rows
        last = rows[-1][0]


def upgrade() -> None:
    op.add_column(
        "work_item",
        sa.Column("legal_due_given", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    connection = op.get_bind()
    pages = _pages(
        connection,
        "SELECT id, process, siren, received_on, amount_cents, legal_due_on, label, fingerprint"
        " FROM work_item WHERE id > :last AND legal_due_on IS NOT NULL ORDER BY id LIMIT :batch",
    )
    for rows in pages:
        given = [{"id": row[0]} for row in rows if row[7] == _fingerprint(*row[1:7])]
        if given:
            connection.execute(
                sa.text("UPDATE work_item SET legal_due_given = true WHERE id = :id"), given
            )
    op.drop_column("work_item", "fingerprint")


def downgrade() -> None:
    op.add_column(
        "work_item",
        sa.Column("fingerprint", sa.String(length=64), server_default="", nullable=False),
    )
    connection = op.get_bind()
    pages = _pages(
        connection,
        "SELECT id, process, siren, received_on, amount_cents, legal_due_on, legal_due_given,"
        " label FROM work_item WHERE id > :last ORDER BY id LIMIT :batch",
    )
    for rows in pages:
        connection.execute(
            sa.text("UPDATE work_item SET fingerprint = :fingerprint WHERE id = :id"),
            [
                {
                    "id": row[0],
                    "fingerprint": _fingerprint(*row[1:5], row[5] if row[6] else None, row[7]),
                }
                for row in rows
            ],
        )
    op.drop_column("work_item", "legal_due_given")
