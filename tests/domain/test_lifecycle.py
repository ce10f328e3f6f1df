"""The work item state machine: every transition allowed and refused, times, suspension."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from relais.domain.calendar import calendar_for
from relais.domain.lifecycle import (
    ALLOWED_FROM,
    ItemClock,
    LifecycleEvent,
    parse_at,
    parse_event,
    plan_transition,
)
from relais.domain.sla import ALL_STATES
from relais.errors import TransitionError, ValidationError

PARIS = ZoneInfo("Europe/Paris")
PARIS_CALENDAR = calendar_for("75")
MOSELLE_CALENDAR = calendar_for("57")
LAST_EVENT = datetime(2026, 11, 2, 0, 0, tzinfo=PARIS)

EXPECTED_ALLOWED = {
    ("start", "assigned"): "in_progress",
    ("suspend", "in_progress"): "suspended",
    ("resume", "suspended"): "in_progress",
    ("complete", "assigned"): "completed",
    ("complete", "in_progress"): "completed",
    ("cancel", "received"): "cancelled",
    ("cancel", "assigned"): "cancelled",
    ("cancel", "in_progress"): "cancelled",
    ("cancel", "suspended"): "cancelled",
}


def _item(state: str, **values: object) -> ItemClock:
    defaults: dict[str, object] = {
        "sie": "SIE-75-08",
        "reference": "REF-1",
        "state": state,
        "last_event_at": LAST_EVENT,
        "due_on": date(2026, 11, 20),
        "suspended_on": date(2026, 11, 3) if state == "suspended" else None,
    }
    defaults.update(values)
    return ItemClock(**defaults)  # type: ignore[arg-type]


ALL_PAIRS = [(event.value, state) for event in LifecycleEvent for state in sorted(ALL_STATES)]


@pytest.mark.parametrize(("event", "state"), ALL_PAIRS)
def test_each_event_in_each_state_is_allowed_exactly_as_the_spec_says(
    event: str, state: str
) -> None:
    item = _item(state)
    at = LAST_EVENT + timedelta(days=1)
    expected = EXPECTED_ALLOWED.get((event, state))
    if expected is None:
        with pytest.raises(TransitionError) as refused:
            plan_transition(item, LifecycleEvent(event), at, zone=PARIS, calendar=PARIS_CALENDAR)
        message = str(refused.value)
        assert message.startswith(f"cannot {event} item SIE-75-08/REF-1: it is {state} (")
    else:
        transition = plan_transition(
            item, LifecycleEvent(event), at, zone=PARIS, calendar=PARIS_CALENDAR
        )
        assert (transition.from_state, transition.to_state) == (state, expected)


def test_refusal_names_the_state_the_event_needs() -> None:
    with pytest.raises(TransitionError) as refused:
        plan_transition(
            _item("assigned"),
            LifecycleEvent.SUSPEND,
            LAST_EVENT,
            zone=PARIS,
            calendar=PARIS_CALENDAR,
        )
    assert str(refused.value) == (
        "cannot suspend item SIE-75-08/REF-1: it is assigned (suspend needs in_progress)"
    )
    with pytest.raises(TransitionError, match=r"complete needs assigned or in_progress"):
        plan_transition(
            _item("suspended"), LifecycleEvent.COMPLETE, LAST_EVENT, zone=PARIS, calendar=None
        )


def test_the_table_of_allowed_states_matches_the_spec() -> None:
    table = {(e.value, s) for e, states in ALLOWED_FROM.items() for s in states}
    assert table == set(EXPECTED_ALLOWED)


def test_an_event_earlier_than_the_last_one_is_refused() -> None:
    earlier = LAST_EVENT - timedelta(seconds=1)
    with pytest.raises(TransitionError, match="is earlier than its last event"):
        plan_transition(
            _item("assigned"), LifecycleEvent.START, earlier, zone=PARIS, calendar=PARIS_CALENDAR
        )


def test_an_event_at_the_same_time_as_the_last_one_is_accepted() -> None:
    # "may not be earlier": the same instant, e.g. started the night it was assigned, fits.
    transition = plan_transition(
        _item("assigned"), LifecycleEvent.START, LAST_EVENT, zone=PARIS, calendar=PARIS_CALENDAR
    )
    assert transition.to_state == "in_progress"


def test_times_compare_as_instants_whatever_their_zone() -> None:
    # 23:30 UTC on 1 November is 00:30 on 2 November in Paris: after the last event.
    at = datetime(2026, 11, 1, 23, 30, tzinfo=UTC)
    transition = plan_transition(
        _item("assigned"), LifecycleEvent.START, at, zone=PARIS, calendar=PARIS_CALENDAR
    )
    assert transition.business_date == date(2026, 11, 2)


def test_suspend_records_the_local_date_and_keeps_the_due_date() -> None:
    at = datetime(2026, 11, 5, 16, 0, tzinfo=PARIS)
    transition = plan_transition(
        _item("in_progress"), LifecycleEvent.SUSPEND, at, zone=PARIS, calendar=PARIS_CALENDAR
    )
    assert transition.suspended_on == date(2026, 11, 5)
    assert transition.due_on == date(2026, 11, 20)
    assert not transition.due_on_moved


def test_resume_across_a_holiday_and_a_weekend_moves_the_due_date() -> None:
    # Suspended Thursday 5 November, resumed Thursday 12 November 2026: business days
    # 6, 9, 10 and 12 November (the 7th-8th are a weekend, the 11th is Armistice day).
    item = _item("suspended", suspended_on=date(2026, 11, 5))
    at = datetime(2026, 11, 12, 9, 0, tzinfo=PARIS)
    transition = plan_transition(
        item, LifecycleEvent.RESUME, at, zone=PARIS, calendar=PARIS_CALENDAR
    )
    # Due Friday 20 November + 4 business days = Thursday 26 November.
    assert transition.due_on == date(2026, 11, 26)
    assert transition.due_on_before == date(2026, 11, 20)
    assert transition.due_on_moved
    assert transition.suspended_on is None
    assert transition.to_state == "in_progress"


def test_resume_uses_the_holders_calendar() -> None:
    # Suspended Thursday 2 April 2026, resumed Tuesday 7 April: Good Friday (3 April) is a
    # holiday in Moselle only, Easter Monday everywhere.
    item = _item(
        "suspended",
        suspended_on=date(2026, 4, 2),
        due_on=date(2026, 4, 20),
        last_event_at=datetime(2026, 4, 2, 15, 0, tzinfo=PARIS),
    )
    at = datetime(2026, 4, 7, 10, 0, tzinfo=PARIS)
    in_paris = plan_transition(item, LifecycleEvent.RESUME, at, zone=PARIS, calendar=PARIS_CALENDAR)
    in_moselle = plan_transition(
        item, LifecycleEvent.RESUME, at, zone=PARIS, calendar=MOSELLE_CALENDAR
    )
    assert in_paris.due_on == date(2026, 4, 22)  # 2 business days paused
    assert in_moselle.due_on == date(2026, 4, 21)  # 1 business day paused


def test_resume_counts_the_holders_closures() -> None:
    item = _item("suspended", suspended_on=date(2026, 11, 5))
    at = datetime(2026, 11, 12, 9, 0, tzinfo=PARIS)
    closed = calendar_for("18", frozenset({date(2026, 11, 6)}))
    transition = plan_transition(item, LifecycleEvent.RESUME, at, zone=PARIS, calendar=closed)
    assert transition.due_on == date(2026, 11, 25)  # 3 business days paused, not 4


def test_resume_on_the_day_of_suspension_moves_nothing() -> None:
    item = _item("suspended", suspended_on=date(2026, 11, 5))
    at = datetime(2026, 11, 5, 17, 0, tzinfo=PARIS)
    transition = plan_transition(
        item, LifecycleEvent.RESUME, at, zone=PARIS, calendar=PARIS_CALENDAR
    )
    assert transition.due_on == date(2026, 11, 20)


def test_complete_records_the_local_date_of_the_event() -> None:
    # 23:30 in Paris on 19 November is 22:30 UTC: the business date is Paris's.
    at = datetime(2026, 11, 19, 22, 30, tzinfo=UTC)
    transition = plan_transition(
        _item("in_progress"), LifecycleEvent.COMPLETE, at, zone=PARIS, calendar=PARIS_CALENDAR
    )
    assert transition.completed_on == date(2026, 11, 19)


def test_cancel_of_a_received_item_needs_no_calendar() -> None:
    item = _item("received", due_on=None)
    transition = plan_transition(item, LifecycleEvent.CANCEL, LAST_EVENT, zone=PARIS, calendar=None)
    assert transition.to_state == "cancelled"
    assert transition.due_on is None


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_transition(
            _item("assigned"),
            LifecycleEvent.START,
            datetime(2026, 11, 3),
            zone=PARIS,
            calendar=PARIS_CALENDAR,
        )


@pytest.mark.parametrize("name", ["start", " Start ", "COMPLETE"])
def test_event_names_are_read_case_insensitively(name: str) -> None:
    assert parse_event(name).value == name.strip().lower()


@pytest.mark.parametrize("name", ["assigned", "received", "finish", ""])
def test_unknown_events_are_a_validation_error(name: str) -> None:
    with pytest.raises(ValidationError, match="expected one of start, suspend"):
        parse_event(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, 0, 0, tzinfo=PARIS)),
        ("20/11/2026", datetime(2026, 11, 20, 0, 0, tzinfo=PARIS)),
        ("2026-11-20T14:30", datetime(2026, 11, 20, 14, 30, tzinfo=PARIS)),
        ("2026-11-20 14:30:05", datetime(2026, 11, 20, 14, 30, 5, tzinfo=PARIS)),
        ("2026-11-20T14:30:00+00:00", datetime(2026, 11, 20, 14, 30, tzinfo=UTC)),
        ("2026-11-20T14:30:00Z", datetime(2026, 11, 20, 14, 30, tzinfo=UTC)),
    ],
)
def test_event_times_are_read_as_local_unless_an_offset_is_given(
    text: str, expected: datetime
) -> None:
    parsed = parse_at(text, PARIS)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_a_date_only_time_is_midnight_local_in_summer_too() -> None:
    assert parse_at("2026-07-14", PARIS).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01", "31/02/2026", "2026-11-20T25:00"])
def test_invalid_times_are_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationError, match="invalid time"):
        parse_at(text, PARIS)
