"""Supervisors' read queries: SLA breaches, items at risk and a holder's worklist (SPEC §7).

Shared by the CLI and the API. Everything is computed from the stored data for any as-of date
(no scan needs to have run), in a few set-based statements:

* the state of every item on the as-of day A is its current row when its last event is before
  the end of A, else the one its last event before the end of A left behind (every history row
  carries the assignment and due date in force after it), so a past as-of date sees the past;
* business days are counted in the holder's calendar from ``calendar_day`` ordinals:
  ``business_days_overdue`` = ordinal(A) − ordinal(due_on), ``business_days_left`` =
  ordinal(due_on) − ordinal(A);
* ``--directorate`` is the union of two index-driven halves: items of the directorate's SIEs,
  and items held by the remote services it hosts (without counting an item twice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Date,
    Select,
    Subquery,
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from models.tables import (
    CalendarDay,
    CalendarSpan,
    Directorate,
    ItemEvent,
    RemoteService,
    Sie,
    WorkItem,
)
from models.types import UTCDateTime
from relais.calendars import ensure_calendar_years
from relais.domain.catalogue import CATALOGUE
from relais.domain.sla import at_risk_threshold
from relais.errors import NotFoundError, ValidationError
from relais.settings import get_settings

_items = WorkItem.__table__  # type: ignore[attr-defined]
_sies = Sie.__table__  # type: ignore[attr-defined]
_services = RemoteService.__table__  # type: ignore[attr-defined]
_events = ItemEvent.__table__  # type: ignore[attr-defined]
_days = CalendarDay.__table__  # type: ignore[attr-defined]
_spans = CalendarSpan.__table__  # type: ignore[attr-defined]

#: States whose SLA clock runs: only these can be breached or at risk.
CLOCKED_STATES: Final = ("assigned", "in_progress")
#: Open states with a holder (a worklist's items).
HELD_STATES: Final = ("assigned", "in_progress", "suspended")
#: Every open state (legal deadlines apply to all of them, even items waiting for routing).
OPEN_STATES: Final = ("received", "assigned", "in_progress", "suspended")
#: The largest target a convention may set: at risk never means more than ceil(0.2 × 250) days.
MAX_TARGET_BUSINESS_DAYS: Final = 250

#: The columns of an item's state on the as-of day, in the order of the snapshot.
SNAPSHOT_COLUMNS: Final = (
    "item_id",
    "sie_code",
    "reference",
    "process",
    "state",
    "assignee",
    "assignment_kind",
    "convention_id",
    "convention_version",
    "assigned_on",
    "target_business_days",
    "due_on",
    "completed_on",
    "legal_due_on",
)

Columns = Mapping[str, ColumnElement[Any]]
Condition = Callable[[Columns], ColumnElement[bool]]


def _connection(session: Session | Connection) -> Connection:
    return session if isinstance(session, Connection) else session.connection()


# --- filters --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """Which items a query looks at: the CLI's ``--directorate/--service/--sie/--process``.

    ``directorate_sies`` and ``directorate_services`` are the directorate's own SIEs and the
    remote services it hosts (None: no directorate filter).
    """

    directorate_sies: tuple[str, ...] | None = None
    directorate_services: tuple[str, ...] | None = None
    service: str | None = None
    sie: str | None = None
    process: str | None = None

    def _common(self, c: Columns) -> list[ColumnElement[bool]]:
        terms: list[ColumnElement[bool]] = []
        if self.service is not None:
            terms.append(c["assignee"] == self.service)
        if self.sie is not None:
            terms.append(c["sie_code"] == self.sie)
        if self.process is not None:
            terms.append(c["process"] == self.process)
        return terms

    def halves(self, c: Columns) -> list[ColumnElement[bool]]:
        """Disjoint conditions whose union is the scope (one per index-friendly half)."""
        common = self._common(c)
        if self.directorate_sies is None or self.directorate_services is None:
            return [and_(true(), *common)]
        halves: list[ColumnElement[bool]] = []
        if self.directorate_sies:
            halves.append(and_(c["sie_code"].in_(self.directorate_sies), *common))
        if self.directorate_services:
            other_sies = (
                [c["sie_code"].not_in(self.directorate_sies)] if self.directorate_sies else []
            )
            halves.append(and_(c["assignee"].in_(self.directorate_services), *other_sies, *common))
        return halves

    def whole(self, c: Columns) -> ColumnElement[bool]:
        """The scope as one condition (for small sets where index use does not matter)."""
        halves = self.halves(c)
        if not halves:
            return literal(False)
        return halves[0] if len(halves) == 1 else halves[0] | halves[1]


def resolve_scope(
    session: Session | Connection,
    *,
    directorate: str | None = None,
    service: str | None = None,
    sie: str | None = None,
    process: str | None = None,
) -> Scope:
    """Check the filters' codes and resolve ``directorate`` into its SIEs and hosted services.

    Unknown codes are refused (``NotFoundError``; ``ValidationError`` for a process that is
    not in the catalogue) rather than silently matching nothing.
    """
    connection = _connection(session)
    if process is not None and process not in CATALOGUE:
        raise ValidationError(
            f"unknown process {process!r}: expected one of {', '.join(CATALOGUE)}"
        )
    if service is not None and not _is_office(connection, service):
        raise NotFoundError(f"unknown service {service}")
    if (
        sie is not None
        and connection.execute(select(_sies.c.code).where(_sies.c.code == sie)).first() is None
    ):
        raise NotFoundError(f"unknown SIE {sie}")
    sies: tuple[str, ...] | None = None
    services: tuple[str, ...] | None = None
    if directorate is not None:
        sies = tuple(
            connection.execute(
                select(_sies.c.code)
                .where(_sies.c.directorate_code == directorate)
                .order_by(_sies.c.code)
            ).scalars()
        )
        services = tuple(
            connection.execute(
                select(_services.c.code)
                .where(_services.c.host_directorate_code == directorate)
                .order_by(_services.c.code)
            ).scalars()
        )
        if not sies and not services and not _directorate_exists(connection, directorate):
            raise NotFoundError(f"unknown directorate {directorate}")
    return Scope(
        directorate_sies=sies,
        directorate_services=services,
        service=service,
        sie=sie,
        process=process,
    )


def _is_office(connection: Connection, code: str) -> bool:
    """Whether ``code`` can hold items: a remote service, or an SIE (its local items)."""
    if connection.execute(select(_services.c.code).where(_services.c.code == code)).first():
        return True
    return connection.execute(select(_sies.c.code).where(_sies.c.code == code)).first() is not None


def _directorate_exists(connection: Connection, code: str) -> bool:
    directorates = Directorate.__table__  # type: ignore[attr-defined]
    found = connection.execute(select(directorates.c.code).where(directorates.c.code == code))
    return found.first() is not None


# --- the state of items on the as-of day -------------------------------------------------


def end_of_day(as_of: date) -> datetime:
    """The first instant after the local day ``as_of``: events before it happened by then."""
    zone = get_settings().timezone
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=zone)


def _current_columns() -> dict[str, ColumnElement[Any]]:
    c = _items.c
    return {name: c[name] for name in SNAPSHOT_COLUMNS if name != "item_id"} | {"item_id": c.id}


def _history_source(
    cutoff: datetime,
) -> tuple[Any, dict[str, ColumnElement[Any]], ColumnElement[bool]]:
    """Items that changed after ``cutoff`` joined to their last event before it."""
    w, e = _items, _events.alias("last_event")
    earlier = _events.alias("earlier")
    before = literal(cutoff, UTCDateTime())
    last_event_id = (
        select(earlier.c.id)
        .where(earlier.c.item_id == w.c.id, earlier.c.at < before)
        .order_by(earlier.c.at.desc(), earlier.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    assignment = _events.alias("assignment")
    assigned_on = (
        select(assignment.c.as_of)
        .where(
            assignment.c.item_id == w.c.id,
            assignment.c.event == "assigned",
            assignment.c.at < before,
        )
        .order_by(assignment.c.at.desc(), assignment.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    columns: dict[str, ColumnElement[Any]] = {
        "item_id": w.c.id,
        "sie_code": w.c.sie_code,
        "reference": w.c.reference,
        "process": w.c.process,
        "state": e.c.to_state,
        "assignee": e.c.assignee,
        "assignment_kind": e.c.assignment_kind,
        "convention_id": e.c.convention_id,
        "convention_version": e.c.convention_version,
        "assigned_on": assigned_on,
        # History rows do not carry the target: the current one stands in (it differs only
        # if the item was reassigned since, to a line with another target).
        "target_business_days": w.c.target_business_days,
        "due_on": e.c.due_on,
        # Completion is final: an item completed by then has no later event and is current.
        "completed_on": null(),
        "legal_due_on": w.c.legal_due_on,
    }
    source = w.join(e, and_(e.c.item_id == w.c.id, e.c.id == last_event_id))
    return source, columns, w.c.last_event_at >= before


def _select_snapshot(columns: Columns, *conditions: ColumnElement[bool]) -> Select[Any]:
    return select(*(columns[name].label(name) for name in SNAPSHOT_COLUMNS)).where(*conditions)


#: Up to this many items changed since the as-of day, replaying them is cheap: find them
#: by their last event time first.
FEW_CHANGED: Final = 20_000


def _few_changed_since(connection: Connection, cutoff: datetime) -> bool:
    """Whether at most ``FEW_CHANGED`` items have an event at or after ``cutoff``.

    Walks at most that many entries of the ``last_event_at`` index: cheap either way.
    """
    probe = (
        select(_items.c.last_event_at)
        .order_by(_items.c.last_event_at.desc())
        .offset(FEW_CHANGED)
        .limit(1)
    )
    boundary = connection.execute(probe).scalar()
    return boundary is None or boundary < cutoff


def snapshot(
    connection: Connection,
    as_of: date,
    scope: Scope,
    condition: Condition,
) -> Subquery:
    """The items in ``scope`` whose state on ``as_of`` satisfies ``condition``, as a subquery.

    ``condition`` is written once over named columns (see ``SNAPSHOT_COLUMNS``) and applied to
    both sources: current rows (items unchanged since ``as_of``) and replayed ones (items
    changed since, as their last event before the end of ``as_of`` left them).
    """
    cutoff = end_of_day(as_of)
    current = _current_columns()
    unchanged = _items.c.last_event_at < literal(cutoff, UTCDateTime())
    parts = [
        _select_snapshot(current, unchanged, condition(current), half)
        for half in scope.halves(current)
    ]
    source, replayed, changed = _history_source(cutoff)
    if connection.dialect.name == "sqlite" and _few_changed_since(connection, cutoff):
        # SQLite's planner cannot tell how selective the time range is and would rather walk
        # every item of the scope's SIEs; likelihood() tells it (PostgreSQL's statistics know).
        changed = func.likelihood(changed, literal_column("0.001"))
    history = _select_snapshot(
        replayed, changed, condition(replayed), scope.whole(replayed)
    ).select_from(source)
    parts.append(history)
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("snapshot")


def _open_breached(as_of: date) -> Condition:
    return lambda c: and_(c["state"].in_(CLOCKED_STATES), c["due_on"] < as_of)


def _breached_or_missed(as_of: date) -> Condition:
    # One range on (state, due_on) for both: a missed item was due before it was completed,
    # so before as_of. Completed items are never replayed (completion is final).
    return lambda c: and_(
        c["state"].in_((*CLOCKED_STATES, "completed")),
        c["due_on"] < as_of,
        (c["state"] != "completed")
        | and_(c["completed_on"] > c["due_on"], c["completed_on"] <= as_of),
    )


def legal_breached(as_of: date) -> Condition:
    """Open items past their legal deadline on ``as_of``.

    Two branches, one per index: held items through ``ix_work_item_state_legal``, whose
    condition (``state <> 'received'``) is repeated for SQLite to see it applies, and items
    waiting for routing through ``ix_work_item_received`` (that index leaves them out).
    """
    return lambda c: or_(
        and_(c["state"] != "received", c["state"].in_(HELD_STATES), c["legal_due_on"] < as_of),
        and_(c["state"] == "received", c["legal_due_on"] < as_of),
    )


# --- calendars ------------------------------------------------------------------------------


def ensure_calendar_covers(session: Session | Connection, as_of: date) -> None:
    """Make sure every office's ``calendar_day`` covers ``as_of`` (cheap when it does)."""
    connection = _connection(session)
    offices = connection.execute(select(func.count()).select_from(_sies)).scalar_one()
    offices += connection.execute(select(func.count()).select_from(_services)).scalar_one()
    covered = connection.execute(
        select(func.count())
        .select_from(_spans)
        .where(_spans.c.first_day <= as_of, _spans.c.last_day >= as_of)
    ).scalar_one()
    if covered < offices:
        ensure_calendar_years(connection, as_of.year, as_of.year + 1)


