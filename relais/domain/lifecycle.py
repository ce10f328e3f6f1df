"""The lifecycle of a work item: which event fits which state, and what it does to the clock.

States (SPEC §5): received → assigned → in_progress ⇄ suspended → completed; cancelled from
any state that is not final. ``received`` and ``assigned`` events come from intake and
routing; people post the five events below. Everything here is pure: the caller passes the
item's current values, the time of the event, the zone of the offices and the holder's
business calendar, and gets back the new values (or a refusal that changes nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from relais.domain.calendar import BusinessCalendar
from relais.domain.sla import (
    ASSIGNED,
    CANCELLED,
    COMPLETED,
    IN_PROGRESS,
    RECEIVED,
    SUSPENDED,
    due_on_after_resume,
)
from relais.errors import TransitionError, ValidationError


class LifecycleEvent(StrEnum):
    """Events that people (agents, supervisors, scripts) post on an item."""

    START = "start"
    SUSPEND = "suspend"
    RESUME = "resume"
    COMPLETE = "complete"
    CANCEL = "cancel"


#: The states each event may start from, in the order messages name them.
ALLOWED_FROM: Final = MappingProxyType(
    {
        LifecycleEvent.START: (ASSIGNED,),
        LifecycleEvent.SUSPEND: (IN_PROGRESS,),
        LifecycleEvent.RESUME: (SUSPENDED,),
        LifecycleEvent.COMPLETE: (ASSIGNED, IN_PROGRESS),
        LifecycleEvent.CANCEL: (RECEIVED, ASSIGNED, IN_PROGRESS, SUSPENDED),
    }
)

#: The state each event leads to.
LEADS_TO: Final = MappingProxyType(
    {
        LifecycleEvent.START: IN_PROGRESS,
        LifecycleEvent.SUSPEND: SUSPENDED,
        LifecycleEvent.RESUME: IN_PROGRESS,
        LifecycleEvent.COMPLETE: COMPLETED,
        LifecycleEvent.CANCEL: CANCELLED,
    }
)

FINAL_STATES: Final = frozenset({COMPLETED, CANCELLED})

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FRENCH_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")


@dataclass(frozen=True, slots=True)
class ItemClock:
    """What the lifecycle needs to know about an item: its state and its SLA clock."""

    sie: str
    reference: str
    state: str
    last_event_at: datetime
    due_on: date | None = None
    suspended_on: date | None = None
    completed_on: date | None = None

    @property
    def key(self) -> str:
        """How messages name the item: ``SIE/reference`` (never taxpayer data)."""
        return f"{self.sie}/{self.reference}"


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of an accepted event: the item's new state and clock."""

    event: LifecycleEvent
    from_state: str
    to_state: str
    at: datetime
    business_date: date
    due_on: date | None
    due_on_before: date | None
    suspended_on: date | None
    completed_on: date | None

    @property
    def due_on_moved(self) -> bool:
        """Whether the event moved the SLA due date (a resume after business days paused)."""
        return self.due_on != self.due_on_before


def parse_event(name: str) -> LifecycleEvent:
    """The lifecycle event called ``name`` (case and surrounding spaces ignored)."""
    try:
        return LifecycleEvent(name.strip().lower())
    except ValueError:
        expected = ", ".join(event.value for event in LifecycleEvent)
        raise ValidationError(
            f"unknown event {name.strip()[:40]!r}: expected one of {expected}"
        ) from None


def parse_at(text: str, zone: tzinfo) -> datetime:
    """Read an event time: a date (00:00 local that day) or an ISO 8601 date-time.

    ``YYYY-MM-DD`` and ``DD/MM/YYYY`` mean midnight in ``zone``; a date-time without an
    offset is local time in ``zone``; one with an offset is kept as given.
    """
    value = text.strip()
    french = _FRENCH_DATE.match(value)
    try:
        if french:
            day, month, year = (int(part) for part in french.groups())
            return datetime.combine(date(year, month, day), time(0), tzinfo=zone)
        if _DATE_ONLY.match(value):
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone)
        moment = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        raise ValidationError(
            f"invalid time {value[:40]!r}: expected YYYY-MM-DD or an ISO 8601 date-time"
        ) from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def business_date(at: datetime, zone: tzinfo) -> date:
    """The business date of an event: the local date of its time in the offices' zone."""
    if at.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return at.astimezone(zone).date()


def _states_text(states: tuple[str, ...]) -> str:
    return " or ".join(states)


def plan_transition(
    item: ItemClock,
    event: LifecycleEvent,
    at: datetime,
    *,
    zone: tzinfo,
    calendar: BusinessCalendar | None,
) -> Transition:
    """Check that ``event`` at ``at`` fits ``item`` and compute the item's new values.

    Refuses (``TransitionError``) an event that does not fit the current state, or whose
    time is earlier than the item's last event. A resume moves ``due_on`` forward by the
    business days d of the holder's ``calendar`` with suspension date < d <= resume date; a
    completion records the local date of ``at`` as ``completed_on``.
    """
    if at.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    allowed = ALLOWED_FROM[event]
    if item.state not in allowed:
        raise TransitionError(
            f"cannot {event.value} item {item.key}: it is {item.state} "
            f"({event.value} needs {_states_text(allowed)})"
        )
    if at < item.last_event_at:
        raise TransitionError(
            f"cannot {event.value} item {item.key}: {at.astimezone(zone).isoformat()} is "
            f"earlier than its last event ({item.last_event_at.astimezone(zone).isoformat()})"
        )
    day = business_date(at, zone)
    due_on = item.due_on
    suspended_on = item.suspended_on
    completed_on = item.completed_on
    if event is LifecycleEvent.SUSPEND:
        suspended_on = day
    elif event is LifecycleEvent.RESUME:
        if due_on is not None and suspended_on is not None:
            if calendar is None:
                raise ValueError("resuming an item with a due date needs its holder's calendar")
            due_on = due_on_after_resume(calendar, due_on, suspended_on, day)
        suspended_on = None
    elif event is LifecycleEvent.COMPLETE:
        completed_on = day
    return Transition(
        event=event,
        from_state=item.state,
        to_state=LEADS_TO[event],
        at=at,
        business_date=day,
        due_on=due_on,
        due_on_before=item.due_on,
        suspended_on=suspended_on,
        completed_on=completed_on,
    )
