"""Work items in the database: lifecycle events, event files and the detail of one item.

Shared by the CLI (``relais items ...``) and the API. Each event locks its item's row for the
rest of the transaction, so two people posting on the same item at the same moment are
serialised: the second sees the first one's state and is accepted or refused on that basis,
and no event is ever lost.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models.tables import Closure, EventImportRow, ItemEvent, RemoteService, Sie, WorkItem
from relais.calendars import ensure_calendar_years
from relais.csvcells import safe_cell
from relais.db import get_engine, session_scope
from relais.domain.calendar import MAX_YEAR, MIN_YEAR, BusinessCalendar, calendar_for
from relais.domain.catalogue import CATALOGUE
from relais.domain.lifecycle import (
    ItemClock,
    LifecycleEvent,
    Transition,
    parse_at,
    parse_event,
    plan_transition,
)
from relais.domain.sla import OPEN_STATES, is_legal_breached, sla_status
from relais.errors import ConfigurationError, NotFoundError, RelaisError, ValidationError
from relais.settings import get_settings

_items = WorkItem.__table__  # type: ignore[attr-defined]
_closures = Closure.__table__  # type: ignore[attr-defined]
_sies = Sie.__table__  # type: ignore[attr-defined]
_services = RemoteService.__table__  # type: ignore[attr-defined]
_events = ItemEvent.__table__  # type: ignore[attr-defined]
_ledger = EventImportRow.__table__  # type: ignore[attr-defined]

#: Event files are typed or exported by people: anything near this size is a mistake.
MAX_EVENTS_FILE_BYTES: Final = 50 * 1024 * 1024
EVENTS_COLUMNS: Final = ("sie", "reference", "event", "at", "reason")
REQUIRED_COLUMNS: Final = ("sie", "reference", "event")
#: Spreadsheets run a cell starting with one of these as a formula.


# --- one event ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppliedEvent:
    """An event accepted and recorded on an item."""

    sie: str
    reference: str
    event: str
    from_state: str
    to_state: str
    at: datetime
    due_on: date | None
    due_on_before: date | None
    completed_on: date | None
    #: The id of the history entry (``item_event``) that records it.
    event_id: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (times in the offices' zone)."""
        return {
            "sie": self.sie,
            "reference": self.reference,
            "event": self.event,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "at": self.at.astimezone(get_settings().timezone).isoformat(),
            "due_on": self.due_on,
            "due_on_before": self.due_on_before,
            "completed_on": self.completed_on,
        }


def _connection(session: Session | Connection) -> Connection:
    # Core statements go through the connection (SQLModel's Session.execute is deprecated).
    return session if isinstance(session, Connection) else session.connection()


def _lock_item(connection: Connection, sie: str, reference: str) -> Row[Any]:
    """Read the item's row, locked against concurrent events until the transaction ends."""
    key = (_items.c.sie_code == sie) & (_items.c.reference == reference)
    query = select(_items).where(key)
    if connection.dialect.name == "postgresql":
        row = connection.execute(query.with_for_update()).first()
    else:
        # SQLite has no row locks: a write as the transaction's first statement takes the
        # database's write lock (waiting for other writers), so the read below is current and
        # nobody can change the item before we commit.
        connection.execute(update(_items).where(key).values(last_event_at=_items.c.last_event_at))
        row = connection.execute(query).first()
    if row is None:
        raise NotFoundError(f"unknown item {sie}/{reference}")
    return row


def holder_calendar(session: Session | Connection, holder: str | None) -> BusinessCalendar | None:
    """The business calendar of the office ``holder`` (its department and closures)."""
    if holder is None:
        return None
    connection = _connection(session)
    department = connection.execute(
        select(_services.c.department).where(_services.c.code == holder)
    ).scalar()
    if department is None:
        department = connection.execute(
            select(_sies.c.department).where(_sies.c.code == holder)
        ).scalar()
    if department is None:
        return None
    closures = connection.execute(
        select(_closures.c.day).where(_closures.c.office == holder)
    ).scalars()
    return calendar_for(department, frozenset(closures))


