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
    from relais.cli import db

    app.add_typer(db.app, name="db")
    app.add_typer(import_module("relais.cli.reference").app, name="reference")
    app.add_typer(import_module("relais.cli.conventions").app, name="conventions")
    app.add_typer(import_module("relais.cli.tokens").app, name="tokens")
    app.command("report")(import_module("relais.cli.report").report_command)
    app.command("intake")(import_module("relais.cli.intake").intake_command)
    app.command("route")(import_module("relais.cli.route").route_command)
    app.command("api")(import_module("relais.cli.api").api_command)
    app.add_typer(import_module("relais.cli.items").app, name="items")
    app.add_typer(import_module("relais.cli.sla").app, name="sla")
    app.command("worklist")(import_module("relais.cli.sla").worklist_command)
    app.command("serve")(import_module("relais.cli.serve").serve_command)
    app.command("demo")(import_module("relais.cli.demo").demo_command)


_register()


def main() -> None:
    """Run the ``relais`` command."""
    app()
