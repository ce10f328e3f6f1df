"""Flow ``convention-report``: each convention's monthly report, written under RELAIS_HOME."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.naming import local_today, run_name
from relais.reports import parse_month, previous_month, summary_markdown
from tasks.report import select_conventions, write_convention_report


@flow(
    name="convention-report",
    flow_run_name=run_name("report", "convention", "month"),
    log_prints=False,
)
def convention_report(month: str | None = None, convention: str | None = None) -> dict[str, Any]:
    """Write the report of ``convention`` (default: every convention in force) for ``month``.

    ``month`` is ``YYYY-MM`` and defaults to the previous month in the offices' time zone.
    Files go to ``RELAIS_HOME/reports/<convention>/<YYYY-MM>.{html,json,csv}``.
    """
    logger = get_run_logger()
    if month is None:
        month = previous_month(local_today())
    month = f"{parse_month(month):%Y-%m}"
    conventions = select_conventions(month, convention)
    results = [write_convention_report(convention_id, month) for convention_id in conventions]
    for result in results:
        logger.info(
            "Report %s %s: %d assigned, %d completed, %d in backlog, %d breaches",
            result["convention"],
            month,
            result["assigned"],
            result["completed"],
            result["backlog"],
            result["open_breaches"],
        )
    create_markdown_artifact(
        key="convention-report",
        markdown=summary_markdown(month, results),
        description=f"Rapports mensuels {month}",
    )
    return {"month": month, "reports": results}
