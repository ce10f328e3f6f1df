"""Business calendars of the offices that hold work items (SPEC §7).

A business day is Monday to Friday, except the French public holidays of the office's department
and the office's own closure days. Labour law applies at the place of work, so the department is
the office's own (an antenna in Forbach observes the Moselle days whoever it works for).

Every date gets a business *ordinal*: the number of business days from a fixed epoch up to and
including that date. Counting and adding business days then become integer arithmetic and list
look-ups, which matters because routing and SLA queries apply them to millions of items. The
tables are built per span of years, on demand, and only grow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from types import MappingProxyType
from typing import Final

import holidays

#: Ordinals count business days d with EPOCH < d <= day (negative before the epoch).
EPOCH: Final = date(2000, 1, 1)
#: Years a calendar accepts; a date outside is almost certainly a data error, not a deadline.
MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2199
_GROWTH_YEARS: Final = 10

# Alsace-Moselle keeps Good Friday and 26 December (local law). In the `holidays` package Moselle
# is "57" and both Alsace departments are "6AE" ("67"/"68" are rejected, and the deprecated
# "GES"/"Métropole" names load but silently give only the eleven national days).
_ALSACE_MOSELLE: Final = MappingProxyType({"57": "57", "67": "6AE", "68": "6AE"})
# Overseas departments have their own public holidays, which the package knows by INSEE code.
_OVERSEAS: Final = frozenset({"971", "972", "973", "974", "976"})
_METROPOLITAN: Final = frozenset({f"{number:02d}" for number in range(1, 96) if number != 20}) | {
    "2A",
    "2B",
}


def holiday_subdivision(department: str) -> str | None:
    """Return the `holidays` France subdivision for ``department`` (None: national days only).

    ``department`` is an INSEE department code such as "75", "02", "2A" or "57". Raises
    ``ValueError`` for a code that is not a French department.
    """
    code = department.strip().upper()
    if code in _ALSACE_MOSELLE:
        return _ALSACE_MOSELLE[code]
    if code in _OVERSEAS:
        return code
    if code in _METROPOLITAN:
        return None
    raise ValueError(f"unknown French department code: {department!r}")


@dataclass(frozen=True, slots=True)
class _Span:
    """Precomputed tables for the years first_year..last_year (immutable, swapped whole)."""

    first_year: int
    last_year: int
    origin: int  # date.toordinal() of 1 January of first_year
    ordinals: tuple[int, ...]  # business ordinal of each day from origin
    flags: bytes  # 1 where the day is a business day
    business: tuple[int, ...]  # date.toordinal() of each business day, in order
    first_business_ordinal: int  # business ordinal of business[0]
    holiday_names: MappingProxyType[date, str]


class BusinessCalendar:
    """Business days of one office: weekdays minus its department's holidays and its closures.

    Instances are safe to share between threads: tables are extended under a lock and published
    as one immutable object, so readers always see a consistent span.
    """

    __slots__ = ("_closures", "_department", "_lock", "_span", "_subdivision")

    def __init__(self, department: str, closures: frozenset[date] = frozenset()) -> None:
        """Build the calendar of an office of ``department`` closed on ``closures``."""
        self._subdivision = holiday_subdivision(department)
        self._department = department.strip().upper()
        self._closures = frozenset(closures)
        self._lock = threading.Lock()
        self._span: _Span | None = None

    def __repr__(self) -> str:
        return (
            f"BusinessCalendar(department={self._department!r}, "
            f"closures={len(self._closures)} day(s))"
        )

    @property
    def department(self) -> str:
        """The department whose public holidays apply."""
        return self._department

    @property
    def closures(self) -> frozenset[date]:
        """The office's own closure days (beyond public holidays)."""
        return self._closures

    # -- hot path ---------------------------------------------------------------------------

    def ordinal(self, day: date) -> int:
        """Business days d with EPOCH < d <= ``day`` (negative, mirrored, before the epoch).

        ``business_days_between(a, b) == ordinal(b) - ordinal(a)`` for any two dates.
        """
        span = self._span
        if span is not None:
            index = day.toordinal() - span.origin
            if 0 <= index < len(span.ordinals):
                return span.ordinals[index]
        span = self._cover(day.year, day.year)
        return span.ordinals[day.toordinal() - span.origin]

    def is_business_day(self, day: date) -> bool:
        """Whether the office works on ``day``."""
        span = self._span
        if span is None or not 0 <= day.toordinal() - span.origin < len(span.flags):
            span = self._cover(day.year, day.year)
        return span.flags[day.toordinal() - span.origin] == 1

    def business_days_between(self, start: date, end: date) -> int:
        """Number of business days d with ``start`` < d <= ``end`` (negative when end < start)."""
        return self.ordinal(end) - self.ordinal(start)

    def add_business_days(self, start: date, days: int) -> date:
        """The ``days``-th business day after ``start`` (``start`` itself not counted).

        ``days == 0`` returns ``start`` unchanged, even when it is not a business day.
        """
        if days <= 0:
            if days == 0:
                return start
            raise ValueError(f"cannot add a negative number of business days ({days})")
        target = self.ordinal(start) + days
        span = self._span
        assert span is not None  # ordinal() has built it
        # ordinal(start) >= first_business_ordinal - 1, so the index is never negative here.
        index = target - span.first_business_ordinal
        if index < len(span.business):
            return date.fromordinal(span.business[index])
        return self.business_day_of_ordinal(target)

    def business_day_of_ordinal(self, business_ordinal: int) -> date:
        """The business day whose ordinal is ``business_ordinal`` (inverse of ``ordinal``)."""
        span = self._span or self._cover(EPOCH.year, EPOCH.year)
        while True:
            index = business_ordinal - span.first_business_ordinal
            # About 250 business days a year: extend by the estimated number of missing years.
            if index < 0:
                span = self._cover(span.first_year - (-index // 250 + 1), span.last_year)
            elif index >= len(span.business):
                extra_years = (index - len(span.business)) // 250 + 1
                span = self._cover(span.first_year, span.last_year + extra_years)
            else:
                return date.fromordinal(span.business[index])

    # -- reference information --------------------------------------------------------------

    def holidays_in(self, year: int) -> dict[date, str]:
        """Public holidays of ``year`` for this department, date to French name, in date order.

        Closure days are not included (see ``closures``); weekend holidays are.
        """
        span = self._cover(year, year)
        return {day: name for day, name in span.holiday_names.items() if day.year == year}

    def business_days_in(self, start: date, end: date) -> list[date]:
        """Business days d with ``start`` < d <= ``end``, in order (for reports and tests)."""
        low, high = self.ordinal(start), self.ordinal(end)
        if high <= low:
            return []
        span = self._span  # spans only grow: this one covers both dates
        assert span is not None
        index = low + 1 - span.first_business_ordinal
        return [date.fromordinal(day) for day in span.business[index : index + high - low]]

    # -- table building ---------------------------------------------------------------------

    def _cover(self, first_year: int, last_year: int) -> _Span:
        """Return a span covering ``first_year..last_year`` (and the epoch), building if needed."""
        if first_year < MIN_YEAR or last_year > MAX_YEAR:
            raise ValueError(
                f"business calendars cover {MIN_YEAR}-{MAX_YEAR}; got {first_year}-{last_year}"
            )
        with self._lock:
            span = self._span
            if span is not None and span.first_year <= first_year and last_year <= span.last_year:
                return span
            # One year of headroom past the requested one: most targets end in the next year.
            low, high = min(first_year, EPOCH.year), max(last_year + 1, EPOCH.year)
            if span is not None:
                # A rebuild costs the whole span: grow by at least a decade to rebuild rarely.
                if low < span.first_year:
                    low = min(low, span.first_year - _GROWTH_YEARS)
                if high > span.last_year:
                    high = max(high, span.last_year + _GROWTH_YEARS)
                low, high = min(low, span.first_year), max(high, span.last_year)
            span = self._build(max(MIN_YEAR, low), min(MAX_YEAR, high))
            self._span = span
            return span

    def _build(self, first_year: int, last_year: int) -> _Span:
        """Compute the tables for ``first_year..last_year`` (inclusive)."""
        public_holidays = holidays.country_holidays(
            "FR",
            subdiv=self._subdivision,
            years=range(first_year, last_year + 1),
            language="fr",
        )
        holiday_names = dict(sorted(public_holidays.items()))
        closed = {day.toordinal() for day in holiday_names} | {
            day.toordinal() for day in self._closures
        }
        origin = date(first_year, 1, 1).toordinal()
        end = date(last_year, 12, 31).toordinal()
        epoch_index = EPOCH.toordinal() - origin
        flags = bytearray(end - origin + 1)
        running: list[int] = []
        business: list[int] = []
        count = 0
        for index, day_number in enumerate(range(origin, end + 1)):
            # date.toordinal() of a Monday is 1 modulo 7, so weekday() == (day_number - 1) % 7.
            if (day_number - 1) % 7 < 5 and day_number not in closed:
                flags[index] = 1
                business.append(day_number)
                count += 1
            running.append(count)
        shift = running[epoch_index]
        return _Span(
            first_year=first_year,
            last_year=last_year,
            origin=origin,
            ordinals=tuple(value - shift for value in running),
            flags=bytes(flags),
            business=tuple(business),
            first_business_ordinal=1 - shift,
            holiday_names=MappingProxyType(holiday_names),
        )


@lru_cache(maxsize=512)
def calendar_for(department: str, closures: frozenset[date] = frozenset()) -> BusinessCalendar:
    """The shared calendar of an office of ``department`` with ``closures`` (cached)."""
    return BusinessCalendar(department, closures)
