"""Routing rules on plain values: destinations, capacity accounting, the reference planner."""

from __future__ import annotations

from datetime import date

import pytest

from relais.domain.conventions import Coverage
from relais.domain.routing import (
    LOCAL,
    REMOTE,
    Decision,
    Destination,
    Outcome,
    RoutableItem,
    RoutingResult,
    ServiceLoad,
    destination_for,
    destinations,
    fifo_key,
    holder_changed,
    local_destination,
    plan_routing,
    remaining_capacity,
    summarise,
)

VIERZON_V1 = Coverage(
    convention_id="CONV-75-VIERZON",
    version=1,
    line_id=11,
    position=0,
    service="ANT-18-VIERZON",
    target_business_days=20,
    daily_capacity=2,
)
VIERZON_V2 = Coverage(
    convention_id="CONV-75-VIERZON",
    version=2,
    line_id=21,
    position=0,
    service="ANT-18-VIERZON",
    target_business_days=15,
    daily_capacity=None,
)


def _item(
    item_id: int,
    reference: str,
    *,
    sie: str = "SIE-75-08",
    process: str = "tva_refund",
    received_on: date = date(2026, 11, 20),
    state: str = "received",
    assignee: str | None = None,
    convention: tuple[str, int] | None = None,
) -> RoutableItem:
    return RoutableItem(
        id=item_id,
        sie_code=sie,
        reference=reference,
        process=process,
        received_on=received_on,
        state=state,
        assignee=assignee,
        convention_id=convention[0] if convention else None,
        convention_version=convention[1] if convention else None,
    )


def _outcomes(decisions: list[Decision]) -> dict[int, Outcome]:
    return {decision.item_id: decision.outcome for decision in decisions}


def test_uncovered_items_stay_at_their_sie_with_the_catalogue_target() -> None:
    destination = destination_for("SIE-75-02", "ex_officio_taxation", None)
    assert destination == Destination("SIE-75-02", LOCAL, None, None, None, 40, None)
    assert local_destination("SIE-75-02", "medoc_web").target_business_days == 10


def test_covered_items_go_to_the_service_of_the_line() -> None:
    destination = destination_for("SIE-75-08", "tva_refund", VIERZON_V1)
    assert destination.assignee == "ANT-18-VIERZON"
    assert destination.kind == REMOTE
    assert (destination.convention_id, destination.convention_version) == ("CONV-75-VIERZON", 1)
    assert destination.perimeter_line_id == 11
    assert (destination.target_business_days, destination.daily_capacity) == (20, 2)


def test_the_routing_table_has_every_sie_and_catalogue_process() -> None:
    table = destinations(
        ["SIE-75-08", "SIE-75-02", "SIE-75-08"], {("SIE-75-08", "tva_refund"): VIERZON_V1}
    )
    assert len(table) == 2 * 8
    assert table[("SIE-75-08", "tva_refund")].kind == REMOTE
    assert table[("SIE-75-02", "tva_refund")].kind == LOCAL


@pytest.mark.parametrize(
    ("capacity", "used", "expected"),
    [(None, 5, None), (300, 0, 300), (300, 299, 1), (300, 300, 0), (2, 5, 0)],
)
def test_remaining_capacity(capacity: int | None, used: int, expected: int | None) -> None:
    assert remaining_capacity(capacity, used) == expected


def test_a_new_version_is_a_change_of_holder_even_for_the_same_service() -> None:
    v1 = destination_for("SIE-75-08", "tva_refund", VIERZON_V1)
    v2 = destination_for("SIE-75-08", "tva_refund", VIERZON_V2)
    assert not holder_changed("ANT-18-VIERZON", "CONV-75-VIERZON", 1, v1)
    assert holder_changed("ANT-18-VIERZON", "CONV-75-VIERZON", 1, v2)
    assert holder_changed("SIE-75-08", None, None, v1)
    assert not holder_changed("SIE-75-08", None, None, local_destination("SIE-75-08", "auvisir"))


