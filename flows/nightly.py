"""Flow ``nightly-cycle``: intake, then routing, then the SLA scan, for one as-of date.

Each step is a subflow of its own, so the Prefect UI shows the night as one run with three
children. A step that fails does not stop the next ones (routing still assigns what earlier
nights received, the scan still records breaches); the night then ends failed, naming the
steps that failed. Routing holds the global concurrency slot ``relais-routing``: whatever
starts it (this cycle on any worker, a manual run), only one routing runs at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from prefect import flow, get_client, get_run_logger, tags
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.states import State

from flows.intake import intake_sie_queues
from flows.naming import local_today, run_name, run_tags
from flows.routing import route_work_items
from flows.scan import scan_slas

#: The global concurrency limit that serialises routing runs (one slot).
ROUTING_LIMIT: Final = "relais-routing"
#: The steps of a night, in order.
STEPS: Final = ("intake", "routing", "scan")


class NightlyStepsFailed(RuntimeError):
    """One or more steps of the nightly cycle failed (the others ran)."""


def ensure_routing_limit() -> bool:
    """Create the ``relais-routing`` limit (one slot) if the Prefect server lacks it.

    Returns whether it was created. An existing limit is left as the operator set it.
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(ROUTING_LIMIT)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=ROUTING_LIMIT, limit=1)
            )
        except ObjectAlreadyExists:
            # Another worker created it between our read and our write.
            return False
        return True


def _count(document: Mapping[str, Any] | None, key: str) -> int:
    value = (document or {}).get(key)
    return int(value) if isinstance(value, int) else 0


def summarise_night(
    as_of: date,
    intake: Mapping[str, Any] | None,
    routing: Mapping[str, Any] | None,
    scan: Mapping[str, Any] | None,
    failed: list[str],
) -> dict[str, Any]:
    """The night's counts from each step's result (``None`` for a step that failed)."""
    assigned = dict((routing or {}).get("assigned") or {})
    new_breaches = dict((scan or {}).get("new_breaches") or {})
    open_breaches = dict((scan or {}).get("open_breaches") or {})
    return {
        "as_of": as_of.isoformat(),
        "failed_steps": failed,
        "intake": {
            "files": len((intake or {}).get("files") or []),
            "accepted": _count(intake, "accepted"),
            "duplicates": _count(intake, "duplicates"),
            "rejected": _count(intake, "rejected"),
            "unreadable": len((intake or {}).get("unreadable") or []),
            "unknown_sies": list((intake or {}).get("unknown_sies") or []),
        },
        "routing": {
            "assigned": assigned,
            "assigned_total": sum(assigned.values()),
            "reassigned": _count(routing, "reassigned"),
            "waiting_capacity": _count(routing, "waiting_capacity"),
            "unchanged": _count(routing, "unchanged"),
        },
        "scan": {
            "new_sla": _count(new_breaches, "sla"),
            "new_legal": _count(new_breaches, "legal"),
            "open_sla": _count(open_breaches, "sla"),
            "open_legal": _count(open_breaches, "legal"),
        },
    }


def nightly_markdown(summary: Mapping[str, Any]) -> str:
    """The night's artifact: counts per step and per assignee (no item, no taxpayer data)."""
    intake, routing, scan = summary["intake"], summary["routing"], summary["scan"]
    failed = summary["failed_steps"]
    lines = [
        f"# Cycle de nuit du {summary['as_of']}",
        "",
        "**Étapes en échec : " + ", ".join(failed) + "**"
        if failed
        else "Toutes les étapes ont réussi.",
        "",
        "| étape | résultat |",
        "|---|---|",
        f"| réception | {intake['files']} fichier(s) : {intake['accepted']} acceptée(s), "
        f"{intake['duplicates']} doublon(s), {intake['rejected']} rejetée(s), "
        f"{intake['unreadable']} fichier(s) illisible(s) |",
        f"| routage | {routing['assigned_total']} affectée(s), {routing['reassigned']} "
        f"réaffectée(s), {routing['waiting_capacity']} en attente de capacité, "
        f"{routing['unchanged']} inchangée(s) |",
        f"| délais | {scan['new_sla']} nouveau(x) dépassement(s) de délai, {scan['new_legal']} "
        f"de délai légal ; ouverts : {scan['open_sla']} et {scan['open_legal']} |",
    ]
    if intake["unknown_sies"]:
        lines += ["", "Dossiers de SIE inconnus : " + ", ".join(intake["unknown_sies"])]
    if routing["assigned"]:
        lines += ["", "## Affectations de la nuit", "", "| attributaire | éléments |", "|---|---:|"]
        lines += [
            f"| {holder} | {count} |" for holder, count in sorted(routing["assigned"].items())
        ]
    return "\n".join(lines) + "\n"


def _result(state: State[Any], step: str, failed: list[str]) -> dict[str, Any] | None:
    if state.is_completed():
        result = state.result()
        return dict(result) if isinstance(result, Mapping) else None
    failed.append(step)
    return None


@flow(name="nightly-cycle", flow_run_name=run_name("nightly", "as_of"), log_prints=False)
def nightly_cycle(as_of: date | None = None) -> dict[str, Any]:
    """Run intake, routing and the SLA scan for ``as_of`` (default: today, offices' zone)."""
    logger = get_run_logger()
    day = as_of or local_today()
    failed: list[str] = []
    with tags(*run_tags("nightly")):
        intake = _result(intake_sie_queues(as_of=day, return_state=True), "intake", failed)
        ensure_routing_limit()
        with concurrency(ROUTING_LIMIT, occupy=1, strict=True):
            routing_state = route_work_items(as_of=day, return_state=True)
        routing = _result(routing_state, "routing", failed)
        scan = _result(scan_slas(as_of=day, return_state=True), "scan", failed)
    summary = summarise_night(day, intake, routing, scan, failed)
    create_markdown_artifact(
        key="nightly-cycle",
        markdown=nightly_markdown(summary),
        description=f"Cycle de nuit du {day.isoformat()}",
    )
    logger.info(
        "Night %s: %d accepted, %d rejected, %d assigned, %d new breach(es)%s",
        day.isoformat(),
        summary["intake"]["accepted"],
        summary["intake"]["rejected"],
        summary["routing"]["assigned_total"],
        summary["scan"]["new_sla"] + summary["scan"]["new_legal"],
        f"; failed: {', '.join(failed)}" if failed else "",
    )
    if failed:
        raise NightlyStepsFailed(
            f"nightly cycle {day.isoformat()}: failed step(s): {', '.join(failed)}"
        )
    return summary
