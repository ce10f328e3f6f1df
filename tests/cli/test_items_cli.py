"""``relais items``: event, events FILE, show; exit codes, output streams, no Prefect."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col
from typer.testing import CliRunner

from models.tables import ItemEvent, WorkItem
from relais.cli.main import app
from relais.db import session_scope
from tests.builders import BuiltItem, add_item, add_reference, local_midnight

runner = CliRunner()


@pytest.fixture
def item(engine: Engine) -> BuiltItem:
    with session_scope(engine) as session:
        add_reference(session)
        return add_item(
            session,
            sie="SIE-75-08",
            reference="REF-1",
            received_on=date(2026, 11, 2),
            assigned_on=date(2026, 11, 2),
            assignee="ANT-18-VIERZON",
        )


# `session.exec` of SQLAlchemy's `select` carries `type: ignore[call-overload]`: sqlmodel's
# overloads name only its own select types, though it runs SQLAlchemy's as `Session.execute` does.


def _item(engine: Engine) -> WorkItem:
    with Session(engine) as session:
        return session.exec(select(WorkItem)).one()[0]  # type: ignore[call-overload]


def _event(*args: str) -> list[str]:
    return ["items", "event", "--sie", "SIE-75-08", "--ref", "REF-1", *args]


def test_event_applies_and_records_the_cli_as_author(engine: Engine, item: BuiltItem) -> None:
    result = runner.invoke(app, _event("--event", "start", "--at", "2026-11-03"))
    assert result.exit_code == 0, result.output
    assert "SIE-75-08/REF-1: start, assigned → in_progress" in result.stdout
    stored = _item(engine)
    assert stored.state == "in_progress"
    assert stored.last_event_at == local_midnight(date(2026, 11, 3))
    with Session(engine) as session:
        last = session.exec(  # type: ignore[call-overload]
            select(ItemEvent).order_by(col(ItemEvent.id).desc())
        ).first()[0]
    assert (last.event, last.by) == ("start", "cli")


def test_event_with_a_time_and_a_reason_in_json(engine: Engine, item: BuiltItem) -> None:
    runner.invoke(app, _event("--event", "start", "--at", "2026-11-03"))
    result = runner.invoke(
        app,
        _event(
            "--event",
            "suspend",
            "--at",
            "2026-11-04T15:30",
            "--reason",
            "Attente de pièces",
            "--format",
            "json",
        ),
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["to_state"] == "suspended"
    assert document["at"] == "2026-11-04T15:30:00+01:00"


def test_a_refused_event_exits_1_with_the_reason_on_stderr(engine: Engine, item: BuiltItem) -> None:
    result = runner.invoke(app, _event("--event", "resume", "--at", "2026-11-03"))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: cannot resume item SIE-75-08/REF-1: it is assigned (resume needs suspended)"
    )
    assert result.stdout == ""
    assert _item(engine).state == "assigned"


def test_unknown_item_exits_1(engine: Engine, item: BuiltItem) -> None:
    result = runner.invoke(
        app, ["items", "event", "--sie", "SIE-75-08", "--ref", "X", "--event", "start"]
    )
    assert result.exit_code == 1
    assert "Error: unknown item SIE-75-08/X" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--event", "finish"],
        ["--event", "start", "--at", "03/13/2026"],
        ["--event", "start", "--at", "yesterday"],
        ["--at", "2026-11-03"],
    ],
)
def test_bad_option_values_are_usage_errors(
    engine: Engine, item: BuiltItem, args: list[str]
) -> None:
    result = runner.invoke(app, _event(*args))
    assert result.exit_code == 2, result.output
    assert _item(engine).state == "assigned"


def test_an_earlier_time_than_the_last_event_is_refused(engine: Engine, item: BuiltItem) -> None:
    result = runner.invoke(app, _event("--event", "start", "--at", "2026-11-01"))
    assert result.exit_code == 1
    assert "earlier than its last event" in result.stderr


def test_events_file_reports_each_row_and_writes_the_errors_file(
    engine: Engine, item: BuiltItem, tmp_path: Path
) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "sie;reference;event;at;reason\n"
        "SIE-75-08;REF-1;start;2026-11-03;\n"
        "SIE-75-08;REF-1;start;2026-11-04;\n"
        "SIE-75-08;REF-1;complete;2026-11-05;Remboursement accordé\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["items", "events", str(events), "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["applied"], document["refused"]) == (2, 1)
    assert [row["result"] for row in document["rows"]] == ["applied", "refused", "applied"]
    errors = tmp_path / "events.csv.errors.csv"
    assert document["errors_file"] == str(errors)
    assert (
        errors.read_text(encoding="utf-8-sig")
        .splitlines()[1]
        .startswith("3;REF-1;cannot start item SIE-75-08/REF-1: it is in_progress")
    )
    assert "events.csv.errors.csv" in result.stderr
    assert "imported before" not in result.stderr
    assert _item(engine).completed_on == date(2026, 11, 5)
    # The same file again: the same report, nothing applied twice, and the user is told why.
    again = runner.invoke(app, ["items", "events", str(events), "--format", "json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == document
    assert "3 row(s) were imported before from the same file content" in again.stderr


def test_events_file_as_a_table_and_missing_file(
    engine: Engine, item: BuiltItem, tmp_path: Path
) -> None:
    events = tmp_path / "e.csv"
    events.write_text(
        "sie;reference;event;at\nSIE-75-08;REF-1;start;2026-11-03\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["items", "events", str(events)])
    assert result.exit_code == 0, result.output
    assert "1 applied, 0 refused" in result.stdout
    assert runner.invoke(app, ["items", "events", str(tmp_path / "none.csv")]).exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("sie;event\nSIE-75-08;start\n", encoding="utf-8")
    refused = runner.invoke(app, ["items", "events", str(bad)])
    assert refused.exit_code == 1
    assert "missing column(s) reference" in refused.stderr


def test_show_in_json_is_one_document_with_the_history(engine: Engine, item: BuiltItem) -> None:
    runner.invoke(app, _event("--event", "start", "--at", "2026-11-03"))
    result = runner.invoke(
        app, ["items", "show", "--sie", "SIE-75-08", "--ref", "REF-1", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["state"] == "in_progress"
    assert document["assignee"] == "ANT-18-VIERZON"
    assert [entry["event"] for entry in document["history"]] == ["received", "assigned", "start"]
    assigned = document["history"][1]
    assert (assigned["convention"], assigned["convention_version"]) == ("CONV-ANT-18-VIERZON", 1)
    assert datetime.fromisoformat(document["history"][2]["at"]) == local_midnight(date(2026, 11, 3))


def test_show_as_a_table(engine: Engine, item: BuiltItem) -> None:
    result = runner.invoke(app, ["items", "show", "--sie", "SIE-75-08", "--ref", "REF-1"])
    assert result.exit_code == 0, result.output
    assert "ANT-18-VIERZON" in result.stdout
    assert "Historique" in result.stdout
    assert _item(engine).siren not in result.stdout
    missing = runner.invoke(app, ["items", "show", "--sie", "SIE-75-08", "--ref", "NOPE"])
    assert missing.exit_code == 1
    assert "unknown item SIE-75-08/NOPE" in missing.stderr


def test_item_commands_do_not_load_prefect(
    engine: Engine, item: BuiltItem, database_url: str
) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from relais.cli.main import app\n"
        "runner = CliRunner()\n"
        "shown = runner.invoke(app, ['items', 'show', '--sie', 'SIE-75-08', '--ref', 'REF-1'])\n"
        "assert shown.exit_code == 0, shown.output\n"
        "started = runner.invoke(app, ['items', 'event', '--sie', 'SIE-75-08', '--ref', 'REF-1',"
        " '--event', 'start'])\n"
        "assert started.exit_code == 0, started.output\n"
        "print('prefect' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
