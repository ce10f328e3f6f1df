"""``relais sla`` (breaches, at-risk items, the scan flow) and ``relais worklist``."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

import typer

from relais.cli.output import (
    FormatOption,
    OutputFormat,
    ReportFormat,
    emit_json,
    emit_table,
    info,
    parse_day,
)

app = typer.Typer(
    help="SLA and legal deadlines: breaches, items at risk, the scan.", no_args_is_help=True
)

AsOfOption = Annotated[
    date | None,
    typer.Option(
        "--as-of", parser=parse_day, metavar="YYYY-MM-DD", help="Day evaluated (default: today)."
    ),
]
DirectorateOption = Annotated[
    str | None,
    typer.Option(
        "--directorate",
        metavar="CODE",
        help="Items of the directorate's SIEs or held by the services it hosts.",
    ),
]
ServiceOption = Annotated[
    str | None, typer.Option("--service", metavar="CODE", help="Items held by this service.")
]
SieOption = Annotated[str | None, typer.Option("--sie", metavar="CODE", help="Items of this SIE.")]
ProcessOption = Annotated[
    str | None, typer.Option("--process", metavar="CODE", help="Items of this process.")
]
ListFormatOption = Annotated[
    ReportFormat,
    typer.Option("--format", help="table for people, csv (UTF-8, ';') or json for scripts."),
]

_HEADERS = {
    "sie": "SIE",
    "reference": "Référence",
    "process": "Processus",
    "state": "État",
    "assignee": "Titulaire",
    "assigned_on": "Attribué le",
    "due_on": "Échéance",
    "business_days_overdue": "Retard (j.o.)",
    "business_days_left": "Reste (j.o.)",
    "legal_due_on": "Délai légal",
    "status": "Statut",
    "legal_status": "Statut légal",
    "convention": "Convention",
    "convention_version": "Version",
}
#: Columns left out of tables for people (still in CSV and JSON), to fit a terminal.
_NOT_IN_TABLES = frozenset({"assigned_on", "convention_version", "legal_status"})


def _as_of_day(as_of: date | None) -> date:
    from relais.domain.calendar import MAX_YEAR, MIN_YEAR
    from relais.settings import get_settings

    if as_of is not None and not MIN_YEAR < as_of.year < MAX_YEAR:
        # Queries count business days around the date: the calendars must cover both sides.
        raise typer.BadParameter(
            f"must be between {MIN_YEAR + 1}-01-01 and {MAX_YEAR - 1}-12-31",
            param_hint="--as-of",
        )
    return as_of or get_settings().today()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def rows_to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as ``;``-separated CSV text (header first), safe to open in a spreadsheet."""
    from relais.csvcells import safe_cell

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(_cell(row[column])) for column in columns])
    return buffer.getvalue()


def _emit(
    rows: list[dict[str, Any]], columns: Sequence[str], output_format: ReportFormat, title: str
) -> None:
    if output_format is ReportFormat.json:
        emit_json(rows)
    elif output_format is ReportFormat.csv:
        # UTF-8 with a byte order mark, so spreadsheets read the accents right, whatever the
        # terminal's encoding: written as bytes.
        sys.stdout.flush()
        sys.stdout.buffer.write(rows_to_csv(rows, columns).encode("utf-8-sig"))
        sys.stdout.buffer.flush()
    else:
        shown = [column for column in columns if column not in _NOT_IN_TABLES]
        emit_table(
            [_HEADERS.get(column, column) for column in shown],
            ([_table_cell(row, column) for column in shown] for row in rows),
            title=title,
        )


def _table_cell(row: dict[str, Any], column: str) -> str:
    if column == "convention" and row.get("convention"):
        return f"{row['convention']} v{row['convention_version']}"
    if column == "legal_due_on" and row.get("legal_status") == "legal_breached":
        return f"{_cell(row['legal_due_on'])} (dépassé)"
    return _cell(row[column])


_BREACH_COLUMNS = (
    "sie",
    "reference",
    "process",
    "assignee",
    "assigned_on",
    "due_on",
    "business_days_overdue",
    "legal_due_on",
    "status",
    "convention",
    "convention_version",
)


