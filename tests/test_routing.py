"""The routing engine on SQLite and PostgreSQL: who gets what, capacity, versions, dry runs."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, insert, select, update

from models.tables import ItemEvent, WorkItem
from relais import routing
from relais.calendars import office_calendars
from relais.db import session_scope
from relais.domain.calendar import calendar_for
from relais.domain.conventions import Coverage
from relais.domain.routing import (
    Outcome,
    RoutableItem,
    destinations,
    plan_routing,
)
from relais.domain.sla import compute_due_on
from relais.errors import ValidationError
from relais.items import apply_event
from relais.routing import route_work_items
from tests.routing_data import (
    PARIS,
    NewItem,
    add_items,
    apply_convention,
    convention_document,
    events_of,
    item_rows,
    load_reference_data,
    write_convention,
)

_items = WorkItem.__table__  # type: ignore[attr-defined]
_events = ItemEvent.__table__  # type: ignore[attr-defined]

NOV_20 = date(2026, 11, 20)
AS_OF = date(2026, 11, 26)
VAT_08 = {"process": "tva_refund", "sies": ["SIE-75-08"], "target_business_days": 20}


@pytest.fixture
def reference(engine: Engine, tmp_path: Path) -> Engine:
    """The test reference data loaded into the test database."""
    load_reference_data(tmp_path, engine)
    return engine


def _snapshot(engine: Engine) -> tuple[dict[str, dict[str, Any]], int]:
    with engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(_events)).scalar_one()
    return item_rows(engine), events


def _python_due_on(engine: Engine, holder: str, start: date, target: int) -> date:
    with session_scope(engine) as session:
        department, closures = office_calendars(session)[holder]
    return compute_due_on(calendar_for(department, closures), start, target)


def _event(engine: Engine, sie: str, reference: str, event: str, on: date) -> None:
    with session_scope(engine) as session:
        apply_event(
            session,
            sie=sie,
            reference=reference,
            event=event,
            at=datetime.combine(on, time(9), tzinfo=PARIS),
            reason=None,
            by="cli",
        )


def test_covered_items_go_remote_and_the_others_stay_local(
    reference: Engine, tmp_path: Path
) -> None:
    engine = reference
    apply_convention(
        tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[VAT_08])
    )
    add_items(
        engine,
        [
            NewItem("SIE-75-08", "V1", "tva_refund", NOV_20),
            NewItem("SIE-75-02", "V2", "tva_refund", NOV_20),  # SIE not in the perimeter
            NewItem("SIE-75-08", "F1", "filing_reminder", NOV_20),  # process not covered
        ],
    )

    result = route_work_items(as_of=AS_OF, engine=engine)

    assert result.to_json() == {
        "as_of": "2026-11-26",
        "dry_run": False,
        "assigned": {"ANT-18-VIERZON": 1, "SIE-75-02": 1, "SIE-75-08": 1},
        "reassigned": 0,
        "waiting_capacity": 0,
        "unchanged": 0,
    }
    items = item_rows(engine)
    remote = items["SIE-75-08/V1"]
    assert (remote["state"], remote["assignee"], remote["assignment_kind"]) == (
        "assigned",
        "ANT-18-VIERZON",
        "remote",
    )
    assert (remote["convention_id"], remote["convention_version"]) == ("CONV-75-VIERZON", 1)
    assert remote["assigned_on"] == AS_OF
    assert remote["target_business_days"] == 20
    local = items["SIE-75-08/F1"]
    assert (local["assignee"], local["assignment_kind"], local["convention_id"]) == (
        "SIE-75-08",
        "local",
        None,
    )
    assert local["target_business_days"] == 10  # the catalogue default
    assert local["perimeter_line_id"] is None

    events = {event["item_id"]: event for event in events_of(engine)}
    recorded = events[remote["id"]]
    assert recorded["at"] == datetime.combine(AS_OF, time(0), tzinfo=PARIS)
    assert recorded["at"].astimezone(PARIS).date() == AS_OF
    assert (recorded["by"], recorded["flow_run_id"]) == ("cli", None)
    assert (recorded["from_state"], recorded["to_state"]) == ("received", "assigned")
    assert recorded["as_of"] == AS_OF
    assert recorded["due_on"] == remote["due_on"]
    assert recorded["perimeter_line_id"] == remote["perimeter_line_id"] is not None
    assert (recorded["convention_id"], recorded["convention_version"]) == ("CONV-75-VIERZON", 1)
    assert recorded["reason"] is None
    assert remote["last_event_at"] == recorded["at"]


def test_capacity_is_fifo_and_shared_by_the_runs_of_one_day(
    reference: Engine, tmp_path: Path
) -> None:
    engine = reference
    line = {**VAT_08, "sies": ["SIE-75-02", "SIE-75-08"], "daily_capacity": 2}
    apply_convention(tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[line]))
    add_items(
        engine,
        [
            NewItem("SIE-75-08", "A", "tva_refund", date(2026, 11, 19)),
            NewItem("SIE-75-08", "B", "tva_refund", date(2026, 11, 18)),
            NewItem("SIE-75-02", "Z", "tva_refund", date(2026, 11, 19)),
            NewItem("SIE-75-02", "Y", "tva_refund", date(2026, 11, 20)),
            NewItem("SIE-75-08", "C", "tva_refund", date(2026, 11, 21)),
        ],
    )

    first = route_work_items(as_of=AS_OF, engine=engine)
    assert (first.assigned, first.waiting_capacity) == ({"ANT-18-VIERZON": 2}, 3)
    # Oldest first; on the same day the SIE code decides.
    assert {k for k, v in item_rows(engine).items() if v["state"] == "assigned"} == {
        "SIE-75-08/B",
        "SIE-75-02/Z",
    }
    waiting = item_rows(engine)["SIE-75-08/A"]
    assert (waiting["state"], waiting["due_on"], waiting["assignee"]) == ("received", None, None)

    # A later run the same day finds the line full, even for an older item arriving now.
    add_items(engine, [NewItem("SIE-75-08", "OLD", "tva_refund", date(2026, 11, 2), AS_OF)])
    second = route_work_items(as_of=AS_OF, engine=engine)
    assert second.to_json()["assigned"] == {}
    assert (second.waiting_capacity, second.unchanged) == (4, 2)

    # The next day brings two new places, taken by the oldest waiting items.
    third = route_work_items(as_of=AS_OF + timedelta(days=1), engine=engine)
    assert (third.assigned, third.waiting_capacity) == ({"ANT-18-VIERZON": 2}, 2)
    items = item_rows(engine)
    assert items["SIE-75-08/OLD"]["assigned_on"] == AS_OF + timedelta(days=1)
    assert items["SIE-75-02/A" if "SIE-75-02/A" in items else "SIE-75-08/A"]["state"] == "assigned"
    assert items["SIE-75-02/Y"]["state"] == "received"
    assert len(events_of(engine)) == 4


def test_version_2_supersedes_version_1_and_moves_only_unstarted_items(
    reference: Engine, tmp_path: Path
) -> None:
    engine = reference
    apply_convention(
        tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[VAT_08])
    )
    add_items(engine, [NewItem("SIE-75-08", ref, "tva_refund", NOV_20) for ref in "ABCD"])
    route_work_items(as_of=AS_OF, engine=engine)
    _event(engine, "SIE-75-08", "B", "start", date(2026, 11, 27))
    _event(engine, "SIE-75-08", "C", "start", date(2026, 11, 27))
    _event(engine, "SIE-75-08", "C", "suspend", date(2026, 11, 30))
    before = item_rows(engine)

    version_2 = convention_document(
        "CONV-75-VIERZON",
        2,
        perimeter=[{**VAT_08, "target_business_days": 15}],
        effective_from=date(2026, 12, 1),
    )
    apply_convention(tmp_path, engine, version_2)
    # Version 1 is still in force the day before version 2 starts: nothing moves.
    assert route_work_items(as_of=date(2026, 11, 30), engine=engine).reassigned == 0

    result = route_work_items(as_of=date(2026, 12, 1), engine=engine)

    assert (result.reassigned, result.unchanged, result.assigned) == (2, 0, {})
    after = item_rows(engine)
    for ref in "AD":
        item = after[f"SIE-75-08/{ref}"]
        assert (item["assignee"], item["convention_version"]) == ("ANT-18-VIERZON", 2)
        assert item["assigned_on"] == date(2026, 12, 1)
        assert item["target_business_days"] == 15
        assert item["due_on"] == _python_due_on(engine, "ANT-18-VIERZON", date(2026, 12, 1), 15)
        assert item["legal_due_on"] == before[f"SIE-75-08/{ref}"]["legal_due_on"]
        assert item["legal_due_on"] == date(2027, 5, 20)
        assert item["perimeter_line_id"] != before[f"SIE-75-08/{ref}"]["perimeter_line_id"]
    for ref, state in (("B", "in_progress"), ("C", "suspended")):
        item = after[f"SIE-75-08/{ref}"]
        assert item["state"] == state
        assert item == before[f"SIE-75-08/{ref}"]
    moved = [event for event in events_of(engine) if event["from_state"] == "assigned"]
    assert len(moved) == 2
    assert {event["convention_version"] for event in moved} == {2}
    assert all("CONV-75-VIERZON version 2" in (event["reason"] or "") for event in moved)


def test_an_ended_convention_sends_unstarted_items_back_to_their_sie(
    reference: Engine, tmp_path: Path
) -> None:
    engine = reference
    apply_convention(
        tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[VAT_08])
    )
    add_items(engine, [NewItem("SIE-75-08", ref, "tva_refund", NOV_20) for ref in "AB"])
    route_work_items(as_of=AS_OF, engine=engine)
    _event(engine, "SIE-75-08", "B", "start", date(2026, 11, 27))
    ending = convention_document(
        "CONV-75-VIERZON",
        2,
        perimeter=[VAT_08],
        effective_from=date(2026, 12, 1),
        effective_to=date(2026, 12, 15),
    )
    apply_convention(tmp_path, engine, ending)
    assert route_work_items(as_of=date(2026, 12, 14), engine=engine).reassigned == 1

    result = route_work_items(as_of=date(2026, 12, 15), engine=engine)

    assert (result.reassigned, result.unchanged) == (1, 0)
    item = item_rows(engine)["SIE-75-08/A"]
    assert (item["assignee"], item["assignment_kind"], item["convention_id"]) == (
        "SIE-75-08",
        "local",
        None,
    )
    assert item["target_business_days"] == 20  # tva_refund's catalogue default
    assert item["due_on"] == _python_due_on(engine, "SIE-75-08", date(2026, 12, 15), 20)
    assert item_rows(engine)["SIE-75-08/B"]["assignee"] == "ANT-18-VIERZON"
    last = events_of(engine)[-1]
    assert (last["assignment_kind"], last["from_state"]) == ("local", "assigned")


def test_a_new_convention_takes_over_local_items_not_started(
    reference: Engine, tmp_path: Path
) -> None:
    engine = reference
    add_items(engine, [NewItem("SIE-75-08", ref, "tva_refund", NOV_20) for ref in "AB"])
    first = route_work_items(as_of=AS_OF, engine=engine)
    assert first.assigned == {"SIE-75-08": 2}
    _event(engine, "SIE-75-08", "A", "start", date(2026, 11, 27))
    apply_convention(
        tmp_path,
        engine,
        convention_document(
            "CONV-75-VIERZON", 1, perimeter=[VAT_08], effective_from=date(2026, 12, 1)
        ),
    )

    result = route_work_items(as_of=date(2026, 12, 1), engine=engine)

    assert (result.reassigned, result.unchanged) == (1, 0)
    items = item_rows(engine)
    assert (items["SIE-75-08/B"]["assignee"], items["SIE-75-08/B"]["assignment_kind"]) == (
        "ANT-18-VIERZON",
        "remote",
    )
    assert items["SIE-75-08/A"]["assignee"] == "SIE-75-08"
    assert result.moves[0].from_holder == "SIE-75-08"
    assert result.moves[0].to_holder == "ANT-18-VIERZON"


def test_a_second_run_on_the_same_day_changes_nothing(reference: Engine, tmp_path: Path) -> None:
    engine = reference
    line = {**VAT_08, "daily_capacity": 1}
    apply_convention(tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[line]))
    add_items(
        engine,
        [NewItem("SIE-75-08", f"R{n}", "tva_refund", NOV_20) for n in range(3)]
        + [NewItem("SIE-75-17", f"L{n}", "auvisir", NOV_20) for n in range(3)],
    )
    first = route_work_items(as_of=AS_OF, engine=engine)
    state = _snapshot(engine)

    second = route_work_items(as_of=AS_OF, engine=engine)

    assert _snapshot(engine) == state
    assert second.to_json() == {
        "as_of": "2026-11-26",
        "dry_run": False,
        "assigned": {},
        "reassigned": 0,
        "waiting_capacity": first.waiting_capacity,
        "unchanged": first.assigned_total,
    }


def test_a_dry_run_plans_the_same_and_writes_nothing(reference: Engine, tmp_path: Path) -> None:
    engine = reference
    line = {**VAT_08, "daily_capacity": 2}
    apply_convention(tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[line]))
    add_items(engine, [NewItem("SIE-75-08", f"R{n}", "tva_refund", NOV_20) for n in range(4)])
    state = _snapshot(engine)

    dry = route_work_items(as_of=AS_OF, dry_run=True, engine=engine)

    assert _snapshot(engine) == state
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(_events)).scalar_one() == 4
    real = route_work_items(as_of=AS_OF, engine=engine)
    assert dry.to_json() == {**real.to_json(), "dry_run": True}
    # A dry run does not use up capacity: the real run above still assigned two items.
    assert real.assigned == {"ANT-18-VIERZON": 2}


def test_a_what_if_shows_the_load_before_and_after_and_writes_nothing(
    reference: Engine, tmp_path: Path
) -> None:
    engine = reference
    add_items(
        engine,
        [NewItem("SIE-75-08", f"R{n}", "tva_refund", NOV_20) for n in range(3)]
        + [NewItem("SIE-75-02", "N1", "tva_refund", AS_OF)],
    )
    route_work_items(as_of=date(2026, 11, 25), engine=engine)
    _event(engine, "SIE-75-08", "R0", "start", AS_OF)
    draft = write_convention(
        tmp_path / "drafts",
        convention_document(
            "CONV-75-VIERZON",
            1,
            perimeter=[{**VAT_08, "sies": ["SIE-75-02", "SIE-75-08"]}],
            effective_from=AS_OF,
        ),
    )
    state = _snapshot(engine)

    result = route_work_items(as_of=AS_OF, draft_files=[draft], engine=engine)

    assert _snapshot(engine) == state
    document = result.to_json()
    assert document["dry_run"] is True
    assert document["assigned"] == {"ANT-18-VIERZON": 1}
    assert (document["reassigned"], document["unchanged"]) == (2, 0)  # R0 is in progress
    assert document["load"]["ANT-18-VIERZON"] == {"before": 0, "after": 3}
    assert document["load"]["ANT-57-FORBACH"] == {"before": 0, "after": 0}
    assert document["moves"] == [
        {
            "process": "tva_refund",
            "from": "SIE-75-08",
            "to": "ANT-18-VIERZON",
            "from_convention": None,
            "to_convention": "CONV-75-VIERZON v1",
            "items": 2,
        }
    ]
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT count(*) FROM convention_version").scalar_one()
    assert stored == 0


def test_an_invalid_draft_is_refused_with_the_validation_messages(
    reference: Engine, tmp_path: Path
) -> None:
    draft = write_convention(
        tmp_path,
        convention_document("CONV-75-VIERZON", 1, perimeter=[{**VAT_08, "sies": ["SIE-99-XX"]}]),
    )
    with pytest.raises(ValidationError) as raised:
        route_work_items(as_of=AS_OF, draft_files=[draft], engine=reference)
    assert "unknown SIE SIE-99-XX" in raised.value.message


def test_due_dates_are_the_python_calendar_of_the_holder(reference: Engine, tmp_path: Path) -> None:
    engine = reference
    apply_convention(
        tmp_path,
        engine,
        convention_document(
            "CONV-57-FORBACH",
            1,
            service="ANT-57-FORBACH",
            exporting="DDFIP57",
            host="DDFIP57",
            scope="infra_departmental",
            perimeter=[
                {"process": "tva_refund", "sies": ["SIE-57-METZ"], "target_business_days": 10}
            ],
        ),
    )
    apply_convention(
        tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[VAT_08])
    )
    good_friday_week = date(2026, 3, 27)
    add_items(
        engine,
        [
            NewItem("SIE-57-METZ", "GF", "tva_refund", date(2026, 3, 20)),
            NewItem("SIE-57-METZ", "LOC", "medoc_web", date(2026, 3, 20)),
            NewItem("SIE-75-08", "PAR", "medoc_web", date(2026, 3, 20)),
            NewItem("SIE-75-08", "VIE", "tva_refund", date(2026, 3, 20)),
        ],
    )

    route_work_items(as_of=good_friday_week, engine=engine)

    items = item_rows(engine)
    # Forbach (Moselle) does not work on Good Friday 3 April nor on Easter Monday 6 April.
    assert items["SIE-57-METZ/GF"]["due_on"] == date(2026, 4, 14)
    # Ten business days in Paris: only Easter Monday is off.
    assert items["SIE-75-08/PAR"]["due_on"] == date(2026, 4, 13)
    for item in items.values():
        assert item["due_on"] == _python_due_on(
            engine, item["assignee"], good_friday_week, item["target_business_days"]
        )

    # Vierzon is closed on 24 December on top of Christmas: its clock skips both.
    add_items(engine, [NewItem("SIE-75-08", "XMAS", "tva_refund", date(2026, 12, 18))])
    route_work_items(as_of=date(2026, 12, 18), engine=engine)
    xmas = item_rows(engine)["SIE-75-08/XMAS"]
    assert xmas["due_on"] == _python_due_on(engine, "ANT-18-VIERZON", date(2026, 12, 18), 20)
    assert xmas["due_on"] == date(2027, 1, 20)


def test_items_ingested_after_the_as_of_date_are_not_routed(reference: Engine) -> None:
    engine = reference
    add_items(engine, [NewItem("SIE-75-08", "LATE", "auvisir", NOV_20, intake_on=AS_OF)])
    early = route_work_items(as_of=date(2026, 11, 25), engine=engine)
    assert early.assigned == {}
    assert item_rows(engine)["SIE-75-08/LATE"]["state"] == "received"
    assert route_work_items(as_of=AS_OF, engine=engine).assigned == {"SIE-75-08": 1}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("indexes", "assigned_read"), [("kept", "index"), ("rebuilt", "index"), ("kept", "scan")]
)
def test_the_engine_agrees_with_the_reference_planner(
    reference: Engine,
    tmp_path: Path,
    seed: int,
    indexes: str,
    assigned_read: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random items, states and stale assignments: the SQL engine decides as the rules do,
    whether it updates the item indexes entry by entry or rebuilds them (SQLite, bulk runs),
    and whether it finds assigned items through the SIE index or by reading the whole table
    (SQLite, mostly assigned items)."""
    engine = reference
    if (indexes, assigned_read) != ("kept", "index") and engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL always keeps its indexes and lets its planner choose")
    monkeypatch.setattr(routing, "SQLITE_REBUILD_SHARE", 0.0 if indexes == "rebuilt" else 2.0)
    monkeypatch.setattr(routing, "SQLITE_SCAN_SHARE", 0.0 if assigned_read == "scan" else 2.0)
    plans: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO routing_plan"):
            plans.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    rng = random.Random(seed)
    apply_convention(
        tmp_path,
        engine,
        convention_document(
            "CONV-75-VIERZON",
            1,
            perimeter=[
                {**VAT_08, "sies": ["SIE-75-02", "SIE-75-08"], "daily_capacity": 7},
                {"process": "auvisir", "sies": "all", "daily_capacity": 3},
                {"process": "medoc_web", "sies": ["SIE-75-17"]},
            ],
        ),
    )
    apply_convention(
        tmp_path,
        engine,
        convention_document(
            "CONV-75-VIERZON",
            2,
            perimeter=[
                {**VAT_08, "sies": ["SIE-75-02", "SIE-75-08"], "daily_capacity": 7},
                {"process": "auvisir", "sies": ["SIE-75-17"], "daily_capacity": 3},
            ],
            effective_from=date(2026, 11, 15),
        ),
    )
    holders = [
        ("ANT-18-VIERZON", "CONV-75-VIERZON", 1),
        ("ANT-18-VIERZON", "CONV-75-VIERZON", 2),
        ("ANT-57-FORBACH", "CONV-OLD", 1),
    ]
    sies = ["SIE-75-02", "SIE-75-08", "SIE-75-17", "SIE-57-METZ"]
    processes = ["tva_refund", "auvisir", "medoc_web", "filing_reminder"]
    new_items = [
        NewItem(
            rng.choice(sies),
            f"R{n:03d}",
            rng.choice(processes),
            date(2026, 11, 1) + timedelta(days=rng.randrange(20)),
        )
        for n in range(120)
    ]
    ids = add_items(engine, new_items)
    with engine.begin() as connection:
        # Items a previous night left behind: assigned somewhere, maybe stale; some started.
        for item_id, new_item in zip(ids, new_items, strict=True):
            roll = rng.random()
            if roll < 0.45:
                continue
            assignee, convention, version = rng.choice([*holders, (new_item.sie, None, None)])
            connection.execute(
                update(_items)
                .where(_items.c.id == item_id)
                .values(
                    state="assigned" if roll < 0.85 else "in_progress",
                    assignee=assignee,
                    assignment_kind="local" if convention is None else "remote",
                    convention_id=convention,
                    convention_version=version,
                    assigned_on=date(2026, 11, 21),
                    due_on=date(2026, 12, 21),
                    target_business_days=20,
                )
            )
        # Three places of the VAT line already used today by an earlier run.
        line_id = connection.exec_driver_sql(
            "SELECT id FROM perimeter_line WHERE version = 2 AND process = 'tva_refund'"
        ).scalar_one()
        for item_id in ids[:3]:
            connection.execute(
                insert(_events).values(
                    item_id=item_id,
                    event="assigned",
                    at=datetime.combine(AS_OF, time(0), tzinfo=PARIS),
                    by="cli",
                    to_state="assigned",
                    perimeter_line_id=line_id,
                    as_of=AS_OF,
                    recorded_at=datetime.now(UTC),
                )
            )
    before = item_rows(engine)
    with session_scope(engine) as session:
        from relais.conventions import coverage_on

        coverage: dict[tuple[str, str], Coverage] = coverage_on(session, AS_OF)
    table = destinations(sies, coverage)
    routable = [
        RoutableItem(
            id=row["id"],
            sie_code=row["sie_code"],
            reference=row["reference"],
            process=row["process"],
            received_on=row["received_on"],
            state=row["state"],
            assignee=row["assignee"],
            convention_id=row["convention_id"],
            convention_version=row["convention_version"],
        )
        for row in before.values()
    ]
    decisions = {d.item_id: d for d in plan_routing(routable, table, {line_id: 3})}

    result = route_work_items(as_of=AS_OF, engine=engine)

    event.remove(engine, "before_cursor_execute", record)
    scanned = [plan for plan in plans if "coalesce(work_item.state, work_item.state)" in plan]
    assert len(scanned) == (1 if assigned_read == "scan" else 0)
    after = {row["id"]: row for row in item_rows(engine).values()}
    for item in routable:
        decision = decisions.get(item.id)
        row = after[item.id]
        if decision is not None and decision.outcome in (Outcome.ASSIGN, Outcome.REASSIGN):
            assert decision.destination is not None
            assert (row["assignee"], row["convention_version"], row["assigned_on"]) == (
                decision.destination.assignee,
                decision.destination.convention_version,
                AS_OF,
            ), item
        else:
            assert row == before[f"{item.sie_code}/{item.reference}"], item
    outcomes = [d.outcome for d in decisions.values()]
    assert result.reassigned == outcomes.count(Outcome.REASSIGN)
    assert result.waiting_capacity == outcomes.count(Outcome.WAIT)
    assert result.held_for_capacity == outcomes.count(Outcome.HOLD)
    assert result.assigned_total == outcomes.count(Outcome.ASSIGN)


