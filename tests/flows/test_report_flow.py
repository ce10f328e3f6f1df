"""The monthly report flow under the Prefect test harness (its figures are tested in
``tests/test_reports.py`` through plain functions)."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import Engine

from flows.report import convention_report
from relais.reports import REPORT_FILE_MODE
from tests.api_fixtures import CONV_57, CONV_75, build_world


@pytest.mark.flow
def test_convention_report_writes_every_report_and_a_counts_only_artifact(
    prefect_harness: None, sqlite_engine: Engine, relais_home: Path, tmp_path: Path
) -> None:
    build_world(sqlite_engine, tmp_path)
    state = convention_report(month="2026-11", return_state=True)
    assert state.is_completed(), state
    result = state.result()

    assert result["month"] == "2026-11"
    assert [report["convention"] for report in result["reports"]] == [CONV_57, CONV_75]
    vierzon = result["reports"][1]
    assert (vierzon["assigned"], vierzon["completed"], vierzon["backlog"]) == (4, 3, 4)
    for convention in (CONV_57, CONV_75):
        folder = relais_home / "reports" / convention
        assert sorted(path.name for path in folder.iterdir()) == [
            "2026-11.csv",
            "2026-11.html",
            "2026-11.json",
        ]
        assert all(stat.S_IMODE(p.stat().st_mode) == REPORT_FILE_MODE for p in folder.iterdir())
    written = json.loads((relais_home / "reports" / CONV_75 / "2026-11.json").read_text("utf-8"))
    assert written["totals"]["open_breaches"] == 1

    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        assert run.name == "report-2026-11"
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    markdown = "\n".join(str(artifact.data) for artifact in artifacts)
    assert f"| {CONV_75} | 3 | 4 | 3 | 4 | 1 | 1 |" in markdown
    # Counts only: no reference, no label, no SIREN.
    assert "R-E" not in markdown and "Libellé" not in markdown
    assert re.search(r"\b\d{9}\b", markdown) is None
