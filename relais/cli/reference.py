"""``relais reference``: load and list directorates, SIEs, remote services and closures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relais.cli.output import FormatOption, OutputFormat, emit_json, emit_table

app = typer.Typer(
    help="Reference data: directorates, SIEs, remote services, closures.", no_args_is_help=True
)


@app.command("load")
def load_command(
    file: Annotated[Path, typer.Argument(help="YAML file of reference data.", show_default=False)],
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Load a reference file: an idempotent upsert, all of it or nothing."""
    from relais.reference import load_reference

    result = load_reference(file)
    for line in result.warnings:
        typer.echo(line, err=True)
    if output_format is OutputFormat.json:
        emit_json(
            {
                "file": result.source,
                **{
                    kind: {
                        "created": counts.created,
                        "updated": counts.updated,
                        "unchanged": counts.unchanged,
                    }
                    for kind, counts in result.counts.items()
                },
            }
        )
        return
    emit_table(
        ["kind", "in file", "created", "updated", "unchanged"],
        [
            [kind, counts.total, counts.created, counts.updated, counts.unchanged]
            for kind, counts in result.counts.items()
        ],
        title=f"{result.source}: {'loaded' if result.changed else 'already up to date'}",
    )


@app.command("list")
def list_command(output_format: FormatOption = OutputFormat.table) -> None:
    """Show the loaded reference data."""
    from relais.db import session_scope
    from relais.reference import list_reference

    with session_scope() as session:
        reference = list_reference(session)
    if output_format is OutputFormat.json:
        emit_json(reference)
        return
    emit_table(
        ["code", "name", "department"],
        (
            [entry["code"], entry["name"], entry["department"]]
            for entry in reference["directorates"]
        ),
        title="Directorates",
    )
    emit_table(
        ["code", "name", "directorate", "department"],
        (
            [entry["code"], entry["name"], entry["directorate"], entry["department"]]
            for entry in reference["sies"]
        ),
        title="SIEs",
    )
    emit_table(
        ["code", "name", "town", "department", "host directorate", "agents"],
        (
            [
                entry["code"],
                entry["name"],
                entry["town"],
                entry["department"],
                entry["host_directorate"],
                entry["agents"],
            ]
            for entry in reference["services"]
        ),
        title="Remote services",
    )
    emit_table(
        ["office", "date", "reason"],
        ([entry["office"], entry["date"], entry["reason"]] for entry in reference["closures"]),
        title="Closures",
    )
