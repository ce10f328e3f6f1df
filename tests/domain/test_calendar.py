"""Business calendars: public holidays per department, closures and business-day arithmetic."""

from __future__ import annotations

import warnings
from bisect import bisect_right
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import cache

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relais.domain.calendar import (
    EPOCH,
    MAX_YEAR,
    MIN_YEAR,
    BusinessCalendar,
    calendar_for,
    holiday_subdivision,
)

DEPARTMENTS = ("75", "57", "67", "68", "02", "18", "2A", "13")

# --- an independent, deliberately naive oracle ------------------------------------------

# Written out here rather than imported, so a wrong mapping in the module cannot hide.
_ORACLE_SUBDIVISIONS = {"57": "57", "67": "6AE", "68": "6AE"}


@cache
def _oracle_holidays(department: str, year: int) -> frozenset[date]:
    return frozenset(
        holidays.country_holidays(
            "FR", subdiv=_ORACLE_SUBDIVISIONS.get(department), years=year, language="fr"
        )
    )


def _oracle_is_business(department: str, closures: frozenset[date], day: date) -> bool:
    return (
        day.weekday() < 5
        and day not in _oracle_holidays(department, day.year)
        and day not in closures
    )


@cache
def _oracle_business_days(department: str, closures: frozenset[date]) -> tuple[date, ...]:
    """Business days of 1985-2115, found day by day."""
    public_holidays = holidays.country_holidays(
        "FR",
        subdiv=_ORACLE_SUBDIVISIONS.get(department),
        years=range(1985, 2116),
        language="fr",
    )
    day, last, found = date(1985, 1, 1), date(2115, 12, 31), []
    while day <= last:
        if day.weekday() < 5 and day not in public_holidays and day not in closures:
            found.append(day)
        day += timedelta(days=1)
    return tuple(found)


def _oracle_add(department: str, closures: frozenset[date], start: date, days: int) -> date:
    business = _oracle_business_days(department, closures)
    return business[bisect_right(business, start) + days - 1]


def _oracle_between(department: str, closures: frozenset[date], start: date, end: date) -> int:
    business = _oracle_business_days(department, closures)
    return bisect_right(business, end) - bisect_right(business, start)


# --- subdivisions and warnings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("department", "subdivision"),
    [
        ("57", "57"),
        ("67", "6AE"),
        ("68", "6AE"),
        ("75", None),
        ("02", None),
        ("18", None),
        ("2A", None),
        ("2b", None),
        ("95", None),
        ("01", None),
        (" 57 ", "57"),
    ],
)
def test_holiday_subdivision(department: str, subdivision: str | None) -> None:
    assert holiday_subdivision(department) == subdivision


@pytest.mark.parametrize("department", ["", "2", "20", "96", "99", "GES", "Métropole", "975", "7"])
def test_holiday_subdivision_rejects_unknown_departments(department: str) -> None:
    with pytest.raises(ValueError, match="department"):
        holiday_subdivision(department)


def test_no_deprecated_subdivision_is_used() -> None:
    """The deprecated "GES"/"Métropole" names would silently drop the local holidays."""
    used = {holiday_subdivision(f"{n:02d}") for n in range(1, 96) if n != 20}
    assert used == {None, "57", "6AE"}


