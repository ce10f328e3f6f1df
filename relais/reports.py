"""Monthly convention reports (SPEC §8), rebuilt from the item history alone.

For a convention and a month, per SIE × process:

* ``assigned``: items with an ``assigned`` event under the convention dated in the month
  (an item reassigned within the month counts once);
* ``completed``: items completed in the month while held under the convention;
* ``backlog``: items held under the convention and still open at the end of the month's last day;
* ``median_business_days`` / ``p90_business_days``: business days from the assignment date to
  the completion date of the month's completions, in the calendar of the holder (linear
  interpolation between ranks, one decimal);
* ``share_met``: share of the month's completions done on or before their due date;
* ``open_breaches`` / ``legal_breaches``: backlog items past their due date (suspended ones
  excepted) / past their legal deadline, at the end of the month's last day.

Only events dated up to the end of the month are read and the item state is replayed from them,
so a month's figures do not change when later events are recorded. The business date of an
event is the local date of its time in the offices' zone.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Any, Final

from sqlalchemy import and_, not_, select
from sqlmodel import Session, col

from models.tables import ConventionVersion, ItemEvent, RemoteService, WorkItem
from relais.calendars import office_calendars
from relais.conventions import sie_directorates, stored_versions
from relais.csvcells import safe_cell
from relais.domain.calendar import BusinessCalendar, calendar_for
from relais.domain.catalogue import CATALOGUE, process_info
from relais.domain.conventions import Period, VersionSpec, in_force_periods
from relais.domain.sla import CANCELLED, COMPLETED, SUSPENDED
from relais.errors import NotFoundError, ValidationError

_MONTH_RE: Final = re.compile(r"^(\d{4})-(\d{2})$")
#: States of an item held by someone and not finished (a backlog item).
_HELD_OPEN_STATES: Final = frozenset({"assigned", "in_progress", "suspended"})
#: Columns of the CSV report, in order (also the keys of each JSON row).
CSV_COLUMNS: Final = (
    "sie",
    "process",
    "target_business_days",
    "assigned",
    "completed",
    "backlog",
    "median_business_days",
    "p90_business_days",
    "share_met",
    "open_breaches",
    "legal_breaches",
)


@dataclass(slots=True)
class ReportRow:
    """The figures of one SIE × process for the month."""

    sie: str
    process: str
    process_label: str
    target_business_days: int | None
    assigned: int = 0
    completed: int = 0
    backlog: int = 0
    median_business_days: float | None = None
    p90_business_days: float | None = None
    share_met: float | None = None
    open_breaches: int = 0
    legal_breaches: int = 0
    # Raw material of the statistics, not part of the output.
    durations: list[int] = field(default_factory=list, repr=False)
    met: int = field(default=0, repr=False)

    def finish(self) -> None:
        """Compute the statistics from the completions gathered."""
        self.median_business_days = percentile(self.durations, 0.5)
        self.p90_business_days = percentile(self.durations, 0.9)
        self.share_met = round(self.met / self.completed, 3) if self.completed else None

    def as_dict(self) -> dict[str, Any]:
        """The row as it appears in the JSON report."""
        values = asdict(self)
        del values["durations"], values["met"]
        return values


@dataclass(slots=True)
class ConventionReport:
    """A convention's report for one month."""

    convention: str
    title: str | None
    month: str
    first_day: date
    last_day: date
    service: str
    service_name: str
    exporting_directorate: str
    host_directorate: str
    versions: list[int]
    rows: list[ReportRow]
    totals: ReportRow

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of the report (dates as ISO strings)."""
        return {
            "convention": self.convention,
            "title": self.title,
            "month": self.month,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "service": self.service,
            "service_name": self.service_name,
            "exporting_directorate": self.exporting_directorate,
            "host_directorate": self.host_directorate,
            "versions": self.versions,
            "rows": [row.as_dict() for row in self.rows],
            "totals": {
                key: value
                for key, value in self.totals.as_dict().items()
                if key not in ("sie", "process", "process_label", "target_business_days")
            },
        }


def parse_month(text: str) -> date:
    """The first day of the month written ``YYYY-MM``."""
    match = _MONTH_RE.fullmatch(text.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValidationError(f"invalid month {text[:20]!r}: expected YYYY-MM, e.g. 2026-11")
    year = int(match.group(1))
    if not 1900 <= year <= 2190:
        raise ValidationError(f"invalid month {text[:20]!r}: the year must be 1900–2190")
    return date(year, int(match.group(2)), 1)


def month_bounds(first_day: date) -> tuple[date, date]:
    """The first and last day of the month starting on ``first_day``."""
    following = next_month(first_day)
    return first_day, date.fromordinal(following.toordinal() - 1)


def next_month(first_day: date) -> date:
    """The first day of the following month."""
    return date(first_day.year + first_day.month // 12, first_day.month % 12 + 1, 1)


def percentile(values: Sequence[int], fraction: float) -> float | None:
    """The ``fraction`` quantile with linear interpolation between ranks (None when empty).

    The same definition as spreadsheets' PERCENTILE / CENTILE.INCLUS: the median of
    [2, 4, 9, 10] is 6.5 and its 90th percentile 9.7.
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 1)


