"""Queue folders that cannot be written, a full disk, a full database, a permissive umask.

Tests run as root, for whom ``chmod 0555`` blocks nothing: an unwritable folder is simulated
by a regular file where the folder should be, and a full disk by ``OSError(ENOSPC)`` raised
from the rename or the ``fsync`` Relais performs (or SQLite's ``max_page_count`` for the
database). Each fault must end in a clear error (a ``RelaisError``, shown without a
traceback), the queue file left in ``incoming/``, no partial or temporary file, a database
that is consistent, and a rerun after the fault is gone equal to one clean run.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from relais import intake as intake_module
from relais.errors import RelaisError
from tests.reliability import scenarios
from tests.reliability.helpers import (
    assert_consistent,
    clean_run,
    database_fingerprint,
    queue_tree,
)

SIE = "SIE-75-08"


def _prepared(engine: Engine, tmp_path: Path) -> tuple[Any, Path]:
    clean = clean_run("intake", engine, tmp_path)
    workdir = tmp_path / "faulty"
    workdir.mkdir()
    scenarios.prepare("intake", engine, workdir)
    return clean, workdir


def _assert_fault_left_things_in_place(workdir: Path, error: RelaisError) -> None:
    sie_folder = workdir / "queues" / SIE
    # The file being finished is still waiting, nothing temporary lies around.
    assert (sie_folder / "incoming" / "export-1.csv").exists()
    leftovers = [path for path in (workdir / "queues").rglob("*") if path.name.endswith(".tmp")]
    assert leftovers == []
    # Clear: names the SIE and the file, says what to do, quotes no row of the file.
    assert SIE in error.message and "export-1.csv" in error.message
    assert "732829320" not in error.message and "Dossier" not in error.message


def _rerun_equals_clean(engine: Engine, workdir: Path, clean: Any) -> None:
    scenarios.run("intake", engine, workdir)
    assert_consistent(engine)
    assert database_fingerprint(engine) == clean.database
    assert queue_tree(workdir) == clean.files


@pytest.mark.parametrize("folder", ["processed", "rejected"])
def test_a_queue_folder_that_cannot_be_created_is_a_clear_error(
    sqlite_engine: Engine, tmp_path: Path, folder: str
) -> None:
    clean, workdir = _prepared(sqlite_engine, tmp_path)
    blocker = workdir / "queues" / SIE / folder
    blocker.write_text("not a folder")
    with pytest.raises(RelaisError) as caught:
        scenarios.run("intake", sqlite_engine, workdir)
    _assert_fault_left_things_in_place(workdir, caught.value)
    assert_consistent(sqlite_engine)
    blocker.unlink()
    _rerun_equals_clean(sqlite_engine, workdir, clean)


@pytest.fixture
def no_space_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Make the named file operation of intake fail with ENOSPC (set ``which`` to arm it)."""
    armed: dict[str, str] = {}
    real_replace, real_writer = os.replace, intake_module.csv.writer

    def replace(source: Any, target: Any, **kwargs: Any) -> None:
        target_path = Path(target)
        if (
            armed.get("which") == "move"
            and target_path.parent.name == "processed"
            and SIE in target_path.parts
        ):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        real_replace(source, target, **kwargs)

    class FullDisk:
        def writerow(self, _row: Any) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def writer(handle: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(getattr(handle, "name", ""))
        if armed.get("which") == "errors-file" and SIE in name and "rejected" in name:
            return FullDisk()
        return real_writer(handle, *args, **kwargs)

    monkeypatch.setattr(intake_module.os, "replace", replace)
    monkeypatch.setattr(intake_module.csv, "writer", writer)
    yield armed


@pytest.mark.parametrize("which", ["move", "errors-file"])
def test_a_full_disk_while_finishing_a_file_is_a_clear_error(
    sqlite_engine: Engine, tmp_path: Path, no_space_on: dict[str, str], which: str
) -> None:
    clean, workdir = _prepared(sqlite_engine, tmp_path)
    no_space_on["which"] = which
    with pytest.raises(RelaisError) as caught:
        scenarios.run("intake", sqlite_engine, workdir)
    _assert_fault_left_things_in_place(workdir, caught.value)
    assert "No space left on device" in caught.value.message
    rejected = workdir / "queues" / SIE / "rejected"
    assert not (rejected / "export-1.csv.errors.csv").exists() or which == "move"
    assert_consistent(sqlite_engine)
    no_space_on.clear()
    _rerun_equals_clean(sqlite_engine, workdir, clean)


def test_a_full_database_writes_nothing_and_moves_nothing(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """SQLite stops at ``max_page_count`` the way it stops on a full disk."""
    clean, workdir = _prepared(sqlite_engine, tmp_path)
    before = database_fingerprint(sqlite_engine)
    files_before = queue_tree(workdir)
    with sqlite_engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {int(pages) + 2}")

    sqlite_engine.dispose()
    event.listen(sqlite_engine, "connect", cap)
    try:
        with pytest.raises(Exception) as caught:
            scenarios.run("intake", sqlite_engine, workdir)
    finally:
        event.remove(sqlite_engine, "connect", cap)
        sqlite_engine.dispose()
    assert "full" in str(caught.value)
    assert_consistent(sqlite_engine)
    assert database_fingerprint(sqlite_engine) == before
    assert queue_tree(workdir) == files_before
    _rerun_equals_clean(sqlite_engine, workdir, clean)


def test_an_event_file_whose_errors_file_cannot_be_written(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from relais.cli.main import app

    workdir = tmp_path / "events"
    workdir.mkdir()
    scenarios.prepare("events", sqlite_engine, workdir)
    events = workdir / "events.csv"
    events.write_text(
        events.read_text("utf-8") + "SIE-75-08;NO-SUCH-ITEM;start;2026-11-05;\n", "utf-8"
    )
    (workdir / "events.csv.errors.csv").mkdir()  # where the errors file must go
    result = CliRunner().invoke(app, ["items", "events", str(events), "--format", "json"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.stderr.startswith("Error: ")
    assert "events.csv.errors.csv" in result.stderr
    assert_consistent(sqlite_engine)


# --- permissions -----------------------------------------------------------------------------


def _world_writable(root: Path) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in [root, *root.rglob("*")]
        if path.stat().st_mode & stat.S_IWOTH
    ]


def test_nothing_written_is_world_writable(sqlite_engine: Engine, tmp_path: Path) -> None:
    """Under umask 000 (some service managers start processes so), nothing Relais writes --
    queue folders, errors files, moved files, event errors files, reports -- is writable by
    everyone: nothing may rely on the umask."""
    from relais.db import session_scope
    from relais.reports import build_report, write_report_files
    from relais.settings import get_settings

    workdir = tmp_path / "perms"
    workdir.mkdir()
    scenarios.build_world(sqlite_engine, workdir)
    scenarios.drop_queue_files(workdir / "queues")
    scenarios.run("intake", sqlite_engine, workdir)
    scenarios.run("routing", sqlite_engine, workdir)
    events = workdir / "events.csv"
    events.write_text(
        scenarios.events_file_content(sqlite_engine) + "SIE-75-08;NOPE;start;;\n", "utf-8"
    )
    # Start again from the inputs only: what follows is written by Relais under umask 000.
    for sie in scenarios.QUEUE_SIES:
        for folder in ("processed", "rejected"):
            for path in (workdir / "queues" / sie / folder).glob("*"):
                path.unlink()
            (workdir / "queues" / sie / folder).rmdir()
    scenarios.wipe(sqlite_engine)
    (workdir / "again").mkdir()
    scenarios.build_world(sqlite_engine, workdir / "again")
    scenarios.drop_queue_files(workdir / "queues")
    assert _world_writable(workdir) == [], "the test's own inputs must start clean"

    previous = os.umask(0)
    try:
        scenarios.run("intake", sqlite_engine, workdir)
        scenarios.run("routing", sqlite_engine, workdir)
        scenarios.run("events", sqlite_engine, workdir)
        with session_scope(sqlite_engine) as session:
            report = build_report(
                session,
                convention_id="CONV-75-VIERZON",
                month="2026-11",
                zone=get_settings().timezone,
            )
        write_report_files(report, workdir / "reports")
    finally:
        os.umask(previous)
    assert (workdir / "events.csv.errors.csv").exists()
    assert len(list((workdir / "queues").rglob("*.errors.csv"))) == 6
    assert len(list((workdir / "reports").rglob("*.*"))) == 3
    assert _world_writable(workdir) == [], "\n".join(_world_writable(workdir))