@pytest.mark.parametrize("department", ["57", "67", "68", "75"])
def test_building_calendars_emits_no_warning(department: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calendar = BusinessCalendar(department)
        calendar.holidays_in(2026)
        calendar.add_business_days(date(2026, 4, 1), 20)


# --- public holidays --------------------------------------------------------------------


@pytest.mark.parametrize("department", ["57", "67", "68"])
def test_alsace_moselle_keeps_good_friday_and_st_stephen(department: str) -> None:
    calendar = BusinessCalendar(department)
    assert not calendar.is_business_day(date(2026, 4, 3))  # Good Friday 2026
    assert not calendar.is_business_day(date(2025, 12, 26))  # a Friday
    assert calendar.holidays_in(2026)[date(2026, 4, 3)] == "Vendredi saint"
    assert calendar.holidays_in(2026)[date(2026, 12, 26)] == "Saint-Étienne"


def test_forbach_observes_good_friday_and_26_december_but_laon_does_not() -> None:
    forbach, laon = calendar_for("57"), calendar_for("02")
    for day in (date(2026, 4, 3), date(2025, 12, 26), date(2024, 12, 26), date(2027, 3, 26)):
        assert day.weekday() < 5
        assert not forbach.is_business_day(day)
        assert laon.is_business_day(day)
    assert len(forbach.holidays_in(2026)) == 13
    assert len(laon.holidays_in(2026)) == 11


@pytest.mark.parametrize("department", DEPARTMENTS)
def test_easter_monday_ascension_and_whit_monday_everywhere(department: str) -> None:
    calendar = calendar_for(department)
    names = calendar.holidays_in(2026)
    assert names[date(2026, 4, 6)] == "Lundi de Pâques"
    assert names[date(2026, 5, 14)] == "Ascension"
    assert names[date(2026, 5, 25)] == "Lundi de Pentecôte"
    for day in (date(2026, 4, 6), date(2026, 5, 14), date(2026, 5, 25), date(2027, 3, 29)):
        assert not calendar.is_business_day(day)


def test_easter_2027() -> None:
    names = calendar_for("57").holidays_in(2027)
    assert names[date(2027, 3, 26)] == "Vendredi saint"
    assert names[date(2027, 3, 29)] == "Lundi de Pâques"
    assert date(2027, 3, 26) not in calendar_for("75").holidays_in(2027)


def test_national_holidays_of_2026_in_paris() -> None:
    assert list(calendar_for("75").holidays_in(2026)) == [
        date(2026, 1, 1),
        date(2026, 4, 6),
        date(2026, 5, 1),
        date(2026, 5, 8),
        date(2026, 5, 14),
        date(2026, 5, 25),
        date(2026, 7, 14),
        date(2026, 8, 15),
        date(2026, 11, 1),
        date(2026, 11, 11),
        date(2026, 12, 25),
    ]


def test_first_ten_days_of_april_2026() -> None:
    first, tenth = date(2026, 4, 1), date(2026, 4, 10)
    before = first - timedelta(days=1)
    assert calendar_for("57").business_days_between(before, tenth) == 6
    assert calendar_for("75").business_days_between(before, tenth) == 7
    assert calendar_for("57").business_days_in(before, tenth) == [
        date(2026, 4, 1),
        date(2026, 4, 2),
        date(2026, 4, 7),
        date(2026, 4, 8),
        date(2026, 4, 9),
        date(2026, 4, 10),
    ]


def test_weekends_are_not_business_days() -> None:
    calendar = calendar_for("75")
    assert not calendar.is_business_day(date(2026, 4, 4))  # Saturday
    assert not calendar.is_business_day(date(2026, 4, 5))  # Sunday
    assert calendar.is_business_day(date(2026, 4, 7))


# --- closures ---------------------------------------------------------------------------


def test_a_closure_day_is_not_a_business_day() -> None:
    christmas_eve = date(2026, 12, 24)  # a Thursday
    open_office = calendar_for("18")
    closed_office = calendar_for("18", frozenset({christmas_eve}))
    assert open_office.is_business_day(christmas_eve)
    assert not closed_office.is_business_day(christmas_eve)
    assert open_office.add_business_days(date(2026, 12, 23), 1) == christmas_eve
    assert closed_office.add_business_days(date(2026, 12, 23), 1) == date(2026, 12, 28)
    assert closed_office.business_days_between(date(2026, 12, 18), date(2026, 12, 31)) == (
        open_office.business_days_between(date(2026, 12, 18), date(2026, 12, 31)) - 1
    )
    # A closure is not a public holiday.
    assert christmas_eve not in closed_office.holidays_in(2026)
    assert closed_office.closures == frozenset({christmas_eve})


def test_closures_on_weekends_or_holidays_change_nothing() -> None:
    extra = frozenset({date(2026, 4, 4), date(2026, 4, 6)})  # a Saturday, Easter Monday
    plain, closed = calendar_for("75"), calendar_for("75", extra)
    start = date(2026, 3, 1)
    for days in range(1, 80):
        assert closed.add_business_days(start, days) == plain.add_business_days(start, days)


# --- arithmetic -------------------------------------------------------------------------


def test_year_boundaries() -> None:
    paris, forbach = calendar_for("75"), calendar_for("57")
    # 1 January 2027 is a Friday: the next business day is Monday 4 January.
    assert paris.add_business_days(date(2026, 12, 31), 1) == date(2027, 1, 4)
    # Forbach: 24 Dec 2026 (Thu) -> 25 Fri (Noël) -> weekend (26 is also Saint-Étienne) -> 28.
    assert forbach.add_business_days(date(2026, 12, 24), 1) == date(2026, 12, 28)
    assert paris.business_days_between(date(2026, 12, 24), date(2027, 1, 4)) == 5
    # (24 Dec 2025, 2 Jan 2026]: 29, 30, 31 Dec and 2 Jan; Paris also works on Friday 26.
    assert forbach.business_days_between(date(2025, 12, 24), date(2026, 1, 2)) == 4
    assert paris.business_days_between(date(2025, 12, 24), date(2026, 1, 2)) == 5
    assert paris.business_days_between(date(2027, 1, 4), date(2026, 12, 24)) == -5


def test_zero_days_returns_start_and_negative_days_are_refused() -> None:
    calendar = calendar_for("75")
    assert calendar.add_business_days(date(2026, 4, 4), 0) == date(2026, 4, 4)  # a Saturday
    with pytest.raises(ValueError, match="negative"):
        calendar.add_business_days(date(2026, 4, 4), -1)


def test_ordinal_is_counted_from_the_epoch() -> None:
    calendar = calendar_for("75")
    assert calendar.ordinal(EPOCH) == 0
    assert calendar.ordinal(date(2000, 1, 3)) == 1  # first Monday of 2000
    assert calendar.ordinal(date(1999, 12, 31)) == 0  # (31 Dec, 1 Jan] holds no business day
    assert calendar.ordinal(date(1999, 12, 30)) == -1
    assert calendar.business_day_of_ordinal(1) == date(2000, 1, 3)
    assert calendar.business_day_of_ordinal(0) == date(1999, 12, 31)


@pytest.mark.parametrize("department", ["75", "57", "67", "68", "02", "18"])
def test_every_day_of_2024_to_2030_matches_a_day_by_day_count(department: str) -> None:
    calendar = BusinessCalendar(department)
    closures: frozenset[date] = frozenset()
    origin = date(2023, 12, 31)
    day = date(2024, 1, 1)
    while day <= date(2030, 12, 31):
        assert calendar.is_business_day(day) == _oracle_is_business(department, closures, day)
        assert calendar.business_days_between(origin, day) == _oracle_between(
            department, closures, origin, day
        )
        for days in (1, 10, 20, 40):
            assert calendar.add_business_days(day, days) == _oracle_add(
                department, closures, day, days
            )
        day += timedelta(days=1)


def test_far_from_the_epoch_in_both_directions() -> None:
    calendar = BusinessCalendar("57")
    assert calendar.add_business_days(date(1990, 6, 1), 20) == _oracle_add(
        "57", frozenset(), date(1990, 6, 1), 20
    )
    assert calendar.business_days_between(date(1986, 1, 1), date(2110, 1, 1)) == (
        _oracle_between("57", frozenset(), date(1986, 1, 1), date(2110, 1, 1))
    )
    # A target several years ahead extends the tables as far as needed.
    later = BusinessCalendar("75")
    assert later.add_business_days(date(2026, 1, 1), 2500) == _oracle_add(
        "75", frozenset(), date(2026, 1, 1), 2500
    )
    # Ordinals before the epoch count backwards: -3000 is 3000 business days before it.
    business = _oracle_business_days("75", frozenset())
    at_or_before_epoch = bisect_right(business, EPOCH)
    assert later.business_day_of_ordinal(-3000) == business[at_or_before_epoch - 1 - 3000]
    assert later.ordinal(business[at_or_before_epoch - 1 - 3000]) == -3000


def test_business_day_of_ordinal_inverts_ordinal() -> None:
    calendar = BusinessCalendar("68")
    business = _oracle_business_days("68", frozenset())
    for day in business[:: len(business) // 400]:
        assert calendar.business_day_of_ordinal(calendar.ordinal(day)) == day


def test_years_outside_the_supported_range_are_refused() -> None:
    calendar = BusinessCalendar("75")
    with pytest.raises(ValueError, match="cover"):
        calendar.ordinal(date(MIN_YEAR - 1, 12, 31))
    with pytest.raises(ValueError, match="cover"):
        calendar.is_business_day(date(MAX_YEAR + 1, 1, 1))
    with pytest.raises(ValueError, match="cover"):
        calendar.add_business_days(date(MAX_YEAR, 12, 1), 250)


def test_calendar_for_is_cached_per_department_and_closures() -> None:
    closures = frozenset({date(2026, 12, 24)})
    assert calendar_for("18") is calendar_for("18")
    assert calendar_for("18", closures) is calendar_for("18", frozenset({date(2026, 12, 24)}))
    assert calendar_for("18", closures) is not calendar_for("18")
    assert calendar_for("57") is not calendar_for("67")


def test_concurrent_first_use_gives_consistent_answers() -> None:
    calendar = BusinessCalendar("67")
    starts = [date(1990 + n % 100, 1 + n % 12, 1 + n % 28) for n in range(400)]

    def due(start: date) -> date:
        return calendar.add_business_days(start, 30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(due, starts))
    assert results == [_oracle_add("67", frozenset(), start, 30) for start in starts]


# --- properties -------------------------------------------------------------------------

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))
targets = st.integers(min_value=1, max_value=250)
departments = st.sampled_from(DEPARTMENTS)
many = settings(max_examples=500, deadline=None)


