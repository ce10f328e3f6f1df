"""Supervisors' queries: breaches, at risk, worklists, on SQLite and PostgreSQL.

Expected business-day counts come from ``relais.domain.calendar`` (the Python calendar), so the
SQL ordinal arithmetic is checked against an independent path.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine

from relais.db import session_scope
from relais.domain.calendar import calendar_for
from relais.errors import NotFoundError, ValidationError
from relais.queries import sla_at_risk, sla_breaches, worklist
from tests.builders import BuiltItem, add_item, add_reference, assign, post

VIERZON = calendar_for("18")
PARIS = calendar_for("75")
FORBACH = calendar_for("57")
AS_OF = date(2026, 11, 20)

BREACH_KEYS = [
    "sie",
    "reference",
    "process",
    "assignee",
    "assigned_on",
    "due_on",
    "business_days_overdue",
    "legal_due_on",
    "status",
    "convention",
    "convention_version",
]


@pytest.fixture
def world(engine: Engine) -> dict[str, BuiltItem]:
    """Items of three directorates held by two antennas and by their own SIEs."""
    with session_scope(engine) as session:
        add_reference(session)
        built = {
            # Paris 8e, held by Vierzon (hosted by DDFiP 18): breached.
            "A": add_item(
                session,
                sie="SIE-75-08",
                reference="REF-A",
                received_on=date(2026, 9, 28),
                assigned_on=date(2026, 10, 1),
                assignee="ANT-18-VIERZON",
            ),
            # Paris 2e, kept locally (10-day target): breached.
            "B": add_item(
                session,
                sie="SIE-75-02",
                reference="REF-B",
                process="filing_reminder",
                received_on=date(2026, 10, 1),
                assigned_on=date(2026, 10, 5),
            ),
            # Marseille, held by Forbach (hosted by DDFiP 57): breached.
            "C": add_item(
                session,
                sie="SIE-13-01",
                reference="REF-C",
                process="cfe_ifer_dispute",
                received_on=date(2026, 9, 1),
                assigned_on=date(2026, 9, 2),
                assignee="ANT-57-FORBACH",
            ),
            # Metz, held by Forbach: both sides of DDFiP 57.
            "D": add_item(
                session,
                sie="SIE-57-01",
                reference="REF-D",
                process="auvisir",
                received_on=date(2026, 10, 1),
                assigned_on=date(2026, 10, 1),
                assignee="ANT-57-FORBACH",
            ),
            # Paris 17e, Vierzon: completed late (missed), and on time (met).
            "E": add_item(
                session,
                sie="SIE-75-17",
                reference="REF-E",
                process="medoc_web",
                received_on=date(2026, 10, 1),
                assigned_on=date(2026, 10, 1),
                assignee="ANT-18-VIERZON",
            ),
            "F": add_item(
                session,
                sie="SIE-75-17",
                reference="REF-F",
                process="medoc_web",
                received_on=date(2026, 10, 1),
                assigned_on=date(2026, 10, 1),
                assignee="ANT-18-VIERZON",
            ),
            # Paris 8e, Vierzon: suspended (its clock stopped).
            "G": add_item(
                session,
                sie="SIE-75-08",
                reference="REF-G",
                received_on=date(2026, 9, 28),
                assigned_on=date(2026, 10, 1),
                assignee="ANT-18-VIERZON",
            ),
            # Paris 8e: never routed, past its legal deadline since 1 September.
            "H": add_item(
                session, sie="SIE-75-08", reference="REF-H", received_on=date(2026, 3, 1)
            ),
            # Paris 2e, Vierzon: recently assigned, on track.
            "I": add_item(
                session,
                sie="SIE-75-02",
                reference="REF-I",
                received_on=date(2026, 11, 16),
                assigned_on=date(2026, 11, 16),
                assignee="ANT-18-VIERZON",
            ),
            # Paris 2e, cancelled after its due date.
            "J": add_item(
                session,
                sie="SIE-75-02",
                reference="REF-J",
                process="medoc_web",
                received_on=date(2026, 10, 1),
                assigned_on=date(2026, 10, 1),
            ),
        }
        post(session, built["A"], "start", date(2026, 10, 2))
        post(session, built["E"], "start", date(2026, 10, 2))
        post(session, built["E"], "complete", date(2026, 10, 20))
        post(session, built["F"], "complete", date(2026, 10, 9))
        post(session, built["G"], "start", date(2026, 10, 2))
        post(session, built["G"], "suspend", date(2026, 10, 5))
        post(session, built["J"], "cancel", date(2026, 10, 30))
    return built


def _refs(rows: list[dict[str, object]]) -> list[str]:
    return [str(row["reference"]) for row in rows]


def _breaches(engine: Engine, **filters: object) -> list[dict[str, Any]]:
    filters.setdefault("as_of", AS_OF)
    with session_scope(engine) as session:
        return sla_breaches(session, **filters)  # type: ignore[arg-type]


def test_open_breaches_most_overdue_first_with_counts_in_the_holders_calendar(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    rows = _breaches(engine)
    expected = {
        "REF-A": VIERZON.business_days_between(world["A"].due_on, AS_OF),  # type: ignore[arg-type]
        "REF-B": PARIS.business_days_between(world["B"].due_on, AS_OF),  # type: ignore[arg-type]
        "REF-C": FORBACH.business_days_between(world["C"].due_on, AS_OF),  # type: ignore[arg-type]
        "REF-D": FORBACH.business_days_between(world["D"].due_on, AS_OF),  # type: ignore[arg-type]
    }
    assert {row["reference"]: row["business_days_overdue"] for row in rows} == expected
    overdue = [row["business_days_overdue"] for row in rows]
    assert overdue == sorted(overdue, reverse=True)
    assert all(row["status"] == "breached" for row in rows)
    assert list(rows[0]) == BREACH_KEYS


def test_a_breach_row_says_who_holds_it_under_which_convention(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    row = next(r for r in _breaches(engine) if r["reference"] == "REF-A")
    assert row == {
        "sie": "SIE-75-08",
        "reference": "REF-A",
        "process": "tva_refund",
        "assignee": "ANT-18-VIERZON",
        "assigned_on": date(2026, 10, 1),
        "due_on": world["A"].due_on,
        "business_days_overdue": VIERZON.business_days_between(world["A"].due_on, AS_OF),  # type: ignore[arg-type]
        "legal_due_on": date(2027, 3, 28),
        "status": "breached",
        "convention": "CONV-ANT-18-VIERZON",
        "convention_version": 1,
    }


def test_directorate_matches_the_sies_side(engine: Engine, world: dict[str, BuiltItem]) -> None:
    assert sorted(_refs(_breaches(engine, directorate="DRFIP75"))) == ["REF-A", "REF-B"]
    assert _refs(_breaches(engine, directorate="DRFIP13")) == ["REF-C"]


def test_directorate_matches_the_host_side(engine: Engine, world: dict[str, BuiltItem]) -> None:
    assert _refs(_breaches(engine, directorate="DDFIP18")) == ["REF-A"]


def test_an_item_matching_both_sides_is_listed_once(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    assert sorted(_refs(_breaches(engine, directorate="DDFIP57"))) == ["REF-C", "REF-D"]


def test_service_sie_and_process_filters(engine: Engine, world: dict[str, BuiltItem]) -> None:
    assert sorted(_refs(_breaches(engine, service="ANT-57-FORBACH"))) == ["REF-C", "REF-D"]
    assert _refs(_breaches(engine, service="SIE-75-02")) == ["REF-B"]
    assert _refs(_breaches(engine, sie="SIE-75-08")) == ["REF-A"]
    assert _refs(_breaches(engine, process="cfe_ifer_dispute")) == ["REF-C"]
    assert _refs(_breaches(engine, directorate="DRFIP75", service="ANT-18-VIERZON")) == ["REF-A"]
    assert _breaches(engine, directorate="DRFIP75", process="auvisir") == []


def test_unknown_filter_codes_are_refused(engine: Engine, world: dict[str, BuiltItem]) -> None:
    with pytest.raises(NotFoundError, match="unknown directorate DRFIP99"):
        _breaches(engine, directorate="DRFIP99")
    with pytest.raises(NotFoundError, match="unknown service ANT-00"):
        _breaches(engine, service="ANT-00")
    with pytest.raises(NotFoundError, match="unknown SIE"):
        _breaches(engine, sie="SIE-99-01")
    with pytest.raises(ValidationError, match="unknown process"):
        _breaches(engine, process="vat")


def test_include_completed_adds_missed_items_overdue_until_completion(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    rows = _breaches(engine, include_completed=True, directorate="DDFIP18")
    by_ref = {row["reference"]: row for row in rows}
    assert sorted(by_ref) == ["REF-A", "REF-E"]  # F met its target, G is suspended
    assert by_ref["REF-E"]["status"] == "missed"
    assert by_ref["REF-E"]["business_days_overdue"] == VIERZON.business_days_between(
        world["E"].due_on,  # type: ignore[arg-type]
        date(2026, 10, 20),
    )


def test_legal_lists_open_items_past_their_legal_deadline(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    rows = _breaches(engine, legal=True)
    assert _refs(rows) == ["REF-H"]
    (row,) = rows
    assert row["status"] == "legal_breached"
    assert row["legal_due_on"] == date(2026, 9, 1)
    assert row["assignee"] is None
    # Not yet routed: counted in its SIE's calendar.
    assert row["business_days_overdue"] == PARIS.business_days_between(date(2026, 9, 1), AS_OF)
    assert _breaches(engine, legal=True, directorate="DDFIP18") == []
    # C's legal deadline (1 March 2027) passes later.
    later = _breaches(engine, legal=True, as_of=date(2027, 3, 2))
    assert _refs(later) == ["REF-H", "REF-C"]


def test_as_of_in_the_past_sees_the_items_as_they_were(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    # E was completed late on 20 October: the day after its due date it was open and breached.
    e_due = world["E"].due_on
    assert e_due is not None and e_due < date(2026, 10, 19)
    past = _breaches(engine, as_of=date(2026, 10, 19), directorate="DDFIP18")
    row = next(r for r in past if r["reference"] == "REF-E")
    assert row["status"] == "breached"
    assert row["business_days_overdue"] == VIERZON.business_days_between(e_due, date(2026, 10, 19))
    # Before their due dates nothing was breached; before assignment, nothing existed.
    assert _breaches(engine, as_of=date(2026, 10, 6), directorate="DRFIP75") == []


def test_as_of_in_the_past_uses_the_holder_and_due_date_of_that_day(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_reference(session)
        item = add_item(
            session,
            sie="SIE-75-08",
            reference="MOVED",
            process="medoc_web",
            received_on=date(2026, 10, 1),
            assigned_on=date(2026, 10, 1),
        )
        assign(session, item_id=item.id, on=date(2026, 10, 26), assignee="ANT-18-VIERZON")
    first_due = PARIS.add_business_days(date(2026, 10, 1), 10)
    before = _breaches(engine, as_of=date(2026, 10, 23))
    assert [(r["assignee"], r["due_on"], r["assigned_on"]) for r in before] == [
        ("SIE-75-08", first_due, date(2026, 10, 1))
    ]
    assert _breaches(engine, as_of=date(2026, 10, 23), directorate="DDFIP18") == []
    assert _breaches(engine, as_of=date(2026, 10, 27)) == []  # the new clock runs


def test_ties_are_broken_by_due_date_sie_and_reference(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_reference(session)
        for sie, reference in (("SIE-75-17", "T-1"), ("SIE-75-02", "T-2"), ("SIE-75-02", "T-1")):
            add_item(
                session,
                sie=sie,
                reference=reference,
                process="medoc_web",
                received_on=date(2026, 10, 1),
                assigned_on=date(2026, 10, 1),
                assignee="ANT-18-VIERZON",
            )
        # Due on Saturday 10 October: the same business days overdue, a later due date.
        add_item(
            session,
            sie="SIE-75-02",
            reference="T-0",
            process="medoc_web",
            received_on=date(2026, 10, 1),
            assigned_on=date(2026, 10, 1),
            assignee="ANT-18-VIERZON",
            target=9,
        )
    rows = _breaches(engine)
    assert [(r["sie"], r["reference"]) for r in rows] == [
        ("SIE-75-02", "T-0"),
        ("SIE-75-02", "T-1"),
        ("SIE-75-02", "T-2"),
        ("SIE-75-17", "T-1"),
    ]


def test_at_risk_fewest_business_days_left_first(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    # I: assigned 16 November, 20-day target, due 14 December: 4 days left on 8 December.
    due_i = world["I"].due_on
    assert due_i is not None
    as_of = date(2026, 12, 8)
    with session_scope(engine) as session:
        rows = sla_at_risk(session, as_of=as_of)
        none_yet = sla_at_risk(session, as_of=date(2026, 11, 20), directorate="DRFIP75")
    assert _refs(rows) == ["REF-I"]
    assert rows[0]["business_days_left"] == VIERZON.business_days_between(as_of, due_i)
    assert rows[0]["business_days_left"] <= 4  # type: ignore[operator]
    assert rows[0]["status"] == "at_risk"
    assert none_yet == []


def test_at_risk_ordering_and_filters(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_reference(session)
        for reference, assigned_on in (
            ("R-3", date(2026, 11, 4)),
            ("R-0", date(2026, 10, 30)),
            ("R-1", date(2026, 11, 2)),
            ("R-2", date(2026, 11, 3)),
        ):
            add_item(
                session,
                sie="SIE-75-08",
                reference=reference,
                process="medoc_web",
                received_on=date(2026, 10, 30),
                assigned_on=assigned_on,
                assignee="ANT-18-VIERZON",
            )
        add_item(
            session,
            sie="SIE-13-01",
            reference="R-9",
            process="medoc_web",
            received_on=date(2026, 11, 2),
            assigned_on=date(2026, 11, 2),
            assignee="ANT-57-FORBACH",
        )
    # 10-day target: at risk with at most 2 business days left. In Vierzon, assigned on
    # 30 October, 2, 3 and 4 November: due 16, 17, 18 and 19 November (11 November is off).
    with session_scope(engine) as session:
        rows = sla_at_risk(session, as_of=date(2026, 11, 16))
        host_side = sla_at_risk(session, as_of=date(2026, 11, 16), directorate="DDFIP57")
        by_sie = sla_at_risk(
            session, as_of=date(2026, 11, 16), sie="SIE-75-08", process="medoc_web"
        )
    assert [(r["reference"], r["due_on"], r["business_days_left"]) for r in rows] == [
        ("R-0", date(2026, 11, 16), 0),
        ("R-9", date(2026, 11, 17), 1),  # same days left and due date: SIE-13-01 first
        ("R-1", date(2026, 11, 17), 1),
        ("R-2", date(2026, 11, 18), 2),
    ]
    assert _refs(host_side) == ["R-9"]
    assert _refs(by_sie) == ["R-0", "R-1", "R-2"]


def test_worklist_of_a_service_by_due_date_with_statuses(
    engine: Engine, world: dict[str, BuiltItem]
) -> None:
    with session_scope(engine) as session:
        rows = worklist(session, service="ANT-18-VIERZON", as_of=AS_OF)
        local = worklist(session, service="SIE-75-02", as_of=AS_OF)
        earlier = worklist(session, service="ANT-18-VIERZON", as_of=date(2026, 10, 2))
    assert [(r["reference"], r["status"]) for r in rows] == [
        ("REF-A", "breached"),
        ("REF-G", "suspended"),  # due the same day as A, its clock stopped
        ("REF-I", "on_track"),
    ]
    dues = [r["due_on"] for r in rows]
    assert dues == sorted(dues)  # type: ignore[type-var]
    assert [(r["reference"], r["status"]) for r in local] == [("REF-B", "breached")]
    # On 2 October E and F were still open at Vierzon and I did not exist.
    assert sorted(_refs(earlier)) == ["REF-A", "REF-E", "REF-F", "REF-G"]
    with session_scope(engine) as session, pytest.raises(NotFoundError):
        worklist(session, service="ANT-00", as_of=AS_OF)
