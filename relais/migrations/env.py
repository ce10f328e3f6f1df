"""Alembic environment: runs on the connection Relais hands over (or the configured URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import models.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    """Run against the connection given in ``config.attributes`` or a fresh engine."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        from relais.db import make_engine
        from relais.settings import get_settings

        engine = make_engine(get_settings().database_url)
        with engine.begin() as own_connection:
            _run(own_connection)
        return
    _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
