"""Build consistent test data directly in the database: reference data, items, their history.

Items are written the way intake and routing write them (a ``received`` event at 00:00 local
of the day received, an ``assigned`` event at 00:00 local of the assignment date with the
holder, convention and due date in the holder's calendar), so the code under test reads
exactly what production writes. Lifecycle events go through ``relais.items.apply_event``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session

from models.tables import Closure, Directorate, ItemEvent, RemoteService, Sie, WorkItem
from relais.calendars import ensure_calendar_years
from relais.db import session_scope
from relais.domain.catalogue import CATALOGUE
from relais.domain.sla import compute_due_on, legal_due_on
from relais.items import AppliedEvent, apply_event, holder_calendar
from relais.settings import get_settings

#: Years of calendar materialised by ``add_reference`` (tests use 2026 and around).
CALENDAR_YEARS = (2026, 2027)

DIRECTORATES = (
    ("DRFIP75", "DRFiP Île-de-France et Paris", "75"),
    ("DRFIP13", "DRFiP Provence-Alpes-Côte d'Azur et Bouches-du-Rhône", "13"),
    ("DDFIP18", "DDFiP du Cher", "18"),
    ("DDFIP57", "DDFiP de la Moselle", "57"),
)
SIES = (
    ("SIE-75-02", "SIE Paris 2e", "DRFIP75", "75"),
    ("SIE-75-08", "SIE Paris 8e", "DRFIP75", "75"),
    ("SIE-75-17", "SIE Paris 17e", "DRFIP75", "75"),
    ("SIE-13-01", "SIE Marseille 1er", "DRFIP13", "13"),
    ("SIE-57-01", "SIE Metz", "DDFIP57", "57"),
)
SERVICES = (
    ("ANT-18-VIERZON", "Antenne de Vierzon", "Vierzon", "18", "DDFIP18", 50),
    ("ANT-57-FORBACH", "Antenne de Forbach", "Forbach", "57", "DDFIP57", 25),
)


def local_midnight(day: date) -> datetime:
    """00:00 in the offices' zone on ``day`` (the time of intake and routing events)."""
    return datetime.combine(day, time(0), tzinfo=get_settings().timezone)


def siren_for(number: int) -> str:
    """A valid (Luhn) SIREN derived from ``number``: fake, but shaped like a real one."""
    base = f"{number % 10**8:08d}"
    for check in range(10):
        candidate = base + str(check)
        total = 0
        for index, char in enumerate(candidate):
            digit = int(char) * (2 if index % 2 else 1)
            total += digit - 9 if digit > 9 else digit
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable: one check digit always fits")


def add_reference(
    session: Session, *, closures: Iterable[tuple[str, date]] = (), calendars: bool = True
) -> None:
    """Insert the standard directorates, SIEs, services and ``closures``; materialise calendars."""
    for code, name, department in DIRECTORATES:
        session.add(Directorate(code=code, name=name, department=department))
    session.flush()
    for code, name, directorate, department in SIES:
        session.add(Sie(code=code, name=name, directorate_code=directorate, department=department))
    for code, name, town, department, host, agents in SERVICES:
        session.add(
            RemoteService(
                code=code,
                name=name,
                town=town,
                department=department,
                host_directorate_code=host,
                agents=agents,
            )
        )
    for office, day in closures:
        session.add(Closure(office=office, day=day, reason="Fermeture exceptionnelle"))
    session.flush()
    if calendars:
        ensure_calendar_years(session, *CALENDAR_YEARS)


@dataclass(frozen=True, slots=True)
class BuiltItem:
    """What a test needs to know about an item it built."""

    id: int
    sie: str
    reference: str
    due_on: date | None


_counter = iter(range(10**6, 10**9))
_item_table: Any = WorkItem.__table__  # type: ignore[attr-defined]
_event_table: Any = ItemEvent.__table__  # type: ignore[attr-defined]


