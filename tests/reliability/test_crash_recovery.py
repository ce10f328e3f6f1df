"""``kill -9`` in the middle of intake, routing, the SLA scan and an event import, then rerun.

For each operation a clean run (in this process) gives the reference end state and the
number of crash points it passes (SQL statements and renames). Each seed then rebuilds the
same world, starts the operation in a child process that SIGKILLs itself at the seed's crash
point, checks that it did die there, reruns the operation once, and compares: same items,
same histories (no duplicate), same intake records and breaches, same files in the queues;
for an event import, the same ledger, per-row results and errors file too.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.reliability import scenarios
from tests.reliability.helpers import (
    assert_consistent,
    clean_run,
    database_fingerprint,
    finish,
    python_child,
    queue_tree,
    run_outputs,
)

SEEDS = (11, 23, 37)


def _crash_then_rerun(
    operation: str, engine: Engine, tmp_path: Path, *, seed: int = 0, rename: int = -1
) -> None:
    """Crash at the seed's random point, or just before/after the ``rename``-th rename."""
    clean = clean_run(operation, engine, tmp_path)
    points = clean.points.count
    if rename >= 0:
        kill_at = clean.points.before_renames[rename // 2] + rename % 2
    else:
        kill_at = random.Random(f"{operation}-{seed}").randint(1, points)
    workdir = tmp_path / "crashed"
    workdir.mkdir()
    scenarios.prepare(operation, engine, workdir)
    engine.dispose()  # the child must not share pooled connections with us

    child = python_child(
        "import sys; from tests.reliability.scenarios import main; main(sys.argv[1:])",
        args=[operation, str(kill_at), str(workdir)],
    )
    code, out, err = finish(child)
    assert code == -signal.SIGKILL, (
        f"the child should have died at crash point {kill_at}/{points}: exit {code}\n{out}\n{err}"
    )
    assert "DONE" not in out
    assert_consistent(engine)  # whatever the crash point, nothing is half-written

    result = scenarios.run(operation, engine, workdir)

    assert_consistent(engine)
    assert database_fingerprint(engine) == clean.database
    if operation in scenarios.EVENT_OPERATIONS:
        # The rerun reports the rows recorded before the crash as the clean run did.
        assert run_outputs(operation, result, workdir) == clean.outputs
    else:
        assert queue_tree(workdir) == clean.files


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_intake_killed_then_rerun_equals_a_clean_run(
    engine: Engine, tmp_path: Path, seed: int
) -> None:
    _crash_then_rerun("intake", engine, tmp_path, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_routing_killed_then_rerun_equals_a_clean_run(
    engine: Engine, tmp_path: Path, seed: int
) -> None:
    _crash_then_rerun("routing", engine, tmp_path, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_scan_killed_then_rerun_equals_a_clean_run(
    engine: Engine, tmp_path: Path, seed: int
) -> None:
    _crash_then_rerun("scan", engine, tmp_path, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_event_import_killed_then_rerun_equals_a_clean_run(
    engine: Engine, tmp_path: Path, seed: int
) -> None:
    _crash_then_rerun("events", engine, tmp_path, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("operation", ["events-now", "events-same-instant"])
def test_event_import_without_increasing_times_killed_then_rerun_equals_a_clean_run(
    engine: Engine, tmp_path: Path, operation: str, seed: int
) -> None:
    """Rows without a time, or sharing one: the item cannot tell an event applied before the
    crash from a new one, only the import ledger can (without it the rerun applies them
    again: duplicate suspends and resumes, other results, another errors file)."""
    _crash_then_rerun(operation, engine, tmp_path, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize(
    "rename",
    [0, 1, 3],
    ids=["before-errors-file-rename", "after-errors-file-rename", "after-moving-the-file"],
)
def test_intake_killed_around_its_renames_then_rerun_equals_a_clean_run(
    sqlite_engine: Engine, tmp_path: Path, rename: int
) -> None:
    """The window after the commit: errors file half written, file not yet moved."""
    _crash_then_rerun("intake", sqlite_engine, tmp_path, rename=rename)