def _versions_in_month(specs: Sequence[VersionSpec], first_day: date) -> list[VersionSpec]:
    """The versions in force (supersession applied) on at least one day of the month."""
    periods = in_force_periods(specs)
    month = Period(first_day, next_month(first_day))
    return [spec for spec in specs if periods[spec.key].first_common_day(month) is not None]


def _perimeter(
    versions: Sequence[VersionSpec], sie_directorates: dict[str, str]
) -> dict[tuple[str, str], int]:
    """(SIE, process) pairs of ``versions`` with their target (the latest version's wins)."""
    pairs: dict[tuple[str, str], int] = {}
    for version in versions:
        for line in version.lines:
            sies = line.sies
            if sies is None:  # an ``all`` line: the exporting directorate's SIEs
                sies = frozenset(
                    sie
                    for sie, directorate in sie_directorates.items()
                    if directorate == version.exporting_directorate
                )
            target = (
                line.target_business_days or process_info(line.process).default_target_business_days
            )
            for sie in sies:
                pairs[(sie, line.process)] = target
    return pairs


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def build_report(
    session: Session, *, convention_id: str, month: str, zone: tzinfo
) -> ConventionReport:
    """Compute the report of ``convention_id`` for ``month`` (``YYYY-MM``) from the history.

    ``zone`` is the offices' time zone (``get_settings().timezone``): it turns event times
    into business dates. Raises ``NotFoundError`` for an unknown convention and
    ``ValidationError`` for a malformed month.
    """
    first_day, last_day = month_bounds(parse_month(month))
    versions = stored_versions(session, convention_id=convention_id)
    if not versions:
        raise NotFoundError(f"no convention {convention_id}")
    in_month = _versions_in_month(versions, first_day)
    # The report is about the version(s) in force in the month; before or after the
    # convention's life, the nearest version names the service and the parties.
    reference = (in_month or [v for v in versions if v.effective_from <= last_day] or versions)[-1]
    service = session.get(RemoteService, reference.service)
    stored = session.get(ConventionVersion, (reference.convention_id, reference.version))

    start = _local_midnight(first_day, zone)
    cutoff = _local_midnight(next_month(first_day), zone)
    rows: dict[tuple[str, str], ReportRow] = {}

    def row_for(sie: str, process: str, target: int | None = None) -> ReportRow:
        key = (sie, process)
        if key not in rows:
            label = CATALOGUE[process].label if process in CATALOGUE else process
            rows[key] = ReportRow(
                sie=sie, process=process, process_label=label, target_business_days=target
            )
        return rows[key]

    for (sie, process), target in _perimeter(in_month, sie_directorates(session)).items():
        row_for(sie, process, target)

    calendars = {
        office: calendar_for(department, closures)
        for office, (department, closures) in office_calendars(session).items()
    }
    for item, events in _histories(
        session, convention_id=convention_id, start=start, cutoff=cutoff
    ):
        _replay(
            item,
            events,
            row=row_for(item.sie_code, item.process),
            convention_id=convention_id,
            first_day=first_day,
            last_day=last_day,
            zone=zone,
            calendars=calendars,
        )

    ordered = [rows[key] for key in sorted(rows)]
    totals = ReportRow(sie="", process="", process_label="Total", target_business_days=None)
    for row in ordered:
        row.finish()
        for name in ("assigned", "completed", "backlog", "open_breaches", "legal_breaches", "met"):
            setattr(totals, name, getattr(totals, name) + getattr(row, name))
        totals.durations.extend(row.durations)
    totals.finish()
    return ConventionReport(
        convention=convention_id,
        title=stored.title if stored else None,
        month=f"{first_day:%Y-%m}",
        first_day=first_day,
        last_day=last_day,
        service=reference.service,
        service_name=service.name if service else reference.service,
        exporting_directorate=reference.exporting_directorate,
        host_directorate=reference.host_directorate,
        versions=[v.version for v in in_month],
        rows=ordered,
        totals=totals,
    )