def _item_indexes(source: Engine | Connection) -> list[tuple[str, str]]:
    """The indexes of ``work_item`` as SQLite stores them: (name, definition), by name."""
    with contextlib.ExitStack() as stack:
        connection = (
            source if isinstance(source, Connection) else stack.enter_context(source.connect())
        )
        return [
            tuple(row)
            for row in connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'work_item' ORDER BY name"
            )
        ]


@pytest.fixture
def bulk_night(sqlite_engine: Engine, tmp_path: Path) -> Engine:
    """A SQLite database whose next run assigns every item: a bulk night, with a rebuild."""
    engine = sqlite_engine
    load_reference_data(tmp_path, engine)
    apply_convention(
        tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[VAT_08])
    )
    add_items(
        engine,
        [NewItem("SIE-75-08", f"R{n}", "tva_refund", NOV_20) for n in range(30)]
        + [NewItem("SIE-75-17", f"L{n}", "auvisir", NOV_20) for n in range(30)],
    )
    return engine


def test_a_bulk_run_on_sqlite_leaves_the_same_indexes_consistent_and_analysed(
    bulk_night: Engine,
) -> None:
    engine = bulk_night
    indexes = _item_indexes(engine)
    assert len(indexes) >= 5

    result = route_work_items(as_of=AS_OF, engine=engine)  # every item: a rebuild

    assert result.assigned_total == 60
    assert _item_indexes(engine) == indexes
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        analysed = set(
            connection.exec_driver_sql(
                "SELECT idx FROM sqlite_stat1 WHERE tbl = 'work_item'"
            ).scalars()
        )
        # The indexes serve the holder's list as before.
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM work_item"
                " WHERE assignee = 'ANT-18-VIERZON' AND state = 'assigned'"
            )
        )
    # (Every item is routed: the index of received items is empty, with nothing to analyse.)
    assert {name for name, _ in indexes} - {"ix_work_item_received"} <= analysed
    assert "ix_work_item_holder" in plan