def _ordinal(office: ColumnElement[Any], day: ColumnElement[Any]) -> ColumnElement[Any]:
    """The business ordinal of ``day`` in ``office``'s calendar, one primary-key look-up a row.

    A correlated look-up rather than a join: the rows listed are few, and a planner that
    overestimates them would otherwise hash the whole ``calendar_day`` table.
    """
    calendar_row = _days.alias()
    return (
        select(calendar_row.c.ordinal)
        .where(calendar_row.c.office == office, calendar_row.c.day == day)
        .scalar_subquery()
    )


def _target(snap: Subquery) -> ColumnElement[int]:
    """The item's target, or the catalogue default where none was recorded."""
    defaults = {code: info.default_target_business_days for code, info in CATALOGUE.items()}
    return func.coalesce(
        snap.c.target_business_days, case(defaults, value=snap.c.process, else_=10)
    )


# --- the queries ----------------------------------------------------------------------------


def _listed(
    snap: Subquery, days_key: str, days: ColumnElement[Any], status: ColumnElement[Any]
) -> tuple[tuple[str, ...], list[ColumnElement[Any]]]:
    """The keys and columns of a listed row, in the order of the JSON documents."""
    columns: list[tuple[str, ColumnElement[Any]]] = [
        ("sie", snap.c.sie_code),
        ("reference", snap.c.reference),
        ("process", snap.c.process),
        ("assignee", snap.c.assignee),
        ("assigned_on", snap.c.assigned_on),
        ("due_on", snap.c.due_on),
        (days_key, days),
        ("legal_due_on", snap.c.legal_due_on),
        ("status", status),
        ("convention", snap.c.convention_id),
        ("convention_version", snap.c.convention_version),
    ]
    return tuple(key for key, _ in columns), [column for _, column in columns]


