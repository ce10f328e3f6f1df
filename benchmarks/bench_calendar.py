"""Benchmark of the business calendar and SLA clock on a million work items.

Usage::

    .venv/bin/python benchmarks/bench_calendar.py [--items 1000000] [--sql [--database-url URL]]

Times, for ``--items`` (start day, target, office calendar) triples spread over offices in
several departments (with and without closures): building the calendars, the due dates
(``add_business_days``), the business days between pairs of dates, and the SLA status. With
``--sql`` it also times materialising the ``calendar_day`` table for 132 offices over eight
years (the step bulk SQL runs before computing due dates), in a temporary SQLite database or
in the empty database given by ``--database-url``.
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from relais.domain.calendar import BusinessCalendar, calendar_for
from relais.domain.sla import sla_status

T = TypeVar("T")

# Exporting and hosting departments, Alsace-Moselle included.
DEPARTMENTS = ("75", "13", "69", "59", "33", "67", "57", "68", "18", "02", "55", "27", "85", "47")
TARGETS = (10, 10, 15, 20, 20, 20, 30, 40, 5, 60)


def _timed(label: str, action: Callable[[], T], items: int) -> T:
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    rate = f", {items / elapsed:,.0f} items/s" if items else ""
    print(f"{label:<46} {elapsed:8.3f} s{rate}")
    return result


def _offices(rng: random.Random) -> list[BusinessCalendar]:
    """One calendar per department, plus a few offices with their own closure days."""
    calendars = [calendar_for(department) for department in DEPARTMENTS]
    for department in DEPARTMENTS[:6]:
        closures = frozenset(
            date(2024, 1, 1) + timedelta(days=rng.randrange(4 * 365)) for _ in range(8)
        )
        calendars.append(calendar_for(department, closures))
    return calendars


def bench_python(count: int, seed: int) -> None:
    """Time the pure-Python calendar operations on ``count`` items."""
    rng = random.Random(seed)
    calendars = _offices(rng)
    first = date(2024, 1, 1).toordinal()
    starts = [date.fromordinal(first + rng.randrange(4 * 365)) for _ in range(count)]
    targets = [rng.choice(TARGETS) for _ in range(count)]
    holders = [rng.choice(calendars) for _ in range(count)]
    as_of = date(2026, 6, 15)

    def build_tables() -> None:
        # Tables are built on first use; build them over the whole range so that the timings
        # below are the steady state of a long-running process.
        for calendar in calendars:
            calendar.add_business_days(date(2027, 12, 31), 60)

    _timed(f"build tables ({len(calendars)} offices, 2000-2029)", build_tables, 0)

    def due_dates() -> list[date]:
        return [
            calendar.add_business_days(start, target)
            for start, target, calendar in zip(starts, targets, holders, strict=True)
        ]

    due = _timed(f"due dates ({count:,} items)", due_dates, count)

    def between() -> list[int]:
        return [
            calendar.business_days_between(start, end)
            for start, end, calendar in zip(starts, due, holders, strict=True)
        ]

    counted = _timed(f"business days between ({count:,} pairs)", between, count)
    assert counted == targets, "business_days_between does not invert add_business_days"

    def statuses() -> int:
        open_items = 0
        for due_on, target, calendar in zip(due, targets, holders, strict=True):
            status = sla_status(
                state="in_progress",
                due_on=due_on,
                target_business_days=target,
                completed_on=None,
                as_of=as_of,
                calendar=calendar,
            )
            open_items += status is not None
        return open_items

    _timed(f"SLA status ({count:,} items)", statuses, count)


def bench_sql(years: tuple[int, int], database_url: str | None) -> None:
    """Time materialising calendar_day for 132 offices (temporary SQLite unless a URL is given).

    A given database must be empty of these offices' calendars: they are left in place.
    """
    from relais.calendars import count_calendar_rows, ensure_calendars
    from relais.db import make_engine, session_scope, upgrade

    offices: dict[str, tuple[str, frozenset[date]]] = {
        f"SIE-{n:03d}": (DEPARTMENTS[n % 8], frozenset()) for n in range(120)
    }
    offices |= {
        f"ANT-{n:02d}": (DEPARTMENTS[8 + n % 6], frozenset({date(2026, 12, 24)})) for n in range(12)
    }
    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(database_url or f"sqlite:///{Path(directory) / 'bench.db'}")
        upgrade(engine)

        def build() -> None:
            with session_scope(engine) as session:
                ensure_calendars(session, offices, *years)

        label = f"materialise {len(offices)} offices {years[0]}-{years[1]} ({engine.dialect.name})"
        _timed(label, build, 0)
        _timed("ensure again (nothing to do)", build, 0)
        with session_scope(engine) as session:
            rows = sum(count_calendar_rows(session, office) for office in offices)
        print(f"{'calendar_day rows':<46} {rows:>10,}")
        engine.dispose()


def main() -> None:
    """Parse arguments and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20260401)
    parser.add_argument("--sql", action="store_true", help="also time the SQL materialisation")
    parser.add_argument("--database-url", help="with --sql: an empty database instead of SQLite")
    arguments = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {date.today()}")
    bench_python(arguments.items, arguments.seed)
    if arguments.sql:
        bench_sql((2024, 2031), arguments.database_url)


if __name__ == "__main__":
    main()
