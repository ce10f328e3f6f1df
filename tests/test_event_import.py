"""The event import ledger: the same file again, a crash mid-file then a rerun, two imports at
once (SQLite + PostgreSQL).

Whatever the rows' times -- none (each row happens "now"), or two events at the same instant --
an import of the same bytes ends as one clean import: same items, same histories, same per-row
results, same errors file. The ``kill -9`` variants are in tests/reliability/test_crash_recovery.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from relais import items
from relais.db import session_scope
from relais.items import EventsImport, errors_file_for, import_events
from tests.builders import add_item, add_reference
from tests.reliability.helpers import assert_consistent
from tests.reliability.scenarios import wipe

NOW = datetime(2026, 11, 6, 14, 30, tzinfo=UTC)

#: No times at all: every row happens at the import's "now", the same instant.
WITHOUT_TIMES = (
    "sie;reference;event;at;reason\n"
    "SIE-75-08;REF-1;start;;\n"
    "SIE-75-08;REF-1;resume;;\n"  # refused: in progress (the next row would make it fit)
    "SIE-75-08;REF-1;suspend;;Pièce manquante\n"
    "SIE-75-08;REF-2;start;;\n"
    "SIE-75-08;REF-2;suspend;;\n"
    "SIE-75-08;REF-2;resume;;\n"
    "SIE-75-08;NO-SUCH-ITEM;start;;\n"  # refused: unknown item
    "SIE-75-17;REF-3;cancel;;Doublon\n"
)

#: Explicit times, several events at the same instant.
SAME_INSTANT = (
    "sie;reference;event;at;reason\n"
    "SIE-75-08;REF-1;start;2026-11-03T09:00;\n"
    "SIE-75-08;REF-1;suspend;2026-11-04T10:00;Pièce manquante\n"
    "SIE-75-08;REF-1;resume;2026-11-04T10:00;\n"
    "SIE-75-08;REF-1;start;2026-11-04T10:00;\n"  # refused: in progress
    "SIE-75-08;REF-2;start;2026-11-04T10:00;\n"
    "SIE-75-08;REF-2;suspend;2026-11-04T10:00;\n"
    "SIE-75-08;REF-2;resume;2026-11-05T10:00;\n"
    "SIE-75-08;REF-2;resume;2026-11-05T10:00;\n"  # refused: in progress
    "SIE-75-17;REF-3;start;2026-11-05T10:00;\n"
    "SIE-75-17;REF-3;complete;2026-11-05T10:00;Remboursé\n"
)

FILES = {"without-times": WITHOUT_TIMES, "same-instant": SAME_INSTANT}


class Crash(BaseException):
    """The process dies here (nothing catches it; the open transaction is rolled back)."""


def _world(engine: Engine) -> None:
    """Three assigned items: one held by a remote service, two by their SIE."""
    with session_scope(engine) as session:
        add_reference(session)
        for sie, reference, assignee in (
            ("SIE-75-08", "REF-1", "ANT-18-VIERZON"),
            ("SIE-75-08", "REF-2", None),
            ("SIE-75-17", "REF-3", None),
        ):
            add_item(
                session,
                sie=sie,
                reference=reference,
                received_on=date(2026, 10, 30),
                assigned_on=date(2026, 11, 2),
                assignee=assignee,
                convention="CONV-75-VIERZON" if assignee else None,
                version=2 if assignee else None,
            )


def _fresh_world(engine: Engine, path: Path) -> None:
    wipe(engine)
    _world(engine)
    errors_file_for(path).unlink(missing_ok=True)


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Items, histories and the ledger by natural key (no surrogate ids, no wall clock)."""
    queries = {
        "items": "SELECT sie_code, reference, state, due_on, suspended_on, completed_on, "
        "last_event_at FROM work_item",
        "history": "SELECT w.sie_code, w.reference, e.event, e.at, e.by, e.reason, e.from_state, "
        "e.to_state, e.due_on FROM item_event e JOIN work_item w ON w.id = e.item_id",
        "ledger": "SELECT r.sha256, r.line, r.result, r.state, r.reason, w.reference, e.event "
        "FROM event_import_row r LEFT JOIN item_event e ON e.id = r.item_event_id "
        "LEFT JOIN work_item w ON w.id = e.item_id",
    }
    with engine.connect() as connection:
        return {
            name: sorted(
                (tuple("" if value is None else str(value) for value in row))
                for row in connection.execute(text(query))
            )
            for name, query in queries.items()
        }