def apply_event(
    session: Session | Connection,
    *,
    sie: str,
    reference: str,
    event: str | LifecycleEvent,
    at: datetime,
    reason: str | None,
    by: str,
    now: datetime | None = None,
) -> AppliedEvent:
    """Apply a lifecycle ``event`` to item (``sie``, ``reference``) and record it in its history.

    Runs in the caller's transaction, which the caller commits. Refuses, changing nothing,
    an unknown item (``NotFoundError``), an unknown event (``ValidationError``), or an event
    that does not fit the item's state or comes before its last event (``TransitionError``).
    """
    lifecycle_event = event if isinstance(event, LifecycleEvent) else parse_event(event)
    if at.tzinfo is None:
        raise ValidationError("event times need a timezone")
    if not MIN_YEAR < at.year < MAX_YEAR:
        # Due dates move in the holder's business calendar, which covers these years only.
        raise ValidationError(
            f"event time {at.date().isoformat()} outside {MIN_YEAR + 1}-{MAX_YEAR - 1}"
        )
    reason = (reason or "").strip() or None
    connection = _connection(session)
    row = _lock_item(connection, sie, reference)
    zone = get_settings().timezone
    calendar = (
        holder_calendar(connection, row.assignee)
        if lifecycle_event is LifecycleEvent.RESUME
        else None
    )
    clock = ItemClock(
        sie=row.sie_code,
        reference=row.reference,
        state=row.state,
        last_event_at=row.last_event_at,
        due_on=row.due_on,
        suspended_on=row.suspended_on,
        completed_on=row.completed_on,
    )
    transition = plan_transition(clock, lifecycle_event, at, zone=zone, calendar=calendar)
    event_id = _record(
        connection, row, transition, reason=reason, by=by, now=now or datetime.now(UTC)
    )
    if transition.due_on_moved and transition.due_on is not None:
        # SQL queries count business days from calendar_day: make sure it reaches the new date.
        ensure_calendar_years(connection, transition.due_on.year, transition.due_on.year)
    return AppliedEvent(
        sie=row.sie_code,
        reference=row.reference,
        event=lifecycle_event.value,
        from_state=transition.from_state,
        to_state=transition.to_state,
        at=transition.at,
        due_on=transition.due_on,
        due_on_before=transition.due_on_before,
        completed_on=transition.completed_on,
        event_id=event_id,
    )


def _record(
    connection: Connection,
    row: Row[Any],
    transition: Transition,
    *,
    reason: str | None,
    by: str,
    now: datetime,
) -> int:
    """Update the item and append the event to its history; return the event's id."""
    connection.execute(
        update(_items)
        .where(_items.c.id == row.id)
        .values(
            state=transition.to_state,
            due_on=transition.due_on,
            suspended_on=transition.suspended_on,
            completed_on=transition.completed_on,
            last_event_at=transition.at,
        )
    )
    # Every event carries the assignment in force and the due date after it, so the state of
    # any item on any past day can be read from its last event before that day.
    inserted = connection.execute(
        insert(_events)
        .values(
            item_id=row.id,
            event=transition.event.value,
            at=transition.at,
            by=by[:100],
            reason=reason,
            from_state=transition.from_state,
            to_state=transition.to_state,
            assignee=row.assignee,
            assignment_kind=row.assignment_kind,
            convention_id=row.convention_id,
            convention_version=row.convention_version,
            perimeter_line_id=row.perimeter_line_id,
            as_of=transition.business_date,
            due_on=transition.due_on,
            recorded_at=now,
        )
        .returning(_events.c.id)
    )
    return int(inserted.scalar_one())


# --- the detail of one item ---------------------------------------------------------------


