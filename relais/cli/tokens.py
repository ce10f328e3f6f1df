"""``relais tokens``: API tokens (create, list, revoke)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from relais.cli.output import FormatOption, OutputFormat, emit_json, emit_table, info

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


class RoleChoice(StrEnum):
    """``--role`` values (mirrors ``relais.tokens.Role``)."""

    admin = "admin"
    supervisor = "supervisor"
    service = "service"


@app.command("create")
def create_command(
    name: Annotated[str, typer.Option("--name", help="Unique name, shown as event author.")],
    role: Annotated[RoleChoice, typer.Option("--role", help="admin, supervisor or service.")],
    directorate: Annotated[
        str | None, typer.Option("--directorate", help="Directorate of a supervisor.")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Remote service of a service token.")
    ] = None,
) -> None:
    """Create a token and print it once, alone on the last line (only its hash is stored)."""
    from relais.db import session_scope
    from relais.tokens import create_token

    with session_scope() as session:
        raw_token = create_token(
            session,
            name=name,
            role=role.value,
            directorate=directorate,
            service=service,
            now=datetime.now(UTC),
        )
    scope = f" for {directorate or service}" if directorate or service else ""
    info(f"Token {name} created (role {role.value}{scope}). It is shown only now: keep it safe.")
    typer.echo(raw_token)


@app.command("list")
def list_command(output_format: FormatOption = OutputFormat.table) -> None:
    """List tokens with their role and scope (never the tokens or their hashes)."""
    from relais.db import session_scope
    from relais.settings import get_settings
    from relais.tokens import list_tokens

    with session_scope() as session:
        tokens = list_tokens(session)
    if output_format is OutputFormat.json:
        emit_json(tokens)
        return
    zone = get_settings().timezone

    def moment(value: datetime | None) -> str | None:
        return value.astimezone(zone).strftime("%Y-%m-%d") if value else None

    emit_table(
        ["name", "role", "scope", "created", "revoked"],
        [
            [
                token["name"],
                token["role"],
                token["directorate"] or token["service"],
                moment(token["created_at"]),
                moment(token["revoked_at"]),
            ]
            for token in tokens
        ],
    )


@app.command("revoke")
def revoke_command(
    name: Annotated[str, typer.Argument(help="Name of the token to revoke.")],
) -> None:
    """Revoke a token: the API refuses it from the next request on."""
    from relais.db import session_scope
    from relais.tokens import revoke_token

    now = datetime.now(UTC)
    with session_scope() as session:
        revoked_at = revoke_token(session, name=name, now=now)
    if revoked_at == now:
        info(f"Token {name} revoked.")
    else:
        info(f"Token {name} was already revoked on {revoked_at.isoformat(timespec='seconds')}.")
