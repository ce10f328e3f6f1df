"""When the Relais deployments run, as named constants (all in Europe/Paris wall time).

A plain ``cron=`` string would be read as UTC and drift by an hour twice a year; each
schedule here carries its timezone. 01:30 stays clear of the 02:00–03:00 hour that
daylight-saving changes skip or repeat, so the nightly cycle runs exactly once a day.
"""

from __future__ import annotations

from prefect.schedules import Cron, Schedule

#: The zone of the offices' working days: schedules follow French wall-clock time.
SCHEDULE_TIMEZONE = "Europe/Paris"

#: Intake, routing and SLA scan, every night at 01:30.
NIGHTLY: Schedule = Cron("30 1 * * *", timezone=SCHEDULE_TIMEZONE)

#: An SLA scan every hour from 08:00 to 18:00, Monday to Friday.
BUSINESS_HOURS_SCAN: Schedule = Cron("0 8-18 * * 1-5", timezone=SCHEDULE_TIMEZONE)

#: The convention reports of the previous month, at 06:00 on the 1st.
MONTHLY_REPORT: Schedule = Cron("0 6 1 * *", timezone=SCHEDULE_TIMEZONE)
