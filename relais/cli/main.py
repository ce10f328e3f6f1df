"""Entry point of the ``relais`` command: groups are registered here, one line each."""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup

from relais.errors import RelaisError


class RelaisGroup(TyperGroup):
    """Translates domain errors into a message on stderr and exit code 1, once, here."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RelaisError as error:
            typer.echo(f"Error: {error.message}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="relais",
    cls=RelaisGroup,
    help=(
        "Relais routes the work of SIEs to the remote services that work for them under a "
        "convention, and tracks completion SLAs and legal deadlines."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from relais.cli import db

    app.add_typer(db.app, name="db")


_register()


def main() -> None:
    """Run the ``relais`` command."""
    app()
