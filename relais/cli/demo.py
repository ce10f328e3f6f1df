"""``relais demo``: the whole product on illustrative data, in a couple of minutes."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from relais.cli.output import FormatOption, OutputFormat, emit_json, info, stdout
from relais.domain.catalogue import CATALOGUE

#: Prefect settings for the demo (the user's own environment wins). They must be in the
#: environment before Prefect is imported and before the temporary server starts.
DEMO_PREFECT_SETTINGS: dict[str, str] = {
    # Progress lines are the story on stderr: keep Prefect's per-run INFO logs out of it.
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "WARNING",
}


def _night_line(total: int, index: int, night: Any, started: float) -> str:
    cycle = night.cycle
    intake, routing, scan = cycle["intake"], cycle["routing"], cycle["scan"]
    line = (
        f"[{index + 1:>2}/{total}] {night.as_of.isoformat()}  "
        f"received {intake['accepted']:>3} (rejected {intake['rejected']}, "
        f"duplicates {intake['duplicates']}) · assigned {routing['assigned_total']:>3}"
        f" · new breaches {scan['new_sla'] + scan['new_legal']}"
    )
    if night.agents is not None:
        events = night.agents.events
        line += (
            f" · agents: {events['start']} started, {events['complete']} completed, "
            f"{events['suspend']} suspended, {events['resume']} resumed"
        )
    return line + f"  ({time.monotonic() - started:.0f} s)"


def _summary_console() -> Console:
    # Piped into a file or a pager, rich would assume 80 columns and fold every table.
    return stdout if stdout.is_terminal else Console(soft_wrap=True, width=150)


def _print_summary(summary: dict[str, Any], *, api_url: str | None) -> None:
    console = _summary_console()

    def emit_table(columns: list[str], rows: list[list[Any]], *, title: str) -> None:
        table = Table(title=title, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        console.print(table)

    files = summary["files"]
    console.print(
        f"\n[bold]Relais demo — situation on {summary['as_of']}[/bold]\n"
        f"{files['count']} queue files read: {files['accepted']} items accepted, "
        f"{files['duplicates']} duplicate(s) skipped, {files['rejected']} row(s) rejected.\n",
        highlight=False,
    )
    emit_table(
        ["holder", "kind", "routed", "open", "completed", "breached"],
        [
            [h["holder"], h["kind"], h["routed"], h["open"], h["completed"], h["breached"]]
            for h in summary["holders"]
        ],
        title="Routed per service (remote) and kept by SIEs (local)",
    )
    if summary["waiting_capacity"]:
        console.print(f"{summary['waiting_capacity']} item(s) waiting for capacity.")
    breaches = summary["breaches"]
    console.print(
        f"\n[bold]SLA breaches:[/bold] {breaches['sla']} open item(s) past their due date; "
        f"{breaches['legal']} past their legal deadline.",
        highlight=False,
    )
    if breaches["worst"]:
        emit_table(
            ["SIE", "reference", "process", "holder", "due on", "business days overdue"],
            [
                [
                    row["sie"],
                    row["reference"],
                    CATALOGUE[row["process"]].label,
                    row["assignee"],
                    row["due_on"],
                    row["business_days_overdue"],
                ]
                for row in breaches["worst"]
            ],
            title="Most overdue",
        )
    if summary["legal_breaches"]:
        emit_table(
            ["SIE", "reference", "process", "holder", "legal deadline"],
            [
                [
                    row["sie"],
                    row["reference"],
                    CATALOGUE[row["process"]].label,
                    row["assignee"],
                    row["legal_due_on"],
                ]
                for row in summary["legal_breaches"]
            ],
            title="Past the legal deadline",
        )
    if summary["rejected_rows"]:
        emit_table(
            ["SIE", "file", "line", "reference", "reason"],
            [
                [r["sie"], r["file"], r["line"], r["reference"], r["reason"]]
                for r in summary["rejected_rows"]
            ],
            title="Rows rejected at intake (details in <queue>/<SIE>/rejected/*.errors.csv)",
        )
    example = (breaches["worst"] or summary["legal_breaches"] or [None])[0]
    month = summary["as_of"][:7]
    ui = (
        f"open {api_url.removesuffix('/api')} (the server in PREFECT_API_URL)"
        if api_url
        else "prefect server start   # then open http://127.0.0.1:4200/runs"
    )
    lines = [
        "",
        "[bold]Where to look next[/bold]",
        f"  Prefect UI (runs nightly-…, artifacts):  {ui}",
        "  Breaches:        relais sla breaches --format table",
        "  At risk:         relais sla at-risk",
        "  Worklist:        relais worklist --service ANT-18-VIERZON",
    ]
    if example is not None:
        item = f"--sie {example['sie']} --ref {example['reference']}"
        lines.append(f"  One item:        relais items show {item}")
    lines += [
        f"  Monthly report:  relais report --convention CONV-75-VIERZON --month {month} "
        "--format html --out vierzon.html",
        "  HTTP API:        relais tokens create --name demo-admin --role admin",
        "                   relais api   # then http://127.0.0.1:8000/dashboard (sign in with",
        "                                # the token) or curl -H 'Authorization: Bearer <token>'",
        "                                # http://127.0.0.1:8000/api/sla/breaches",
    ]
    console.print("\n".join(lines), highlight=False)


def demo_command(
    nights: Annotated[
        int,
        typer.Option(
            "--days",
            min=4,
            max=60,
            help="Working days to play, ending today (each runs the nightly cycle once).",
        ),
    ] = 15,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Play working days of illustrative SIE queues through the nightly cycle, then summarise.

    Loads the reference data and conventions shipped with Relais, drops each day's queue
    files (a few rows are bad on purpose), runs the nightly-cycle flow through Prefect once
    per day, lets simulated agents work in between, and prints what was routed, the breaches
    and where to look next. Run again, it first removes what the previous demo left (DEMO-
    items, demo- files); reference data and conventions are kept.
    """
    for name, value in DEMO_PREFECT_SETTINGS.items():
        os.environ.setdefault(name, value)
    from relais.db import get_engine
    from relais.demo_run import (
        demo_range,
        demo_sie_codes,
        demo_summary,
        load_shipped_data,
        play_nights,
        reset_demo_state,
    )
    from relais.settings import get_settings

    started = time.monotonic()
    settings = get_settings()
    engine = get_engine()
    today = settings.today()
    days = demo_range(today, nights)

    reset = reset_demo_state(engine, settings.queue_root, demo_sie_codes())
    if reset.anything:
        info(
            f"Removed the previous demo's data: {reset.items} DEMO- item(s), "
            f"{reset.intake_files} intake record(s), {reset.queue_files} queue file(s). "
            "Reference data and conventions are kept."
        )
    written, versions = load_shipped_data(engine)
    info(
        f"Shipped reference data and conventions loaded ({written} reference entries and "
        f"{versions} convention version(s) written; unchanged ones left as they were)."
    )
    info(f"Database: {settings.database_url}")
    info(f"Queues:   {settings.queue_root}")
    api_url = os.environ.get("PREFECT_API_URL")
    info(
        f"Playing {len(days)} working days, {days[0].isoformat()} to {days[-1].isoformat()}, "
        + (
            f"against the Prefect server {api_url}."
            if api_url
            else "on a temporary Prefect server (the first start on a new machine takes a while)."
        )
    )
    play_nights(
        engine,
        settings.queue_root,
        days,
        on_night=lambda index, night: info(_night_line(len(days), index, night, started)),
    )
    summary = demo_summary(engine, days[-1])
    info(f"Demo finished in {time.monotonic() - started:.0f} s.")
    if output_format is OutputFormat.json:
        emit_json(summary)
    else:
        _print_summary(summary, api_url=api_url)
