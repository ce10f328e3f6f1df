"""The deployment schedules, checked offline with the cron engine of the Prefect server.

The dates come from ``prefect.server.schemas.schedules.CronSchedule.get_dates``, the code the
scheduler itself runs, so daylight-saving handling is Prefect's own, not a re-implementation.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from prefect.schedules import Schedule
from prefect.server.schemas.schedules import CronSchedule

from deployments.schedules import BUSINESS_HOURS_SCAN, MONTHLY_REPORT, NIGHTLY

PARIS = ZoneInfo("Europe/Paris")
#: Daylight-saving changes in France: clocks go forward on the last Sunday of March and
#: back on the last Sunday of October.
DST_CHANGES = (date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31))


def run_times(schedule: Schedule, first_day: date, last_day: date) -> list[datetime]:
    """Every run of ``schedule`` from ``first_day`` 00:00 to ``last_day`` 23:59:59, Paris time."""
    assert schedule.cron is not None
    cron = CronSchedule(cron=schedule.cron, timezone=schedule.timezone, day_or=schedule.day_or)
    start = datetime.combine(first_day, time(0, 0), tzinfo=PARIS)
    end = datetime.combine(last_day, time(23, 59, 59), tzinfo=PARIS)
    dates = asyncio.run(cron.get_dates(n=5000, start=start, end=end))
    # Plain datetimes (Prefect may hand back pendulum objects), converted through the instant.
    return [datetime.fromtimestamp(moment.timestamp(), tz=PARIS) for moment in dates]


def days_between(first_day: date, last_day: date) -> list[date]:
    """Every calendar day from ``first_day`` to ``last_day`` included."""
    return [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]


def nightly_problems(runs: list[datetime], first_day: date, last_day: date) -> list[str]:
    """What breaks "exactly one run per local day, at 01:30 local"."""
    per_day = Counter(run.date() for run in runs)
    problems = [
        f"{day}: {per_day[day]} runs"
        for day in days_between(first_day, last_day)
        if per_day[day] != 1
    ]
    problems += [f"{run.isoformat()}: not at 01:30" for run in runs if run.time() != time(1, 30)]
    return problems


def test_schedules_carry_the_paris_timezone() -> None:
    for schedule in (NIGHTLY, BUSINESS_HOURS_SCAN, MONTHLY_REPORT):
        assert schedule.timezone == "Europe/Paris"
    assert (NIGHTLY.cron, BUSINESS_HOURS_SCAN.cron, MONTHLY_REPORT.cron) == (
        "30 1 * * *",
        "0 8-18 * * 1-5",
        "0 6 1 * *",
    )


def test_nightly_runs_exactly_once_per_local_day_across_2026_and_2027() -> None:
    first_day, last_day = date(2026, 1, 1), date(2027, 12, 31)
    runs = run_times(NIGHTLY, first_day, last_day)
    assert nightly_problems(runs, first_day, last_day) == []
    assert len(runs) == 730
    # The span really crosses the four clock changes: the elapsed time from the run on a
    # change day to the next one is 23 h in March and 25 h in October, 24 h otherwise.
    instants = [run.astimezone(UTC) for run in runs]
    odd_gaps = {
        runs[index].date(): later - earlier
        for index, (earlier, later) in enumerate(pairwise(instants))
        if later - earlier != timedelta(hours=24)
    }
    assert odd_gaps == {
        DST_CHANGES[0]: timedelta(hours=23),
        DST_CHANGES[1]: timedelta(hours=25),
        DST_CHANGES[2]: timedelta(hours=23),
        DST_CHANGES[3]: timedelta(hours=25),
    }


@pytest.mark.parametrize("change", DST_CHANGES, ids=str)
def test_nightly_run_on_each_clock_change_day_is_at_half_past_one(change: date) -> None:
    runs = run_times(NIGHTLY, change - timedelta(days=1), change + timedelta(days=1))
    assert [run.isoformat() for run in runs if run.date() == change] == [
        datetime.combine(change, time(1, 30), tzinfo=PARIS).isoformat()
    ]


@pytest.mark.parametrize(
    "cron, timezone",
    [
        ("30 22 * * *", "UTC"),  # 23:30 in winter, 00:30 in summer: a day skipped, one doubled
        ("30 2 * * *", "Europe/Paris"),  # in the hour that does not exist in March
    ],
)
def test_the_nightly_check_catches_badly_chosen_times(cron: str, timezone: str) -> None:
    first_day, last_day = date(2026, 1, 1), date(2027, 12, 31)
    runs = run_times(Schedule(cron=cron, timezone=timezone), first_day, last_day)
    assert nightly_problems(runs, first_day, last_day) != []


def test_business_hours_scan_runs_hourly_on_weekdays_only() -> None:
    # Two weeks around the October 2026 change, Paris wall-clock hours throughout.
    first_day, last_day = date(2026, 10, 19), date(2026, 11, 1)
    runs = run_times(BUSINESS_HOURS_SCAN, first_day, last_day)
    per_day = Counter(run.date() for run in runs)
    for day in days_between(first_day, last_day):
        assert per_day[day] == (11 if day.weekday() < 5 else 0), day
    assert {run.time() for run in runs} == {time(hour, 0) for hour in range(8, 19)}


def test_monthly_report_runs_at_six_on_the_first_of_each_month() -> None:
    runs = run_times(MONTHLY_REPORT, date(2026, 1, 1), date(2027, 12, 31))
    assert [(run.year, run.month) for run in runs] == [
        (year, month) for year in (2026, 2027) for month in range(1, 13)
    ]
    assert {(run.day, run.time()) for run in runs} == {(1, time(6, 0))}