def _documents(
    connection: Connection, keys: Sequence[str], query: Select[Any]
) -> list[dict[str, Any]]:
    # Positional rows zipped with their keys: the cheapest way to build many small dicts.
    return [dict(zip(keys, row, strict=True)) for row in _run_listing(connection, query)]


def _run_listing(connection: Connection, query: Select[Any]) -> Any:
    """Execute a listing query; on PostgreSQL, planned for its values and not JIT-compiled.

    psycopg prepares a statement run five times, and PostgreSQL may then switch to a generic
    plan that ignores the as-of date and the codes: 600 ms instead of 20 ms here. The
    per-row calendar look-ups also push the cost estimate over the JIT threshold, and
    compiling costs more (~30 ms) than running the query. Both settings last for this
    transaction only.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        connection.exec_driver_sql("SET LOCAL jit = off")
    return connection.execute(query)


def sla_breaches(
    session: Session | Connection,
    *,
    as_of: date,
    directorate: str | None = None,
    service: str | None = None,
    sie: str | None = None,
    process: str | None = None,
    include_completed: bool = False,
    legal: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Items breached on ``as_of``, most overdue first (then due date, SIE, reference).

    Open items past their due date (``breached``); with ``include_completed``, also items
    completed late by then (``missed``, overdue by the business days between due date and
    completion). With ``legal``, open items past their legal deadline instead
    (``legal_breached``, overdue counted from the legal deadline in the holder's calendar, or
    the SIE's for an item not yet assigned).
    """
    connection = _connection(session)
    scope = resolve_scope(
        connection, directorate=directorate, service=service, sie=sie, process=process
    )
    ensure_calendar_covers(connection, as_of)
    if legal:
        snap = snapshot(connection, as_of, scope, legal_breached(as_of))
        office: ColumnElement[Any] = func.coalesce(snap.c.assignee, snap.c.sie_code)
        deadline = snap.c.legal_due_on
    else:
        condition = _breached_or_missed(as_of) if include_completed else _open_breached(as_of)
        snap = snapshot(connection, as_of, scope, condition)
        office, deadline = snap.c.assignee, snap.c.due_on
    as_of_ordinal = _ordinal(office, literal(as_of, Date()))
    deadline_ordinal = _ordinal(office, deadline)
    overdue: ColumnElement[Any] = as_of_ordinal - deadline_ordinal
    if include_completed and not legal:
        # A missed item is overdue by the business days between its due date and completion.
        overdue = case(
            (
                snap.c.state == "completed",
                _ordinal(office, snap.c.completed_on) - deadline_ordinal,
            ),
            else_=overdue,
        )
    overdue = overdue.label("overdue")
    if legal:
        status: ColumnElement[Any] = literal("legal_breached")
    else:
        status = case((snap.c.state == "completed", "missed"), else_="breached")
    keys, columns = _listed(snap, "business_days_overdue", overdue, status)
    query = select(*columns).order_by(
        overdue.desc().nulls_last(), deadline, snap.c.sie_code, snap.c.reference
    )
    if limit is not None:
        query = query.limit(limit)
    return _documents(connection, keys, query)