def legal_status(legal_due_on: date | None, state: str, as_of: date) -> str | None:
    """``legal_breached``, ``within_deadline`` (open items) or None (no deadline, or closed)."""
    if legal_due_on is None or state not in OPEN_STATES:
        return None
    return "legal_breached" if is_legal_breached(legal_due_on, as_of, state) else "within_deadline"


def item_detail(
    session: Session | Connection, *, sie: str, reference: str, as_of: date
) -> dict[str, Any]:
    """The ``items show`` document: state, holder, SLA on ``as_of``, legal deadline, history.

    History is oldest first; assignments appear as ``assigned`` events with their holder,
    convention and due date; every event shows the due date after it, and ``due_on_before``
    where it moved the due date.
    """
    connection = _connection(session)
    item = connection.execute(
        select(_items).where(_items.c.sie_code == sie, _items.c.reference == reference)
    ).first()
    if item is None:
        raise NotFoundError(f"unknown item {sie}/{reference}")
    zone = get_settings().timezone
    target = item.target_business_days or CATALOGUE[item.process].default_target_business_days
    # The holder's calendar; an item never assigned is still in its SIE's queue.
    calendar = holder_calendar(connection, item.assignee or item.sie_code)
    status = None
    if calendar is not None:
        status = sla_status(
            state=item.state,
            due_on=item.due_on,
            target_business_days=target,
            completed_on=item.completed_on,
            as_of=as_of,
            calendar=calendar,
        )
    events = connection.execute(
        select(_events).where(_events.c.item_id == item.id).order_by(_events.c.at, _events.c.id)
    ).all()
    return {
        "sie": item.sie_code,
        "reference": item.reference,
        "process": item.process,
        "state": item.state,
        "assignee": item.assignee,
        "assignment_kind": item.assignment_kind,
        "convention": item.convention_id,
        "convention_version": item.convention_version,
        "received_on": item.received_on,
        "assigned_on": item.assigned_on,
        "target_business_days": item.target_business_days,
        "due_on": item.due_on,
        "suspended_on": item.suspended_on if item.state == "suspended" else None,
        "completed_on": item.completed_on,
        "legal_due_on": item.legal_due_on,
        "as_of": as_of,
        "sla_status": status.value if status is not None else None,
        "legal_status": legal_status(item.legal_due_on, item.state, as_of),
        "history": _history(events, zone),
    }


def _history(events: Sequence[Row[Any]], zone: Any) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    due_on: date | None = None
    for event in events:
        entry: dict[str, Any] = {
            "at": event.at.astimezone(zone).isoformat(),
            "event": event.event,
            "by": event.by,
            "from_state": event.from_state,
            "to_state": event.to_state,
        }
        if event.reason:
            entry["reason"] = event.reason
        if event.event == "assigned":
            entry.update(
                assignee=event.assignee,
                assignment_kind=event.assignment_kind,
                convention=event.convention_id,
                convention_version=event.convention_version,
                as_of=event.as_of,
            )
        if event.due_on is not None or due_on is not None:
            entry["due_on"] = event.due_on
            if event.event != "assigned" and event.due_on != due_on and due_on is not None:
                entry["due_on_before"] = due_on
        due_on = event.due_on if event.due_on is not None else due_on
        history.append(entry)
    return history


# --- event files --------------------------------------------------------------------------


def write_errors_file(path: Path, rejected: list[tuple[int, str, str]]) -> None:
    """Write ``line;reference;reason`` rows (UTF-8 with BOM, ``;``) to ``path``."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        # Never writable by everyone, whatever the umask says.
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        os.fchmod(handle.fileno(), mode & ~stat.S_IWOTH)
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["line", "reference", "reason"])
        for line, reference, reason in rejected:
            writer.writerow([line, safe_cell(reference), safe_cell(reason)])


def errors_file_for(path: Path) -> Path:
    """Where the errors of an event file go: ``<file>.errors.csv`` next to it."""
    return path.with_name(path.name + ".errors.csv")


@dataclass(slots=True)
class EventRowResult:
    """What happened to one row of an event file."""

    line: int
    sie: str
    reference: str
    event: str
    result: str  # "applied" or "refused"
    state: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the row's outcome."""
        return {
            "line": self.line,
            "sie": self.sie,
            "reference": self.reference,
            "event": self.event,
            "result": self.result,
            "state": self.state,
            "reason": self.reason,
        }


