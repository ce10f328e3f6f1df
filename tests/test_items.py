"""Lifecycle events in the database, event files and the detail of an item (SQLite + PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from models.tables import ItemEvent, WorkItem
from relais.db import session_scope
from relais.errors import NotFoundError, RelaisError, TransitionError, ValidationError
from relais.items import apply_event, errors_file_for, import_events, item_detail
from tests.builders import BuiltItem, add_item, add_reference, assign, local_midnight, post

SPEC_KEYS = {
    "sie",
    "reference",
    "process",
    "state",
    "assignee",
    "assignment_kind",
    "convention",
    "convention_version",
    "assigned_on",
    "due_on",
    "legal_due_on",
    "sla_status",
    "history",
}


@pytest.fixture
def item(engine: Engine) -> BuiltItem:
    """A VAT refund of SIE Paris 8e held by Vierzon since Monday 2 November 2026."""
    with session_scope(engine) as session:
        add_reference(session, closures=[("ANT-18-VIERZON", date(2026, 11, 13))])
        return add_item(
            session,
            sie="SIE-75-08",
            reference="REF-1",
            received_on=date(2026, 10, 30),
            assigned_on=date(2026, 11, 2),
            assignee="ANT-18-VIERZON",
            convention="CONV-75-VIERZON",
            version=2,
        )


# `session.exec` of SQLAlchemy's `select` carries `type: ignore[call-overload]`: sqlmodel's
# overloads name only its own select types, though it runs SQLAlchemy's as `Session.execute` does.


def _state(engine: Engine, reference: str = "REF-1") -> WorkItem:
    with Session(engine) as session:
        return session.exec(  # type: ignore[call-overload]
            select(WorkItem).where(col(WorkItem.reference) == reference)
        ).one()[0]


def _event_count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(ItemEvent)).one()[0]  # type: ignore[call-overload]


def test_builder_computes_the_due_date_in_the_holders_calendar(item: BuiltItem) -> None:
    # 20 business days after 2 November in Vierzon: 11 November is a holiday and 13 November
    # a closure of the antenna.
    assert item.due_on == date(2026, 12, 2)


def test_start_changes_the_state_and_is_kept_in_the_history(
    engine: Engine, item: BuiltItem
) -> None:
    at = datetime(2026, 11, 3, 9, 15, tzinfo=local_midnight(date(2026, 11, 3)).tzinfo)
    with session_scope(engine) as session:
        applied = post(session, item, "start", at)
    assert (applied.from_state, applied.to_state) == ("assigned", "in_progress")
    stored = _state(engine)
    assert stored.state == "in_progress"
    assert stored.last_event_at == at
    with session_scope(engine) as session:
        detail = item_detail(session, sie="SIE-75-08", reference="REF-1", as_of=date(2026, 11, 3))
    last = detail["history"][-1]
    assert last["event"] == "start"
    assert last["by"] == "cli"
    assert last["at"] == "2026-11-03T09:15:00+01:00"


def test_a_refused_event_changes_nothing(engine: Engine, item: BuiltItem) -> None:
    before = _event_count(engine)
    with session_scope(engine) as session, pytest.raises(TransitionError) as refused:
        post(session, item, "suspend", date(2026, 11, 3))
    assert str(refused.value) == (
        "cannot suspend item SIE-75-08/REF-1: it is assigned (suspend needs in_progress)"
    )
    assert _state(engine).state == "assigned"
    assert _event_count(engine) == before


def test_an_event_before_the_last_one_is_refused(engine: Engine, item: BuiltItem) -> None:
    with session_scope(engine) as session:
        post(session, item, "start", date(2026, 11, 5))
    with session_scope(engine) as session, pytest.raises(TransitionError, match="earlier than"):
        post(session, item, "complete", date(2026, 11, 4))
    assert _state(engine).state == "in_progress"


def test_unknown_items_and_events_are_refused_without_taxpayer_data(
    engine: Engine, item: BuiltItem
) -> None:
    siren = _state(engine).siren
    with session_scope(engine) as session, pytest.raises(NotFoundError) as missing:
        post(session, ("SIE-75-08", "NOPE"), "start", date(2026, 11, 3))
    assert str(missing.value) == "unknown item SIE-75-08/NOPE"
    with session_scope(engine) as session, pytest.raises(ValidationError) as unknown:
        post(session, item, "close", date(2026, 11, 3))
    for error in (missing.value, unknown.value):
        assert siren not in str(error)
        assert "Libellé" not in str(error)
    with session_scope(engine) as session, pytest.raises(NotFoundError):
        item_detail(session, sie="SIE-75-02", reference="REF-1", as_of=date(2026, 11, 3))


def test_resume_moves_the_due_date_in_the_holders_calendar(engine: Engine, item: BuiltItem) -> None:
    with session_scope(engine) as session:
        post(session, item, "start", date(2026, 11, 3))
        post(
            session,
            item,
            "suspend",
            datetime(2026, 11, 10, 17, 0, tzinfo=local_midnight(date(2026, 11, 10)).tzinfo),
        )
    with session_scope(engine) as session:
        resumed = post(session, item, "resume", date(2026, 11, 16), reason="Pièces reçues")
    # Paused business days in Vierzon after 10 November up to 16 November: 12 and 16
    # (11 November is a holiday, 13 November a closure, 14-15 a weekend).
    assert resumed.due_on_before == date(2026, 12, 2)
    assert resumed.due_on == date(2026, 12, 4)
    stored = _state(engine)
    assert stored.due_on == date(2026, 12, 4)
    assert stored.suspended_on is None
    with session_scope(engine) as session:
        detail = item_detail(session, sie="SIE-75-08", reference="REF-1", as_of=date(2026, 11, 16))
    resume = detail["history"][-1]
    assert resume["event"] == "resume"
    assert resume["due_on"] == date(2026, 12, 4)
    assert resume["due_on_before"] == date(2026, 12, 2)
    assert resume["reason"] == "Pièces reçues"


def test_complete_records_the_completion_date_and_the_sla_outcome(
    engine: Engine, item: BuiltItem
) -> None:
    with session_scope(engine) as session:
        post(session, item, "complete", date(2026, 12, 3), reason="Remboursement accordé")
    stored = _state(engine)
    assert (stored.state, stored.completed_on) == ("completed", date(2026, 12, 3))
    with session_scope(engine) as session:
        detail = item_detail(session, sie="SIE-75-08", reference="REF-1", as_of=date(2026, 12, 20))
    assert detail["sla_status"] == "missed"
    assert detail["legal_status"] is None
    assert detail["history"][-1]["reason"] == "Remboursement accordé"


def test_item_detail_has_the_spec_fields_and_the_whole_history(
    engine: Engine, item: BuiltItem
) -> None:
    with session_scope(engine) as session:
        assign(
            session,
            item_id=item.id,
            on=date(2026, 11, 9),
            assignee="ANT-57-FORBACH",
            convention="CONV-75-FORBACH",
            version=1,
        )
        post(session, item, "start", date(2026, 11, 10))
    with session_scope(engine) as session:
        detail = item_detail(session, sie="SIE-75-08", reference="REF-1", as_of=date(2026, 11, 10))
    assert set(detail) >= SPEC_KEYS
    assert detail["state"] == "in_progress"
    assert (detail["assignee"], detail["assignment_kind"]) == ("ANT-57-FORBACH", "remote")
    assert (detail["convention"], detail["convention_version"]) == ("CONV-75-FORBACH", 1)
    assert detail["assigned_on"] == date(2026, 11, 9)
    assert detail["legal_due_on"] == date(2027, 4, 30)
    assert detail["sla_status"] == "on_track"
    assert [entry["event"] for entry in detail["history"]] == [
        "received",
        "assigned",
        "assigned",
        "start",
    ]
    first, second = detail["history"][1], detail["history"][2]
    assert (first["convention"], first["convention_version"], first["assignee"]) == (
        "CONV-75-VIERZON",
        2,
        "ANT-18-VIERZON",
    )
    assert (second["convention"], second["from_state"]) == ("CONV-75-FORBACH", "assigned")
    assert second["as_of"] == date(2026, 11, 9)
    assert second["due_on"] == detail["due_on"]
    assert "siren" not in str(detail).lower()


def test_sla_status_and_legal_status_follow_the_as_of_date(engine: Engine, item: BuiltItem) -> None:
    with session_scope(engine) as session:
        statuses = {
            as_of: item_detail(session, sie="SIE-75-08", reference="REF-1", as_of=as_of)
            for as_of in (
                date(2026, 11, 3),
                date(2026, 11, 27),
                date(2026, 12, 3),
                date(2027, 5, 3),
            )
        }
    assert [d["sla_status"] for d in statuses.values()] == [
        "on_track",
        "at_risk",
        "breached",
        "breached",
    ]
    assert [d["legal_status"] for d in statuses.values()] == [
        "within_deadline",
        "within_deadline",
        "within_deadline",
        "legal_breached",
    ]


def test_a_received_item_can_only_be_cancelled(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_reference(session)
        waiting = add_item(session, sie="SIE-75-02", reference="W-1", received_on=date(2026, 11, 2))
    with session_scope(engine) as session, pytest.raises(TransitionError, match="it is received"):
        post(session, waiting, "start", date(2026, 11, 3))
    with session_scope(engine) as session:
        post(session, waiting, "cancel", date(2026, 11, 3), reason="Doublon")
        detail = item_detail(session, sie="SIE-75-02", reference="W-1", as_of=date(2026, 11, 3))
    assert (detail["state"], detail["sla_status"], detail["assignee"]) == ("cancelled", None, None)


def test_concurrent_events_on_one_item_are_never_both_applied(
    engine: Engine, item: BuiltItem
) -> None:
    # Both start the same assigned item at once: the row lock lets exactly one through, the
    # other sees in_progress and is refused.
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            with session_scope(engine) as session:
                post(session, item, "start", date(2026, 11, 3))
            outcomes.append("applied")
        except RelaisError as error:
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["TransitionError"] * 3 + ["applied"]
    with Session(engine) as session:
        starts = session.exec(  # type: ignore[call-overload]
            select(func.count()).select_from(ItemEvent).where(col(ItemEvent.event) == "start")
        ).one()[0]
    assert starts == 1


def test_concurrent_different_events_all_land_in_the_history(engine: Engine) -> None:
    # Many items, one thread each doing start then complete: no event is lost.
    with session_scope(engine) as session:
        add_reference(session)
        items = [
            add_item(
                session,
                sie="SIE-75-17",
                reference=f"C-{n}",
                received_on=date(2026, 11, 2),
                assigned_on=date(2026, 11, 2),
            )
            for n in range(6)
        ]
    errors: list[BaseException] = []

    def work(built: BuiltItem) -> None:
        try:
            for event in ("start", "suspend", "resume", "complete"):
                with session_scope(engine) as session:
                    post(session, built, event, date(2026, 11, 3))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(built,)) for built in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        lifecycle = session.exec(  # type: ignore[call-overload]
            select(func.count()).select_from(ItemEvent).where(col(ItemEvent.by) == "cli")
        ).one()[0]
        completed = session.exec(  # type: ignore[call-overload]
            select(func.count()).select_from(WorkItem).where(col(WorkItem.state) == "completed")
        ).one()[0]
    assert (lifecycle, completed) == (24, 6)


# --- event files ----------------------------------------------------------------------------


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_event_file_applies_or_refuses_each_row_on_its_own(
    engine: Engine, item: BuiltItem, tmp_path: Path
) -> None:
    events = _write(
        tmp_path / "events.csv",
        "sie;reference;event;at;reason\r\n"
        "SIE-75-08;REF-1;start;2026-11-03;\r\n"
        "SIE-75-08;REF-1;resume;2026-11-04;\r\n"  # refused: in progress
        "SIE-75-08;=HYPERLINK(1);start;2026-11-04;\r\n"  # unknown item, formula-like reference
        "SIE-75-08;REF-1;pause;2026-11-04;\r\n"  # unknown event
        "SIE-75-08;REF-1;suspend;4 novembre;\r\n"  # bad time
        ";REF-1;suspend;2026-11-04;\r\n"  # missing SIE
        "\r\n"
        "SIE-75-08;REF-1;suspend;2026-11-05T10:30;Attente pièces\r\n",
    )
    outcome = import_events(events, by="cli")
    assert (outcome.applied, outcome.refused) == (2, 5)
    assert [(row.line, row.result) for row in outcome.rows] == [
        (2, "applied"),
        (3, "refused"),
        (4, "refused"),
        (5, "refused"),
        (6, "refused"),
        (7, "refused"),
        (9, "applied"),
    ]
    stored = _state(engine)
    assert (stored.state, stored.suspended_on) == ("suspended", date(2026, 11, 5))
    assert outcome.errors_file == errors_file_for(events)
    assert outcome.errors_file.name == "events.csv.errors.csv"
    raw = outcome.errors_file.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfline;reference;reason\r\n")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[1] == (
        "3;REF-1;cannot resume item SIE-75-08/REF-1: it is in_progress (resume needs suspended)"
    )
    assert lines[2] == "4;'=HYPERLINK(1);unknown item SIE-75-08/=HYPERLINK(1)"
    assert lines[3].startswith("5;REF-1;unknown event 'pause'")
    assert lines[4].startswith("6;REF-1;invalid time '4 novembre'")
    assert lines[5] == "7;REF-1;missing sie"
    assert len(lines) == 6


def test_event_file_in_windows_1252_with_commas(
    engine: Engine, item: BuiltItem, tmp_path: Path
) -> None:
    events = _write(
        tmp_path / "evenements.csv",
        "SIE,Reference,Event,At,Reason\n"
        "SIE-75-08,REF-1,start,03/11/2026,\n"
        'SIE-75-08,REF-1,suspend,2026-11-04,"Pièce manquante, relance"\n',
        encoding="cp1252",
    )
    outcome = import_events(events, by="cli")
    assert (outcome.applied, outcome.refused, outcome.errors_file) == (2, 0, None)
    with session_scope(engine) as session:
        detail = item_detail(session, sie="SIE-75-08", reference="REF-1", as_of=date(2026, 11, 4))
    assert detail["history"][-1]["reason"] == "Pièce manquante, relance"


def test_a_clean_rerun_removes_a_stale_errors_file(
    engine: Engine, item: BuiltItem, tmp_path: Path
) -> None:
    events = _write(
        tmp_path / "e.csv", "sie;reference;event;at\nSIE-75-08;REF-1;resume;2026-11-03\n"
    )
    assert import_events(events, by="cli").refused == 1
    assert errors_file_for(events).exists()
    _write(events, "sie;reference;event;at\nSIE-75-08;REF-1;start;2026-11-03\n")
    assert import_events(events, by="cli").applied == 1
    assert not errors_file_for(events).exists()


def test_an_event_file_without_the_required_columns_is_refused_whole(
    engine: Engine, item: BuiltItem, tmp_path: Path
) -> None:
    events = _write(tmp_path / "e.csv", "sie;ref;event\nSIE-75-08;REF-1;start\n")
    with pytest.raises(ValidationError, match="missing column"):
        import_events(events, by="cli")
    assert _state(engine).state == "assigned"


def test_a_row_without_a_time_happens_now(engine: Engine, item: BuiltItem, tmp_path: Path) -> None:
    now = local_midnight(date(2026, 11, 6))
    events = _write(tmp_path / "e.csv", "sie;reference;event\nSIE-75-08;REF-1;start\n")
    assert import_events(events, by="cli", now=now).applied == 1
    assert _state(engine).last_event_at == now


def test_apply_event_refuses_naive_times(engine: Engine, item: BuiltItem) -> None:
    with session_scope(engine) as session, pytest.raises(ValidationError):
        apply_event(
            session,
            sie="SIE-75-08",
            reference="REF-1",
            event="start",
            at=datetime(2026, 11, 3),
            reason=None,
            by="cli",
        )