def test_fifo_order_is_received_on_then_sie_then_reference() -> None:
    keys = [
        fifo_key(date(2026, 11, 3), "SIE-75-02", "B"),
        fifo_key(date(2026, 11, 2), "SIE-75-17", "A"),
        fifo_key(date(2026, 11, 3), "SIE-75-02", "A"),
    ]
    assert sorted(keys) == [keys[1], keys[2], keys[0]]


def test_capacity_takes_the_oldest_and_counts_earlier_assignments_of_the_day() -> None:
    table = destinations(["SIE-75-08"], {("SIE-75-08", "tva_refund"): VIERZON_V1})
    items = [
        _item(1, "R3", received_on=date(2026, 11, 21)),
        _item(2, "R1", received_on=date(2026, 11, 19)),
        _item(3, "R2", received_on=date(2026, 11, 20)),
    ]
    assert _outcomes(plan_routing(items, table, {})) == {
        2: Outcome.ASSIGN,
        3: Outcome.ASSIGN,
        1: Outcome.WAIT,
    }
    # One place already used today (an earlier run or a reassignment): only the oldest goes.
    assert _outcomes(plan_routing(items, table, {11: 1})) == {
        2: Outcome.ASSIGN,
        3: Outcome.WAIT,
        1: Outcome.WAIT,
    }


def test_assigned_items_move_only_when_their_holder_changed() -> None:
    table = destinations(["SIE-75-08"], {("SIE-75-08", "tva_refund"): VIERZON_V2})
    items = [
        _item(
            1, "R1", state="assigned", assignee="ANT-18-VIERZON", convention=("CONV-75-VIERZON", 1)
        ),
        _item(
            2, "R2", state="assigned", assignee="ANT-18-VIERZON", convention=("CONV-75-VIERZON", 2)
        ),
        _item(
            3,
            "R3",
            state="in_progress",
            assignee="ANT-18-VIERZON",
            convention=("CONV-75-VIERZON", 1),
        ),
        _item(4, "R4", state="suspended", assignee="SIE-75-08"),
        _item(5, "L1", process="auvisir", state="assigned", assignee="SIE-75-08"),
    ]
    assert _outcomes(plan_routing(items, table, {})) == {
        1: Outcome.REASSIGN,
        2: Outcome.UNCHANGED,
        5: Outcome.UNCHANGED,
    }


def test_a_reassignment_to_a_full_line_waits_where_it_is() -> None:
    table = destinations(["SIE-75-08"], {("SIE-75-08", "tva_refund"): VIERZON_V1})
    items = [
        _item(1, "R1", received_on=date(2026, 11, 1), state="assigned", assignee="SIE-75-08"),
        _item(2, "R2", received_on=date(2026, 11, 2)),
        _item(3, "R3", received_on=date(2026, 11, 3), state="assigned", assignee="SIE-75-08"),
    ]
    decisions = plan_routing(items, table, {})
    assert _outcomes(decisions) == {1: Outcome.REASSIGN, 2: Outcome.ASSIGN, 3: Outcome.HOLD}
    result = summarise(date(2026, 11, 26), False, decisions, items)
    assert result.to_json() == {
        "as_of": "2026-11-26",
        "dry_run": False,
        "assigned": {"ANT-18-VIERZON": 1},
        "reassigned": 1,
        "waiting_capacity": 0,
        "unchanged": 1,
    }
    assert result.held_for_capacity == 1


def test_the_json_leaves_zero_entries_out_and_adds_the_load_for_a_what_if() -> None:
    result = RoutingResult(
        as_of=date(2026, 11, 26),
        dry_run=True,
        assigned={"SIE-75-02": 0, "ANT-18-VIERZON": 3},
        reassigned=2,
        waiting_capacity=1,
        unchanged=4,
    )
    assert result.to_json()["assigned"] == {"ANT-18-VIERZON": 3}
    assert "load" not in result.to_json()
    what_if = RoutingResult(
        as_of=date(2026, 11, 26),
        dry_run=True,
        assigned={},
        reassigned=0,
        waiting_capacity=0,
        unchanged=0,
        drafts=("draft.yaml",),
        load={"ANT-18-VIERZON": ServiceLoad(before=4, after=9)},
    )
    assert what_if.to_json()["load"] == {"ANT-18-VIERZON": {"before": 4, "after": 9}}
