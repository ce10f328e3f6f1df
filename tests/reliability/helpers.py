"""Helpers shared by the reliability tests: database fingerprints, clean runs, subprocesses.

A fingerprint is the content of the tables a scenario touches, by natural key and without the
columns that legitimately differ between two runs (surrogate ids, wall-clock stamps), so that
"a crash then a rerun" can be compared with "one clean run" for equality.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from tests.reliability.scenarios import KillPoints

ROOT = Path(__file__).resolve().parents[2]

#: Hypothesis settings for fuzzing through the database: deterministic, no per-example deadline.
#: ``RELAIS_FUZZ_EXAMPLES`` raises the number of examples for a deeper hunt (default 60).
FUZZ = settings(
    max_examples=int(os.environ.get("RELAIS_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Tables whose whole content, by natural key, makes the observable state of Relais.
_ITEM_COLUMNS = (
    "sie_code, reference, process, siren, received_on, amount_cents, label, legal_due_on, "
    "legal_due_given, state, assignee, assignment_kind, convention_id, convention_version, "
    "assigned_on, target_business_days, due_on, suspended_on, completed_on, last_event_at"
)
_EVENT_COLUMNS = (
    "w.sie_code, w.reference, e.event, e.at, e.by, e.reason, e.from_state, e.to_state, "
    "e.assignee, e.assignment_kind, e.convention_id, e.convention_version, e.as_of, e.due_on"
)


def _rows(engine: Engine, sql: str) -> list[tuple[str, ...]]:
    with engine.connect() as connection:
        return sorted(
            tuple("" if value is None else str(value) for value in row)
            for row in connection.execute(text(sql))
        )


def database_fingerprint(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Items, their whole histories, intake records and rejections, breaches: by natural key."""
    return {
        "work_item": _rows(engine, f"SELECT {_ITEM_COLUMNS} FROM work_item"),
        "item_event": _rows(
            engine,
            f"SELECT {_EVENT_COLUMNS} FROM item_event e JOIN work_item w ON w.id = e.item_id",
        ),
        "intake_file": _rows(
            engine,
            "SELECT sie_code, file_name, sha256, accepted, duplicates, rejected, "
            "unreadable_reason, as_of FROM intake_file",
        ),
        "intake_rejection": _rows(
            engine,
            "SELECT f.sie_code, f.file_name, r.line, r.reference, r.reason "
            "FROM intake_rejection r JOIN intake_file f ON f.id = r.intake_file_id",
        ),
        "sla_breach": _rows(
            engine,
            "SELECT w.sie_code, w.reference, b.kind, b.deadline, b.holder, b.first_seen_on "
            "FROM sla_breach b JOIN work_item w ON w.id = b.item_id",
        ),
        # The event import ledger, with the history entry of each applied row.
        "event_import_row": _rows(
            engine,
            "SELECT r.sha256, r.line, r.result, r.state, r.reason, w.sie_code, w.reference, "
            "e.event, e.at FROM event_import_row r "
            "LEFT JOIN item_event e ON e.id = r.item_event_id "
            "LEFT JOIN work_item w ON w.id = e.item_id",
        ),
    }


def duplicate_events(engine: Engine) -> list[tuple[Any, ...]]:
    """History rows recorded twice for the same item, event and time (never legitimate)."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT item_id, event, at, count(*) FROM item_event "
                    "GROUP BY item_id, event, at HAVING count(*) > 1"
                )
            )
        )


def assert_consistent(engine: Engine) -> None:
    """Invariants that hold after any run, finished or not: nothing is ever half-written.

    Every item has one ``received`` event and its state is where its last event left it; every
    recorded intake file holds exactly the items and rejections it counts; every event file row
    recorded as applied points at its event, which left the state it records; no event twice.
    """
    with engine.connect() as connection:
        mismatched = connection.execute(
            text(
                "SELECT w.sie_code, w.reference, w.state, e.to_state FROM work_item w "
                "JOIN item_event e ON e.item_id = w.id "
                "WHERE e.id = (SELECT e2.id FROM item_event e2 WHERE e2.item_id = w.id "
                "ORDER BY e2.at DESC, e2.id DESC LIMIT 1) AND e.to_state <> w.state"
            )
        ).all()
        assert mismatched == [], mismatched[:5]
        received = connection.execute(
            text(
                "SELECT w.id, count(e.id) FROM work_item w LEFT JOIN item_event e "
                "ON e.item_id = w.id AND e.event = 'received' GROUP BY w.id "
                "HAVING count(e.id) <> 1"
            )
        ).all()
        assert received == [], received[:5]
        files = connection.execute(
            text(
                "SELECT f.id, f.accepted, f.rejected, "
                "(SELECT count(*) FROM work_item w WHERE w.intake_file_id = f.id), "
                "(SELECT count(*) FROM intake_rejection r WHERE r.intake_file_id = f.id) "
                "FROM intake_file f"
            )
        ).all()
        for file_id, accepted, rejected, items, rejections in files:
            assert (accepted, rejected) == (items, rejections), file_id
        ledger = connection.execute(
            text(
                "SELECT r.sha256, r.line, r.result FROM event_import_row r "
                "LEFT JOIN item_event e ON e.id = r.item_event_id "
                "WHERE (r.result = 'applied' AND (e.id IS NULL OR e.to_state <> r.state)) "
                "OR (r.result <> 'applied' AND r.item_event_id IS NOT NULL)"
            )
        ).all()
        assert ledger == [], ledger[:5]
    assert duplicate_events(engine) == []


def table_counts(engine: Engine, tables: Iterable[str]) -> dict[str, int]:
    """Row count of each table."""
    with engine.connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in tables
        }


def tree_fingerprint(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path → content), temporary files included."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# --- subprocesses ----------------------------------------------------------------------------


def python_child(
    code: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdin: bool = False,
    log: Path | None = None,
) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` in the project with the current environment.

    Output goes to pipes, or to the file ``log`` for long-lived chatty children (a server's
    access log would fill a pipe nobody reads and block it).
    """
    child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    output: Any = subprocess.PIPE
    if log is not None:
        output = log.open("w", encoding="utf-8")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
            text=True,
        )
    finally:
        if log is not None:
            output.close()