@dataclass(slots=True)
class EventsImport:
    """The outcome of an event file: every row's result and where the errors were written."""

    file: Path
    rows: list[EventRowResult] = field(default_factory=list)
    errors_file: Path | None = None
    #: Rows this import found in the ledger (the same bytes were imported before): reported
    #: as recorded then, not applied again. Not part of the JSON, which equals a clean run's.
    already_recorded: int = 0

    @property
    def applied(self) -> int:
        """Rows applied."""
        return sum(1 for row in self.rows if row.result == "applied")

    @property
    def refused(self) -> int:
        """Rows refused."""
        return sum(1 for row in self.rows if row.result == "refused")

    def as_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``relais items events``."""
        return {
            "file": str(self.file),
            "applied": self.applied,
            "refused": self.refused,
            "errors_file": str(self.errors_file) if self.errors_file else None,
            "rows": [row.as_dict() for row in self.rows],
        }


def _decode(raw: bytes, name: str) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        raise ValidationError(f"{name}: not a UTF-8 or Windows-1252 text file") from None


def _read_event_rows(path: Path) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    """The SHA-256 of an event file's bytes, and its data rows with their line numbers.

    The header is line 1; a row's number is that of the line it starts on.
    """
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ValidationError(f"{path}: cannot read ({error.strerror})") from None
    if size > MAX_EVENTS_FILE_BYTES:
        raise ValidationError(
            f"{path.name}: {size} bytes, more than the {MAX_EVENTS_FILE_BYTES} allowed"
        )
    raw = path.read_bytes()
    text = _decode(raw, path.name)
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise ValidationError(
            f"{path.name}: empty file (expected the header {';'.join(EVENTS_COLUMNS)})"
        )
    names = [name.strip().lower() for name in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        raise ValidationError(
            f"{path.name}: missing column(s) {', '.join(missing)} "
            f"(expected {';'.join(EVENTS_COLUMNS)})"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            values = {
                name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(names)
            }
            rows.append((line, values))
        line = reader.line_num + 1
    return hashlib.sha256(raw).hexdigest(), rows


#: What the ledger says of a row: result ("applied" or "refused"), state, reason.
_Outcome = tuple[str, str | None, str | None]


def _recorded(engine: Engine, sha256: str, line: int | None = None) -> dict[int, _Outcome]:
    """The rows of the file ``sha256`` already applied or refused (or only row ``line``)."""
    query = select(_ledger.c.line, _ledger.c.result, _ledger.c.state, _ledger.c.reason).where(
        _ledger.c.sha256 == sha256
    )
    if line is not None:
        query = query.where(_ledger.c.line == line)
    with engine.connect() as connection:
        return {row.line: (row.result, row.state, row.reason) for row in connection.execute(query)}


def _apply_row(
    engine: Engine,
    values: dict[str, str],
    *,
    sha256: str,
    line: int,
    by: str,
    zone: Any,
    moment: datetime,
) -> _Outcome:
    """Apply or refuse one row of an event file and record its outcome in the ledger.

    An applied row's ledger entry commits with its event; a refusal is recorded right after
    (a crash in between leaves the row to a rerun, which refuses it again on the same
    state). If another import of the same bytes recorded the row first, its outcome stands.
    """
    try:
        return _apply_and_record(
            engine, values, sha256=sha256, line=line, by=by, zone=zone, moment=moment
        )
    except IntegrityError:
        # The ledger's key: the same file imported at the same moment elsewhere dealt with
        # this row after we read the ledger. Ours was rolled back; report theirs.
        recorded = _recorded(engine, sha256, line).get(line)
        if recorded is None:
            raise
        return recorded


def _apply_and_record(
    engine: Engine,
    values: dict[str, str],
    *,
    sha256: str,
    line: int,
    by: str,
    zone: Any,
    moment: datetime,
) -> _Outcome:
    """The row applied, with its ledger entry in the event's transaction, or refused."""
    sie, reference, event = (
        values.get("sie", ""),
        values.get("reference", ""),
        values.get("event", ""),
    )
    try:
        if not sie or not reference or not event:
            absent = [name for name in REQUIRED_COLUMNS if not values.get(name)]
            raise ValidationError(f"missing {', '.join(absent)}")
        at_text = values.get("at", "")
        at = parse_at(at_text, zone) if at_text else moment
        with session_scope(engine) as session:
            applied = apply_event(
                session,
                sie=sie,
                reference=reference,
                event=event,
                at=at,
                reason=values.get("reason") or None,
                by=by,
                now=moment,
            )
            _connection(session).execute(
                insert(_ledger).values(
                    sha256=sha256,
                    line=line,
                    result="applied",
                    state=applied.to_state,
                    item_event_id=applied.event_id,
                    recorded_at=moment,
                )
            )
        return "applied", applied.to_state, None
    except RelaisError as error:
        refusal = error.message
    with session_scope(engine) as session:
        _connection(session).execute(
            insert(_ledger).values(
                sha256=sha256, line=line, result="refused", reason=refusal, recorded_at=moment
            )
        )
    return "refused", None, refusal


