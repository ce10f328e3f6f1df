"""``relais conventions``: validate, apply, list, show; exit codes and output streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from relais.cli.main import app

DATA = Path(__file__).resolve().parents[2] / "relais" / "data"
SHIPPED = [str(path) for path in sorted((DATA / "conventions").glob("*.yaml"))]

runner = CliRunner()


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    result = runner.invoke(app, ["reference", "load", str(DATA / "reference.yaml")])
    assert result.exit_code == 0, result.output
    return engine


def test_validate_the_shipped_files_warns_about_small_services(loaded: Engine) -> None:
    result = runner.invoke(app, ["conventions", "validate", *SHIPPED])
    assert result.exit_code == 0, result.output
    assert "ANT-27-PONT-AUDEMER has 20 agents" in result.stderr
    assert "warning" in result.stderr
    assert "CONV-75-VIERZON version 2: valid" in result.stdout
    listed = runner.invoke(app, ["conventions", "list", "--format", "json"])
    assert json.loads(listed.stdout) == []  # validate wrote nothing


def test_validate_reports_each_failure_as_file_field_problem(
    loaded: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: CONV-75-X\nversion: 1\nexporting_directorate: DRFIP75\nhost_directorate: DDFIP18\n"
        "service: ANT-18-VIERZON\neffective_from: 2025-01-01\neffective_to: 2024-01-01\n"
        "perimeter:\n"
        "  - {process: tva_refund, sies: [SIE-75-02, SIE-57-METZ], target_business_days: 300}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["conventions", "validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    for expected in (
        f"{path}: effective_to: must be after effective_from (2025-01-01)",
        f"{path}: perimeter[0].target_business_days: must be between 1 and 250",
        f"{path}: perimeter[0].sies[1]: SIE SIE-57-METZ belongs to DDFIP57",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, lines)


def test_apply_then_apply_again_says_nothing_changed(loaded: Engine) -> None:
    applied = runner.invoke(app, ["conventions", "apply", *SHIPPED])
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.count(": applied") == len(SHIPPED)
    again = runner.invoke(app, ["conventions", "apply", SHIPPED[0]])
    assert again.exit_code == 0, again.output
    assert "already applied, no change" in again.stdout


def test_apply_a_changed_version_exits_1(loaded: Engine, tmp_path: Path) -> None:
    runner.invoke(app, ["conventions", "apply", *SHIPPED])
    vierzon = DATA / "conventions" / "conv-75-vierzon-v1.yaml"
    changed = tmp_path / "vierzon.yaml"
    changed.write_text(
        vierzon.read_text(encoding="utf-8").replace("daily_capacity: 300", "daily_capacity: 310"),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["conventions", "apply", str(changed)])
    assert result.exit_code == 1
    assert f"{changed}: version: CONV-75-VIERZON version 1 is already applied" in result.stderr


def test_list_and_show_as_json(loaded: Engine) -> None:
    runner.invoke(app, ["conventions", "apply", *SHIPPED])
    listed = runner.invoke(app, ["conventions", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == len(SHIPPED)

    on_day = runner.invoke(
        app, ["conventions", "list", "--as-of", "2024-06-03", "--format", "json"]
    )
    in_force = {(entry["id"], entry["version"]) for entry in json.loads(on_day.stdout)}
    assert ("CONV-75-VIERZON", 1) in in_force and ("CONV-75-VIERZON", 2) not in in_force
    assert ("CONV-31-DAX", 1) in in_force and ("CONV-33-AGEN", 1) in in_force

    shown = runner.invoke(app, ["conventions", "show", "CONV-75-VIERZON", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert document["version"] == 2
    assert document["in_force_from"] == "2025-01-01" and document["in_force_to"] is None

    first = runner.invoke(
        app, ["conventions", "show", "CONV-75-VIERZON", "--version", "1", "--format", "json"]
    )
    assert json.loads(first.stdout)["in_force_to"] == "2025-01-01"

    table = runner.invoke(app, ["conventions", "show", "CONV-57-FORBACH"])
    assert table.exit_code == 0 and "infra_departmental" in table.stdout


def test_errors_and_usage_errors(loaded: Engine) -> None:
    missing = runner.invoke(app, ["conventions", "show", "CONV-00-NONE"])
    assert missing.exit_code == 1 and "CONV-00-NONE" in missing.stderr
    assert runner.invoke(app, ["conventions", "show", "X", "--version", "0"]).exit_code == 2
    assert runner.invoke(app, ["conventions", "list", "--as-of", "2024-13-01"]).exit_code == 2
    assert runner.invoke(app, ["conventions", "validate"]).exit_code == 2


def test_convention_commands_do_not_import_prefect(loaded: Engine) -> None:
    code = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from relais.cli.main import app\n"
        f"files = {SHIPPED!r}\n"
        "runner = CliRunner()\n"
        "codes = [runner.invoke(app, ['conventions', 'validate', *files]).exit_code,\n"
        "         runner.invoke(app, ['conventions', 'list', '--format', 'json']).exit_code,\n"
        "         runner.invoke(app, ['reference', 'list', '--format', 'json']).exit_code]\n"
        "print(json.dumps({'codes': codes, 'prefect': 'prefect' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"codes": [0, 0, 0], "prefect": False}


def test_the_same_file_twice_is_applied_once(loaded: Engine) -> None:
    result = runner.invoke(app, ["conventions", "apply", SHIPPED[0], SHIPPED[0]])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": applied") == 1
    assert "same version as an earlier file" in result.stdout
    checked = runner.invoke(app, ["conventions", "validate", SHIPPED[0]])
    assert checked.exit_code == 0
    assert "identical to the stored version" in checked.stdout