def wait_for_line(child: subprocess.Popen[str], marker: str, timeout: float = 60.0) -> None:
    """Block until the child prints a line starting with ``marker`` (it is ready)."""
    assert child.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            _, errors = child.communicate(timeout=5)
            raise AssertionError(f"child ended before {marker!r}: {errors[-2000:]}")
        if line.startswith(marker):
            return
    child.kill()
    raise AssertionError(f"child did not print {marker!r} within {timeout} s")


def finish(child: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str, str]:
    """Wait for the child; return its exit code, stdout and stderr."""
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out, err


# --- reference end states ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CleanRun:
    """The end state of one uninterrupted run of a scenario operation."""

    database: dict[str, list[tuple[str, ...]]]
    files: dict[str, bytes]
    points: KillPoints
    #: What the run reported, where that is comparable (see ``run_outputs``).
    outputs: Any = None


_CLEAN_RUNS: dict[tuple[str, str], CleanRun] = {}


def queue_tree(workdir: Path) -> dict[str, bytes]:
    """The scenario's queue folders, every file with its content."""
    return tree_fingerprint(workdir / "queues") if (workdir / "queues").exists() else {}


def run_outputs(operation: str, result: Any, workdir: Path) -> Any:
    """An event import's report: every row's result, and its errors file (None otherwise)."""
    if not operation.startswith("events"):
        return None
    errors = workdir / "events.csv.errors.csv"
    return (
        [row.as_dict() for row in result.rows],
        errors.read_bytes() if errors.exists() else None,
    )


def clean_run(operation: str, engine: Engine, workdir: Path) -> CleanRun:
    """Run ``operation`` of the scenarios once, uninterrupted, on a fresh world; remember it.

    Computed once per (operation, database kind) and test session; the database is wiped
    afterwards so that the caller can build the world again.
    """
    from tests.reliability import scenarios

    key = (operation, engine.dialect.name)
    if key not in _CLEAN_RUNS:
        clean_dir = workdir / "clean"
        clean_dir.mkdir()
        scenarios.prepare(operation, engine, clean_dir)
        points = scenarios.KillPoints()
        uninstall = points.install(engine)
        try:
            result = scenarios.run(operation, engine, clean_dir)
        finally:
            uninstall()
        assert points.count > 5, "too few crash points to choose from"
        assert_consistent(engine)
        _CLEAN_RUNS[key] = CleanRun(
            database_fingerprint(engine),
            queue_tree(clean_dir),
            points,
            run_outputs(operation, result, clean_dir),
        )
        scenarios.wipe(engine)
    return _CLEAN_RUNS[key]


SCENARIO_CHILD = "import sys; from tests.reliability.scenarios import main; main(sys.argv[1:])"


def scenario_children(operations: Sequence[str], workdir: Path) -> list[subprocess.Popen[str]]:
    """Start one child per operation, wait until all are ready, then release them together."""
    children = [
        python_child(SCENARIO_CHILD, args=[operation, "0", str(workdir), "wait"], stdin=True)
        for operation in operations
    ]
    for child in children:
        wait_for_line(child, "READY")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("GO\n")
        child.stdin.flush()
    return children
