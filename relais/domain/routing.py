"""Routing rules, pure: where an item goes, capacity accounting, and a reference planner.

The nightly engine (``relais.routing``) applies these rules set-based in SQL; this module states
them on plain values so that they can be read, tested in milliseconds, and used to check the
engine on random data.

Rules (SPEC §6):

* the convention version in force on the as-of date whose perimeter covers (SIE, process)
  gives the service (kind ``remote``); with none, the item stays at its own SIE (kind
  ``local``) with the catalogue's default target;
* a perimeter line with a ``daily_capacity`` takes at most that many assignments per as-of
  date, counting what earlier runs and reassignments of the same date already gave it;
  candidates take the remaining places oldest first (received_on, SIE code, reference);
* a ``received`` item that finds no place waits, without SLA clock, for a later run;
* an ``assigned`` item whose holder or convention version is no longer what the rules give is
  reassigned; it competes for capacity like a received item and, finding no place, stays
  where it is until a later run (a service is never given more than its daily capacity).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, Final

from relais.domain.catalogue import CATALOGUE, process_info
from relais.domain.conventions import Coverage

REMOTE: Final = "remote"
LOCAL: Final = "local"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where routing sends the items of one (SIE, process), and with which SLA target."""

    assignee: str
    kind: str
    convention_id: str | None
    convention_version: int | None
    perimeter_line_id: int | None
    target_business_days: int
    daily_capacity: int | None

    @property
    def holder_key(self) -> tuple[str, str | None, int | None]:
        """What an assignment is compared on: holder and convention version."""
        return (self.assignee, self.convention_id, self.convention_version)


def local_destination(sie_code: str, process: str) -> Destination:
    """The item stays at its SIE, with the catalogue's default target and no cap."""
    return Destination(
        assignee=sie_code,
        kind=LOCAL,
        convention_id=None,
        convention_version=None,
        perimeter_line_id=None,
        target_business_days=process_info(process).default_target_business_days,
        daily_capacity=None,
    )


def destination_for(sie_code: str, process: str, coverage: Coverage | None) -> Destination:
    """The destination of items of ``(sie_code, process)`` given what covers them (if anything)."""
    if coverage is None:
        return local_destination(sie_code, process)
    return Destination(
        assignee=coverage.service,
        kind=REMOTE,
        convention_id=coverage.convention_id,
        convention_version=coverage.version,
        perimeter_line_id=coverage.line_id,
        target_business_days=coverage.target_business_days,
        daily_capacity=coverage.daily_capacity,
    )


def destinations(
    sie_codes: Iterable[str], coverage: Mapping[tuple[str, str], Coverage]
) -> dict[tuple[str, str], Destination]:
    """The destination of every (SIE, catalogue process) pair: the full routing table."""
    return {
        (sie, process): destination_for(sie, process, coverage.get((sie, process)))
        for sie in sorted(set(sie_codes))
        for process in CATALOGUE
    }


def remaining_capacity(daily_capacity: int | None, already_assigned: int) -> int | None:
    """Places left on a line for the as-of date (None: no cap; never negative).

    ``already_assigned`` counts every ``assigned`` event recorded under the line on that date,
    reassignments included; a capacity lowered by a new version can leave it above the cap.
    """
    if daily_capacity is None:
        return None
    return max(0, daily_capacity - already_assigned)


def holder_changed(
    assignee: str | None,
    convention_id: str | None,
    convention_version: int | None,
    destination: Destination,
) -> bool:
    """Whether an assigned item is no longer where the rules put it (ended, superseded or new
    convention): a change of holder or of convention version restarts the clock."""
    return (assignee, convention_id, convention_version) != destination.holder_key


def fifo_key(received_on: date, sie_code: str, reference: str) -> tuple[date, str, str]:
    """Routing order: oldest first, then SIE code, then reference."""
    return (received_on, sie_code, reference)


# --- Reference planner (the engine's specification on plain values) ----------------------


class Outcome(StrEnum):
    """What a routing run does to one item."""

    ASSIGN = "assign"  # received → assigned
    REASSIGN = "reassign"  # assigned → assigned elsewhere, clock restarted
    WAIT = "wait"  # received, the line is full today
    HOLD = "hold"  # assigned and due to move, but the new line is full today
    UNCHANGED = "unchanged"  # assigned and already where the rules put it


@dataclass(frozen=True, slots=True)
class RoutableItem:
    """The parts of a work item routing looks at."""

    id: int
    sie_code: str
    reference: str
    process: str
    received_on: date
    state: str
    assignee: str | None = None
    convention_id: str | None = None
    convention_version: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """One item's outcome; ``destination`` is where it goes (or would go, when it waits)."""

    item_id: int
    outcome: Outcome
    destination: Destination | None


