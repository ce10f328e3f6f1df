"""``relais db``: schema management."""

from __future__ import annotations

import typer

from relais.cli.output import info

app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply pending schema migrations to the configured database."""
    from relais.db import HEAD_REVISION, make_engine, upgrade
    from relais.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database_url)
    before = upgrade(engine)
    engine.dispose()
    if before == HEAD_REVISION:
        info(f"Database already at revision {HEAD_REVISION}.")
    else:
        info(f"Database upgraded from {before or 'empty'} to revision {HEAD_REVISION}.")