def add_item(
    session: Session,
    *,
    sie: str,
    reference: str,
    process: str = "tva_refund",
    received_on: date,
    assigned_on: date | None = None,
    assignee: str | None = None,
    convention: str | None = None,
    version: int | None = None,
    target: int | None = None,
    legal_override: date | None = None,
    author: str = "routing-test-run",
) -> BuiltItem:
    """Insert an item received on ``received_on`` and, with ``assigned_on``, assigned then.

    The holder is ``assignee`` (a remote service, kind remote) or the SIE itself (kind local);
    ``due_on`` is the ``target``-th business day after ``assigned_on`` in the holder's calendar.
    """
    received_at = local_midnight(received_on)
    number = next(_counter)
    values: dict[str, Any] = {
        "sie_code": sie,
        "reference": reference,
        "process": process,
        "siren": siren_for(number),
        "received_on": received_on,
        "amount_cents": 123_456 if process == "tva_refund" else None,
        "label": "Libellé confidentiel",
        "legal_due_on": legal_due_on(process, received_on, legal_override),
        "legal_due_given": legal_override is not None,
        "state": "received",
        "last_event_at": received_at,
        "created_at": received_at,
    }
    connection = session.connection()
    inserted = connection.execute(insert(_item_table).values(**values)).inserted_primary_key
    assert inserted is not None
    item_id = inserted[0]
    _event(
        connection, item_id, "received", received_at, author="intake-test-run", to_state="received"
    )
    due_on = None
    if assigned_on is not None:
        due_on = assign(
            session,
            item_id=item_id,
            on=assigned_on,
            assignee=assignee or sie,
            convention=convention,
            version=version,
            target=target,
            author=author,
        )
    return BuiltItem(id=item_id, sie=sie, reference=reference, due_on=due_on)


def assign(
    session: Session,
    *,
    item_id: int,
    on: date,
    assignee: str,
    convention: str | None = None,
    version: int | None = None,
    target: int | None = None,
    author: str = "routing-test-run",
) -> date:
    """(Re)assign an item the way routing does; returns its new due date."""
    connection = session.connection()
    item = connection.execute(select(_item_table).where(_item_table.c.id == item_id)).one()
    is_local = assignee == item.sie_code
    target = target or CATALOGUE[item.process].default_target_business_days
    calendar = holder_calendar(session, assignee)
    assert calendar is not None, f"unknown office {assignee}"
    due_on = compute_due_on(calendar, on, target)
    at = local_midnight(on)
    assignment = {
        "assignee": assignee,
        "assignment_kind": "local" if is_local else "remote",
        "convention_id": None if is_local else (convention or f"CONV-{assignee}"),
        "convention_version": None if is_local else (version or 1),
        "perimeter_line_id": None,
    }
    connection.execute(
        update(_item_table)
        .where(_item_table.c.id == item_id)
        .values(
            state="assigned",
            assigned_on=on,
            target_business_days=target,
            due_on=due_on,
            last_event_at=at,
            **assignment,
        )
    )
    _event(
        connection,
        item_id,
        "assigned",
        at,
        author=author,
        from_state=item.state,
        to_state="assigned",
        as_of=on,
        due_on=due_on,
        **assignment,
    )
    return due_on


def _event(
    connection: Any, item_id: int, event: str, at: datetime, *, author: str, **values: Any
) -> None:
    connection.execute(
        insert(_event_table).values(
            item_id=item_id, event=event, at=at, by=author, recorded_at=datetime.now(UTC), **values
        )
    )


def post(
    session: Session,
    item: BuiltItem | tuple[str, str],
    event: str,
    at: datetime | date,
    reason: str | None = None,
) -> AppliedEvent:
    """Post a lifecycle event through the real code path (author ``cli``)."""
    sie, reference = (item.sie, item.reference) if isinstance(item, BuiltItem) else item
    moment = local_midnight(at) if not isinstance(at, datetime) else at
    return apply_event(
        session, sie=sie, reference=reference, event=event, at=moment, reason=reason, by="cli"
    )


def build(engine: Engine) -> Session:
    """A session on ``engine`` for building data (commit it, or use ``session_scope``)."""
    return Session(engine, expire_on_commit=False)


__all__ = [
    "SERVICES",
    "SIES",
    "BuiltItem",
    "add_item",
    "add_reference",
    "assign",
    "build",
    "local_midnight",
    "post",
    "session_scope",
    "siren_for",
]
