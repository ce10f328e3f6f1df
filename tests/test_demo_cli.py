"""``relais demo`` end to end, as a user runs it: fresh homes, no Prefect server, then again.

Slow (a temporary Prefect server starts on a fresh PREFECT_HOME): the demo's pieces are
tested quickly in test_demo_data.py and test_demo_run.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from relais.demo import Defect, day_files, demo_days

pytestmark = pytest.mark.slow

RELAIS = str(Path(sys.executable).with_name("relais"))
NIGHTS = 4


def _run_demo(tmp_path: Path) -> tuple[dict[str, Any], str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PREFECT_", "RELAIS_"))
    }
    env.update(RELAIS_HOME=str(tmp_path / "relais-home"), PREFECT_HOME=str(tmp_path / "prefect"))
    result = subprocess.run(
        [RELAIS, "demo", "--days", str(NIGHTS), "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout), result.stderr


def test_demo_runs_on_fresh_homes_and_again(tmp_path: Path) -> None:
    first, progress = _run_demo(tmp_path)

    summary_day = first["as_of"]
    days = demo_days(date.fromisoformat(summary_day), NIGHTS)
    rows = [
        row
        for index, day in enumerate(days)
        for demo_file in day_files(day, index, final=index == NIGHTS - 1)
        for row in demo_file.rows
    ]
    defects = [row.defect for row in rows if row.defect is not None]
    assert first["files"]["accepted"] == len(rows) - len(defects)
    assert first["files"]["duplicates"] == defects.count(Defect.DUPLICATE) == 1
    assert first["files"]["rejected"] == 3
    reasons = " ".join(row["reason"] for row in first["rejected_rows"]).lower()
    assert "siren" in reasons and "process" in reasons and "amount" in reasons
    # The two old claims of the last night are past their legal deadline.
    assert first["breaches"]["legal"] == 2
    assert sum(holder["routed"] for holder in first["holders"]) == len(rows) - len(defects)
    for night in range(1, NIGHTS + 1):
        assert f"[{night:>2}/{NIGHTS}]" in progress

    second, progress = _run_demo(tmp_path)
    assert "Removed the previous demo's data" in progress
    # Reset, then the same seeded days: the same outcome.
    assert second == first
