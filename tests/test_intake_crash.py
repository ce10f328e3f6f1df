"""Crash safety: after a crash anywhere in a file's intake, one rerun ends as one clean run did.

The same file is dropped in two SIE queues. One SIE's intake is crashed (a real process killed
with SIGKILL while it writes rows, or a failure between the commit and the move), then run
again; the other SIE's is run once, cleanly. Items, history, counts, moved files and errors
files must then be the same for both.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import relais.intake
from tests.intake_data import (
    AS_OF,
    OTHER_SIE,
    SIE,
    events,
    incoming,
    items,
    mixed_rows,
    run_intake,
)
from tests.intake_data import intake_files as intake_file_rows
from tests.intake_data import write_csv as write_rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CRASHED, CLEAN = SIE, OTHER_SIE
BATCH = 600
ROWS = 12_000

# Ingests one SIE's queue and prints a line each time a batch has been written (not committed).
_CRASHING_RUN = """
import sys
from datetime import date
from pathlib import Path

from relais.db import get_engine
from relais.intake import ingest_sie, reporting_progress

with reporting_progress(lambda advanced: print("batch", advanced, flush=True)):
    ingest_sie(
        get_engine(),
        sie_code=sys.argv[1],
        root=Path(sys.argv[2]),
        as_of=date.fromisoformat(sys.argv[3]),
        author="crashed-run",
        batch_size=int(sys.argv[4]),
    )