def plan_routing(
    items: Iterable[RoutableItem],
    table: Mapping[tuple[str, str], Destination],
    already_assigned: Mapping[int, int],
) -> list[Decision]:
    """Decide every ``received`` and ``assigned`` item, one by one, in routing order.

    ``table`` is the routing table (see ``destinations``); items of a pair missing from it are
    not routed. ``already_assigned`` maps a perimeter line id to the assignments already
    recorded under it on the as-of date. Other states are ignored: items in progress or
    suspended never move.
    """
    remaining: dict[int, int | None] = {}
    decisions: list[Decision] = []
    routable = [item for item in items if item.state in ("received", "assigned")]
    routable.sort(key=lambda item: fifo_key(item.received_on, item.sie_code, item.reference))
    for item in routable:
        destination = table.get((item.sie_code, item.process))
        if destination is None:
            continue
        if item.state == "assigned" and not holder_changed(
            item.assignee, item.convention_id, item.convention_version, destination
        ):
            decisions.append(Decision(item.id, Outcome.UNCHANGED, destination))
            continue
        moving = Outcome.ASSIGN if item.state == "received" else Outcome.REASSIGN
        blocked = Outcome.WAIT if item.state == "received" else Outcome.HOLD
        line = destination.perimeter_line_id
        if destination.daily_capacity is None or line is None:
            decisions.append(Decision(item.id, moving, destination))
            continue
        if line not in remaining:
            remaining[line] = remaining_capacity(
                destination.daily_capacity, already_assigned.get(line, 0)
            )
        places = remaining[line]
        assert places is not None
        if places > 0:
            remaining[line] = places - 1
            decisions.append(Decision(item.id, moving, destination))
        else:
            decisions.append(Decision(item.id, blocked, destination))
    return decisions


# --- Run summary -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceLoad:
    """Open items held by a service before and after a run."""

    before: int
    after: int


@dataclass(frozen=True, slots=True)
class Move:
    """Items of one process that a run moves from one holder to another."""

    process: str
    from_holder: str
    to_holder: str
    items: int
    #: "CONV-ID v1" under which the items were held / will be held (None: local).
    from_convention: str | None = None
    to_convention: str | None = None

    def as_json(self) -> dict[str, Any]:
        """``{"process", "from", "to", "from_convention", "to_convention", "items"}``."""
        return {
            "process": self.process,
            "from": self.from_holder,
            "to": self.to_holder,
            "from_convention": self.from_convention,
            "to_convention": self.to_convention,
            "items": self.items,
        }


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """What a routing run did (or, in a dry run, would do): counts only, no taxpayer data."""

    as_of: date
    dry_run: bool
    assigned: Mapping[str, int]
    reassigned: int
    waiting_capacity: int
    unchanged: int
    #: Assigned items due to move whose new line was full: they count in ``unchanged``.
    held_for_capacity: int = 0
    #: "CONV-ID v2" → items (newly) assigned or reassigned under that version.
    by_convention: Mapping[str, int] = field(default_factory=dict)
    #: Remote service → items newly assigned to it (the remote part of ``assigned``).
    assigned_by_service: Mapping[str, int] = field(default_factory=dict)
    #: Origin SIE → {"remote": n, "local": m}: items newly assigned, by where they went.
    assigned_by_sie: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    moves: Sequence[Move] = ()
    #: Draft convention files evaluated as if applied (a what-if run); empty otherwise.
    drafts: Sequence[str] = ()
    load: Mapping[str, ServiceLoad] | None = None

    @property
    def is_what_if(self) -> bool:
        """Whether draft conventions were evaluated."""
        return bool(self.drafts)

    @property
    def assigned_total(self) -> int:
        """Items newly assigned (reassignments excluded)."""
        return sum(self.assigned.values())

    def to_json(self) -> dict[str, Any]:
        """The SPEC §6 document; a what-if run adds ``load`` and the moves per process."""
        document: dict[str, Any] = {
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "assigned": {key: count for key, count in sorted(self.assigned.items()) if count},
            "reassigned": self.reassigned,
            "waiting_capacity": self.waiting_capacity,
            "unchanged": self.unchanged,
        }
        if self.is_what_if:
            document["load"] = {
                service: {"before": load.before, "after": load.after}
                for service, load in sorted((self.load or {}).items())
            }
            document["moves"] = [move.as_json() for move in self.moves]
            document["drafts"] = list(self.drafts)
        return document

    def details(self) -> dict[str, Any]:
        """Counts behind the summary, for the run's artifact (codes and numbers only)."""
        return {
            "held_for_capacity": self.held_for_capacity,
            "assigned_by_service": dict(self.assigned_by_service),
            "by_convention": dict(self.by_convention),
            "assigned_by_sie": {sie: dict(kinds) for sie, kinds in self.assigned_by_sie.items()},
            "moves": [move.as_json() for move in self.moves],
        }


def summarise(
    as_of: date, dry_run: bool, decisions: Iterable[Decision], items: Iterable[RoutableItem]
) -> RoutingResult:
    """The result of a plan made by ``plan_routing`` (for checks against the SQL engine)."""
    by_id = {item.id: item for item in items}
    assigned: Counter[str] = Counter()
    counts: Counter[Outcome] = Counter()
    for decision in decisions:
        counts[decision.outcome] += 1
        if decision.outcome is Outcome.ASSIGN and decision.destination is not None:
            assigned[decision.destination.assignee] += 1
    held = counts[Outcome.HOLD]
    # Assigned items of a pair missing from the table are not decided but stay where they are.
    decided = {decision.item_id for decision in decisions}
    undecided_assigned = sum(
        1 for item in by_id.values() if item.state == "assigned" and item.id not in decided
    )
    return RoutingResult(
        as_of=as_of,
        dry_run=dry_run,
        assigned=dict(assigned),
        reassigned=counts[Outcome.REASSIGN],
        waiting_capacity=counts[Outcome.WAIT],
        unchanged=counts[Outcome.UNCHANGED] + held + undecided_assigned,
        held_for_capacity=held,
    )
