"""Flow ``scan-slas`` via ``relais sla scan``: records, artifact and events, no taxpayer data."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col
from typer.testing import CliRunner

from models.tables import SlaBreach, WorkItem
from relais.cli.main import app
from relais.db import session_scope
from tests.builders import add_item, add_reference


@pytest.mark.flow
def test_scan_flow_records_once_and_publishes_counts_only(
    prefect_harness: None, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.scan

    with session_scope(sqlite_engine) as session:
        add_reference(session)
        for number, assignee in enumerate(("ANT-18-VIERZON", "ANT-18-VIERZON", "SIE-75-02")):
            add_item(
                session,
                sie="SIE-75-02",
                reference=f"SCAN-{number}",
                received_on=date(2026, 4, 1),
                assigned_on=date(2026, 10, 1),
                assignee=assignee,
            )
    emitted: list[dict[str, Any]] = []
    real_emit = tasks.scan.emit_event

    def recording_emit(**event: Any) -> Any:
        emitted.append(event)
        return real_emit(**event)

    monkeypatch.setattr(tasks.scan, "emit_event", recording_emit)
    runner = CliRunner()
    # The test server is shared by every flow test: count only the artifacts made here.
    earlier = {artifact.id for artifact in _scan_artifacts()}

    first = runner.invoke(app, ["sla", "scan", "--as-of", "2026-11-20", "--format", "json"])
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert result["new_breaches"] == {"sla": 3, "legal": 3}
    second = runner.invoke(app, ["sla", "scan", "--as-of", "2026-11-20", "--format", "json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["new_breaches"] == {"sla": 0, "legal": 0}

    with Session(sqlite_engine) as session:
        # sqlmodel's overloads of `session.exec` name only its own select types, though it runs
        # SQLAlchemy's as `Session.execute` does.
        recorded = session.exec(select(func.count()).select_from(SlaBreach)).one()[0]  # type: ignore[call-overload]
        sirens = [row[0] for row in session.exec(select(col(WorkItem.siren))).all()]  # type: ignore[call-overload]
    assert recorded == 6

    # One event per holder with new breaches, in the first run only; counts and codes only.
    assert sorted(e["resource"]["prefect.resource.id"] for e in emitted) == [
        "relais.service.ANT-18-VIERZON",
        "relais.service.SIE-75-02",
    ]
    vierzon = next(e for e in emitted if e["resource"]["prefect.resource.name"] == "ANT-18-VIERZON")
    assert vierzon["event"] == "relais.sla.breached"
    assert vierzon["payload"]["new_sla_breaches"] == 2

    artifacts = [artifact for artifact in _scan_artifacts() if artifact.id not in earlier]
    assert len(artifacts) == 2
    markdowns = [str(artifact.data) for artifact in artifacts]
    first_run = next(text for text in markdowns if "**3**" in text)
    assert "| ANT-18-VIERZON | tva_refund | 2 | 2 |" in first_run
    assert "| SIE-75-02 | SCAN-0 | tva_refund | ANT-18-VIERZON |" in first_run
    published = " ".join(markdowns) + json.dumps(emitted, default=str)
    for siren in sirens:
        assert siren not in published
    assert "Libellé" not in published
    assert "123456" not in published and "1234,56" not in published


def _scan_artifacts() -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return list(
            client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["scan-slas"]))
            )
        )
