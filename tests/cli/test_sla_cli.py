"""``relais sla breaches|at-risk`` and ``relais worklist``: formats, filters, exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from relais.cli.main import app
from relais.db import session_scope
from relais.queries import sla_breaches
from tests.builders import add_item, add_reference, post

runner = CliRunner()


@pytest.fixture
def data(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        add_reference(session)
        add_item(
            session,
            sie="SIE-75-08",
            reference="REF-1",
            received_on=date(2026, 10, 1),
            assigned_on=date(2026, 10, 1),
            assignee="ANT-18-VIERZON",
        )
        # A reference a spreadsheet would take for a formula.
        add_item(
            session,
            sie="SIE-75-02",
            reference="=SUM(A1)",
            process="medoc_web",
            received_on=date(2026, 10, 1),
            assigned_on=date(2026, 10, 1),
        )
        done = add_item(
            session,
            sie="SIE-13-01",
            reference="DONE",
            process="medoc_web",
            received_on=date(2026, 10, 1),
            assigned_on=date(2026, 10, 1),
            assignee="ANT-57-FORBACH",
        )
        post(session, done, "complete", date(2026, 10, 30))
        add_item(session, sie="SIE-75-17", reference="OLD", received_on=date(2026, 4, 1))
    return engine


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_breaches_json_is_the_query_result(data: Engine) -> None:
    code, out, _ = _invoke("sla", "breaches", "--as-of", "2026-11-20", "--format", "json")
    assert code == 0
    with session_scope(data) as session:
        expected = sla_breaches(session, as_of=date(2026, 11, 20))
    assert json.loads(out) == json.loads(json.dumps(expected, default=str))
    assert [row["reference"] for row in json.loads(out)] == ["=SUM(A1)", "REF-1"]


def test_breaches_filters_and_flags(data: Engine) -> None:
    def refs(*args: str) -> list[str]:
        code, out, err = _invoke(
            "sla", "breaches", "--as-of", "2026-11-20", "--format", "json", *args
        )
        assert code == 0, err
        return [row["reference"] for row in json.loads(out)]

    assert refs("--directorate", "DDFIP18") == ["REF-1"]
    assert refs("--directorate", "DRFIP75") == ["=SUM(A1)", "REF-1"]
    assert refs("--service", "ANT-18-VIERZON") == ["REF-1"]
    assert refs("--sie", "SIE-75-02") == ["=SUM(A1)"]
    assert refs("--process", "medoc_web") == ["=SUM(A1)"]
    assert refs("--include-completed", "--directorate", "DDFIP57") == ["DONE"]
    assert refs("--legal") == ["OLD"]


def test_breaches_csv_has_a_bom_semicolons_and_no_formulas(data: Engine) -> None:
    result = runner.invoke(app, ["sla", "breaches", "--as-of", "2026-11-20", "--format", "csv"])
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes
    assert raw.startswith(b"\xef\xbb\xbfsie;reference;process;assignee;")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["sie", "reference", "process"]
    assert rows[1][:2] == ["SIE-75-02", "'=SUM(A1)"]
    assert rows[2][1] == "REF-1"
    assert rows[2][rows[0].index("convention")] == "CONV-ANT-18-VIERZON"


def test_breaches_table_for_people(data: Engine) -> None:
    code, out, _ = _invoke("sla", "breaches", "--as-of", "2026-11-20")
    assert code == 0
    assert "SLA breaches on 2026-11-20: 2" in out
    assert "Retard" in out


def test_at_risk_lists_items_close_to_their_due_date(data: Engine) -> None:
    code, out, _ = _invoke("sla", "at-risk", "--as-of", "2026-10-13", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    # The 10-day items (due 15 October) have 2 business days left; the 20-day one has 14.
    assert [(r["reference"], r["business_days_left"]) for r in rows] == [
        ("DONE", 2),
        ("=SUM(A1)", 2),
    ]
    code, out, _ = _invoke(
        "sla", "at-risk", "--as-of", "2026-10-13", "--sie", "SIE-13-01", "--format", "csv"
    )
    assert code == 0 and "business_days_left" in out and "DONE" in out


def test_worklist_of_a_service(data: Engine) -> None:
    code, out, _ = _invoke(
        "worklist", "--service", "ANT-18-VIERZON", "--as-of", "2026-10-13", "--format", "json"
    )
    assert code == 0
    (row,) = json.loads(out)
    assert (row["reference"], row["status"], row["state"]) == ("REF-1", "on_track", "assigned")
    code, out, _ = _invoke("worklist", "--service", "ANT-18-VIERZON", "--as-of", "2026-11-20")
    assert code == 0 and "Worklist of ANT-18-VIERZON on 2026-11-20: 1" in out


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["sla", "breaches", "--directorate", "DRFIP99"], 1, "Error: unknown directorate DRFIP99"),
        (["sla", "at-risk", "--process", "vat"], 1, "Error: unknown process 'vat'"),
        (["worklist", "--service", "NOPE"], 1, "Error: unknown service NOPE"),
        (["sla", "breaches", "--as-of", "20/11/2026"], 2, "--as-of"),
        (["sla", "breaches", "--format", "xml"], 2, "--format"),
        (["worklist"], 2, "--service"),
    ],
)
def test_errors_and_usage(data: Engine, args: list[str], exit_code: int, message: str) -> None:
    code, out, err = _invoke(*args)
    assert code == exit_code
    assert message in err
    assert out == ""


def test_query_commands_do_not_load_prefect(data: Engine) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from relais.cli.main import app\n"
        "runner = CliRunner()\n"
        "for args in (['sla', 'breaches', '--format', 'json'], ['sla', 'at-risk'],"
        " ['worklist', '--service', 'ANT-18-VIERZON']):\n"
        "    result = runner.invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print('prefect' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
