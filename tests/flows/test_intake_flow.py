"""Flow ``intake-sie-queues`` via ``relais intake``: JSON, history authors, no taxpayer data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from relais.cli.main import app
from relais.settings import reset_settings
from tests.intake_data import (
    AS_OF,
    OTHER_SIE,
    SIE,
    SIREN,
    add_sies,
    events,
    incoming,
    items,
    mixed_rows,
    row,
    write_csv,
)

AMOUNT = "98\u202f765,43\u00a0€"
LABEL = "Boulangerie Secrète SARL"


@pytest.mark.flow
def test_intake_flow_ingests_and_publishes_counts_only(
    prefect_harness: None,
    sqlite_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
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

    add_sies(sqlite_engine)
    root = tmp_path / "queues"
    monkeypatch.setenv("RELAIS_QUEUE_ROOT", str(root))
    reset_settings()
    write_csv(
        incoming(root) / "export.csv",
        [
            row("R1", "tva_refund", SIREN, "2026-11-02", AMOUNT, label=LABEL),
            row("R2", "tva_refund", SIREN, "2026-11-02", "", label=LABEL),  # missing amount
            row("R1", "tva_refund", SIREN, "02/11/2026", "98765.43", label=LABEL),  # duplicate
        ],
        encoding="utf-8-sig",
    )
    write_csv(incoming(root, "SIE-00-00") / "x.csv", [row("X1", siren=SIREN, label=LABEL)])

    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(app, ["intake", "--as-of", "2026-11-20", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "files": [
            {"sie": SIE, "file": "export.csv", "accepted": 1, "duplicates": 1, "rejected": 1}
        ],
        "accepted": 1,
        "duplicates": 1,
        "rejected": 1,
        "unknown_sies": ["SIE-00-00"],
        "unreadable": [],
    }
    assert "unknown SIE folder left untouched" in result.stderr
    assert [values["reference"] for values in items(sqlite_engine)] == ["R1"]
    assert (root / "SIE-00-00" / "incoming" / "x.csv").exists()

    # The history names the flow run as the author of the received event.
    [event] = events(sqlite_engine)
    flow_run_id = event["by"]
    assert event["flow_run_id"] == flow_run_id and flow_run_id not in ("cli", "")

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    assert flow_run.name == "intake-2026-11-20"
    assert flow_run.state is not None and flow_run.state.is_completed()
    [artifact] = [a for a in artifacts if a.key == "intake-sie-queues"]
    markdown = str(artifact.data)
    assert f"| {SIE} | 1 | 1 | 1 | 1 |" in markdown
    assert "SIE-00-00" in markdown
    messages = [log.message for log in logs]
    assert any(f"{SIE}: 1 file(s), 1 accepted, 1 duplicate(s), 1 rejected" in m for m in messages)

    published = "\n".join([markdown, *messages, *(r.getMessage() for r in caplog.records)])
    for secret in (SIREN, "98765", "98\u202f765", "98 765", "9876543", "Boulangerie", "Secrète"):
        assert secret not in published, secret


@pytest.mark.flow
def test_intake_flow_with_no_queue_then_with_two_sie_queues(
    prefect_harness: None,
    sqlite_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.intake import intake_sie_queues

    add_sies(sqlite_engine)
    root = tmp_path / "queues"
    root.mkdir()
    monkeypatch.setenv("RELAIS_QUEUE_ROOT", str(root))
    # A reader process, which reads the second SIE's file ahead while the first one commits.
    monkeypatch.setenv("RELAIS_INTAKE_READER", "process")
    reset_settings()
    nothing = intake_sie_queues(as_of=AS_OF)
    assert (nothing["files"], nothing["accepted"], nothing["unknown_sies"]) == ([], 0, [])

    write_csv(incoming(root) / "a.csv", mixed_rows(300))
    write_csv(incoming(root, OTHER_SIE) / "b.csv", mixed_rows(200))
    summary = intake_sie_queues(as_of=AS_OF)
    assert sorted((entry["sie"], entry["file"]) for entry in summary["files"]) == sorted(
        [(SIE, "a.csv"), (OTHER_SIE, "b.csv")]
    )
    stored = len(items(sqlite_engine, SIE)) + len(items(sqlite_engine, OTHER_SIE))
    assert summary["accepted"] == stored > 450