print("finished", flush=True)
"""

COMPARED = (
    "reference",
    "process",
    "siren",
    "received_on",
    "amount_cents",
    "label",
    "legal_due_on",
    "legal_due_given",
    "state",
    "last_event_at",
)


@pytest.fixture
def root(engine: Engine, tmp_path: Path) -> Path:
    from tests.intake_data import add_sies

    add_sies(engine)
    return tmp_path / "queues"


def _drop_in_both_queues(root: Path, name: str, rows: list[dict[str, str]]) -> None:
    path = write_rows(incoming(root, CRASHED) / name, rows, encoding="utf-8-sig")
    shutil.copyfile(path, incoming(root, CLEAN) / name)


def _state(engine: Engine, root: Path, sie: str) -> dict[str, Any]:
    stored = [tuple(values[name] for name in COMPARED) for values in items(engine, sie)]
    ids = {values["id"] for values in items(engine, sie)}
    history = [e for e in events(engine) if e["item_id"] in ids]
    folder = root / sie
    return {
        "items": stored,
        "events": sorted((e["event"], e["at"], e["as_of"]) for e in history),
        "events_per_item": {e["item_id"] for e in history} == ids and len(history) == len(ids),
        "files": sorted(
            (str(path.relative_to(folder)), path.read_bytes())
            for path in folder.rglob("*")
            if path.is_file()
        ),
        "records": [
            (r["file_name"], r["accepted"], r["duplicates"], r["rejected"])
            for r in intake_file_rows(engine)
            if r["sie_code"] == sie
        ],
    }


def _counts(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(f["file"], f["accepted"], f["duplicates"], f["rejected"]) for f in summary["files"]]


def _assert_rerun_equals_clean_run(engine: Engine, root: Path, *, unfinished: bool = True) -> None:
    """Rerun the crashed SIE, run the other once; ``unfinished``: the crash left the file."""
    rerun = run_intake(engine, root, sie=CRASHED, batch_size=BATCH)
    clean = run_intake(engine, root, sie=CLEAN, batch_size=BATCH)
    # The rerun reports the file as one clean run would, even when it only had to move it.
    assert _counts(rerun) == (_counts(clean) if unfinished else [])
    assert clean["accepted"] > 0 and clean["duplicates"] > 0 and clean["rejected"] > 0
    crashed_state, clean_state = _state(engine, root, CRASHED), _state(engine, root, CLEAN)
    assert crashed_state == clean_state
    assert crashed_state["events_per_item"]
    assert [name for name, _content in clean_state["files"]] == [
        "processed/export.csv",
        "rejected/export.csv.errors.csv",
    ]
    # A third run finds nothing left to do.
    assert run_intake(engine, root, sie=CRASHED)["files"] == []


def _start_crashing_run(root: Path, reader: str = "auto") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CRASHING_RUN, CRASHED, str(root), AS_OF.isoformat(), str(BATCH)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RELAIS_INTAKE_READER": reader},
    )


def _children(pid: int) -> list[int]:
    """The processes ``pid``'s main thread started and that still run."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _ended(pid: int) -> bool:
    """Whether a process is gone (or a zombie that only waits to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _kill(process: subprocess.Popen[str]) -> bool:
    """SIGKILL the run unless it already ended; return whether it was killed."""
    running = process.poll() is None
    if running:
        process.send_signal(signal.SIGKILL)
    _out, errors = process.communicate(timeout=30)  # also closes the pipes
    if running:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 0, errors
    return running


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_sigkill_while_rows_are_written(engine: Engine, root: Path, reader: str) -> None:
    batches_written = random.randint(1, ROWS // BATCH // 2)
    _drop_in_both_queues(root, "export.csv", mixed_rows(ROWS))
    process = _start_crashing_run(root, reader)
    assert process.stdout is not None
    seen = 0
    while seen < batches_written:
        line = process.stdout.readline()
        assert line.startswith("batch"), f"{line!r}; stderr: {process.stderr.read()}"  # type: ignore[union-attr]
        seen += 1
    readers = _children(process.pid)
    assert len(readers) == (1 if reader == "process" else 0)
    assert _kill(process), "the run ended before it could be killed"
    # The reader process ends with the run it read for.
    deadline = time.monotonic() + 10
    while not all(_ended(pid) for pid in readers):
        assert time.monotonic() < deadline, "the reader process outlived its run"
        time.sleep(0.05)
    # Killed mid-transaction: nothing of the file is visible, the file waits in incoming/.
    assert items(engine, CRASHED) == []
    assert intake_file_rows(engine) == []
    assert (root / CRASHED / "incoming" / "export.csv").exists()
    _assert_rerun_equals_clean_run(engine, root)


def test_sigkill_after_a_random_delay(engine: Engine, root: Path) -> None:
    _drop_in_both_queues(root, "export.csv", mixed_rows(ROWS))
    delay = random.uniform(0.3, 2.0)
    process = _start_crashing_run(root)
    time.sleep(delay)
    _kill(process)
    # Wherever the kill landed (before, during or after the transaction, or after the end),
    # one rerun finishes the job.
    unfinished = (root / CRASHED / "incoming" / "export.csv").exists()
    _assert_rerun_equals_clean_run(engine, root, unfinished=unfinished)


@pytest.mark.parametrize("crash_point", ["before the errors file", "before the move"])
def test_crash_between_commit_and_move(
    engine: Engine, root: Path, monkeypatch: pytest.MonkeyPatch, crash_point: str
) -> None:
    _drop_in_both_queues(root, "export.csv", mixed_rows(3_000))

    class Crash(Exception):
        pass

    real_replace = os.replace

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash(crash_point)

    def replace(source: Any, target: Any) -> None:
        if Path(source).parent.name == "incoming":
            raise Crash(crash_point)
        real_replace(source, target)

    with monkeypatch.context() as patch:
        if crash_point == "before the errors file":
            patch.setattr(relais.intake, "_write_errors_file", crash)
        else:
            patch.setattr(relais.intake.os, "replace", replace)
        with pytest.raises(Crash):
            run_intake(engine, root, sie=CRASHED, batch_size=BATCH)
    # The rows and the file's record are committed; the file has not moved.
    assert len(items(engine, CRASHED)) > 0
    assert [r["file_name"] for r in intake_file_rows(engine)] == ["export.csv"]
    assert (root / CRASHED / "incoming" / "export.csv").exists()
    _assert_rerun_equals_clean_run(engine, root)
