"""Flow ``route-work-items``: send each received item where the conventions in force say (SPEC §6).

The flow only orchestrates: one task does the whole run set-based in one transaction, then the
flow logs counts and publishes the summary artifact (codes and counts, no taxpayer data).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.naming import format_run_name, local_today
from tasks.common import flow_run_author
from tasks.routing import route_items


def routing_run_name() -> str:
    """``route-2026-11-26``; dry runs end in ``-dry-run``, what-if runs in ``-what-if``."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters or {}
    name = format_run_name("route", parameters, ("as_of",), today=local_today())
    if parameters.get("draft_conventions"):
        return f"{name}-what-if"
    if parameters.get("dry_run"):
        return f"{name}-dry-run"
    return name


def _table(header: tuple[str, str], rows: Mapping[str, int]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---:|"]
    lines += [f"| {key} | {value} |" for key, value in sorted(rows.items())]
    return lines


def _holder(code: str, convention: str | None) -> str:
    return f"{code} ({convention})" if convention else f"{code} (au SIE)"


def routing_markdown(as_of: date, result: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """The run's artifact: assignments per service and per SIE, moves, conventions used."""
    assigned: Mapping[str, int] = result["assigned"]
    kind = " (simulation : rien n'a été enregistré)" if result["dry_run"] else ""
    lines = [
        f"# Routage du {as_of.isoformat()}{kind}",
        "",
        "| | éléments |",
        "|---|---:|",
        f"| affectés | {sum(assigned.values())} |",
        f"| réaffectés | {result['reassigned']} |",
        f"| en attente de capacité | {result['waiting_capacity']} |",
        f"| affectés inchangés | {result['unchanged']} |",
    ]
    held = details.get("held_for_capacity", 0)
    if held:
        lines.append(f"| dont réaffectations reportées faute de capacité | {held} |")
    by_sie: Mapping[str, Mapping[str, int]] = details.get("assigned_by_sie", {})
    services: Mapping[str, int] = details.get("assigned_by_service", {})
    if services:
        lines += ["", "## Affectations par service", "", *_table(("service", "éléments"), services)]
    if by_sie:
        lines += [
            "",
            "## Affectations par SIE d'origine",
            "",
            "| SIE | à distance | au SIE |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {sie} | {kinds.get('remote', 0)} | {kinds.get('local', 0)} |"
            for sie, kinds in sorted(by_sie.items())
        ]
    moves = details.get("moves") or []
    if moves:
        lines += ["", "## Réaffectations", "", "| processus | de | vers | éléments |"]
        lines += ["|---|---|---|---:|"]
        lines += [
            f"| {move['process']} | {_holder(move['from'], move['from_convention'])} "
            f"| {_holder(move['to'], move['to_convention'])} | {move['items']} |"
            for move in moves
        ]
    conventions: Mapping[str, int] = details.get("by_convention", {})
    if conventions:
        lines += ["", "## Conventions appliquées", ""]
        lines += _table(("convention", "éléments"), conventions)
    load: Mapping[str, Mapping[str, int]] = result.get("load") or {}
    if load:
        lines += ["", "## Charge des services (éléments ouverts)", ""]
        lines += ["| service | avant | après |", "|---|---:|---:|"]
        lines += [
            f"| {service} | {counts['before']} | {counts['after']} |"
            for service, counts in sorted(load.items())
        ]
    return "\n".join(lines) + "\n"


@flow(name="route-work-items", flow_run_name=routing_run_name, log_prints=False)
def route_work_items(
    as_of: date | None = None,
    dry_run: bool = False,
    draft_conventions: list[str] | None = None,
) -> dict[str, Any]:
    """Route received items to the service of the convention in force, or keep them local.

    ``as_of`` (default: today in the offices' zone) is the assignment date. ``dry_run``
    computes the same plan and writes nothing; ``draft_conventions`` (paths of convention
    files) are validated and evaluated as if applied, which implies a dry run. Returns the
    ``relais route`` JSON document.
    """
    logger = get_run_logger()
    day = as_of or local_today()
    drafts = list(draft_conventions or [])
    outcome = route_items(day, dry_run or bool(drafts), drafts, flow_run_author())
    result, details = outcome["result"], outcome["details"]
    assigned: Mapping[str, int] = result["assigned"]
    logger.info(
        "Routing %s%s: %d assigned to %d holder(s), %d reassigned, %d waiting for capacity, "
        "%d unchanged",
        day.isoformat(),
        " (dry run)" if result["dry_run"] else "",
        sum(assigned.values()),
        len(assigned),
        result["reassigned"],
        result["waiting_capacity"],
        result["unchanged"],
    )
    create_markdown_artifact(
        key="route-work-items",
        markdown=routing_markdown(day, result, details),
        description=f"Routage du {day.isoformat()}",
    )
    return dict(result)
