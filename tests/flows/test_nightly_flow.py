"""The nightly cycle end to end under the Prefect test harness (one flow test: each costs seconds).

The steps' own rules are tested through plain functions in their own test files; this checks
the orchestration: one named, tagged run with its three subflows, the counts it combines, the
routing limit it creates, and an artifact without taxpayer data.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from sqlalchemy import Engine, func, select

from flows.nightly import ROUTING_LIMIT, nightly_cycle
from models.tables import WorkItem
from relais.demo import Defect, day_files, write_files
from relais.demo_run import load_shipped_data
from relais.settings import get_settings

AS_OF = date(2026, 11, 10)


@pytest.mark.flow
def test_nightly_cycle_runs_intake_routing_and_scan_as_named_subflows(
    prefect_harness: None, sqlite_engine: Engine, relais_home: Path
) -> None:
    load_shipped_data(sqlite_engine)
    # The second demo night: the Windows-1252 export with an invalid SIREN and a refund
    # without amount, UTF-8 files for the other SIEs.
    files = day_files(AS_OF, 1)
    write_files(get_settings().queue_root, files)
    rows = [row for demo_file in files for row in demo_file.rows]
    clean = [row for row in rows if row.defect is None]
    assert len(clean) == len(rows) - 2

    state = nightly_cycle(as_of=AS_OF, return_state=True)
    assert state.is_completed(), state
    summary = state.result()

    assert summary["failed_steps"] == []
    assert summary["intake"]["files"] == len(files)
    assert summary["intake"]["accepted"] == len(clean)
    assert summary["intake"]["rejected"] == 2
    # Far below every daily capacity: everything received is assigned tonight.
    assert summary["routing"]["assigned_total"] == len(clean)
    assert summary["routing"]["waiting_capacity"] == 0
    assert summary["routing"]["assigned"]["ANT-18-VIERZON"] > 0
    with sqlite_engine.connect() as connection:
        assigned = connection.execute(
            select(func.count()).where(WorkItem.state == "assigned")  # type: ignore[arg-type]
        ).scalar()
    assert assigned == len(clean)

    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        assert run.name == f"nightly-{AS_OF.isoformat()}"
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])
            )
        )
        assert sorted(child.name for child in children) == [
            f"intake-{AS_OF.isoformat()}",
            f"route-{AS_OF.isoformat()}",
            f"scan-slas-{AS_OF.isoformat()}",
        ]
        assert all({"relais", "nightly"} <= set(child.tags) for child in children)
        limit = client.read_global_concurrency_limit_by_name(ROUTING_LIMIT)
        assert limit.limit == 1

        run_ids = [run_id, *(child.id for child in children)]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
        )
    by_key = {artifact.key: str(artifact.data) for artifact in artifacts}
    assert f"Cycle de nuit du {AS_OF.isoformat()}" in by_key["nightly-cycle"]
    assert "ANT-18-VIERZON" in by_key["nightly-cycle"]
    # No taxpayer data in any artifact of the night: no SIREN, no label.
    published = "\n".join(by_key.values())
    for row in rows:
        assert row.siren.replace(" ", "") not in published.replace(" ", "")
        if row.label:
            assert row.label not in published
    assert any(row.defect is Defect.INVALID_SIREN for row in rows)