def _at_risk_horizon(connection: Connection, as_of: date) -> date | None:
    """A day by which every item due on or after it has more business days left than any
    item at risk can have (the latest office's business day ordinal(A) + 51)."""
    ahead = at_risk_threshold(MAX_TARGET_BUSINESS_DAYS) + 1
    start, end = _days.alias("start_day"), _days.alias("end_day")
    return connection.execute(
        select(func.max(end.c.day))
        .select_from(start.join(end, end.c.office == start.c.office))
        .where(start.c.day == as_of, end.c.ordinal == start.c.ordinal + ahead, end.c.is_business)
    ).scalar()


def sla_at_risk(
    session: Session | Connection,
    *,
    as_of: date,
    directorate: str | None = None,
    service: str | None = None,
    sie: str | None = None,
    process: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Open items not yet breached on ``as_of`` with at most ceil(0.2 × target) business days
    left, fewest left first (then due date, SIE, reference)."""
    connection = _connection(session)
    scope = resolve_scope(
        connection, directorate=directorate, service=service, sie=sie, process=process
    )
    ensure_calendar_covers(connection, as_of)
    horizon = _at_risk_horizon(connection, as_of)

    def condition(c: Columns) -> ColumnElement[bool]:
        terms = [c["state"].in_(CLOCKED_STATES), c["due_on"] >= as_of]
        if horizon is not None:
            terms.append(c["due_on"] < horizon)
        return and_(*terms)

    snap = snapshot(connection, as_of, scope, condition)
    left = (
        _ordinal(snap.c.assignee, snap.c.due_on) - _ordinal(snap.c.assignee, literal(as_of, Date()))
    ).label("days_left")
    # ceil(target / 5) in integer arithmetic, as relais.domain.sla.at_risk_threshold.
    threshold = (_target(snap) + 4) // 5
    keys, columns = _listed(snap, "business_days_left", left, literal("at_risk"))
    query = (
        select(*columns)
        .where(left <= threshold)
        .order_by(left, snap.c.due_on, snap.c.sie_code, snap.c.reference)
    )
    if limit is not None:
        query = query.limit(limit)
    return _documents(connection, keys, query)


def worklist(
    session: Session | Connection,
    *,
    service: str,
    as_of: date,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Open items held by ``service`` (a remote service, or an SIE for its local items) on
    ``as_of``, by due date, each with its SLA status and business days left or overdue."""
    connection = _connection(session)
    scope = resolve_scope(connection, service=service)
    ensure_calendar_covers(connection, as_of)
    snap = snapshot(connection, as_of, scope, lambda c: c["state"].in_(HELD_STATES))
    days_left = (
        _ordinal(snap.c.assignee, snap.c.due_on) - _ordinal(snap.c.assignee, literal(as_of, Date()))
    ).label("days_left")
    query = select(
        snap.c.sie_code,
        snap.c.reference,
        snap.c.process,
        snap.c.state,
        snap.c.assignee,
        snap.c.assigned_on,
        snap.c.due_on,
        days_left,
        snap.c.legal_due_on,
        snap.c.convention_id,
        snap.c.convention_version,
        _target(snap),
    ).order_by(snap.c.due_on, snap.c.sie_code, snap.c.reference)
    if limit is not None:
        query = query.limit(limit)
    return [_worklist_row(row, as_of) for row in _run_listing(connection, query)]


def _worklist_row(row: Any, as_of: date) -> dict[str, Any]:
    sie, reference, process, state, assignee, assigned_on, due_on, days_left = row[:8]
    legal_due_on, convention, version, target = row[8:]
    if state == "suspended":
        status = "suspended"
    elif due_on is not None and as_of > due_on:
        status = "breached"
    elif days_left is not None and days_left <= at_risk_threshold(target):
        status = "at_risk"
    else:
        status = "on_track"
    if legal_due_on is None:
        legal_status = None
    else:
        legal_status = "legal_breached" if as_of > legal_due_on else "within_deadline"
    return {
        "sie": sie,
        "reference": reference,
        "process": process,
        "state": state,
        "assignee": assignee,
        "assigned_on": assigned_on,
        "due_on": due_on,
        "business_days_left": max(0, days_left) if days_left is not None else None,
        "business_days_overdue": max(0, -days_left) if days_left is not None else None,
        "status": status,
        "legal_due_on": legal_due_on,
        "legal_status": legal_status,
        "convention": convention,
        "convention_version": version,
    }


def count_breaches(session: Session | Connection, *, as_of: date) -> dict[str, int]:
    """How many open items are breached (SLA) and past their legal deadline on ``as_of``."""
    connection = _connection(session)
    scope = Scope()
    counts = {}
    for kind, condition in (("sla", _open_breached(as_of)), ("legal", legal_breached(as_of))):
        snap = snapshot(connection, as_of, scope, condition)
        counts[kind] = connection.execute(select(func.count()).select_from(snap)).scalar_one()
    return counts


__all__: Sequence[str] = (
    "Scope",
    "count_breaches",
    "resolve_scope",
    "sla_at_risk",
    "sla_breaches",
    "snapshot",
    "worklist",
)
