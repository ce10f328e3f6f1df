"""The SLA clock (due dates, suspension, status) and legal deadlines."""

from __future__ import annotations

import math
from datetime import date, timedelta
from enum import StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relais.domain.calendar import BusinessCalendar, calendar_for
from relais.domain.catalogue import CATALOGUE
from relais.domain.sla import (
    OPEN_STATES,
    SlaStatus,
    add_months,
    at_risk_threshold,
    business_days_left,
    business_days_overdue,
    compute_due_on,
    due_on_after_resume,
    is_legal_breached,
    legal_due_on,
    sla_status,
)

PARIS = calendar_for("75")
FORBACH = calendar_for("57")


class State(StrEnum):
    """Stands in for the lifecycle's own enum: states are compared as strings."""

    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"


def test_status_values() -> None:
    assert [status.value for status in SlaStatus] == [
        "on_track",
        "at_risk",
        "breached",
        "suspended",
        "met",
        "missed",
    ]


# --- due dates --------------------------------------------------------------------------


def test_due_on_counts_business_days_after_the_assignment_day() -> None:
    # Thursday 2 April 2026: Good Friday is worked in Paris but not in Forbach.
    assert compute_due_on(PARIS, date(2026, 4, 2), 1) == date(2026, 4, 3)
    assert compute_due_on(FORBACH, date(2026, 4, 2), 1) == date(2026, 4, 7)
    # Twenty business days from Wednesday 1 April 2026 in Paris: Easter Monday, 1 and 8 May off.
    assert compute_due_on(PARIS, date(2026, 4, 1), 20) == date(2026, 4, 30)
    assert compute_due_on(FORBACH, date(2026, 4, 1), 20) == date(2026, 5, 4)
    # Assigned on a Saturday: Monday is the first business day.
    assert compute_due_on(PARIS, date(2026, 3, 7), 1) == date(2026, 3, 9)


def test_negative_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        compute_due_on(PARIS, date(2026, 4, 1), -1)


def test_resume_moves_due_on_by_the_business_days_suspended() -> None:
    due = date(2026, 6, 30)
    # Suspended Friday 5 June, resumed Monday 8 June: only the Monday is lost.
    assert due_on_after_resume(PARIS, due, date(2026, 6, 5), date(2026, 6, 8)) == date(2026, 7, 1)
    # Suspended and resumed the same day: nothing moves.
    assert due_on_after_resume(PARIS, due, date(2026, 6, 5), date(2026, 6, 5)) == due
    # Over a weekend only: nothing moves.
    assert due_on_after_resume(PARIS, due, date(2026, 6, 5), date(2026, 6, 7)) == due
    # A full week (Mon 1 June to Mon 8 June): five business days, and 14 July is skipped after.
    assert due_on_after_resume(PARIS, date(2026, 7, 10), date(2026, 6, 1), date(2026, 6, 8)) == (
        date(2026, 7, 20)
    )


def test_resume_before_suspension_is_refused() -> None:
    with pytest.raises(ValueError, match="before"):
        due_on_after_resume(PARIS, date(2026, 6, 30), date(2026, 6, 8), date(2026, 6, 5))


def test_overdue_and_left() -> None:
    due = date(2026, 4, 2)  # Thursday
    assert business_days_overdue(PARIS, due, date(2026, 4, 2)) == 0
    assert business_days_overdue(PARIS, due, date(2026, 4, 1)) == 0
    assert business_days_overdue(PARIS, due, date(2026, 4, 7)) == 2  # Friday 3, Tuesday 7
    assert business_days_overdue(FORBACH, due, date(2026, 4, 7)) == 1
    assert business_days_left(PARIS, due, date(2026, 3, 30)) == 3
    assert business_days_left(PARIS, due, due) == 0
    assert business_days_left(PARIS, due, date(2026, 4, 10)) == 0


@pytest.mark.parametrize(
    ("target", "threshold"),
    [(0, 0), (1, 1), (4, 1), (5, 1), (6, 2), (10, 2), (15, 3), (20, 4), (21, 5), (30, 6), (40, 8)],
)
def test_at_risk_threshold_is_ceil_of_a_fifth(target: int, threshold: int) -> None:
    assert at_risk_threshold(target) == threshold
    assert at_risk_threshold(target) == math.ceil(0.2 * target)


