"""The SLA clock and legal deadlines of work items (SPEC §7).

The SLA counts business days in the calendar of the office that holds the item; the legal
deadline counts calendar months from the day the SIE received the item and never moves.
"""

from __future__ import annotations

import calendar as gregorian
from datetime import date
from enum import StrEnum
from typing import Final

from relais.domain.calendar import BusinessCalendar
from relais.domain.catalogue import process_info


class SlaStatus(StrEnum):
    """Where an item stands against its completion target on a given day."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    SUSPENDED = "suspended"
    MET = "met"
    MISSED = "missed"


#: Work item states (SPEC §5) as plain strings, so any ``StrEnum`` of states compares equal.
RECEIVED: Final = "received"
ASSIGNED: Final = "assigned"
IN_PROGRESS: Final = "in_progress"
SUSPENDED: Final = "suspended"
COMPLETED: Final = "completed"
CANCELLED: Final = "cancelled"

#: States whose SLA clock runs (or is paused, for suspended items).
CLOCKED_STATES: Final = frozenset({ASSIGNED, IN_PROGRESS})
#: States in which an item is still open (legal deadlines apply to them).
OPEN_STATES: Final = frozenset({RECEIVED, ASSIGNED, IN_PROGRESS, SUSPENDED})
ALL_STATES: Final = OPEN_STATES | {COMPLETED, CANCELLED}


def compute_due_on(
    calendar: BusinessCalendar, assigned_on: date, target_business_days: int
) -> date:
    """The ``target_business_days``-th business day after ``assigned_on`` (which is not counted)."""
    if target_business_days < 0:
        raise ValueError(f"a target cannot be negative ({target_business_days})")
    return calendar.add_business_days(assigned_on, target_business_days)


def due_on_after_resume(
    calendar: BusinessCalendar, due_on: date, suspended_on: date, resumed_on: date
) -> date:
    """Move ``due_on`` forward by the business days d with suspended_on < d <= resumed_on."""
    if resumed_on < suspended_on:
        raise ValueError(f"resumed on {resumed_on} before being suspended on {suspended_on}")
    paused = calendar.business_days_between(suspended_on, resumed_on)
    return calendar.add_business_days(due_on, paused)


def business_days_overdue(calendar: BusinessCalendar, due_on: date, as_of: date) -> int:
    """Business days d with due_on < d <= as_of (0 when the item is not overdue)."""
    return max(0, calendar.business_days_between(due_on, as_of))


def business_days_left(calendar: BusinessCalendar, due_on: date, as_of: date) -> int:
    """Business days d with as_of < d <= due_on (0 once the due date is reached or passed)."""
    return max(0, calendar.business_days_between(as_of, due_on))


def at_risk_threshold(target_business_days: int) -> int:
    """ceil(0.2 × target): at most this many business days left means at risk."""
    # Integer arithmetic: ceil(n / 5) without any float rounding.
    return -(-target_business_days // 5)


def sla_status(
    *,
    state: str,
    due_on: date | None,
    target_business_days: int,
    completed_on: date | None,
    as_of: date,
    calendar: BusinessCalendar,
) -> SlaStatus | None:
    """The SLA status on ``as_of`` of an item in ``state`` (None when no clock applies).

    Completed items are met or missed; suspended items are suspended; assigned and in-progress
    items are breached after their due date, at risk with at most ceil(0.2 × target) business
    days left, otherwise on track. Received and cancelled items, and items without a due date,
    have no SLA status.
    """
    if state not in ALL_STATES:
        raise ValueError(f"unknown work item state: {state!r}")
    if state == SUSPENDED:
        return SlaStatus.SUSPENDED
    if due_on is None or state in (RECEIVED, CANCELLED):
        return None
    if state == COMPLETED:
        if completed_on is None:
            raise ValueError("a completed item needs its completion date")
        return SlaStatus.MET if completed_on <= due_on else SlaStatus.MISSED
    if as_of > due_on:
        return SlaStatus.BREACHED
    if business_days_left(calendar, due_on, as_of) <= at_risk_threshold(target_business_days):
        return SlaStatus.AT_RISK
    return SlaStatus.ON_TRACK


def add_months(day: date, months: int) -> date:
    """Calendar arithmetic: same day ``months`` later, clamped to the end of a shorter month.

    2026-08-31 + 6 months is 2027-02-28; 2027-08-31 + 6 months is 2028-02-29.
    """
    month_index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(month_index, 12)
    month += 1
    last_day = gregorian.monthrange(year, month)[1]
    return date(year, month, min(day.day, last_day))


def legal_due_on(process: str, received_on: date, override: date | None = None) -> date | None:
    """The legal deadline of an item: the intake override, else received_on + the legal months.

    None for processes without a legal deadline. Raises ``KeyError`` for an unknown process.
    """
    months = process_info(process).legal_deadline_months
    if override is not None:
        return override
    if months is None:
        return None
    return add_months(received_on, months)


def is_legal_breached(legal_due_on: date | None, as_of: date, state: str) -> bool:
    """Whether an open item is past its legal deadline on ``as_of``."""
    return legal_due_on is not None and state in OPEN_STATES and as_of > legal_due_on