@many
@given(department=departments, start=dates, days=targets)
def test_due_date_is_a_business_day_exactly_n_business_days_later(
    department: str, start: date, days: int
) -> None:
    calendar = calendar_for(department)
    due = calendar.add_business_days(start, days)
    assert due > start
    assert calendar.is_business_day(due)
    assert calendar.business_days_between(start, due) == days
    # No business day is skipped: the day before the due date is still one short.
    assert calendar.business_days_between(start, due - timedelta(days=1)) == days - 1


@many
@given(department=departments, start=dates, days=targets, more=targets)
def test_due_date_is_strictly_monotonic_in_the_target(
    department: str, start: date, days: int, more: int
) -> None:
    calendar = calendar_for(department)
    assert calendar.add_business_days(start, days) < calendar.add_business_days(start, days + more)


@many
@given(department=departments, start=dates, end=dates)
def test_between_then_add_round_trips(department: str, start: date, end: date) -> None:
    calendar = calendar_for(department)
    low, high = min(start, end), max(start, end)
    counted = calendar.business_days_between(low, high)
    assert calendar.business_days_between(high, low) == -counted
    if counted > 0:
        last_business = calendar.add_business_days(low, counted)
        assert last_business <= high
        assert calendar.business_days_between(last_business, high) == 0


