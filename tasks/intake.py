"""Tasks of intake: find the SIE queues, then ingest one SIE's queue (never one task per row)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from relais.db import get_engine
from relais.intake import discover_queues, ingest_sie
from tasks.common import retry_on_transient


@task(
    name="discover-sie-queues",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def discover_sie_queues(queue_root: str, sie: str | None = None) -> dict[str, list[str]]:
    """The SIE folders to ingest under ``queue_root`` (or just ``sie``) and the unknown ones."""
    discovery = discover_queues(get_engine(), Path(queue_root), sie)
    return {"known": discovery.known, "unknown": discovery.unknown}


@task(
    name="ingest-sie-queue",
    task_run_name="ingest-{sie_code}",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def ingest_sie_queue(
    sie_code: str, queue_root: str, as_of: date, author: str, next_sie: str | None = None
) -> list[dict[str, Any]]:
    """Ingest the files of one SIE's queue, one at a time in name order (a transaction each).

    A retry after a transient database error starts again from the files still in
    ``incoming/``: those already committed are only finished (errors file, move).
    ``next_sie``: the queue taken after this one (its first file may be read ahead).
    """
    outcomes = ingest_sie(
        get_engine(),
        sie_code=sie_code,
        root=Path(queue_root),
        as_of=as_of,
        author=author,
        flow_run_id=None if author == "cli" else author,
        next_sie=next_sie,
    )
    return [{**outcome.as_json(), "unreadable": outcome.unreadable} for outcome in outcomes]
