"""Scenarios shared by the in-process runs and the child processes that get killed.

A scenario builds a deterministic world (reference data, a convention, queue files, items),
then runs one operation of Relais through its engine functions (no Prefect: the point is the
database transaction and the files). ``KillPoints`` counts the moments where a crash can
happen (each SQL statement, each rename) and sends SIGKILL to its own process at the n-th:
a seed picks n, so a "random" crash point is reproducible.

Run as a child: ``python -m tests.reliability.scenarios OPERATION KILL_AT WORKDIR``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from relais.db import get_engine, session_scope
from relais.intake import ingest_sie

INTAKE_DAY = date(2026, 11, 2)
ROUTING_DAY = date(2026, 11, 3)
SCAN_DAY = date(2027, 2, 15)
EVENTS_NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
QUEUE_SIES = ("SIE-75-02", "SIE-75-08", "SIE-75-17")
ROWS_PER_FILE = 500
#: Small batches: many statements in one file's transaction, many places to crash.
INTAKE_BATCH = 150
EVENT_ITEMS = 40
#: Event imports: rows with increasing times, rows without a time ("now"), rows sharing times.
EVENT_OPERATIONS = ("events", "events-now", "events-same-instant")


class KillPoints:
    """Counts crash points; SIGKILLs this process at point ``kill_at`` (0: never)."""

    def __init__(self, kill_at: int = 0) -> None:
        self.kill_at = kill_at
        self.count = 0
        #: The crash point just before each rename, in order.
        self.before_renames: list[int] = []

    def point(self) -> None:
        """One more place where the process may die."""
        self.count += 1
        if self.kill_at and self.count >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self, engine: Engine) -> Callable[[], None]:
        """Count every SQL statement and every rename; return the function that uninstalls."""

        def after_statement(*_args: Any) -> None:
            self.point()

        real_replace = os.replace

        def replace(source: Any, target: Any, **kwargs: Any) -> None:
            self.before_renames.append(self.count + 1)
            self.point()
            real_replace(source, target, **kwargs)
            self.point()

        event.listen(engine, "after_cursor_execute", after_statement)
        os.replace = replace  # type: ignore[assignment]

        def uninstall() -> None:
            event.remove(engine, "after_cursor_execute", after_statement)
            os.replace = real_replace

        return uninstall


# --- the world -----------------------------------------------------------------------------


def queue_file_content(sie: str, part: int) -> str:
    """One queue file: valid rows, bad ones, and (in part 2) duplicates and conflicts."""
    from tests.builders import siren_for

    processes = ("tva_refund", "filing_reminder", "cfe_ifer_dispute", "medoc_web")
    lines = ["reference;process;siren;received_on;amount;label"]
    start = 0 if part == 1 else ROWS_PER_FILE - 100  # part 2 repeats the last 100 of part 1
    for number in range(start, start + ROWS_PER_FILE):
        siren = siren_for(number + 7)
        amount = f"{100 + number},{number % 100:02d}"
        if number % 97 == 0:
            siren = "123456789"  # wrong check digit: rejected
        if part == 2 and number < ROWS_PER_FILE and number % 5 == 0:
            amount = "1,00"  # same reference, different values: rejected as a conflict
        received = date(2026, 10, 1) + timedelta(days=number % 30)
        label = '=HYPERLINK("http://x","y")' if number % 250 == 0 else "Dossier"
        lines.append(
            f"{sie}-{number:05d};{processes[number % 4]};{siren};{received.isoformat()};"
            f"{amount};{label}"
        )
    lines.append("BROKEN;only;three")
    return "\n".join(lines) + "\n"


def drop_queue_files(root: Path) -> None:
    """Drop the scenario's queue files (two per SIE), as writers must: temp name, rename."""
    for sie in QUEUE_SIES:
        incoming = root / sie / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        for part in (1, 2):
            temporary = incoming / f"export-{part}.csv.part"
            temporary.write_text(queue_file_content(sie, part), encoding="utf-8")
            os.replace(temporary, incoming / f"export-{part}.csv")


def build_world(engine: Engine, workdir: Path) -> None:
    """Reference data and the Vierzon convention (a capped line and an uncapped one)."""
    from tests.routing_data import apply_convention, convention_document, load_reference_data

    load_reference_data(workdir, engine)
    apply_convention(
        workdir / "conventions",
        engine,
        convention_document(
            "CONV-75-VIERZON",
            1,
            perimeter=[
                {
                    "process": "tva_refund",
                    "sies": ["SIE-75-08", "SIE-75-17"],
                    "target_business_days": 20,
                    "daily_capacity": 400,
                },
                {"process": "filing_reminder", "sies": "all", "target_business_days": 10},
            ],
        ),
    )


def _event_items(engine: Engine) -> list[tuple[str, str]]:
    """The oldest assigned items, those the event files work on."""
    with engine.connect() as connection:
        return [
            (sie, reference)
            for sie, reference in connection.execute(
                text(
                    "SELECT sie_code, reference FROM work_item WHERE state = 'assigned' "
                    "ORDER BY sie_code, reference LIMIT :n"
                ),
                {"n": EVENT_ITEMS},
            )
        ]


