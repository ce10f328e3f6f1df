"""How commands print (JSON alone on stdout for scripts, rich tables for people) and read the
values they share (the format, a day)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


class OutputFormat(StrEnum):
    """``--format`` of listing commands."""

    table = "table"
    json = "json"


class ReportFormat(StrEnum):
    """``--format`` of commands that can also write CSV."""

    table = "table"
    csv = "csv"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="table for people, json for scripts.")
]

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(value: str) -> date:
    """A day given on the command line as YYYY-MM-DD; a usage error says what is wrong."""
    text = value.strip()
    if not _DAY.fullmatch(text):
        raise typer.BadParameter(f"{value!r} is not a day written YYYY-MM-DD (e.g. 2026-11-26)")
    try:
        return date.fromisoformat(text)
    except ValueError as error:  # "month must be in 1..12", "day is out of range for month"
        raise typer.BadParameter(f"{value!r} is not a date: {error}") from None


stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(document: Any) -> str:
    """Serialise ``document`` with ISO 8601 dates, keeping French text readable."""
    return json.dumps(document, default=_default, ensure_ascii=False, indent=2)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    typer.echo(to_json(document))


def emit_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    """Print a table for people; ``None`` shows as an empty cell."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout.print(table)


def info(message: str) -> None:
    """A progress or context message for people: stderr, so stdout stays parseable."""
    stderr.print(message, highlight=False)


def warn(message: str) -> None:
    """A warning line on stderr."""
    stderr.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
