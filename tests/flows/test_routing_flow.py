"""Flow ``route-work-items`` via ``relais route``: JSON, run name, authors, artifact, no data."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from relais.cli.main import app
from tests.routing_data import (
    NewItem,
    add_items,
    apply_convention,
    convention_document,
    events_of,
    load_reference_data,
)

SIREN = "732829320"  # what tests.routing_data gives every item


@pytest.mark.flow
def test_routing_flow_assigns_and_publishes_counts_only(
    prefect_harness: None,
    sqlite_engine: Engine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    engine = sqlite_engine
    load_reference_data(tmp_path, engine)
    line = {"process": "tva_refund", "sies": ["SIE-75-08"], "daily_capacity": 2}
    apply_convention(tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[line]))
    add_items(
        engine,
        [NewItem("SIE-75-08", f"R{n}", "tva_refund", date(2026, 11, 20)) for n in range(3)]
        + [NewItem("SIE-75-02", "L1", "medoc_web", date(2026, 11, 20))],
    )

    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(app, ["route", "--as-of", "2026-11-26", "--format", "json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "as_of": "2026-11-26",
        "dry_run": False,
        "assigned": {"ANT-18-VIERZON": 2, "SIE-75-02": 1},
        "reassigned": 0,
        "waiting_capacity": 1,
        "unchanged": 0,
    }
    recorded = events_of(engine)
    assert len(recorded) == 3
    flow_run_id = recorded[0]["by"]
    assert flow_run_id not in ("cli", "")
    assert {(event["by"], event["flow_run_id"]) for event in recorded} == {
        (flow_run_id, flow_run_id)
    }

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    assert flow_run.name == "route-2026-11-26"
    assert flow_run.state is not None and flow_run.state.is_completed()
    [artifact] = [a for a in artifacts if a.key == "route-work-items"]
    markdown = str(artifact.data)
    assert "| affectés | 3 |" in markdown
    assert "| en attente de capacité | 1 |" in markdown
    assert "| ANT-18-VIERZON | 2 |" in markdown  # per service
    assert "| SIE-75-08 | 2 | 0 |" in markdown  # per SIE of origin
    assert "| CONV-75-VIERZON v1 | 2 |" in markdown
    messages = [log.message for log in logs]
    assert any(
        "Routing 2026-11-26: 3 assigned to 2 holder(s), 0 reassigned, 1 waiting for capacity"
        in message
        for message in messages
    )
    published = "\n".join([markdown, *messages, *(r.getMessage() for r in caplog.records)])
    assert SIREN not in published
    for reference in ("R0", "R1", "R2", "L1"):
        assert f"| {reference} " not in markdown
