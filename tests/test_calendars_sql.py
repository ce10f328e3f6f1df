"""The calendars materialised in SQL agree with the Python calendars, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, bindparam, func, select
from sqlmodel import Session

from models.tables import CalendarDay, CalendarSpan, Closure, Directorate, RemoteService, Sie
from relais.calendars import (
    business_days_between_sql,
    calendar_fingerprint,
    count_calendar_rows,
    due_on_sql,
    ensure_calendar_years,
    ensure_calendars,
    materialised_range,
    office_calendars,
    ordinal_sql,
)
from relais.db import session_scope
from relais.domain.calendar import calendar_for

DAY = CalendarDay.__table__  # type: ignore[attr-defined]
SPAN = CalendarSpan.__table__  # type: ignore[attr-defined]

CHRISTMAS_EVE_2026 = date(2026, 12, 24)
OFFICES = {
    "OFF-75": ("75", frozenset()),
    "OFF-57": ("57", frozenset()),
    "OFF-67": ("67", frozenset()),
    "OFF-68": ("68", frozenset()),
    "OFF-02": ("02", frozenset()),
    "OFF-18": ("18", frozenset({CHRISTMAS_EVE_2026, date(2028, 8, 14)})),
}
FIRST, LAST = date(2024, 1, 1), date(2030, 12, 31)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_sql_and_python_agree_on_every_day_of_2024_to_2030(engine: Engine) -> None:
    with session_scope(engine) as session:
        # Due dates from late 2030 land in 2031: materialise it too.
        assert ensure_calendars(session, OFFICES, 2024, 2031) == sorted(OFFICES)

    calendars = {office: calendar_for(*inputs) for office, inputs in OFFICES.items()}
    in_range = DAY.c.day.between(FIRST, LAST)
    with engine.connect() as connection:
        rows = connection.execute(
            select(DAY.c.office, DAY.c.day, DAY.c.ordinal, DAY.c.is_business).where(in_range)
        ).all()
        assert len(rows) == len(OFFICES) * len(_days(FIRST, LAST))
        for office, day, ordinal, is_business in rows:
            calendar = calendars[office]
            assert (ordinal, bool(is_business)) == (
                calendar.ordinal(day),
                calendar.is_business_day(day),
            ), (office, day)

        for target in (1, 10, 20):
            due_dates = connection.execute(
                select(DAY.c.office, DAY.c.day, due_on_sql(DAY.c.office, DAY.c.day, target)).where(
                    in_range
                )
            ).all()
            assert len(due_dates) == len(rows)
            mismatches = [
                (office, start, due)
                for office, start, due in due_dates
                if due != calendars[office].add_business_days(start, target)
            ]
            assert mismatches == [], target

        # Targets read from a column, as bulk routing does.
        per_row_target = (func.abs(DAY.c.ordinal) % 40) + 1
        due_dates = connection.execute(
            select(
                DAY.c.office,
                DAY.c.day,
                per_row_target,
                due_on_sql(DAY.c.office, DAY.c.day, per_row_target),
            ).where(in_range)
        ).all()
        assert all(
            due == calendars[office].add_business_days(start, target)
            for office, start, target, due in due_dates
        )

        anchor = bindparam("anchor", date(2027, 3, 26), type_=DAY.c.day.type)
        counts = connection.execute(
            select(
                DAY.c.office,
                DAY.c.day,
                business_days_between_sql(DAY.c.office, anchor, DAY.c.day),
                business_days_between_sql(DAY.c.office, DAY.c.day, anchor),
            ).where(in_range)
        ).all()
        for office, day, forward, backward in counts:
            expected = calendars[office].business_days_between(date(2027, 3, 26), day)
            assert (forward, backward) == (expected, -expected), (office, day)


def test_known_days_in_sql(engine: Engine) -> None:
    with session_scope(engine) as session:
        ensure_calendars(session, OFFICES, 2026, 2026)
    with engine.connect() as connection:

        def ordinal(office: str, day: date) -> int:
            return connection.execute(
                select(ordinal_sql(bindparam("o", office), bindparam("d", day)))
            ).scalar_one()

        def due(office: str, day: date, target: int) -> date:
            return connection.execute(
                select(due_on_sql(bindparam("o", office), bindparam("d", day), target))
            ).scalar_one()

        # 1-10 April 2026: six business days in Moselle, seven in Paris.
        assert ordinal("OFF-57", date(2026, 4, 10)) - ordinal("OFF-57", date(2026, 3, 31)) == 6
        assert ordinal("OFF-75", date(2026, 4, 10)) - ordinal("OFF-75", date(2026, 3, 31)) == 7
        assert due("OFF-02", date(2026, 4, 2), 1) == date(2026, 4, 3)
        assert due("OFF-67", date(2026, 4, 2), 1) == date(2026, 4, 7)
        assert due("OFF-18", date(2026, 12, 23), 1) == date(2026, 12, 28)  # closed on the 24th
        # Outside the materialised range the answer is NULL, never a wrong date.
        assert due("OFF-75", date(2026, 12, 31), 5) is None
        assert due("OFF-UNKNOWN", date(2026, 6, 1), 5) is None


def test_only_changed_offices_are_rebuilt(engine: Engine) -> None:
    offices = {"OFF-75": OFFICES["OFF-75"], "OFF-57": OFFICES["OFF-57"]}
    with session_scope(engine) as session:
        assert ensure_calendars(session, offices, 2026, 2027) == ["OFF-57", "OFF-75"]
        assert ensure_calendars(session, offices, 2026, 2027) == []
        # A narrower request is already covered.
        assert ensure_calendars(session, offices, 2027, 2027) == []
        assert count_calendar_rows(session, "OFF-75") == 365 * 2

    # A new closure rebuilds that office only, with the closure taken into account.
    closed = date(2026, 7, 13)
    offices["OFF-75"] = ("75", frozenset({closed}))
    with session_scope(engine) as session:
        assert ensure_calendars(session, offices, 2026, 2027) == ["OFF-75"]
    with engine.connect() as connection:
        is_business = connection.execute(
            select(DAY.c.is_business).where(DAY.c.office == "OFF-75", DAY.c.day == closed)
        ).scalar_one()
        assert not is_business
        fingerprint = connection.execute(
            select(SPAN.c.fingerprint).where(SPAN.c.office == "OFF-75")
        ).scalar_one()
        assert fingerprint == calendar_fingerprint(
            "75", frozenset({closed}), date(2026, 1, 1), date(2027, 12, 31)
        )

    # More years: only the missing days are added, and ranges never shrink.
    with session_scope(engine) as session:
        assert ensure_calendars(session, offices, 2025, 2028) == ["OFF-57", "OFF-75"]
        assert materialised_range(session, "OFF-57") == (date(2025, 1, 1), date(2028, 12, 31))
        assert count_calendar_rows(session, "OFF-57") == 365 * 3 + 366
        assert ensure_calendars(session, offices, 2026, 2026) == []
        assert materialised_range(session, "OFF-57") == (date(2025, 1, 1), date(2028, 12, 31))

    # A department change rebuilds the office with the new holidays.
    offices["OFF-57"] = ("02", frozenset())
    with session_scope(engine) as session:
        assert ensure_calendars(session, offices, 2026, 2026) == ["OFF-57"]
        assert count_calendar_rows(session, "OFF-57") == 365 * 3 + 366
    with engine.connect() as connection:
        good_friday = connection.execute(
            select(DAY.c.is_business).where(DAY.c.office == "OFF-57", DAY.c.day == date(2026, 4, 3))
        ).scalar_one()
        assert good_friday


def test_rows_match_after_incremental_growth(engine: Engine) -> None:
    offices = {"OFF-68": OFFICES["OFF-68"]}
    with session_scope(engine) as session:
        ensure_calendars(session, offices, 2027, 2027)
        ensure_calendars(session, offices, 2024, 2029)
    calendar = calendar_for("68")
    with engine.connect() as connection:
        rows = connection.execute(
            select(DAY.c.day, DAY.c.ordinal, DAY.c.is_business)
            .where(DAY.c.office == "OFF-68")
            .order_by(DAY.c.day)
        ).all()
    assert [row.day for row in rows] == _days(date(2024, 1, 1), date(2029, 12, 31))
    assert all(
        (row.ordinal, bool(row.is_business))
        == (calendar.ordinal(row.day), calendar.is_business_day(row.day))
        for row in rows
    )


def test_office_calendars_read_the_reference_tables(engine: Engine) -> None:
    with Session(engine) as session:
        session.add_all(
            [
                Directorate(code="DRFIP75", name="DRFiP Paris", department="75"),
                Directorate(code="DDFIP57", name="DDFiP de la Moselle", department="57"),
            ]
        )
        session.flush()
        session.add_all(
            [
                Sie(
                    code="SIE-75-08",
                    name="SIE Paris 8e",
                    directorate_code="DRFIP75",
                    department="75",
                ),
                Sie(
                    code="SIE-57-METZ", name="SIE Metz", directorate_code="DDFIP57", department="57"
                ),
                RemoteService(
                    code="ANT-57-FORBACH",
                    name="Antenne de Forbach",
                    town="Forbach",
                    department="57",
                    host_directorate_code="DDFIP57",
                    agents=25,
                ),
                Closure(office="ANT-57-FORBACH", day=CHRISTMAS_EVE_2026, reason="Fermeture"),
            ]
        )
        session.commit()

    with session_scope(engine) as session:
        assert office_calendars(session) == {
            "ANT-57-FORBACH": ("57", frozenset({CHRISTMAS_EVE_2026})),
            "SIE-57-METZ": ("57", frozenset()),
            "SIE-75-08": ("75", frozenset()),
        }
        assert ensure_calendar_years(session, 2026, 2027) == [
            "ANT-57-FORBACH",
            "SIE-57-METZ",
            "SIE-75-08",
        ]
    with session_scope(engine) as session:
        assert ensure_calendar_years(session, 2026, 2027) == []
        assert count_calendar_rows(session, "ANT-57-FORBACH") == 365 * 2

    with engine.connect() as connection:
        forbach, metz = (
            connection.execute(
                select(DAY.c.is_business).where(
                    DAY.c.office == office, DAY.c.day == CHRISTMAS_EVE_2026
                )
            ).scalar_one()
            for office in ("ANT-57-FORBACH", "SIE-57-METZ")
        )
        assert (bool(forbach), bool(metz)) == (False, True)


def test_years_must_be_in_order(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(ValueError, match="after"):
        ensure_calendars(session, OFFICES, 2027, 2026)


def test_concurrent_builds_do_not_collide(engine: Engine) -> None:
    offices = {office: OFFICES[office] for office in ("OFF-75", "OFF-57", "OFF-18")}
    start = threading.Barrier(3)

    def build() -> list[str]:
        start.wait()
        with session_scope(engine) as session:
            return ensure_calendars(session, offices, 2025, 2027)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = [future.result() for future in [pool.submit(build) for _ in range(3)]]
    # Each office is built once, by whichever run got the lock first.
    assert sorted(office for result in results for office in result) == sorted(offices)
    with session_scope(engine) as session:
        for office in offices:
            assert count_calendar_rows(session, office) == 365 * 3
