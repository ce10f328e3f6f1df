"""``relais report``: a convention's monthly report (HTML, CSV or JSON)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from relais.cli.output import info


class ReportOutput(StrEnum):
    """``--format`` of the report."""

    html = "html"
    csv = "csv"
    json = "json"


def report_command(
    convention: Annotated[str, typer.Option("--convention", metavar="ID", help="Convention id.")],
    month: Annotated[str, typer.Option("--month", metavar="YYYY-MM", help="Month reported on.")],
    output_format: Annotated[
        ReportOutput | None,
        typer.Option(
            "--format", help="html (with charts), csv or json; default: from --out, else html."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="PATH", help="Write to this file instead of stdout."),
    ] = None,
) -> None:
    """Report on a convention for a month, per SIE × process, rebuilt from the item history."""
    from relais.db import session_scope
    from relais.errors import ValidationError
    from relais.reports import build_report, parse_month, render
    from relais.settings import get_settings

    try:
        parse_month(month)
    except ValidationError as error:
        raise typer.BadParameter(error.message, param_hint="--month") from None
    if output_format is None:
        suffix = out.suffix.lower().lstrip(".") if out else ""
        output_format = (
            ReportOutput(suffix) if suffix in ReportOutput.__members__ else ReportOutput.html
        )
    with session_scope() as session:
        report = build_report(
            session, convention_id=convention, month=month, zone=get_settings().timezone
        )
    document = render(report, output_format.value)
    if out is None:
        typer.echo(document, nl=False)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document, encoding="utf-8")
    except OSError as error:
        raise ValidationError(f"cannot write the report to {out}: {error.strerror}") from None
    info(f"Report {convention} {report.month} ({output_format.value}) written to {out}.")
