"""``relais route``: route received items per the conventions in force (runs a Prefect flow)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from relais.cli.output import (
    FormatOption,
    OutputFormat,
    emit_json,
    emit_table,
    info,
    parse_day,
    warn,
)


def _print_tables(summary: dict[str, Any]) -> None:
    assigned: dict[str, int] = summary["assigned"]
    what = "would be " if summary["dry_run"] else ""
    emit_table(
        ["assignee", "assigned"],
        [[holder, count] for holder, count in sorted(assigned.items())],
        title=f"Routing of {summary['as_of']}: {sum(assigned.values())} item(s) {what}assigned",
    )
    emit_table(
        ["reassigned", "waiting_capacity", "unchanged"],
        [[summary["reassigned"], summary["waiting_capacity"], summary["unchanged"]]],
    )
    if summary.get("moves"):
        emit_table(
            ["process", "from", "from_convention", "to", "to_convention", "items"],
            [
                [
                    m["process"],
                    m["from"],
                    m["from_convention"],
                    m["to"],
                    m["to_convention"],
                    m["items"],
                ]
                for m in summary["moves"]
            ],
            title="Items that would move",
        )
    if "load" in summary:
        emit_table(
            ["service", "before", "after"],
            [
                [service, load["before"], load["after"]]
                for service, load in sorted(summary["load"].items())
            ],
            title="Open items per service",
        )


def route_command(
    as_of: Annotated[
        date | None,
        typer.Option(
            "--as-of",
            parser=parse_day,
            metavar="YYYY-MM-DD",
            help="Assignment date (default: today in RELAIS_TIMEZONE).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute the same plan and write nothing.")
    ] = False,
    with_convention: Annotated[
        list[Path] | None,
        typer.Option(
            "--with-convention",
            metavar="FILE",
            help="A draft convention file evaluated as if applied (repeatable; implies "
            "--dry-run): shows what would move and the load per service.",
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Route received items to the service of the convention in force, or keep them at their SIE.

    Runs the flow route-work-items.
    """
    from relais.db import get_engine
    from relais.routing import load_drafts
    from relais.settings import get_settings

    day = as_of or get_settings().today()
    drafts = [str(path) for path in with_convention or []]
    if drafts:
        # Refuse a bad draft here, with the messages of `conventions validate`, before
        # starting a flow run that could only fail.
        _documents, warnings = load_drafts(get_engine(), drafts)
        for line in warnings:
            warn(line)
    from relais.prefect_env import configure_prefect

    configure_prefect()
    from flows.routing import route_work_items

    summary = route_work_items(
        as_of=day, dry_run=dry_run or bool(drafts), draft_conventions=drafts or None
    )
    if summary["dry_run"]:
        info("Dry run: nothing was written.")
    if output_format is OutputFormat.json:
        emit_json(summary)
        return
    _print_tables(summary)
