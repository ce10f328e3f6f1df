"""``relais reference``: exit codes, messages on stderr, JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from relais.cli.main import app

SHIPPED = Path(__file__).resolve().parents[2] / "relais" / "data" / "reference.yaml"

runner = CliRunner()


def test_load_then_list_as_json(engine: Engine) -> None:
    loaded = runner.invoke(app, ["reference", "load", str(SHIPPED)])
    assert loaded.exit_code == 0, loaded.output
    assert "loaded" in loaded.stdout

    listed = runner.invoke(app, ["reference", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    reference = json.loads(listed.stdout)
    assert set(reference) == {"directorates", "sies", "services", "closures"}
    assert len(reference["directorates"]) == 30
    assert {
        "code": "ANT-57-FORBACH",
        "name": "Antenne de Forbach",
        "town": "Forbach",
        "department": "57",
        "host_directorate": "DDFIP57",
        "agents": 25,
    } in reference["services"]
    assert {
        "office": "ANT-18-VIERZON",
        "date": "2026-12-24",
        "reason": "Fermeture exceptionnelle",
    } in reference["closures"]


def test_load_twice_reports_no_change_as_json(engine: Engine) -> None:
    runner.invoke(app, ["reference", "load", str(SHIPPED)])
    again = runner.invoke(app, ["reference", "load", str(SHIPPED), "--format", "json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["sies"] == {"created": 0, "updated": 0, "unchanged": 57}


def test_list_as_a_table(engine: Engine) -> None:
    runner.invoke(app, ["reference", "load", str(SHIPPED)])
    listed = runner.invoke(app, ["reference", "list"])
    assert listed.exit_code == 0
    assert "DRFIP75" in listed.stdout and "ANT-18-VIERZON" in listed.stdout


def test_a_bad_file_exits_1_naming_every_problem_on_stderr(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "directorates:\n"
        "  - {code: DRFIP75, name: Paris, department: 75}\n"
        "services:\n"
        "  - {code: ANT-1, name: A, town: T, department: '18', host_directorate: X, agents: 5}\n"
        "  - {code: ANT-2, name: B, town: T, department: '18', host_directorate: Y, agents: 5}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["reference", "load", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{path}: directorates[0].department:" in result.stderr
    assert "(line 2)" in result.stderr

    fixed = path.read_text(encoding="utf-8").replace("department: 75", "department: '75'")
    path.write_text(fixed, encoding="utf-8")
    result = runner.invoke(app, ["reference", "load", str(path)])
    assert result.exit_code == 1
    assert f"{path}: services[0].host_directorate: unknown directorate X (line 4)" in result.stderr
    assert f"{path}: services[1].host_directorate: unknown directorate Y (line 5)" in result.stderr
    listed = json.loads(runner.invoke(app, ["reference", "list", "--format", "json"]).stdout)
    assert listed["directorates"] == []


def test_a_missing_file_exits_1(engine: Engine, tmp_path: Path) -> None:
    result = runner.invoke(app, ["reference", "load", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1
    assert "file not found" in result.stderr


def test_usage_errors_exit_2(engine: Engine) -> None:
    assert runner.invoke(app, ["reference", "load"]).exit_code == 2
    assert runner.invoke(app, ["reference", "list", "--format", "xml"]).exit_code == 2


def test_a_reload_that_breaks_a_convention_exits_1_and_writes_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["reference", "load", str(SHIPPED)]).exit_code == 0
    convention = SHIPPED.parent / "conventions" / "conv-75-vierzon-v1.yaml"
    applied = runner.invoke(app, ["conventions", "apply", str(convention)])
    assert applied.exit_code == 0, applied.output
    before = runner.invoke(app, ["reference", "list", "--format", "json"]).stdout

    path = tmp_path / "moved.yaml"
    path.write_text(
        "sies:\n  - {code: SIE-75-08, name: SIE Paris 8e, directorate: DDFIP18}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["reference", "load", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    # The convention lists SIE-75-08 on each of its four lines: one problem each.
    assert result.stderr.splitlines() == [
        f"Error: {path}: reference data not loaded (4 problem(s))",
        *(
            f"{path}: sies[0].directorate: breaks convention CONV-75-VIERZON version 1 at "
            f"perimeter[{line}].sies[1]: SIE SIE-75-08 belongs to DDFIP18, not to the exporting "
            "directorate DRFIP75 (line 2)"
            for line in range(4)
        ),
        "hint: a convention keeps the reference data it was applied with. To change it, end the "
        "version (apply a new version with effective_to, exclusive, on the day of the change), "
        "load the reference data on that day, then apply a new version starting that day",
    ]
    assert runner.invoke(app, ["reference", "list", "--format", "json"]).stdout == before