@dataclass(frozen=True, slots=True)
class _Item:
    id: int
    sie_code: str
    process: str
    legal_due_on: date | None


def _histories(
    session: Session, *, convention_id: str, start: datetime, cutoff: datetime
) -> Iterable[tuple[_Item, list[Any]]]:
    """Items ever assigned under the convention before ``cutoff``, with their events before it.

    Items already completed or cancelled before ``start`` are left out: final states do not
    change, so they count in no figure of the month.
    """
    connection = session.connection()
    under_convention = (
        select(col(ItemEvent.item_id))
        .where(
            col(ItemEvent.convention_id) == convention_id,
            col(ItemEvent.event) == "assigned",
            col(ItemEvent.at) < cutoff,
        )
        .distinct()
    )
    relevant = (
        select(
            col(WorkItem.id),
            col(WorkItem.sie_code),
            col(WorkItem.process),
            col(WorkItem.legal_due_on),
        )
        .where(col(WorkItem.id).in_(under_convention))
        .where(
            not_(
                and_(
                    col(WorkItem.state).in_((COMPLETED, CANCELLED)),
                    col(WorkItem.last_event_at) < start,
                )
            )
        )
    )
    items = {
        row.id: _Item(row.id, row.sie_code, row.process, row.legal_due_on)
        for row in connection.execute(relevant)
    }
    if not items:
        return
    events = connection.execute(
        select(
            col(ItemEvent.item_id),
            col(ItemEvent.event),
            col(ItemEvent.at),
            col(ItemEvent.to_state),
            col(ItemEvent.assignee),
            col(ItemEvent.convention_id),
            col(ItemEvent.as_of),
            col(ItemEvent.due_on),
        )
        .where(col(ItemEvent.item_id).in_(relevant.with_only_columns(col(WorkItem.id))))
        .where(col(ItemEvent.at) < cutoff)
        .order_by(col(ItemEvent.item_id), col(ItemEvent.at), col(ItemEvent.id))
    )
    current: int | None = None
    batch: list[Any] = []
    for event in events:
        if event.item_id != current:
            if current is not None:
                yield items[current], batch
            current, batch = event.item_id, []
        batch.append(event)
    if current is not None:
        yield items[current], batch


def _replay(
    item: _Item,
    events: Sequence[Any],
    *,
    row: ReportRow,
    convention_id: str,
    first_day: date,
    last_day: date,
    zone: tzinfo,
    calendars: dict[str, BusinessCalendar],
) -> None:
    """Replay one item's history up to the month's end and add it to ``row``."""
    state: str | None = None
    convention: str | None = None
    holder: str | None = None
    assigned_on: date | None = None
    due_on: date | None = None
    assigned_in_month = False
    for event in events:
        day = event.at.astimezone(zone).date()
        if event.event == "assigned":
            convention, holder = event.convention_id, event.assignee
            assigned_on = event.as_of or day
            due_on = event.due_on
            if convention == convention_id and first_day <= day <= last_day:
                assigned_in_month = True
        elif event.due_on is not None:
            due_on = event.due_on
        state = event.to_state
        if event.event == "complete" and convention == convention_id and day >= first_day:
            row.completed += 1
            if due_on is not None and day <= due_on:
                row.met += 1
            calendar = calendars.get(holder or "")
            if calendar is not None and assigned_on is not None:
                row.durations.append(calendar.business_days_between(assigned_on, day))
    if assigned_in_month:
        row.assigned += 1
    if state in _HELD_OPEN_STATES and convention == convention_id:
        row.backlog += 1
        if state != SUSPENDED and due_on is not None and last_day > due_on:
            row.open_breaches += 1
        if item.legal_due_on is not None and last_day > item.legal_due_on:
            row.legal_breaches += 1


