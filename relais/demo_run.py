"""``relais demo``: load the shipped data, play some working days through Prefect, summarise.

Each demo night drops the SIEs' files (``relais.demo``), runs the ``nightly-cycle`` flow once
for that as-of date, then lets simulated agents work on what they hold during the day: start,
suspend, resume and complete items through the same lifecycle rules as people do
(``relais.items.apply_event``, author ``agent-sim``). A second run first removes what an
earlier demo left (items whose reference starts with ``DEMO-``, their history and breaches,
the ``demo-*`` files and their intake records); reference data and conventions are loaded
again, which changes nothing when they are already there.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, delete, func, select

from models.tables import IntakeFile, IntakeRejection, ItemEvent, SlaBreach, WorkItem
from relais.conventions import apply_files
from relais.db import session_scope
from relais.demo import (
    DEMO_FILE_PREFIX,
    DEMO_REFERENCE_PREFIX,
    DEMO_SEED,
    DEMO_SIES,
    day_files,
    demo_days,
    write_files,
)
from relais.errors import RelaisError
from relais.items import apply_event
from relais.queries import sla_breaches
from relais.reference import load_reference
from relais.settings import get_settings

DATA_DIR: Final = Path(__file__).with_name("data")
#: The author of the simulated agents' events in item histories.
AGENT_AUTHOR: Final = "agent-sim"
#: Working days the demo plays, ending today: three weeks, so that the shortest targets
#: (10 business days) can be missed by the end.
DEFAULT_NIGHTS: Final = 15

_items = WorkItem.__table__  # type: ignore[attr-defined]
_events = ItemEvent.__table__  # type: ignore[attr-defined]
_breaches = SlaBreach.__table__  # type: ignore[attr-defined]
_files = IntakeFile.__table__  # type: ignore[attr-defined]
_rejections = IntakeRejection.__table__  # type: ignore[attr-defined]

#: Share of a day's held items an office gets to, per state: remote services were set up to
#: absorb the SIEs' backlog; SIEs keeping their own work are slower (that is why the
#: programme exists).
_PACE: Final = {"remote": 1.0, "local": 0.5}
#: Processes that take longer once started (disputes, ex officio procedures).
_SLOW_PROCESSES: Final = {"ex_officio_taxation": 0.4, "cfe_ifer_dispute": 0.5, "tva_refund": 0.7}
#: Processes often closed on sight, without a separate start.
_QUICK_PROCESSES: Final = frozenset({"medoc_web", "auvisir", "gespro_premises"})

_OUTCOMES: Final = ("Traité", "Traité – dossier clos", "Traité après contrôle")
_SUSPENSIONS: Final = ("Attente de pièces du contribuable", "Demande de précisions envoyée")


class DemoError(RelaisError):
    """The demo could not run to the end."""


@dataclass(slots=True)
class DemoReset:
    """What an earlier demo had left and was removed."""

    items: int = 0
    intake_files: int = 0
    queue_files: int = 0

    @property
    def anything(self) -> bool:
        """Whether there was anything to remove."""
        return bool(self.items or self.intake_files or self.queue_files)


@dataclass(slots=True)
class AgentDay:
    """Events the simulated agents recorded on one day, by event."""

    day: date
    events: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class DemoNight:
    """One night of the demo: the nightly cycle's counts and the agents' day after it."""

    as_of: date
    cycle: dict[str, Any]
    agents: AgentDay | None


# --- reset --------------------------------------------------------------------------------


def reset_demo_state(engine: Engine, queue_root: Path, sies: Sequence[str]) -> DemoReset:
    """Remove what an earlier demo wrote: ``DEMO-`` items and ``demo-`` files, nothing else."""
    reset = DemoReset()
    demo_items = select(_items.c.id).where(_items.c.reference.startswith(DEMO_REFERENCE_PREFIX))
    demo_files = select(_files.c.id).where(_files.c.file_name.startswith(DEMO_FILE_PREFIX))
    with engine.begin() as connection:
        connection.execute(delete(_breaches).where(_breaches.c.item_id.in_(demo_items)))
        connection.execute(delete(_events).where(_events.c.item_id.in_(demo_items)))
        reset.items = connection.execute(
            delete(_items).where(_items.c.reference.startswith(DEMO_REFERENCE_PREFIX))
        ).rowcount
        connection.execute(delete(_rejections).where(_rejections.c.intake_file_id.in_(demo_files)))
        reset.intake_files = connection.execute(
            delete(_files).where(_files.c.file_name.startswith(DEMO_FILE_PREFIX))
        ).rowcount
    for sie in sies:
        for folder in ("incoming", "processed", "rejected"):
            for path in (queue_root / sie / folder).glob(f"{DEMO_FILE_PREFIX}*"):
                if path.is_file():
                    path.unlink()
                    reset.queue_files += 1
    return reset


# --- shipped data -------------------------------------------------------------------------


def load_shipped_data(engine: Engine) -> tuple[int, int]:
    """Load the shipped reference data and apply the shipped conventions (idempotent).

    Returns the numbers of reference entries and convention versions written (0 on a rerun).
    """
    loaded = load_reference(DATA_DIR / "reference.yaml", engine=engine)
    check = apply_files(sorted((DATA_DIR / "conventions").glob("*.yaml")), engine=engine)
    written = sum(counts.created + counts.updated for counts in loaded.counts.values())
    new_versions = sum(1 for outcome in check.outcomes if outcome[3] == "new")
    return written, new_versions


# --- simulated agents ---------------------------------------------------------------------


def _at(day: date, earliest: int, rng: random.Random) -> datetime:
    """A time on ``day`` between ``earliest`` o'clock and three hours later, local time."""
    minutes = rng.randrange(0, 180)
    moment = datetime.combine(day, time(earliest), tzinfo=get_settings().timezone)
    return moment + timedelta(minutes=minutes)