# --- status -----------------------------------------------------------------------------


def _status(state: str, as_of: date, **changes: object) -> SlaStatus | None:
    arguments: dict[str, object] = {
        "state": state,
        "due_on": date(2026, 6, 30),  # a Tuesday
        "target_business_days": 20,
        "completed_on": None,
        "as_of": as_of,
        "calendar": PARIS,
    }
    arguments.update(changes)
    return sla_status(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", ["assigned", "in_progress", State.ASSIGNED, State.IN_PROGRESS])
def test_status_boundaries_of_an_open_item(state: str) -> None:
    due = date(2026, 6, 30)
    # Target 20: at risk with ceil(0.2 x 20) = 4 business days left or fewer.
    four_left = date(2026, 6, 24)  # 25, 26, 29, 30 June remain
    assert PARIS.business_days_between(four_left, due) == 4
    assert _status(state, four_left) is SlaStatus.AT_RISK
    five_left = date(2026, 6, 23)
    assert _status(state, five_left) is SlaStatus.ON_TRACK
    # On a weekend, the days left are counted the same way as on the Friday before.
    assert _status(state, date(2026, 6, 20)) is SlaStatus.ON_TRACK
    assert _status(state, due) is SlaStatus.AT_RISK
    assert _status(state, due + timedelta(days=1)) is SlaStatus.BREACHED
    assert _status(state, date(2026, 1, 5)) is SlaStatus.ON_TRACK


def test_breached_is_a_calendar_comparison() -> None:
    friday = date(2026, 6, 26)
    saturday = friday + timedelta(days=1)
    assert _status("assigned", friday, due_on=friday) is SlaStatus.AT_RISK
    assert _status("assigned", saturday, due_on=friday) is SlaStatus.BREACHED


def test_small_targets() -> None:
    due = date(2026, 6, 30)
    # Target 1: one business day left is already at risk.
    assert _status("assigned", date(2026, 6, 29), target_business_days=1) is SlaStatus.AT_RISK
    assert _status("assigned", date(2026, 6, 26), target_business_days=1) is SlaStatus.ON_TRACK
    # Target 6: threshold 2.
    assert _status("assigned", date(2026, 6, 26), target_business_days=6) is SlaStatus.AT_RISK
    assert _status("assigned", date(2026, 6, 25), target_business_days=6) is SlaStatus.ON_TRACK
    assert PARIS.business_days_between(date(2026, 6, 25), due) == 3


def test_completed_items_are_met_or_missed() -> None:
    due = date(2026, 6, 30)
    late = date(2026, 8, 1)
    assert _status("completed", late, completed_on=due) is SlaStatus.MET
    assert _status("completed", late, completed_on=date(2026, 6, 1)) is SlaStatus.MET
    assert _status("completed", late, completed_on=due + timedelta(days=1)) is SlaStatus.MISSED
    with pytest.raises(ValueError, match="completion date"):
        _status("completed", late)


def test_suspended_items_are_suspended_even_past_due() -> None:
    assert _status("suspended", date(2026, 8, 1)) is SlaStatus.SUSPENDED


@pytest.mark.parametrize("state", ["received", "cancelled"])
def test_no_status_without_a_running_clock(state: str) -> None:
    assert _status(state, date(2026, 8, 1)) is None


def test_no_status_without_a_due_date() -> None:
    assert _status("assigned", date(2026, 8, 1), due_on=None) is None
    assert _status("completed", date(2026, 8, 1), due_on=None, completed_on=date(2026, 7, 1)) is (
        None
    )


def test_unknown_states_are_refused() -> None:
    with pytest.raises(ValueError, match="state"):
        _status("done", date(2026, 8, 1))


# --- legal deadlines --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 8, 31), 6, date(2027, 2, 28)),
        (date(2027, 8, 31), 6, date(2028, 2, 29)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 11, 15), 6, date(2027, 5, 15)),
        (date(2026, 7, 1), 6, date(2027, 1, 1)),
        (date(2026, 6, 30), 6, date(2026, 12, 30)),
        (date(2026, 5, 31), 0, date(2026, 5, 31)),
        (date(2027, 2, 28), -6, date(2026, 8, 28)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


def test_legal_due_on_per_process() -> None:
    received = date(2026, 8, 31)
    assert legal_due_on("tva_refund", received) == date(2027, 2, 28)
    assert legal_due_on("cfe_ifer_dispute", received) == date(2027, 2, 28)
    for process, info in CATALOGUE.items():
        if info.legal_deadline_months is None:
            assert legal_due_on(process, received) is None


def test_the_intake_override_wins() -> None:
    override = date(2026, 12, 1)
    assert legal_due_on("tva_refund", date(2026, 8, 31), override) == override
    assert legal_due_on("medoc_web", date(2026, 8, 31), override) == override


def test_unknown_process_has_no_legal_deadline_to_give() -> None:
    with pytest.raises(KeyError):
        legal_due_on("vat", date(2026, 8, 31))


def test_legal_breach() -> None:
    deadline = date(2027, 2, 28)
    for state in OPEN_STATES:
        assert not is_legal_breached(deadline, deadline, state)
        assert is_legal_breached(deadline, deadline + timedelta(days=1), state)
    for state in ("completed", "cancelled"):
        assert not is_legal_breached(deadline, date(2028, 1, 1), state)
    assert not is_legal_breached(None, date(2028, 1, 1), "assigned")


# --- properties -------------------------------------------------------------------------

dates = st.dates(min_value=date(1995, 1, 1), max_value=date(2060, 12, 31))
targets = st.integers(min_value=1, max_value=250)
calendars = st.sampled_from([calendar_for(d) for d in ("75", "57", "68", "02", "2A")])
many = settings(max_examples=500, deadline=None)


@many
@given(calendar=calendars, suspended_on=dates, resumed_on=dates, assigned_on=dates, n=targets)
def test_resume_pushes_due_on_by_exactly_the_suspended_business_days(
    calendar: BusinessCalendar, suspended_on: date, resumed_on: date, assigned_on: date, n: int
) -> None:
    suspended_on, resumed_on = min(suspended_on, resumed_on), max(suspended_on, resumed_on)
    due = compute_due_on(calendar, assigned_on, n)
    paused = calendar.business_days_between(suspended_on, resumed_on)
    moved = due_on_after_resume(calendar, due, suspended_on, resumed_on)
    assert calendar.business_days_between(due, moved) == paused
    assert calendar.is_business_day(moved)
    if paused == 0:
        assert moved == due
    # The clock counts target + paused business days from the assignment.
    assert calendar.business_days_between(assigned_on, moved) == n + paused


@many
@given(calendar=calendars, assigned_on=dates, n=targets, as_of=dates)
def test_status_agrees_with_the_counts(
    calendar: BusinessCalendar, assigned_on: date, n: int, as_of: date
) -> None:
    due = compute_due_on(calendar, assigned_on, n)
    status = sla_status(
        state="in_progress",
        due_on=due,
        target_business_days=n,
        completed_on=None,
        as_of=as_of,
        calendar=calendar,
    )
    left = business_days_left(calendar, due, as_of)
    overdue = business_days_overdue(calendar, due, as_of)
    assert left == 0 or overdue == 0
    assert left - overdue == calendar.business_days_between(as_of, due)
    if as_of <= assigned_on:
        assert left == n + calendar.business_days_between(as_of, assigned_on)
    if status is SlaStatus.BREACHED:
        assert as_of > due and left == 0
    elif status is SlaStatus.AT_RISK:
        assert as_of <= due and left <= math.ceil(0.2 * n)
    else:
        assert status is SlaStatus.ON_TRACK
        assert left > math.ceil(0.2 * n)


@many
@given(start=dates, months=st.integers(min_value=-36, max_value=36))
def test_add_months_properties(start: date, months: int) -> None:
    result = add_months(start, months)
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    assert result.day <= start.day
    if result.day < start.day:
        # Clamped: the result is the last day of its month.
        assert (result + timedelta(days=1)).day == 1
