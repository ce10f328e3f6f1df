"""What the supervisors' dashboard shows: breaches, risks and backlog per holder and per SIE.

Built on the shared read queries (``relais.queries``), so the page and ``relais sla ...``
always agree: the same item states on the as-of day, the same breach and at-risk rules.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from sqlalchemy import and_, case, func, select
from sqlmodel import Session, col

from models.tables import RemoteService, Sie, WorkItem
from relais import queries
from relais.domain.catalogue import CATALOGUE

#: Backlog age in calendar days since the SIE received the item: (first day, last day, label).
AGE_BUCKETS: Final = (
    (0, 7, "0–7 j"),
    (8, 15, "8–15 j"),
    (16, 30, "16–30 j"),
    (31, 60, "31–60 j"),
    (61, 90, "61–90 j"),
    (91, None, "> 90 j"),
)
#: The label of open items that no routing run has assigned yet.
WAITING: Final = "En attente d'affectation"


def age_bucket(days: int) -> int:
    """Index in ``AGE_BUCKETS`` of a backlog item ``days`` old."""
    for index, (low, high, _label) in enumerate(AGE_BUCKETS):
        if days >= low and (high is None or days <= high):
            return index
    return 0  # received after the as-of day (a past as-of date): youngest bucket


@dataclass(slots=True)
class Tally:
    """Counts of one holder or one SIE."""

    code: str
    name: str
    open: int = 0
    waiting: int = 0
    suspended: int = 0
    at_risk: int = 0
    breached: int = 0
    legal: int = 0
    ages: list[int] = field(default_factory=lambda: [0] * len(AGE_BUCKETS))

    @property
    def clocked(self) -> int:
        """Open items whose SLA clock runs (assigned or in progress)."""
        return self.open - self.waiting - self.suspended

    @property
    def on_track(self) -> int:
        """Clocked items neither breached nor at risk."""
        return max(self.clocked - self.breached - self.at_risk, 0)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, derived counts included."""
        return {
            "code": self.code,
            "name": self.name,
            "open": self.open,
            "waiting": self.waiting,
            "suspended": self.suspended,
            "on_track": self.on_track,
            "at_risk": self.at_risk,
            "breached": self.breached,
            "legal_breached": self.legal,
            "ages": list(self.ages),
        }


def _names(session: Session) -> dict[str, str]:
    connection = session.connection()
    names = {code: name for code, name in connection.execute(select(col(Sie.code), col(Sie.name)))}
    names.update(
        (code, name)
        for code, name in connection.execute(
            select(col(RemoteService.code), col(RemoteService.name))
        )
    )
    return names


def dashboard_data(
    session: Session,
    *,
    as_of: date,
    directorate: str | None = None,
    service: str | None = None,
    list_limit: int = 25,
) -> dict[str, Any]:
    """The dashboard's figures on ``as_of`` for a directorate (either side), a service or all.

    Returns totals, one tally per holder and per SIE (open, waiting, suspended, on track, at
    risk, breached, legal breaches, backlog ages) and the first ``list_limit`` breached,
    at-risk and legally breached items.
    """
    scope = queries.resolve_scope(session, directorate=directorate, service=service)
    filters: dict[str, Any] = {"as_of": as_of, "directorate": directorate, "service": service}
    # Breaches can be many: only the worst are listed, the counts come from one aggregate.
    breaches = queries.sla_breaches(session, **filters, limit=list_limit)
    legal = queries.sla_breaches(session, **filters, legal=True, limit=list_limit)
    # Items at risk are few (a short window before the due date): all of them are read.
    at_risk = queries.sla_at_risk(session, **filters)
    names = _names(session)
    holders: dict[str, Tally] = {}
    sies: dict[str, Tally] = {}

    def holder(code: str | None) -> Tally:
        key = code or ""
        if key not in holders:
            holders[key] = Tally(key, names.get(key, key) if code else WAITING)
        return holders[key]

    def sie(code: str) -> Tally:
        if code not in sies:
            sies[code] = Tally(code, names.get(code, code))
        return sies[code]

    # The item states on the as-of day, as the breach queries see them (SPEC §7: an open item
    # whose clock runs is breached after its due date; any open item after its legal deadline).
    connection = session.connection()
    snap = queries.snapshot(connection, as_of, scope, lambda c: c["state"].in_(queries.OPEN_STATES))
    is_breached = and_(snap.c.state.in_(queries.CLOCKED_STATES), snap.c.due_on < as_of)
    is_legal = snap.c.legal_due_on < as_of
    open_counts = connection.execute(
        select(
            snap.c.assignee,
            snap.c.sie_code,
            snap.c.state,
            col(WorkItem.received_on),
            func.count(),
            func.sum(case((is_breached, 1), else_=0)),
            func.sum(case((is_legal, 1), else_=0)),
        )
        .select_from(snap.join(WorkItem, col(WorkItem.id) == snap.c.item_id))
        .group_by(snap.c.assignee, snap.c.sie_code, snap.c.state, col(WorkItem.received_on))
    )
    total_ages = [0] * len(AGE_BUCKETS)
    for assignee, sie_code, state, received_on, count, breached, legally in open_counts:
        bucket = age_bucket((as_of - received_on).days)
        total_ages[bucket] += count
        for tally in (holder(assignee), sie(sie_code)):
            tally.open += count
            tally.ages[bucket] += count
            tally.breached += breached
            tally.legal += legally
            if state == "received":
                tally.waiting += count
            elif state == "suspended":
                tally.suspended += count
    for row in at_risk:
        for tally in (holder(row["assignee"]), sie(row["sie"])):
            tally.at_risk += 1

    holder_rows = sorted(holders.values(), key=lambda t: (t.code == "", -t.breached, t.code))
    sie_rows = sorted(sies.values(), key=lambda t: (-t.breached, t.code))
    totals = Counter[str]()
    for tally in holder_rows:
        for key in ("open", "waiting", "suspended", "on_track", "at_risk", "breached", "legal"):
            totals[key] += getattr(tally, key)
    return {
        "as_of": as_of,
        "directorate": directorate,
        "service": service,
        "totals": dict(totals),
        "holders": [t.as_dict() for t in holder_rows],
        "sies": [t.as_dict() for t in sie_rows],
        "age_buckets": [label for _low, _high, label in AGE_BUCKETS],
        "ages": total_ages,
        "breaches": _with_labels(breaches),
        "at_risk": _with_labels(at_risk[:list_limit]),
        "legal": _with_labels(legal),
        "counts": {
            "breaches": totals["breached"],
            "at_risk": len(at_risk),
            "legal": totals["legal"],
        },
    }


def _with_labels(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the French label of their process, for people."""
    return [
        {
            **row,
            "process_label": CATALOGUE[row["process"]].label
            if row["process"] in CATALOGUE
            else row["process"],
        }
        for row in rows
    ]


def chart_data(data: dict[str, Any]) -> dict[str, Any]:
    """What the page's charts draw (kept small: codes and counts only)."""
    holders = data["holders"]
    sies = data["sies"]
    return {
        "holders": {
            "labels": [h["code"] or WAITING for h in holders],
            "series": {
                key: [h[key] for h in holders]
                for key in ("breached", "at_risk", "on_track", "suspended", "waiting")
            },
        },
        "sies": {
            "labels": [s["code"] for s in sies],
            "series": {
                key: [s[key] for s in sies] for key in ("breached", "at_risk", "legal_breached")
            },
        },
        "ages": {"labels": data["age_buckets"], "series": {"open": data["ages"]}},
    }
