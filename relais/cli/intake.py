"""``relais intake``: pick up the files SIEs dropped in their queues (runs a Prefect flow)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from relais.cli.output import (
    FormatOption,
    OutputFormat,
    emit_json,
    emit_table,
    parse_day,
    stderr,
    warn,
)

#: Below this many bytes waiting in the queues, a run is too short to need a progress bar.
PROGRESS_MIN_BYTES: Final = 4 * 2**20


def _waiting_bytes(root: Path, sies: list[str]) -> int:
    from relais.queuefiles import queue_files

    total = 0
    for sie in sies:
        for path in queue_files(root, sie):
            try:
                total += path.stat().st_size
            except OSError:  # picked up or renamed meanwhile
                continue
    return total


@contextmanager
def _progress_bar(total: int) -> Iterator[None]:
    """A progress bar on stderr over the bytes of queue files read, for large runs only."""
    if total < PROGRESS_MIN_BYTES:
        yield
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from relais.intake import reporting_progress

    with Progress(
        TextColumn("Intake"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task_id = progress.add_task("intake", total=total)
        with reporting_progress(lambda advanced: progress.advance(task_id, advanced)):
            yield


def _sies_to_ingest(root: Path, sie: str | None) -> list[str]:
    """The SIE queues the run will read; an unknown ``--sie`` is refused before Prefect starts."""
    from relais.db import get_engine
    from relais.errors import NotFoundError
    from relais.intake import known_sie_codes
    from relais.queuefiles import sie_folders

    with get_engine().connect() as connection:
        known = known_sie_codes(connection)
    if sie is not None:
        if sie not in known:
            raise NotFoundError(f"unknown SIE: {sie}")
        return [sie]
    return [folder for folder in sie_folders(root) if folder in known]


def _print_table(day: date, summary: dict[str, Any]) -> None:
    rows = [
        [entry["sie"], entry["file"], entry["accepted"], entry["duplicates"], entry["rejected"]]
        for entry in summary["files"]
    ]
    rows.append(["total", "", summary["accepted"], summary["duplicates"], summary["rejected"]])
    emit_table(
        ["sie", "file", "accepted", "duplicates", "rejected"],
        rows,
        title=f"Intake of {day.isoformat()}: {len(summary['files'])} file(s)",
    )


def intake_command(
    sie: Annotated[
        str | None,
        typer.Option("--sie", metavar="CODE", help="Only this SIE's queue (default: all)."),
    ] = None,
    as_of: Annotated[
        date | None,
        typer.Option(
            "--as-of",
            parser=parse_day,
            metavar="YYYY-MM-DD",
            help="Day of intake (default: today): the date of the received "
            "events and the latest received_on accepted, for replaying a past night.",
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Pick up the files SIEs dropped in their queues (runs the flow intake-sie-queues)."""
    from relais.settings import get_settings

    settings = get_settings()
    day = as_of or settings.today()
    waiting = _waiting_bytes(settings.queue_root, _sies_to_ingest(settings.queue_root, sie))
    from relais.prefect_env import configure_prefect

    configure_prefect()
    from flows.intake import intake_sie_queues

    with _progress_bar(waiting):
        summary = intake_sie_queues(as_of=day, sie=sie)
    for folder in summary.get("unknown_sies", []):
        warn(f"unknown SIE folder left untouched: {settings.queue_root / folder}")
    for entry in summary.get("unreadable", []):
        warn(f"{entry['sie']}/{entry['file']} unreadable ({entry['reason']}): moved to rejected/")
    if output_format is OutputFormat.json:
        emit_json(summary)
        return
    _print_table(day, summary)
