"""Tasks of the monthly convention report: which conventions, and one report each."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from relais.conventions import stored_versions
from relais.db import session_scope
from relais.errors import NotFoundError
from relais.reports import build_report, conventions_in_force, write_report_files
from relais.settings import get_settings
from tasks.common import retry_on_transient


@task(
    name="select-report-conventions",
    retries=2,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def select_conventions(month: str, convention: str | None = None) -> list[str]:
    """``convention`` if given, else every convention in force in ``month``."""
    with session_scope() as session:
        if convention is None:
            return conventions_in_force(session, month=month)
        # A named convention is reported on even outside its period (e.g. its last month).
        if not stored_versions(session, convention_id=convention):
            raise NotFoundError(f"no convention {convention}")
        return [convention]


@task(
    name="write-convention-report",
    retries=2,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def write_convention_report(convention_id: str, month: str) -> dict[str, Any]:
    """Build one report and write its HTML, JSON and CSV files; return counts and paths."""
    settings = get_settings()
    with session_scope() as session:
        report = build_report(
            session, convention_id=convention_id, month=month, zone=settings.timezone
        )
    paths = write_report_files(report, settings.reports_dir)
    totals = report.totals
    return {
        "convention": convention_id,
        "month": report.month,
        "rows": len(report.rows),
        "assigned": totals.assigned,
        "completed": totals.completed,
        "backlog": totals.backlog,
        "open_breaches": totals.open_breaches,
        "legal_breaches": totals.legal_breaches,
        "files": [str(path) for path in paths],
    }