def plan_agent_event(
    state: str, process: str, kind: str, rng: random.Random
) -> tuple[str, int, tuple[str, ...]] | None:
    """What an agent does today with an item in ``state``: (event, hour, reasons) or nothing.

    At most one event per item and day: starts in the morning, resumptions mid-morning,
    completions and suspensions in the afternoon, so each item's history stays ordered.
    """
    pace = _PACE.get(kind, 0.5)
    draw = rng.random()
    if state == "assigned":
        if process in _QUICK_PROCESSES and draw < 0.12 * pace:
            return "complete", 14, _OUTCOMES
        if draw < 0.35 * pace:
            return "start", 9, ()
    elif state == "in_progress":
        if draw < 0.04:
            return "suspend", 15, _SUSPENSIONS
        if draw < 0.04 + 0.4 * pace * _SLOW_PROCESSES.get(process, 1.0):
            return "complete", 14, _OUTCOMES
    elif state == "suspended" and draw < 0.35:
        return "resume", 10, ()
    return None


def simulate_agents(engine: Engine, day: date, *, seed: int = DEMO_SEED) -> AgentDay:
    """One working day of the agents on every demo item they hold, in one transaction."""
    result = AgentDay(day=day)
    query = (
        select(
            _items.c.sie_code,
            _items.c.reference,
            _items.c.state,
            _items.c.process,
            _items.c.assignment_kind,
        )
        .where(
            _items.c.reference.startswith(DEMO_REFERENCE_PREFIX),
            _items.c.state.in_(("assigned", "in_progress", "suspended")),
        )
        .order_by(_items.c.id)
    )
    with session_scope(engine) as session:
        connection = session.connection()
        for sie, reference, state, process, kind in connection.execute(query).all():
            # Seeded per item and day: the same choices whatever the order of the rows.
            rng = random.Random(f"{seed}:{sie}:{reference}:{day.isoformat()}")
            planned = plan_agent_event(state, process, kind or "local", rng)
            if planned is None:
                continue
            event, hour, reasons = planned
            apply_event(
                connection,
                sie=sie,
                reference=reference,
                event=event,
                at=_at(day, hour, rng),
                reason=rng.choice(reasons) if reasons else None,
                by=AGENT_AUTHOR,
            )
            result.events[event] += 1
    return result


# --- the run ------------------------------------------------------------------------------