def import_events(
    path: Path,
    *,
    by: str,
    engine: Engine | None = None,
    now: datetime | None = None,
    on_row: Callable[[EventRowResult], None] | None = None,
) -> EventsImport:
    """Apply every row of an event file (``sie;reference;event;at;reason``) on its own.

    Each row is applied in its own transaction or refused with a reason; nothing of a
    refused row is written but its ledger entry. Refused rows go to ``<file>.errors.csv``
    next to the file (a stale errors file from an earlier run is removed when every row is
    applied). A row without ``at`` happens ``now``.

    The ledger (``event_import_row``, by the SHA-256 of the file's bytes and the row's line)
    makes an import of the same bytes resume where it stopped: rows already applied or
    refused are reported as they were, and nothing is written for them again. A rerun after
    a crash thus ends as one clean import, whatever the rows' times; importing the same file
    again changes nothing; a changed file is a new import.
    """
    zone = get_settings().timezone
    moment = now or datetime.now(UTC)
    outcome = EventsImport(file=path)
    sha256, rows = _read_event_rows(path)
    engine = engine or get_engine()
    done = _recorded(engine, sha256)
    for line, values in rows:
        recorded = done.get(line)
        if recorded is None:
            recorded = _apply_row(
                engine, values, sha256=sha256, line=line, by=by, zone=zone, moment=moment
            )
        else:
            outcome.already_recorded += 1
        result = EventRowResult(
            line=line,
            sie=values.get("sie", ""),
            reference=values.get("reference", ""),
            event=values.get("event", ""),
            result=recorded[0],
            state=recorded[1],
            reason=recorded[2],
        )
        outcome.rows.append(result)
        if on_row is not None:
            on_row(result)
    errors_path = errors_file_for(path)
    rejected = [
        (row.line, row.reference, row.reason or "")
        for row in outcome.rows
        if row.result == "refused"
    ]
    try:
        if rejected:
            write_errors_file(errors_path, rejected)
            outcome.errors_file = errors_path
        elif errors_path.exists():
            errors_path.unlink()
    except OSError as error:
        # The rows are applied or refused already (each on its own): say so, and why the
        # list of refused rows could not be written.
        raise ConfigurationError(
            f"{path.name}: {outcome.applied} row(s) applied, {outcome.refused} refused, but "
            f"{errors_path} could not be written: {error.strerror or error}"
        ) from error
    return outcome
