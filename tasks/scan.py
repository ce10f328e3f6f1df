"""Tasks of the SLA scan: record new breaches, read the worst cases, publish events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from relais.db import session_scope
from relais.scan import ScanResult, breach_events, record_new_breaches, worst_breaches
from tasks.common import retry_on_transient


@task(
    name="record-sla-breaches",
    retries=2,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def record_breaches(as_of: date, flow_run_id: str | None) -> dict[str, Any]:
    """Record the breaches first seen on ``as_of`` (one transaction); return the counts."""
    with session_scope() as session:
        result = record_new_breaches(
            session, as_of=as_of, flow_run_id=flow_run_id, now=datetime.now(UTC)
        )
    return result.as_dict()


@task(
    name="read-worst-breaches",
    retries=2,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def read_worst_breaches(as_of: date, limit: int = 10) -> list[dict[str, Any]]:
    """The most overdue open breaches on ``as_of`` (codes and counts only)."""
    with session_scope() as session:
        return worst_breaches(session, as_of=as_of, limit=limit)


@task(name="publish-breach-events", cache_policy=NO_CACHE)
def publish_breach_events(result: dict[str, Any]) -> int:
    """Emit one ``relais.sla.breached`` event per holder with new breaches; return how many."""
    specs = breach_events(ScanResult.from_dict(result))
    for spec in specs:
        emit_event(event=spec["event"], resource=spec["resource"], payload=spec["payload"])
    return len(specs)