def play_nights(
    engine: Engine,
    queue_root: Path,
    days: Sequence[date],
    *,
    on_night: Callable[[int, DemoNight], None],
    seed: int = DEMO_SEED,
) -> list[DemoNight]:
    """Run the nightly cycle through Prefect once per day, the agents working in between.

    The agents do not work after the last night: that day (today) has not happened yet.
    """
    from relais.prefect_env import configure_prefect

    configure_prefect()
    from prefect import tags
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.naming import run_tags
    from flows.nightly import NightlyStepsFailed, nightly_cycle

    nights = []
    # Heartbeats let a server notice crashed runs of deployments; this run is in the
    # foreground, and joining their thread costs up to a second per flow run.
    with (
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        tags(*run_tags("nightly", "demo")),
    ):
        for index, day in enumerate(days):
            final = index == len(days) - 1
            write_files(queue_root, day_files(day, index, final=final, seed=seed))
            try:
                cycle = nightly_cycle(as_of=day)
            except NightlyStepsFailed as error:
                raise DemoError(f"{error}; the flow-run logs above say why") from None
            agents = None if final else simulate_agents(engine, day, seed=seed)
            night = DemoNight(as_of=day, cycle=cycle, agents=agents)
            nights.append(night)
            on_night(index, night)
    return nights


def demo_summary(engine: Engine, as_of: date, *, worst: int = 10) -> dict[str, Any]:
    """What the demo left: items per holder and state, breaches, rejected rows and why."""
    demo = _items.c.reference.startswith(DEMO_REFERENCE_PREFIX)
    with session_scope(engine) as session:
        connection = session.connection()
        held = connection.execute(
            select(_items.c.assignee, _items.c.assignment_kind, _items.c.state, func.count())
            .where(demo)
            .group_by(_items.c.assignee, _items.c.assignment_kind, _items.c.state)
        ).all()
        breaches = [row for row in sla_breaches(session, as_of=as_of) if _is_demo(row["reference"])]
        legal = [
            row
            for row in sla_breaches(session, as_of=as_of, legal=True)
            if _is_demo(row["reference"])
        ]
        files = connection.execute(
            select(
                func.count(),
                func.coalesce(func.sum(_files.c.accepted), 0),
                func.coalesce(func.sum(_files.c.duplicates), 0),
                func.coalesce(func.sum(_files.c.rejected), 0),
            ).where(_files.c.file_name.startswith(DEMO_FILE_PREFIX))
        ).one()
        rejected = connection.execute(
            select(
                _files.c.sie_code,
                _files.c.file_name,
                _rejections.c.line,
                _rejections.c.reference,
                _rejections.c.reason,
            )
            .join(_rejections, _rejections.c.intake_file_id == _files.c.id)
            .where(_files.c.file_name.startswith(DEMO_FILE_PREFIX))
            .order_by(_files.c.file_name, _files.c.sie_code, _rejections.c.line)
        ).all()
    per_holder: dict[str, dict[str, Any]] = {}
    waiting = 0
    for assignee, kind, state, count in held:
        if assignee is None:
            waiting += count
            continue
        entry = per_holder.setdefault(
            assignee, {"holder": assignee, "kind": kind, "routed": 0, "open": 0, "completed": 0}
        )
        entry["routed"] += count
        if state == "completed":
            entry["completed"] += count
        elif state != "cancelled":
            entry["open"] += count
    breached_by_holder = Counter(row["assignee"] for row in breaches)
    for holder, entry in per_holder.items():
        entry["breached"] = breached_by_holder.get(holder, 0)
    return {
        "as_of": as_of.isoformat(),
        "files": {
            "count": files[0],
            "accepted": files[1],
            "duplicates": files[2],
            "rejected": files[3],
        },
        "holders": sorted(per_holder.values(), key=lambda e: (e["kind"] != "remote", e["holder"])),
        "waiting_capacity": waiting,
        "breaches": {"sla": len(breaches), "legal": len(legal), "worst": breaches[:worst]},
        "legal_breaches": legal[:worst],
        "rejected_rows": [
            {"sie": sie, "file": name, "line": line, "reference": reference, "reason": reason}
            for sie, name, line, reference, reason in rejected
        ],
    }


def _is_demo(reference: str) -> bool:
    return reference.startswith(DEMO_REFERENCE_PREFIX)


def demo_sie_codes() -> list[str]:
    """The SIEs whose queues the demo fills."""
    return [sie for sie, _ in DEMO_SIES]


def demo_range(today: date, nights: int) -> list[date]:
    """The demo's as-of dates: the last ``nights`` working days, ending today."""
    return demo_days(today, nights)
