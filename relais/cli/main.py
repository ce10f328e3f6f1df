"""Entry point of the ``relais`` command: groups are registered here, one line each."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import typer
from typer.core import TyperGroup

from relais.errors import RelaisError


class RelaisGroup(TyperGroup):
    """Translates domain errors into a message on stderr and exit code 1, once, here."""

    def invoke(self, ctx: Any) -> Any:
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
    """Register the commands in the order a user meets them (``relais --help``)."""

    def command(name: str, module: str, function: str) -> None:
        app.command(name)(getattr(import_module(f"relais.cli.{module}"), function))

    def group(name: str, module: str) -> None:
        app.add_typer(import_module(f"relais.cli.{module}").app, name=name)

    command("demo", "demo", "demo_command")
    group("reference", "reference")
    group("conventions", "conventions")
    command("intake", "intake", "intake_command")
    command("route", "route", "route_command")
    group("items", "items")
    group("sla", "sla")
    command("worklist", "sla", "worklist_command")
    command("report", "report", "report_command")
    group("tokens", "tokens")
    command("api", "api", "api_command")
    command("serve", "serve", "serve_command")
    group("db", "db")


_register()


def main() -> None:
    """Run the ``relais`` command."""
    app()
