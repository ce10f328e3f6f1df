"""The SLA scan: each breach recorded once, when first seen (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from models.tables import SlaBreach, WorkItem
from relais.db import session_scope
from relais.scan import (
    BREACH_EVENT,
    ScanResult,
    breach_events,
    record_new_breaches,
    summary_markdown,
    worst_breaches,
)
from tests.builders import BuiltItem, add_item, add_reference, post


def _scan(engine: Engine, as_of: date, run: str = "run-1") -> ScanResult:
    with session_scope(engine) as session:
        return record_new_breaches(session, as_of=as_of, flow_run_id=run, now=datetime.now(UTC))


# `session.exec` of SQLAlchemy's `select` carries `type: ignore[call-overload]`: sqlmodel's
# overloads name only its own select types, though it runs SQLAlchemy's as `Session.execute` does.


def _recorded(engine: Engine) -> list[tuple[str, str, date, str | None, date]]:
    with Session(engine) as session:
        rows = session.exec(  # type: ignore[call-overload]
            select(
                col(WorkItem.reference),
                col(SlaBreach.kind),
                col(SlaBreach.deadline),
                col(SlaBreach.holder),
                col(SlaBreach.first_seen_on),
            )
            .join(WorkItem, col(WorkItem.id) == col(SlaBreach.item_id))
            .order_by(col(WorkItem.reference), col(SlaBreach.kind), col(SlaBreach.deadline))
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.fixture
def items(engine: Engine) -> dict[str, BuiltItem]:
    with session_scope(engine) as session:
        add_reference(session)
        return {
            # Medoc Web, 10 business days: due 15 October at Vierzon.
            "early": add_item(
                session,
                sie="SIE-75-08",
                reference="EARLY",
                process="medoc_web",
                received_on=date(2026, 10, 1),
                assigned_on=date(2026, 10, 1),
                assignee="ANT-18-VIERZON",
            ),
            # Due 22 October, kept locally.
            "late": add_item(
                session,
                sie="SIE-75-02",
                reference="LATE",
                process="medoc_web",
                received_on=date(2026, 10, 8),
                assigned_on=date(2026, 10, 8),
            ),
            # Never routed; legal deadline 2 November.
            "waiting": add_item(
                session, sie="SIE-13-01", reference="WAITING", received_on=date(2026, 5, 2)
            ),
        }


def test_scanning_twice_records_each_breach_once(
    engine: Engine, items: dict[str, BuiltItem]
) -> None:
    first = _scan(engine, date(2026, 10, 16))
    second = _scan(engine, date(2026, 10, 16), run="run-2")
    assert (first.new_sla, first.new_legal) == (1, 0)
    assert (second.new_sla, second.new_legal) == (0, 0)
    assert second.holders == []
    assert second.open_breaches == {"sla": 1, "legal": 0}
    assert _recorded(engine) == [
        ("EARLY", "sla", items["early"].due_on, "ANT-18-VIERZON", date(2026, 10, 16))
    ]


def test_a_new_breach_appears_on_a_later_day(engine: Engine, items: dict[str, BuiltItem]) -> None:
    _scan(engine, date(2026, 10, 16))
    later = _scan(engine, date(2026, 11, 3))
    assert [holder.as_dict() for holder in later.holders] == [
        {"holder": "SIE-13-01", "sla": 0, "legal": 1, "by_process": {"tva_refund": {"legal": 1}}},
        {"holder": "SIE-75-02", "sla": 1, "legal": 0, "by_process": {"medoc_web": {"sla": 1}}},
    ]
    assert later.open_breaches == {"sla": 2, "legal": 1}
    recorded = _recorded(engine)
    assert [(ref, kind, seen) for ref, kind, _, _, seen in recorded] == [
        ("EARLY", "sla", date(2026, 10, 16)),
        ("LATE", "sla", date(2026, 11, 3)),
        ("WAITING", "legal", date(2026, 11, 3)),
    ]


def test_a_moved_due_date_breached_again_is_a_new_breach(
    engine: Engine, items: dict[str, BuiltItem]
) -> None:
    early = items["early"]
    with session_scope(engine) as session:
        post(session, early, "start", date(2026, 10, 2))
        post(session, early, "suspend", date(2026, 10, 5))
    _scan(engine, date(2026, 10, 16))  # suspended: not breached
    with session_scope(engine) as session:
        resumed = post(session, early, "resume", date(2026, 10, 9))
    assert _scan(engine, date(2026, 10, 16)).new_sla == 0  # new due date not passed yet
    assert resumed.due_on == date(2026, 10, 21)  # 4 business days paused
    assert _scan(engine, date(2026, 10, 22)).new_sla == 1
    assert [r[2] for r in _recorded(engine) if r[0] == "EARLY"] == [resumed.due_on]


def test_a_completed_item_is_no_longer_found(engine: Engine, items: dict[str, BuiltItem]) -> None:
    with session_scope(engine) as session:
        post(session, items["early"], "complete", date(2026, 10, 14))
    assert _scan(engine, date(2026, 10, 30)).new_sla == 1  # only LATE
    assert [r[0] for r in _recorded(engine)] == ["LATE"]


def test_summary_and_events_carry_codes_and_counts_only(
    engine: Engine, items: dict[str, BuiltItem]
) -> None:
    result = _scan(engine, date(2026, 11, 3))
    with session_scope(engine) as session:
        worst = worst_breaches(session, as_of=date(2026, 11, 3))
        sirens = session.exec(select(col(WorkItem.siren))).all()  # type: ignore[call-overload]
    markdown = summary_markdown(result, worst)
    assert "| SIE-75-08 | EARLY | medoc_web | ANT-18-VIERZON |" in markdown
    assert "| ANT-18-VIERZON | medoc_web | 1 | 0 |" in markdown
    events = breach_events(result)
    assert {event["resource"]["prefect.resource.id"] for event in events} == {
        "relais.service.ANT-18-VIERZON",
        "relais.service.SIE-75-02",
        "relais.service.SIE-13-01",
    }
    assert all(event["event"] == BREACH_EVENT for event in events)
    text = markdown + repr(events)
    for (siren,) in sirens:
        assert siren not in text
    assert "Libellé" not in text and "1234" not in text


def test_result_round_trips_through_plain_values(
    engine: Engine, items: dict[str, BuiltItem]
) -> None:
    result = _scan(engine, date(2026, 11, 3))
    assert ScanResult.from_dict(result.as_dict()) == result
    assert ScanResult.from_dict({**result.as_dict(), "as_of": "2026-11-03"}).as_of == date(
        2026, 11, 3
    )
