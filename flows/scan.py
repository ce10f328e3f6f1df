"""Flow ``scan-slas``: record the SLA and legal breaches first seen today and publish them."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.naming import local_today, run_name
from relais.scan import ScanResult, summary_markdown
from tasks.common import flow_run_author
from tasks.scan import publish_breach_events, read_worst_breaches, record_breaches

#: How many of the most overdue items the run's artifact lists.
WORST_CASES = 10


@flow(name="scan-slas", flow_run_name=run_name("scan-slas", "as_of"), log_prints=False)
def scan_slas(as_of: date | None = None) -> dict[str, Any]:
    """Record each breach once, when first seen on ``as_of`` (default: today, offices' zone).

    Publishes a summary artifact (counts per holder and process, the most overdue items by
    SIE and reference) and one ``relais.sla.breached`` event per holder with new breaches.
    """
    logger = get_run_logger()
    as_of = as_of or local_today()
    author = flow_run_author()
    result = record_breaches(as_of, None if author == "cli" else author)
    worst = read_worst_breaches(as_of, WORST_CASES)
    summary = ScanResult.from_dict(result)
    create_markdown_artifact(
        key="scan-slas",
        markdown=summary_markdown(summary, worst),
        description=f"Scan des délais du {as_of.isoformat()}",
    )
    events = publish_breach_events(result)
    logger.info(
        "Scan %s: %d new SLA breach(es), %d new legal breach(es), %d open; %d holder event(s)",
        as_of.isoformat(),
        summary.new_sla,
        summary.new_legal,
        summary.open_breaches.get("sla", 0),
        events,
    )
    return result
