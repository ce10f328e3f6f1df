"""``relais items``: post lifecycle events (one, or a file of them) and show an item."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from relais.cli.output import FormatOption, OutputFormat, emit_json, emit_table, info, stdout

app = typer.Typer(help="Work items: lifecycle events and history.", no_args_is_help=True)

#: Author of changes made from the command line.
CLI_AUTHOR = "cli"

SieOption = Annotated[str, typer.Option("--sie", metavar="CODE", help="SIE code of the item.")]
RefOption = Annotated[str, typer.Option("--ref", metavar="REFERENCE", help="Item reference.")]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@app.command("event")
def event_command(
    sie: SieOption,
    ref: RefOption,
    event: Annotated[
        str,
        typer.Option(
            "--event", metavar="EVENT", help="start, suspend, resume, complete or cancel."
        ),
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="DATE|DATETIME",
            help="When it happened (default: now); a date alone means 00:00 local that day.",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help="Why (suspension, cancellation) or the outcome (completion)."
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Apply a lifecycle event to one item; a refused event changes nothing (exit 1)."""
    from relais.db import session_scope
    from relais.domain.lifecycle import LifecycleEvent, parse_at
    from relais.errors import ValidationError
    from relais.items import apply_event
    from relais.settings import get_settings

    zone = get_settings().timezone
    names = [name.value for name in LifecycleEvent]
    if event.strip().lower() not in names:
        raise typer.BadParameter(
            f"{event!r} is not one of {', '.join(names)}", param_hint="--event"
        )
    try:
        moment = parse_at(at, zone) if at else datetime.now(zone)
    except ValidationError as error:
        raise typer.BadParameter(error.message, param_hint="--at") from None
    with session_scope() as session:
        applied = apply_event(
            session, sie=sie, reference=ref, event=event, at=moment, reason=reason, by=CLI_AUTHOR
        )
    if output_format is OutputFormat.json:
        emit_json(applied.as_dict())
        return
    line = (
        f"{applied.sie}/{applied.reference}: {applied.event}, "
        f"{applied.from_state} → {applied.to_state}"
    )
    if applied.due_on != applied.due_on_before:
        line += f"; due {_text(applied.due_on_before)} → {_text(applied.due_on)}"
    elif applied.due_on is not None and applied.to_state not in ("completed", "cancelled"):
        line += f"; due {_text(applied.due_on)}"
    stdout.print(line, highlight=False)


@app.command("events")
def events_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help="CSV with columns sie;reference;event;at;reason.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Apply a file of events, each row on its own; refused rows go to FILE.csv.errors.csv."""
    from relais.items import import_events

    outcome = import_events(file, by=CLI_AUTHOR)
    if output_format is OutputFormat.json:
        emit_json(outcome.as_dict())
    else:
        emit_table(
            ["line", "sie", "reference", "event", "result", "state", "reason"],
            (
                [row.line, row.sie, row.reference, row.event, row.result, row.state, row.reason]
                for row in outcome.rows
            ),
            title=f"{file.name}: {outcome.applied} applied, {outcome.refused} refused",
        )
    if outcome.already_recorded:
        info(
            f"{outcome.already_recorded} row(s) were imported before from the same file content: "
            "reported as recorded then, not applied again."
        )
    if outcome.errors_file is not None:
        info(f"Refused rows written to {outcome.errors_file}.")


@app.command("show")
def show_command(
    sie: SieOption, ref: RefOption, output_format: FormatOption = OutputFormat.table
) -> None:
    """Show an item: state, holder, SLA and legal deadline (as of today) and its history."""
    from relais.db import session_scope
    from relais.items import item_detail
    from relais.settings import get_settings

    today = get_settings().today()
    with session_scope() as session:
        detail = item_detail(session, sie=sie, reference=ref, as_of=today)
    if output_format is OutputFormat.json:
        emit_json(detail)
        return
    holder = detail["assignee"] or "—"
    if detail["assignment_kind"] == "remote":
        holder += f" (convention {detail['convention']} v{detail['convention_version']})"
    elif detail["assignment_kind"] == "local":
        holder += " (local)"
    fields = [
        ("SIE", detail["sie"]),
        ("Référence", detail["reference"]),
        ("Processus", detail["process"]),
        ("État", detail["state"]),
        ("Titulaire", holder),
        ("Reçu le", _text(detail["received_on"])),
        ("Attribué le", _text(detail["assigned_on"])),
        ("Échéance", _text(detail["due_on"])),
        ("Statut SLA", _text(detail["sla_status"])),
        ("Délai légal", _text(detail["legal_due_on"])),
        ("Statut légal", _text(detail["legal_status"])),
    ]
    emit_table(
        ["Champ", "Valeur"],
        fields,
        title=f"{detail['sie']}/{detail['reference']} au {today.isoformat()}",
    )
    emit_table(
        ["Date", "Événement", "Par", "État", "Titulaire", "Échéance", "Motif"],
        (
            [
                entry["at"].replace("T", " ")[:16],
                entry["event"],
                entry["by"],
                entry["to_state"],
                _holder(entry),
                _text(entry.get("due_on"))
                + (
                    f" (était {_text(entry['due_on_before'])})"
                    if entry.get("due_on_before")
                    else ""
                ),
                entry.get("reason"),
            ]
            for entry in detail["history"]
        ),
        title="Historique (du plus ancien au plus récent)",
    )


def _holder(entry: dict[str, Any]) -> str:
    """Who an assignment went to, with its convention (empty for other events)."""
    if entry["event"] != "assigned":
        return ""
    if entry.get("convention"):
        return f"{entry['assignee']} ({entry['convention']} v{entry['convention_version']})"
    return f"{entry['assignee']} (local)"