def _report(outcome: EventsImport) -> tuple[list[dict[str, Any]], bytes | None]:
    """Every row's result, and the errors file's bytes."""
    errors = outcome.errors_file.read_bytes() if outcome.errors_file else None
    return [row.as_dict() for row in outcome.rows], errors


def _clean_import(engine: Engine, path: Path) -> tuple[Any, ...]:
    """The reference: one uninterrupted import on a fresh world."""
    _fresh_world(engine, path)
    outcome = import_events(path, by="cli", engine=engine, now=NOW)
    assert_consistent(engine)
    return _report(outcome), _snapshot(engine)


def _write(tmp_path: Path, content: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    return path


def test_a_clean_import_records_every_row_with_what_it_reported(
    engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, WITHOUT_TIMES)
    _world(engine)
    outcome = import_events(path, by="cli", engine=engine, now=NOW)
    assert [(row.line, row.result, row.state) for row in outcome.rows] == [
        (2, "applied", "in_progress"),
        (3, "refused", None),
        (4, "applied", "suspended"),
        (5, "applied", "in_progress"),
        (6, "applied", "suspended"),
        (7, "applied", "in_progress"),
        (8, "refused", None),
        (9, "applied", "cancelled"),
    ]
    # Applied rows point at the history entry they wrote; refused rows keep their reason.
    with engine.connect() as connection:
        ledger = connection.execute(
            text(
                "SELECT r.line, r.result, r.state, r.reason, w.reference, e.event "
                "FROM event_import_row r LEFT JOIN item_event e ON e.id = r.item_event_id "
                "LEFT JOIN work_item w ON w.id = e.item_id ORDER BY r.line"
            )
        ).all()
    resume = "cannot resume item SIE-75-08/REF-1: it is in_progress (resume needs suspended)"
    assert [tuple(row) for row in ledger] == [
        (2, "applied", "in_progress", None, "REF-1", "start"),
        (3, "refused", None, resume, None, None),
        (4, "applied", "suspended", None, "REF-1", "suspend"),
        (5, "applied", "in_progress", None, "REF-2", "start"),
        (6, "applied", "suspended", None, "REF-2", "suspend"),
        (7, "applied", "in_progress", None, "REF-2", "resume"),
        (8, "refused", None, "unknown item SIE-75-08/NO-SUCH-ITEM", None, None),
        (9, "applied", "cancelled", None, "REF-3", "cancel"),
    ]
    assert_consistent(engine)


@pytest.mark.parametrize("kind", FILES)
def test_the_same_file_again_changes_nothing_and_reports_the_same(
    engine: Engine, tmp_path: Path, kind: str
) -> None:
    path = _write(tmp_path, FILES[kind])
    _world(engine)
    first = _report(import_events(path, by="cli", engine=engine, now=NOW))
    state = _snapshot(engine)
    # Later, by someone else: rows without a time would happen at this new "now".
    later = NOW + timedelta(days=3)
    assert _report(import_events(path, by="agent", engine=engine, now=later)) == first
    assert _snapshot(engine) == state
    # The same bytes under another name are the same import (its errors file is its own).
    copy = _write(tmp_path, FILES[kind], name="copie.csv")
    again = import_events(copy, by="cli", engine=engine, now=later)
    assert [row.as_dict() for row in again.rows] == first[0]
    assert again.already_recorded == len(again.rows)
    assert again.errors_file == errors_file_for(copy)
    assert again.errors_file.read_bytes() == first[1]
    assert _snapshot(engine) == state


def test_a_changed_file_is_a_new_import(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "sie;reference;event;at\nSIE-75-08;REF-1;start;2026-11-03\n")
    _world(engine)
    assert import_events(path, by="cli", engine=engine).applied == 1
    path.write_bytes(path.read_bytes() + b"SIE-75-08;REF-1;suspend;2026-11-04\n")
    outcome = import_events(path, by="cli", engine=engine)
    assert outcome.already_recorded == 0
    # Every row is evaluated again: the start no longer fits, the suspend is new.
    assert [(row.line, row.result, row.state) for row in outcome.rows] == [
        (2, "refused", None),
        (3, "applied", "suspended"),
    ]
    assert len(_snapshot(engine)["ledger"]) == 3
    assert_consistent(engine)


def _crash_between_rows(after: int) -> Callable[[items.EventRowResult], None]:
    """An ``on_row`` that dies once ``after`` rows are done (committed, or refused)."""
    done: list[int] = []

    def on_row(_row: items.EventRowResult) -> None:
        done.append(1)
        if len(done) == after:
            raise Crash

    return on_row


def _crash_inside_an_event(real_apply: Callable[..., Any], at: int) -> Callable[..., Any]:
    """An ``apply_event`` that dies inside the ``at``-th event's transaction, once written."""
    calls: list[int] = []

    def apply_then_die(*args: Any, **kwargs: Any) -> Any:
        applied = real_apply(*args, **kwargs)
        calls.append(1)
        if len(calls) == at:
            raise Crash
        return applied

    return apply_then_die


@pytest.mark.parametrize("kind", FILES)
@pytest.mark.parametrize("where", ["between-rows", "inside-a-row"])
def test_a_crash_mid_file_then_a_rerun_equals_one_clean_import(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, where: str
) -> None:
    """At every row: killed after it (its event and ledger entry committed) or inside it
    (event written, transaction not committed); then the same command again."""
    path = _write(tmp_path, FILES[kind])
    clean = _clean_import(engine, path)
    rows = clean[0][0]
    # Between rows: after any row; inside a row: in any applied row's transaction.
    crash_points = (
        len(rows)
        if where == "between-rows"
        else sum(1 for row in rows if row["result"] == "applied")
    )
    real_apply = items.apply_event
    for at_row in range(1, crash_points + 1):
        _fresh_world(engine, path)
        on_row = None
        if where == "between-rows":
            on_row = _crash_between_rows(at_row)
        else:
            monkeypatch.setattr(items, "apply_event", _crash_inside_an_event(real_apply, at_row))
        with pytest.raises(Crash):
            import_events(path, by="cli", engine=engine, now=NOW, on_row=on_row)
        monkeypatch.setattr(items, "apply_event", real_apply)
        assert_consistent(engine)

        rerun = import_events(path, by="cli", engine=engine, now=NOW)

        assert_consistent(engine)
        assert (_report(rerun), _snapshot(engine)) == clean, f"crash at row {at_row}"


def test_a_row_recorded_by_another_import_meanwhile_is_reported_as_recorded(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another import of the same bytes recorded every row after this one read the ledger:
    each of its attempts hits the ledger's key, is rolled back, and reports the row as
    recorded."""
    path = _write(tmp_path, WITHOUT_TIMES)
    _world(engine)
    first = _report(import_events(path, by="cli", engine=engine, now=NOW))
    state = _snapshot(engine)
    real = items._recorded

    def nothing_yet(engine: Engine, sha256: str, line: int | None = None) -> Any:
        return {} if line is None else real(engine, sha256, line)

    monkeypatch.setattr(items, "_recorded", nothing_yet)
    assert _report(import_events(path, by="cli", engine=engine, now=NOW)) == first
    assert _snapshot(engine) == state
    assert_consistent(engine)


@pytest.mark.parametrize("kind", FILES)
def test_two_imports_of_the_same_file_at_once_equal_one(
    engine: Engine, tmp_path: Path, kind: str
) -> None:
    path = _write(tmp_path, FILES[kind])
    clean = _clean_import(engine, path)
    _fresh_world(engine, path)
    barrier = threading.Barrier(2)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            reports.append(import_events(path, by="cli", engine=engine, now=NOW))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [[row.as_dict() for row in report.rows] for report in reports] == [clean[0][0]] * 2
    assert errors_file_for(path).read_bytes() == clean[0][1]
    assert _snapshot(engine) == clean[1]
    assert_consistent(engine)