def events_file_content(engine: Engine) -> str:
    """Start, suspend, resume and complete the oldest assigned items, with explicit times."""
    lines = ["sie;reference;event;at;reason"]
    for index, (sie, reference) in enumerate(_event_items(engine)):
        lines.append(f"{sie};{reference};start;2026-11-05T09:00:00;")
        if index % 3 == 0:
            lines.append(f"{sie};{reference};suspend;2026-11-06T10:00:00;Pièce manquante")
            lines.append(f"{sie};{reference};resume;2026-11-12T11:00:00;")
        if index % 2 == 0:
            lines.append(f"{sie};{reference};complete;2026-11-20T16:00:00;Remboursé")
    return "\n".join(lines) + "\n"


def events_now_file_content(engine: Engine) -> str:
    """The same work with no time at all: every row happens "now", all at the same instant.

    Some items get a ``resume`` while in progress (refused) just before the ``suspend`` that
    would make it fit; an unknown item closes the file (refused).
    """
    lines = ["sie;reference;event;at;reason"]
    for index, (sie, reference) in enumerate(_event_items(engine)):
        lines.append(f"{sie};{reference};start;;")
        if index % 4 == 1:
            lines.append(f"{sie};{reference};resume;;")
            lines.append(f"{sie};{reference};suspend;;Attente du contribuable")
        if index % 3 == 0:
            lines.append(f"{sie};{reference};suspend;;Pièce manquante")
            lines.append(f"{sie};{reference};resume;;")
        if index % 2 == 0:
            lines.append(f"{sie};{reference};complete;;Remboursé")
    lines.append("SIE-75-08;NO-SUCH-ITEM;start;;")
    return "\n".join(lines) + "\n"


def events_same_instant_file_content(engine: Engine) -> str:
    """Explicit times, but a suspend and its resume at the very same instant; a second start."""
    lines = ["sie;reference;event;at;reason"]
    for index, (sie, reference) in enumerate(_event_items(engine)):
        lines.append(f"{sie};{reference};start;2026-11-05T09:00:00;")
        if index % 3 == 0:
            lines.append(f"{sie};{reference};suspend;2026-11-06T10:00:00;Pièce manquante")
            lines.append(f"{sie};{reference};resume;2026-11-06T10:00:00;")
        if index % 5 == 2:
            lines.append(f"{sie};{reference};start;2026-11-06T10:00:00;")  # refused: started
        if index % 4 == 0:
            lines.append(f"{sie};{reference};complete;2026-11-20T16:00:00;Remboursé")
    return "\n".join(lines) + "\n"


_EVENT_FILES = {
    "events": events_file_content,
    "events-now": events_now_file_content,
    "events-same-instant": events_same_instant_file_content,
}


def prepare(operation: str, engine: Engine, workdir: Path) -> None:
    """Build everything that exists before ``operation`` runs."""
    build_world(engine, workdir)
    root = workdir / "queues"
    drop_queue_files(root)
    if operation in ("intake", "pipeline"):
        return
    run("intake", engine, workdir)
    if operation == "routing":
        return
    run("routing", engine, workdir)
    if operation in EVENT_OPERATIONS:
        (workdir / "events.csv").write_text(_EVENT_FILES[operation](engine), encoding="utf-8")


def run(operation: str, engine: Engine, workdir: Path) -> Any:
    """Run ``operation`` the way its command does, minus Prefect."""
    if operation == "intake":
        return [
            ingest_sie(
                engine,
                sie_code=sie,
                root=workdir / "queues",
                as_of=INTAKE_DAY,
                author="cli",
                batch_size=INTAKE_BATCH,
            )
            for sie in QUEUE_SIES
        ]
    if operation == "routing":
        from relais.routing import route_work_items

        return route_work_items(as_of=ROUTING_DAY, engine=engine)
    if operation == "scan":
        from relais.scan import record_new_breaches

        with session_scope(engine) as session:
            return record_new_breaches(session, as_of=SCAN_DAY, flow_run_id=None, now=EVENTS_NOW)
    if operation in EVENT_OPERATIONS:
        from relais.items import import_events

        return import_events(workdir / "events.csv", by="cli", engine=engine, now=EVENTS_NOW)
    if operation == "pipeline":  # what a night does before its scan
        return run("intake", engine, workdir), run("routing", engine, workdir)
    if operation == "routing-loop":  # routing again and again, e.g. while intake writes
        import time

        results = []
        for _ in range(4):
            results.append(run("routing", engine, workdir))
            time.sleep(0.05)
        return results
    raise ValueError(operation)


def wipe(engine: Engine) -> None:
    """Delete every row of every table (the schema stays), children first."""
    from sqlmodel import SQLModel

    import models.tables  # noqa: F401  (registers the tables)

    with engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())


def main(argv: list[str]) -> None:
    """Child entry point: run one operation, dying at crash point ``KILL_AT``.

    With a fourth argument ``wait``, the child waits for a line on stdin before it starts
    (so that several children can be released at the same moment).
    """
    operation, kill_at, workdir = argv[0], int(argv[1]), Path(argv[2])
    engine = get_engine()
    points = KillPoints(kill_at)
    points.install(engine)
    print("READY", flush=True)
    if argv[3:] == ["wait"]:
        sys.stdin.readline()
    run(operation, engine, workdir)
    print(f"DONE {points.count}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
