"""The demo's own state: a rerun removes only what a demo wrote; agents follow the rules."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import ColumnElement, Engine, func, insert, select
from sqlmodel import col

from models.tables import IntakeFile, IntakeRejection, ItemEvent, WorkItem
from relais.db import session_scope
from relais.demo_run import AGENT_AUTHOR, plan_agent_event, reset_demo_state, simulate_agents
from tests.builders import add_item, add_reference, post

ASSIGNED_ON = date(2026, 11, 2)
WORK_DAY = date(2026, 11, 3)


def _count(engine: Engine, table: type, *conditions: ColumnElement[bool]) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(table).where(*conditions)
            ).scalar_one()
        )


def _intake_file(engine: Engine, name: str) -> None:
    with engine.begin() as connection:
        key = connection.execute(
            insert(IntakeFile.__table__).values(  # type: ignore[attr-defined]
                sie_code="SIE-75-08",
                file_name=name,
                sha256="0" * 64,
                accepted=1,
                rejected=1,
                as_of=ASSIGNED_ON,
                ingested_at=datetime.now(UTC),
            )
        ).inserted_primary_key
        assert key is not None
        file_id = key[0]
        connection.execute(
            insert(IntakeRejection.__table__).values(  # type: ignore[attr-defined]
                intake_file_id=file_id, line=2, reference="X", reason="invalid SIREN"
            )
        )


def test_reset_removes_only_what_a_demo_wrote(engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        add_reference(session)
        demo = add_item(
            session,
            sie="SIE-75-08",
            reference="DEMO-20261102-0001",
            received_on=ASSIGNED_ON,
            assigned_on=ASSIGNED_ON,
            assignee="ANT-18-VIERZON",
        )
        add_item(
            session,
            sie="SIE-75-08",
            reference="2026-000123",
            received_on=ASSIGNED_ON,
            assigned_on=ASSIGNED_ON,
            assignee="ANT-18-VIERZON",
        )
    _intake_file(engine, "demo-20261102.csv")
    _intake_file(engine, "export-20261102.csv")
    queue = tmp_path / "queues"
    for folder, name in [
        ("incoming", "demo-20261103.csv"),
        ("processed", "demo-20261102.csv"),
        ("rejected", "demo-20261102.csv.errors.csv"),
        ("incoming", "export-20261103.csv"),
    ]:
        (queue / "SIE-75-08" / folder).mkdir(parents=True, exist_ok=True)
        (queue / "SIE-75-08" / folder / name).write_text("reference\n")

    reset = reset_demo_state(engine, queue, ["SIE-75-08"])

    assert (reset.items, reset.intake_files, reset.queue_files) == (1, 1, 3)
    assert _count(engine, WorkItem) == 1
    assert _count(engine, ItemEvent, col(ItemEvent.item_id) == demo.id) == 0
    assert _count(engine, ItemEvent) == 2  # the other item's received and assigned events
    assert _count(engine, IntakeFile) == 1
    assert _count(engine, IntakeRejection) == 1
    assert [p.name for p in queue.rglob("*") if p.is_file()] == ["export-20261103.csv"]
    # Nothing left: a second reset finds nothing and says so.
    assert not reset_demo_state(engine, queue, ["SIE-75-08"]).anything


def test_agents_only_do_what_the_lifecycle_allows() -> None:
    allowed: dict[str, set[str | None]] = {
        "assigned": {"start", "complete", None},
        "in_progress": {"suspend", "complete", None},
        "suspended": {"resume", None},
        "received": {None},
        "completed": {None},
    }
    for state, events in allowed.items():
        for seed in range(300):
            planned = plan_agent_event(state, "medoc_web", "remote", random.Random(seed))
            assert (planned[0] if planned else None) in events


def test_offices_keeping_their_own_work_are_slower() -> None:
    def starts(kind: str) -> int:
        return sum(
            1
            for seed in range(2000)
            if plan_agent_event("assigned", "tva_refund", kind, random.Random(seed))
        )

    assert starts("local") < starts("remote") * 0.7


def test_a_simulated_day_records_events_through_the_lifecycle(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_reference(session)
        for number in range(60):
            item = add_item(
                session,
                sie="SIE-75-08",
                reference=f"DEMO-20261102-{number:04d}",
                process="filing_reminder",
                received_on=ASSIGNED_ON,
                assigned_on=ASSIGNED_ON,
                assignee="ANT-18-VIERZON",
            )
            if number % 3 == 0:
                post(session, item, "start", datetime(2026, 11, 2, 10, tzinfo=UTC))
            if number % 9 == 0:
                post(session, item, "suspend", datetime(2026, 11, 2, 15, tzinfo=UTC))
        # Not a demo item: the agents leave it alone.
        add_item(
            session,
            sie="SIE-75-08",
            reference="2026-000001",
            received_on=ASSIGNED_ON,
            assigned_on=ASSIGNED_ON,
            assignee="ANT-18-VIERZON",
        )

    day = simulate_agents(engine, WORK_DAY)

    recorded = _count(engine, ItemEvent, col(ItemEvent.by) == AGENT_AUTHOR)
    assert recorded == sum(day.events.values()) > 0
    assert set(day.events) <= {"start", "complete", "suspend", "resume"}
    with engine.connect() as connection:
        agent_events = connection.execute(
            select(col(ItemEvent.at), col(ItemEvent.item_id)).where(
                col(ItemEvent.by) == AGENT_AUTHOR
            )
        ).all()
        untouched = connection.execute(
            select(col(WorkItem.state)).where(col(WorkItem.reference) == "2026-000001")
        ).scalar_one()
    assert untouched == "assigned"
    # One event per item and day, during the working day, on that day.
    assert len({item_id for _, item_id in agent_events}) == len(agent_events)
    assert {at.astimezone(UTC).date() for at, _ in agent_events} == {WORK_DAY}