# --- rendering ----------------------------------------------------------------------------


def render_json(report: ConventionReport) -> str:
    """The report as one JSON document (stable key order, so identical months compare equal)."""
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n"


def render_csv(report: ConventionReport) -> str:
    """The report as CSV: UTF-8 with BOM, ``;``-separated, one line per SIE × process."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        values = row.as_dict()
        writer.writerow([safe_cell(values[name]) for name in CSV_COLUMNS])
    return "\ufeff" + buffer.getvalue()


def render_html(report: ConventionReport) -> str:
    """The report as one self-contained HTML page with inline SVG charts."""
    from relais.rendering import environment
    from relais.svgchart import bar_chart

    labels = [f"{row.sie} · {row.process_label}" for row in report.rows]
    volumes = bar_chart(
        labels,
        [
            ("Affectés", "#4e79a7", [row.assigned for row in report.rows]),
            ("Traités", "#59a14f", [row.completed for row in report.rows]),
            ("Stock fin de mois", "#f28e2b", [row.backlog for row in report.rows]),
        ],
        title="Volumes par SIE et processus",
    )
    delays = bar_chart(
        labels,
        [
            ("Médiane", "#76b7b2", [row.median_business_days for row in report.rows]),
            ("90e centile", "#e15759", [row.p90_business_days for row in report.rows]),
        ],
        title="Délai de traitement (jours ouvrés)",
        markers=[row.target_business_days for row in report.rows],
        marker_label="Cible",
    )
    template = environment().get_template("report.html")
    return template.render(report=report, charts=[volumes, delays])


def render(report: ConventionReport, output_format: str) -> str:
    """The report in ``output_format`` (``json``, ``csv`` or ``html``)."""
    renderers = {"json": render_json, "csv": render_csv, "html": render_html}
    try:
        return renderers[output_format](report)
    except KeyError:
        raise ValidationError(f"unknown report format {output_format!r}") from None


def conventions_in_force(session: Session, *, month: str) -> list[str]:
    """Ids of the conventions with a version in force on at least one day of ``month``."""
    first_day = parse_month(month)
    return sorted(
        {spec.convention_id for spec in _versions_in_month(stored_versions(session), first_day)}
    )


def previous_month(today: date) -> str:
    """The month before ``today``'s, as ``YYYY-MM`` (what the monthly run reports on)."""
    last_day_before = date.fromordinal(today.replace(day=1).toordinal() - 1)
    return f"{last_day_before:%Y-%m}"


#: Reports name taxpayers nowhere, but they are internal documents: owner and group only.
REPORT_FILE_MODE: Final = 0o640
REPORT_DIR_MODE: Final = 0o750


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with ``REPORT_FILE_MODE`` permissions."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, REPORT_FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.chmod(temporary, REPORT_FILE_MODE)  # the umask may have narrowed or the file pre-existed
    os.replace(temporary, path)


def write_report_files(report: ConventionReport, reports_dir: Path) -> list[Path]:
    """Write the report as ``<dir>/<convention>/<YYYY-MM>.{html,json,csv}``; return the paths."""
    directory = reports_dir / report.convention
    for folder in (reports_dir, directory):
        folder.mkdir(mode=REPORT_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(folder, REPORT_DIR_MODE)
    paths = []
    for output_format in ("html", "json", "csv"):
        path = directory / f"{report.month}.{output_format}"
        _write_private(path, render(report, output_format))
        paths.append(path)
    return paths


#: The counts a run's summary shows per convention.
SUMMARY_COLUMNS: Final = ("assigned", "completed", "backlog", "open_breaches", "legal_breaches")


def summary_markdown(month: str, results: list[dict[str, Any]]) -> str:
    """The run's artifact: one line of counts per convention (no item, no taxpayer data)."""
    lines = [
        f"# Rapports mensuels des conventions – {month}",
        "",
        "| convention | lignes | " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(SUMMARY_COLUMNS),
    ]
    for result in results:
        counts = " | ".join(str(result[name]) for name in SUMMARY_COLUMNS)
        lines.append(f"| {result['convention']} | {result['rows']} | {counts} |")
    if not results:
        lines.append("| (aucune convention en vigueur) | 0 |" + " 0 |" * len(SUMMARY_COLUMNS))
    return "\n".join(lines) + "\n"
