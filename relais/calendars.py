"""Business calendars materialised in the database, for set-based SLA arithmetic.

``calendar_day`` holds one row per office and day with the day's business ordinal (business days
from the calendar epoch up to and including the day, see ``relais.domain.calendar``). Bulk SQL
then computes due dates and business-day counts with index look-ups instead of Python loops:

* due date of a start day D with target n: the business row of the same office whose ordinal
  is ordinal(D) + n (``due_on_sql``);
* business days d with A < d <= B: ordinal(B) - ordinal(A) (``business_days_between_sql``).

The rows are produced by the same ``BusinessCalendar`` as the Python path, so both agree.
``calendar_span`` records, per office, the materialised range and a fingerprint of what the rows
were built from; ``ensure_calendars`` rebuilds an office only when that fingerprint changes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import holidays
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    false,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from models.tables import CalendarDay, CalendarSpan, Closure, RemoteService, Sie
from relais.domain.calendar import EPOCH, BusinessCalendar, calendar_for

#: Bump when the way rows are computed changes, so stored calendars are rebuilt.
CALENDAR_FORMAT: Final = 1
#: Rows per INSERT round trip: large enough to be fast, small enough to bound memory.
INSERT_BATCH: Final = 10_000
# Arbitrary constant key of the PostgreSQL advisory lock that serialises rebuilds.
_PG_CALENDAR_LOCK: Final = 0x43414C44

OfficeCalendars = Mapping[str, tuple[str, frozenset[date]]]
"""Office code -> (department, closure days)."""

_day_table = CalendarDay.__table__  # type: ignore[attr-defined]
_span_table = CalendarSpan.__table__  # type: ignore[attr-defined]
_sie_table = Sie.__table__  # type: ignore[attr-defined]
_service_table = RemoteService.__table__  # type: ignore[attr-defined]
_closure_table = Closure.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _StoredSpan:
    department: str
    first_day: date
    last_day: date
    fingerprint: str


def calendar_fingerprint(
    department: str, closures: frozenset[date], first_day: date, last_day: date
) -> str:
    """A digest of everything a materialised calendar depends on.

    The `holidays` package version is included: a new release may correct a holiday.
    """
    parts = [
        f"format={CALENDAR_FORMAT}",
        f"holidays={holidays.__version__}",
        f"epoch={EPOCH.isoformat()}",
        f"department={department}",
        f"range={first_day.isoformat()}..{last_day.isoformat()}",
        "closures=" + ",".join(day.isoformat() for day in sorted(closures)),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def office_calendars(session: Session | Connection) -> dict[str, tuple[str, frozenset[date]]]:
    """Every office (SIEs and remote services) with its department and closure days."""
    connection = _connection_of(session)
    offices: dict[str, str] = {}
    for code, department in connection.execute(select(_sie_table.c.code, _sie_table.c.department)):
        offices[code] = department
    for code, department in connection.execute(
        select(_service_table.c.code, _service_table.c.department)
    ):
        offices[code] = department
    closures: dict[str, set[date]] = defaultdict(set)
    for office, day in connection.execute(select(_closure_table.c.office, _closure_table.c.day)):
        closures[office].add(day)
    return {
        code: (department, frozenset(closures.get(code, ())))
        for code, department in sorted(offices.items())
    }


def ensure_calendars(
    session_or_conn: Session | Connection,
    offices: OfficeCalendars,
    first_year: int,
    last_year: int,
) -> list[str]:
    """Make ``calendar_day`` cover ``first_year..last_year`` for ``offices``; return those changed.

    An office whose department or closures changed is rebuilt whole; an unchanged office only
    gains the missing days. Ranges never shrink, so callers asking for different years do not
    undo each other's work. Runs in the caller's transaction (the caller commits).
    """
    if first_year > last_year:
        raise ValueError(f"first year {first_year} is after last year {last_year}")
    connection = _connection_of(session_or_conn)
    wanted_first, wanted_last = date(first_year, 1, 1), date(last_year, 12, 31)
    if not _offices_needing_work(connection, offices, wanted_first, wanted_last):
        return []
    # Someone else may be rebuilding: take the lock, then look again with fresh eyes.
    _lock_calendars(connection)
    stale = _offices_needing_work(connection, offices, wanted_first, wanted_last)
    for office, stored in stale.items():
        department, closures = offices[office]
        calendar = calendar_for(department, frozenset(closures))
        first_day, last_day = wanted_first, wanted_last
        if stored is not None:
            first_day, last_day = min(first_day, stored.first_day), max(last_day, stored.last_day)
        unchanged = stored is not None and stored.fingerprint == calendar_fingerprint(
            department, closures, stored.first_day, stored.last_day
        )
        if unchanged:
            assert stored is not None
            _insert_days(connection, office, calendar, first_day, stored.first_day - _ONE_DAY)
            _insert_days(connection, office, calendar, stored.last_day + _ONE_DAY, last_day)
        else:
            connection.execute(delete(_day_table).where(_day_table.c.office == office))
            _insert_days(connection, office, calendar, first_day, last_day)
        span = {
            "department": department,
            "first_day": first_day,
            "last_day": last_day,
            "fingerprint": calendar_fingerprint(department, closures, first_day, last_day),
        }
        if stored is None:
            connection.execute(insert(_span_table).values(office=office, **span))
        else:
            connection.execute(
                update(_span_table).where(_span_table.c.office == office).values(**span)
            )
    return sorted(stale)


def ensure_calendar_years(
    session: Session | Connection, first_year: int, last_year: int
) -> list[str]:
    """Materialise every office's calendar over ``first_year..last_year`` (before bulk SQL).

    Due dates run past their start: cover the year after the last start day too. Returns the
    offices whose rows changed. Runs in the caller's transaction.
    """
    return ensure_calendars(session, office_calendars(session), first_year, last_year)


# --- SQL expressions for bulk statements --------------------------------------------------


def ordinal_sql(office: ColumnElement[Any], day: ColumnElement[Any]) -> ColumnElement[int]:
    """Scalar subquery: the business ordinal of ``day`` in ``office``'s calendar.

    NULL when the day is outside the materialised range (see ``ensure_calendar_years``).
    """
    row = _day_table.alias("ordinal_day")
    return select(row.c.ordinal).where(row.c.office == office, row.c.day == day).scalar_subquery()


def due_on_sql(
    office: ColumnElement[Any], start: ColumnElement[Any], business_days: ColumnElement[Any] | int
) -> ColumnElement[date]:
    """Scalar subquery: the ``business_days``-th business day after ``start`` for ``office``.

    The SQL twin of ``BusinessCalendar.add_business_days`` for n >= 1: the business row of the
    office whose ordinal is ordinal(start) + n. NULL when either day is outside the
    materialised range.
    """
    start_row = _day_table.alias("start_day")
    due_row = _day_table.alias("due_day")
    return (
        select(due_row.c.day)
        .select_from(
            start_row.join(
                due_row,
                and_(
                    due_row.c.office == start_row.c.office,
                    due_row.c.ordinal == start_row.c.ordinal + business_days,
                ),
            )
        )
        .where(start_row.c.office == office, start_row.c.day == start, due_row.c.is_business)
        .scalar_subquery()
    )


def business_days_between_sql(
    office: ColumnElement[Any], start: ColumnElement[Any], end: ColumnElement[Any]
) -> ColumnElement[int]:
    """Business days d with ``start`` < d <= ``end`` in ``office``'s calendar (negative if end
    is before start); NULL outside the materialised range."""
    return ordinal_sql(office, end) - ordinal_sql(office, start)


def materialised_range(session: Session | Connection, office: str) -> tuple[date, date] | None:
    """The first and last materialised day of ``office``, or None if it has none."""
    row = (
        _connection_of(session)
        .execute(
            select(_span_table.c.first_day, _span_table.c.last_day).where(
                _span_table.c.office == office
            )
        )
        .first()
    )
    return None if row is None else (row.first_day, row.last_day)


def count_calendar_rows(session: Session | Connection, office: str) -> int:
    """Rows materialised for ``office`` (for checks and progress reports)."""
    return (
        _connection_of(session)
        .execute(select(func.count()).select_from(_day_table).where(_day_table.c.office == office))
        .scalar_one()
    )


# --- internals ----------------------------------------------------------------------------

_ONE_DAY: Final = timedelta(days=1)


def _connection_of(session_or_conn: Session | Connection) -> Connection:
    # Core statements go through the connection: SQLModel's Session.execute is deprecated.
    if isinstance(session_or_conn, Connection):
        return session_or_conn
    return session_or_conn.connection()


def _stored_spans(connection: Connection) -> dict[str, _StoredSpan]:
    rows = connection.execute(
        select(
            _span_table.c.office,
            _span_table.c.department,
            _span_table.c.first_day,
            _span_table.c.last_day,
            _span_table.c.fingerprint,
        )
    )
    return {
        row.office: _StoredSpan(row.department, row.first_day, row.last_day, row.fingerprint)
        for row in rows
    }


def _offices_needing_work(
    connection: Connection, offices: OfficeCalendars, first_day: date, last_day: date
) -> dict[str, _StoredSpan | None]:
    """Offices whose stored rows are missing, stale or too short, with their stored span."""
    spans = _stored_spans(connection)
    stale: dict[str, _StoredSpan | None] = {}
    for office, (department, closures) in offices.items():
        stored = spans.get(office)
        if (
            stored is None
            or stored.first_day > first_day
            or stored.last_day < last_day
            or stored.fingerprint
            != calendar_fingerprint(department, closures, stored.first_day, stored.last_day)
        ):
            stale[office] = stored
    return stale


def _lock_calendars(connection: Connection) -> None:
    """Serialise rebuilds until the end of the caller's transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CALENDAR_LOCK})
    else:
        # SQLite has one writer at a time: a write statement, even one touching no row, takes
        # the database's write lock for the rest of the transaction.
        connection.execute(update(_span_table).where(false()).values(office=_span_table.c.office))


def _calendar_rows(
    office: str, calendar: BusinessCalendar, first_day: date, last_day: date
) -> Iterator[dict[str, Any]]:
    day = first_day
    while day <= last_day:
        yield {
            "office": office,
            "day": day,
            "ordinal": calendar.ordinal(day),
            "is_business": calendar.is_business_day(day),
        }
        day += _ONE_DAY


def _insert_days(
    connection: Connection,
    office: str,
    calendar: BusinessCalendar,
    first_day: date,
    last_day: date,
) -> None:
    batch: list[dict[str, Any]] = []
    for row in _calendar_rows(office, calendar, first_day, last_day):
        batch.append(row)
        if len(batch) >= INSERT_BATCH:
            connection.execute(insert(_day_table), batch)
            batch = []
    if batch:
        connection.execute(insert(_day_table), batch)