@app.command("breaches")
def breaches_command(
    as_of: AsOfOption = None,
    directorate: DirectorateOption = None,
    service: ServiceOption = None,
    sie: SieOption = None,
    process: ProcessOption = None,
    include_completed: Annotated[
        bool, typer.Option("--include-completed", help="Also items completed late (missed).")
    ] = False,
    legal: Annotated[
        bool, typer.Option("--legal", help="Open items past their legal deadline instead.")
    ] = False,
    output_format: ListFormatOption = ReportFormat.table,
) -> None:
    """List open items past their due date, most overdue first (computed, no scan needed)."""
    from relais.db import session_scope
    from relais.queries import sla_breaches

    day = _as_of_day(as_of)
    with session_scope() as session:
        rows = sla_breaches(
            session,
            as_of=day,
            directorate=directorate,
            service=service,
            sie=sie,
            process=process,
            include_completed=include_completed,
            legal=legal,
        )
    kind = "Legal breaches" if legal else "SLA breaches"
    _emit(rows, _BREACH_COLUMNS, output_format, f"{kind} on {day.isoformat()}: {len(rows)}")


@app.command("at-risk")
def at_risk_command(
    as_of: AsOfOption = None,
    directorate: DirectorateOption = None,
    service: ServiceOption = None,
    sie: SieOption = None,
    process: ProcessOption = None,
    output_format: ListFormatOption = ReportFormat.table,
) -> None:
    """List open items close to their due date (≤ 20 % of the target left), fewest days first."""
    from relais.db import session_scope
    from relais.queries import sla_at_risk

    day = _as_of_day(as_of)
    with session_scope() as session:
        rows = sla_at_risk(
            session, as_of=day, directorate=directorate, service=service, sie=sie, process=process
        )
    columns = [c if c != "business_days_overdue" else "business_days_left" for c in _BREACH_COLUMNS]
    _emit(rows, columns, output_format, f"Items at risk on {day.isoformat()}: {len(rows)}")


@app.command("scan")
def scan_command(
    as_of: AsOfOption = None, output_format: FormatOption = OutputFormat.table
) -> None:
    """Run the scan-slas flow: record breaches first seen that day, publish them."""
    day = _as_of_day(as_of) if as_of else None  # refuse a bad date before starting Prefect
    from relais.prefect_env import configure_prefect

    configure_prefect()
    from flows.scan import scan_slas

    result = scan_slas(as_of=day)
    if output_format is OutputFormat.json:
        emit_json(result)
        return
    new, still_open = result["new_breaches"], result["open_breaches"]
    info(
        f"Scan of {_cell(result['as_of'])}: {new['sla']} new SLA breach(es), "
        f"{new['legal']} new legal breach(es); open: {still_open['sla']} SLA, "
        f"{still_open['legal']} legal."
    )
    emit_table(
        ["Titulaire", "Nouveaux (délai cible)", "Nouveaux (délai légal)"],
        ([h["holder"], h["sla"], h["legal"]] for h in result["holders"]),
        title="New breaches per holder",
    )


_WORKLIST_COLUMNS = (
    "sie",
    "reference",
    "process",
    "state",
    "assigned_on",
    "due_on",
    "business_days_left",
    "business_days_overdue",
    "status",
    "legal_due_on",
    "legal_status",
    "convention",
    "convention_version",
)


def worklist_command(
    service: Annotated[
        str,
        typer.Option(
            "--service", metavar="CODE", help="Remote service (or SIE, for its local items)."
        ),
    ],
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """List a service's open items by due date, with their SLA status."""
    from relais.db import session_scope
    from relais.queries import worklist

    day = _as_of_day(as_of)
    with session_scope() as session:
        rows = worklist(session, service=service, as_of=day)
    fmt = ReportFormat.json if output_format is OutputFormat.json else ReportFormat.table
    _emit(rows, _WORKLIST_COLUMNS, fmt, f"Worklist of {service} on {day.isoformat()}: {len(rows)}")