def test_a_bulk_run_on_sqlite_builds_its_indexes_with_a_small_sort_budget_and_helpers(
    bulk_night: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = bulk_night
    monkeypatch.setattr(routing, "usable_cores", lambda: 3.0)
    during: list[tuple[int, int]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def settings(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("CREATE INDEX"):
            raw = cursor.connection  # the driver's own: no event, no recursion
            during.append(
                (
                    raw.execute("PRAGMA main.cache_size").fetchone()[0],
                    raw.execute("PRAGMA threads").fetchone()[0],
                )
            )

    with engine.connect() as connection:
        own = connection.exec_driver_sql("PRAGMA main.cache_size").scalar_one()
    try:
        assert route_work_items(as_of=AS_OF, engine=engine).assigned_total == 60
    finally:
        event.remove(engine, "before_cursor_execute", settings)

    assert len(during) >= 4
    assert set(during) == {(-routing.SQLITE_SORT_KIB, 2)}
    with engine.connect() as connection:  # the pooled connection is as it was
        assert connection.exec_driver_sql("PRAGMA main.cache_size").scalar_one() == own
        assert connection.exec_driver_sql("PRAGMA threads").scalar_one() == 0


def test_a_bulk_run_that_fails_after_dropping_the_indexes_leaves_them_and_the_items(
    bulk_night: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = bulk_night
    indexes, before = _item_indexes(engine), _snapshot(engine)
    write = routing.RoutingRun._write_items_and_events

    def write_then_fail(self: routing.RoutingRun, matches: list[Any]) -> None:
        write(self, matches)
        assert not any(name == "ix_work_item_holder" for name, _ in _item_indexes(self.connection))
        raise OSError("disk full")

    monkeypatch.setattr(routing.RoutingRun, "_write_items_and_events", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        route_work_items(as_of=AS_OF, engine=engine)

    assert _item_indexes(engine) == indexes
    assert _snapshot(engine) == before
    monkeypatch.undo()
    assert route_work_items(as_of=AS_OF, engine=engine).assigned_total == 60


def test_route_refuses_a_bad_draft_before_starting_a_flow(
    reference: Engine, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from relais.cli.main import app

    draft = write_convention(
        tmp_path,
        convention_document("CONV-75-VIERZON", 1, perimeter=[{**VAT_08, "daily_capacity": 0}]),
    )
    result = CliRunner().invoke(app, ["route", "--with-convention", str(draft)])
    assert result.exit_code == 1
    assert "daily_capacity" in result.stderr
    assert result.stdout == ""


def test_route_prints_the_summary_and_the_what_if_load(
    reference: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output only: the flow is replaced by the engine it runs (the flow test runs the real one)."""
    import json

    from typer.testing import CliRunner

    import flows.routing
    from relais.cli.main import app

    def run_in_process(
        as_of: date, dry_run: bool, draft_conventions: list[str] | None
    ) -> dict[str, Any]:
        return route_work_items(
            as_of=as_of, dry_run=dry_run, draft_files=draft_conventions or (), engine=reference
        ).to_json()

    monkeypatch.setattr(flows.routing, "route_work_items", run_in_process)
    add_items(reference, [NewItem("SIE-75-08", "R1", "tva_refund", NOV_20)])
    draft = write_convention(
        tmp_path, convention_document("CONV-75-VIERZON", 1, perimeter=[VAT_08])
    )
    runner = CliRunner()

    table = runner.invoke(app, ["route", "--as-of", "2026-11-26", "--dry-run"])
    assert table.exit_code == 0, table.output
    assert "SIE-75-08" in table.stdout and "would be assigned" in table.stdout
    assert "Dry run: nothing was written." in table.stderr

    what_if = runner.invoke(
        app, ["route", "--as-of", "2026-11-26", "--with-convention", str(draft), "--format", "json"]
    )
    assert what_if.exit_code == 0, what_if.output
    document = json.loads(what_if.stdout)
    assert document["assigned"] == {"ANT-18-VIERZON": 1}
    assert document["load"]["ANT-18-VIERZON"] == {"before": 0, "after": 1}
    assert item_rows(reference)["SIE-75-08/R1"]["state"] == "received"


def test_a_draft_identical_to_a_stored_version_is_a_what_if_of_the_stored_one(
    reference: Engine, tmp_path: Path
) -> None:
    engine = reference
    line = {**VAT_08, "daily_capacity": 1}
    stored = apply_convention(
        tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[line])
    )
    add_items(engine, [NewItem("SIE-75-08", f"R{n}", "tva_refund", NOV_20) for n in range(3)])
    assert route_work_items(as_of=AS_OF, engine=engine).assigned == {"ANT-18-VIERZON": 1}
    state = _snapshot(engine)

    result = route_work_items(as_of=AS_OF, draft_files=[stored], engine=engine)

    assert _snapshot(engine) == state
    document = result.to_json()
    assert (document["dry_run"], document["assigned"]) == (True, {})
    assert document["waiting_capacity"] == 2  # today's place is already taken
    assert document["load"]["ANT-18-VIERZON"] == {"before": 1, "after": 1}
