"""Flow ``intake-sie-queues``: pick up the files SIEs dropped in their queues (SPEC §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.naming import local_today, run_name
from relais.intake import FileOutcome, summarise
from relais.settings import get_settings
from tasks.common import flow_run_author
from tasks.intake import discover_sie_queues, ingest_sie_queue


def per_sie_counts(files: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Files, accepted, duplicate and rejected rows per SIE, in SIE order."""
    counts: dict[str, dict[str, int]] = {}
    for entry in files:
        sie = counts.setdefault(
            entry["sie"], {"files": 0, "accepted": 0, "duplicates": 0, "rejected": 0}
        )
        sie["files"] += 1
        for key in ("accepted", "duplicates", "rejected"):
            sie[key] += int(entry[key])
    return dict(sorted(counts.items()))


def summary_markdown(as_of: date, summary: Mapping[str, Any]) -> str:
    """The run's artifact: counts per SIE only (no file content, no taxpayer data)."""
    lines = [
        f"# Réception des files des SIE – {as_of.isoformat()}",
        "",
        "| SIE | fichiers | acceptées | doublons | rejetées |",
        "|---|---:|---:|---:|---:|",
    ]
    for sie, counts in per_sie_counts(summary["files"]).items():
        lines.append(
            f"| {sie} | {counts['files']} | {counts['accepted']} | {counts['duplicates']} "
            f"| {counts['rejected']} |"
        )
    lines.append(
        f"| **total** | {len(summary['files'])} | {summary['accepted']} "
        f"| {summary['duplicates']} | {summary['rejected']} |"
    )
    unreadable = summary.get("unreadable") or []
    if unreadable:
        lines += ["", f"Fichiers illisibles (déplacés dans rejected/) : {len(unreadable)}"]
    unknown = summary.get("unknown_sies") or []
    if unknown:
        lines += ["", "Dossiers de SIE inconnus, laissés en place : " + ", ".join(unknown)]
    return "\n".join(lines) + "\n"


@flow(name="intake-sie-queues", flow_run_name=run_name("intake", "as_of"), log_prints=False)
def intake_sie_queues(as_of: date | None = None, sie: str | None = None) -> dict[str, Any]:
    """Ingest the SIE queue files under RELAIS_QUEUE_ROOT (only ``sie``'s if given).

    ``as_of`` (default: today in the offices' zone) is the day of intake: the date of the
    ``received`` events and the latest ``received_on`` accepted. Returns the ``relais intake``
    JSON document.
    """
    logger = get_run_logger()
    day = as_of or local_today()
    author = flow_run_author()
    queue_root = str(get_settings().queue_root)
    queues = discover_sie_queues(queue_root, sie)
    outcomes: list[FileOutcome] = []
    known = queues["known"]
    # Each SIE with the next one, whose first file is read ahead (None after the last).
    for sie_code, next_sie in zip(known, [*known[1:], None], strict=False):
        for entry in ingest_sie_queue(sie_code, queue_root, day, author, next_sie):
            outcomes.append(FileOutcome(**entry))
    summary = summarise(outcomes, queues["unknown"])
    for sie_code, counts in per_sie_counts(summary["files"]).items():
        logger.info(
            "%s: %d file(s), %d accepted, %d duplicate(s), %d rejected",
            sie_code,
            counts["files"],
            counts["accepted"],
            counts["duplicates"],
            counts["rejected"],
        )
    if queues["unknown"]:
        logger.warning("Unknown SIE folder(s) left untouched: %s", ", ".join(queues["unknown"]))
    if summary["unreadable"]:
        logger.warning("%d unreadable file(s) moved to rejected/", len(summary["unreadable"]))
    logger.info(
        "Intake %s: %d file(s), %d accepted, %d duplicate(s), %d rejected",
        day.isoformat(),
        len(summary["files"]),
        summary["accepted"],
        summary["duplicates"],
        summary["rejected"],
    )
    create_markdown_artifact(
        key="intake-sie-queues",
        markdown=summary_markdown(day, summary),
        description=f"Réception des files des SIE du {day.isoformat()}",
    )
    return summary
