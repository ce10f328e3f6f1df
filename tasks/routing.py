"""The routing task: one set-based run in one transaction (never one task per item)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from relais.db import get_engine
from relais.routing import route_work_items
from tasks.common import retry_on_transient


@task(
    name="route-items",
    task_run_name="route-items-{as_of}",
    retries=3,
    retry_delay_seconds=5,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def route_items(as_of: date, dry_run: bool, draft_files: list[str], author: str) -> dict[str, Any]:
    """Route the received items and move misplaced assigned ones for ``as_of``.

    The whole run is one transaction: a retry after a transient database error (a busy
    SQLite file, a dropped connection) starts from a clean state. Returns the SPEC JSON
    under ``result`` and the artifact's counts under ``details``.
    """
    outcome = route_work_items(
        as_of=as_of,
        dry_run=dry_run,
        draft_files=draft_files,
        author=author,
        flow_run_id=None if author == "cli" else author,
        engine=get_engine(),
    )
    return {"result": outcome.to_json(), "details": outcome.details()}