@many
@given(department=departments, a=dates, b=dates, c=dates)
def test_between_is_additive(department: str, a: date, b: date, c: date) -> None:
    calendar = calendar_for(department)
    assert calendar.business_days_between(a, b) + calendar.business_days_between(
        b, c
    ) == calendar.business_days_between(a, c)


CLOSURE_SETS: tuple[frozenset[date], ...] = (
    frozenset(),
    frozenset({date(2026, 12, 24), date(2026, 12, 31), date(2027, 5, 7), date(1995, 8, 14)}),
    frozenset(date(2030, 7, day) for day in range(1, 32)),  # a month-long closure
)


# The comparison with the oracle is the strongest check: give it the most examples.
@settings(max_examples=1500, deadline=None)
@given(
    # One department per kind of holiday set keeps the oracle cheap to build.
    department=st.sampled_from(("75", "57", "67")),
    start=st.dates(min_value=date(1986, 1, 1), max_value=date(2110, 12, 31)),
    days=targets,
    closures=st.sampled_from(CLOSURE_SETS),
)
def test_matches_the_day_by_day_oracle(
    department: str, start: date, days: int, closures: frozenset[date]
) -> None:
    calendar = calendar_for(department, closures)
    assert calendar.add_business_days(start, days) == _oracle_add(department, closures, start, days)
    assert calendar.is_business_day(start) == _oracle_is_business(department, closures, start)
