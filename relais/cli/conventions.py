"""``relais conventions``: validate, apply, list and show convention versions."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from relais.cli.output import FormatOption, OutputFormat, emit_json, emit_table, parse_day

app = typer.Typer(help="Conventions between exporting and host directorates.", no_args_is_help=True)

FilesArgument = Annotated[
    list[Path], typer.Argument(help="Convention YAML files.", show_default=False)
]
AsOfOption = Annotated[
    date | None,
    typer.Option(
        "--as-of", parser=parse_day, metavar="YYYY-MM-DD", help="Only versions in force that day."
    ),
]


def _report_warnings(warnings: list[str]) -> None:
    for line in warnings:
        typer.echo(line, err=True)


@app.command("validate")
def validate_command(files: FilesArgument) -> None:
    """Check files against reference data, stored conventions and each other; write nothing."""
    from relais.conventions import validate_files

    check = validate_files(files)
    _report_warnings(check.warnings)
    check.raise_for_errors("not valid")
    for source, convention_id, version, status in check.outcomes:
        note = {
            "new": "valid",
            "unchanged": "valid, identical to the stored version (applying it changes nothing)",
            "duplicate": "valid, same version as an earlier file",
        }[status]
        typer.echo(f"{source}: {convention_id} version {version}: {note}")


@app.command("apply")
def apply_command(files: FilesArgument) -> None:
    """Validate every file, then store the new versions together (all or nothing)."""
    from relais.conventions import apply_files

    check = apply_files(files)
    _report_warnings(check.warnings)
    for source, convention_id, version, status in check.outcomes:
        note = {
            "new": "applied",
            "unchanged": "already applied, no change",
            "duplicate": "same version as an earlier file, applied once",
        }[status]
        typer.echo(f"{source}: {convention_id} version {version}: {note}")


@app.command("list")
def list_command(
    as_of: AsOfOption = None, output_format: FormatOption = OutputFormat.table
) -> None:
    """List stored convention versions, with the period each is actually in force."""
    from relais.conventions import list_conventions
    from relais.db import session_scope

    with session_scope() as session:
        versions = list_conventions(session, as_of=as_of)
    if output_format is OutputFormat.json:
        emit_json(versions)
        return
    emit_table(
        ["id", "version", "exporting", "host", "service", "scope", "in force from", "to", "lines"],
        (
            [
                entry["id"],
                entry["version"],
                entry["exporting_directorate"],
                entry["host_directorate"],
                entry["service"],
                entry["scope"],
                _day(entry["in_force_from"]) or "never (superseded)",
                _day(entry["in_force_to"]),
                entry["lines"],
            ]
            for entry in versions
        ),
        title=f"Conventions in force on {as_of.isoformat()}" if as_of else "Conventions",
    )


@app.command("show")
def show_command(
    convention_id: Annotated[str, typer.Argument(metavar="ID", help="Convention id.")],
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Version (default: the latest).")
    ] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Show one convention version: its document and the period it is in force."""
    from relais.conventions import show_convention
    from relais.db import session_scope

    with session_scope() as session:
        shown = show_convention(session, convention_id, version=version)
    if output_format is OutputFormat.json:
        emit_json(shown)
        return
    fields = [
        "id",
        "version",
        "title",
        "exporting_directorate",
        "host_directorate",
        "service",
        "scope",
        "signed_on",
        "effective_from",
        "effective_to",
        "in_force_from",
        "in_force_to",
        "source_file",
        "applied_at",
    ]
    emit_table(["field", "value"], ([name, _cell(shown.get(name))] for name in fields))
    emit_table(
        ["line", "process", "SIEs", "target (business days)", "daily capacity"],
        (
            [
                line["line_id"],
                line["process"],
                line["sies"] if isinstance(line["sies"], str) else ", ".join(line["sies"]),
                line["target_business_days"] or "catalogue default",
                line["daily_capacity"] or "no cap",
            ]
            for line in shown["perimeter"]
        ),
        title="Perimeter",
    )


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _cell(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
