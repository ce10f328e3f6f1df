"""Reading an item and posting events through the API: scope per role, CLI rules and messages."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from relais.api.deps import today
from relais.cli.output import to_json
from relais.db import session_scope
from relais.domain.lifecycle import parse_at
from relais.errors import RelaisError
from relais.items import apply_event, item_detail
from relais.settings import get_settings
from tests.api_fixtures import World

# Who reads which item: (item, tokens that see it). Everyone else gets 404.
READERS = {
    ("SIE-75-08", "R-A"): {"admin", "sup-75", "sup-18", "svc-vierzon"},  # Paris SIE, Vierzon
    ("SIE-75-02", "R-I"): {"admin", "sup-75"},  # local item of a Paris SIE
    ("SIE-75-08", "R-W"): {"admin", "sup-75"},  # waiting for routing: nobody holds it
    ("SIE-57-01", "R-M"): {"admin", "sup-57", "svc-forbach"},  # Metz SIE, Forbach
}
ROLES = ("admin", "sup-75", "sup-18", "sup-57", "svc-vierzon", "svc-forbach")


@pytest.mark.parametrize("token", ROLES)
@pytest.mark.parametrize("key", list(READERS), ids=lambda key: "/".join(key))
def test_each_role_reads_exactly_its_items(
    client: TestClient, world: World, token: str, key: tuple[str, str]
) -> None:
    sie, reference = key
    response = client.get(f"/api/items/{sie}/{reference}", headers=world.headers(token))
    if token in READERS[key]:
        assert response.status_code == 200
        assert (response.json()["sie"], response.json()["reference"]) == key
    else:
        assert response.status_code == 404
        # Same answer as for an item that does not exist: nothing to learn by probing.
        assert response.json() == {"detail": f"unknown item {sie}/{reference}"}


def test_the_item_document_is_the_items_show_json(client: TestClient, world: World) -> None:
    response = client.get("/api/items/SIE-75-08/R-A", headers=world.headers("admin"))
    body = response.json()
    with session_scope() as session:
        expected = item_detail(session, sie="SIE-75-08", reference="R-A", as_of=today())
    assert body == _jsonable(expected)
    assert [entry["event"] for entry in body["history"]] == [
        "received",
        "assigned",
        "start",
        "complete",
    ]
    assert body["history"][1]["convention"] == "CONV-75-VIERZON"


def test_unknown_item_is_404(client: TestClient, world: World) -> None:
    response = client.get("/api/items/SIE-75-08/NOPE", headers=world.headers("admin"))
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown item SIE-75-08/NOPE"}


def test_a_service_posts_events_on_its_items_under_its_token_name(
    client: TestClient, world: World
) -> None:
    response = client.post(
        "/api/items/SIE-75-17/R-D/events",
        json={"event": "suspend", "at": "2026-12-01T09:30:00+01:00", "reason": "pièces"},
        headers=world.headers("svc-vierzon"),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "suspended"
    last = body["history"][-1]
    assert (last["event"], last["by"], last["reason"]) == ("suspend", "svc-vierzon", "pièces")
    assert last["at"] == "2026-12-01T09:30:00+01:00"


def test_a_date_only_time_means_midnight_local(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/items/SIE-75-17/R-D/events",
        json={"event": "suspend", "at": "2026-12-01"},
        headers=world.headers("admin"),
    )
    assert response.status_code == 201
    assert response.json()["history"][-1]["at"] == "2026-12-01T00:00:00+01:00"
    assert response.json()["history"][-1]["by"] == "admin"


def test_without_at_the_event_happens_now(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/items/SIE-57-01/R-M/events",
        json={"event": "complete", "reason": "remboursé"},
        headers=world.headers("svc-forbach"),
    )
    assert response.status_code == 201
    assert response.json()["state"] == "completed"
    assert response.json()["completed_on"] == today().isoformat()


def test_a_supervisor_reads_but_may_not_post(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/items/SIE-75-17/R-D/events",
        json={"event": "suspend"},
        headers=world.headers("sup-75"),
    )
    assert response.status_code == 403
    assert "supervisor" in response.json()["detail"]
    assert _state("SIE-75-17", "R-D") == "in_progress"


@pytest.mark.parametrize(
    ("token", "sie", "reference"),
    [
        ("svc-vierzon", "SIE-57-01", "R-M"),  # another service's item
        ("svc-vierzon", "SIE-75-02", "R-I"),  # a local item of an SIE it works for
        ("svc-forbach", "SIE-75-17", "R-D"),
        ("sup-57", "SIE-75-17", "R-D"),  # outside the supervisor's directorate: 404, not 403
    ],
)
def test_posting_outside_the_scope_is_404_and_changes_nothing(
    client: TestClient, world: World, token: str, sie: str, reference: str
) -> None:
    before = _state(sie, reference)
    response = client.post(
        f"/api/items/{sie}/{reference}/events",
        json={"event": "cancel"},
        headers=world.headers(token),
    )
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown item {sie}/{reference}"}
    assert _state(sie, reference) == before


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"event": "resume", "at": "2026-12-01T10:00:00+01:00"}, 409),  # not suspended
        ({"event": "suspend", "at": "2026-11-01T10:00:00+01:00"}, 409),  # before last event
        ({"event": "explode", "at": "2026-12-01"}, 422),
        ({"event": "suspend", "at": "31/31/2026"}, 422),
        ({"event": "suspend", "at": "tomorrow"}, 422),
    ],
    ids=["wrong-state", "earlier-than-last", "unknown-event", "bad-date", "bad-time"],
)
def test_refused_events_mirror_the_cli_rules_and_messages(
    client: TestClient, world: World, payload: dict[str, str], status: int
) -> None:
    response = client.post(
        "/api/items/SIE-75-17/R-D/events", json=payload, headers=world.headers("svc-vierzon")
    )
    assert response.status_code == status
    # The message is the one the shared code (and so the CLI) gives for the same event.
    with session_scope() as session:
        with pytest.raises(RelaisError) as refused:
            moment = parse_at(payload["at"], get_settings().timezone)
            apply_event(
                session,
                sie="SIE-75-17",
                reference="R-D",
                event=payload["event"],
                at=moment,
                reason=None,
                by="cli",
            )
        session.rollback()
    assert response.json() == {"detail": refused.value.message}
    assert refused.value.http_status == status
    assert _state("SIE-75-17", "R-D") == "in_progress"


@pytest.mark.parametrize(
    "payload",
    [{}, {"event": "start", "colour": "red"}, {"event": 3}, {"event": "start", "at": "9999-01-01"}],
    ids=["empty", "extra-field", "wrong-type", "year-out-of-range"],
)
def test_malformed_bodies_are_422_json(
    client: TestClient, world: World, payload: dict[str, object]
) -> None:
    response = client.post(
        "/api/items/SIE-75-17/R-D/events", json=payload, headers=world.headers("admin")
    )
    assert response.status_code == 422
    assert "detail" in response.json()


def test_events_on_a_completed_item_are_refused(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/items/SIE-75-08/R-A/events",
        json={"event": "cancel", "at": "2026-12-01"},
        headers=world.headers("svc-vierzon"),
    )
    assert response.status_code == 409
    assert response.json()["detail"].startswith("cannot cancel item SIE-75-08/R-A: it is completed")


def _state(sie: str, reference: str) -> str:
    with session_scope() as session:
        return str(item_detail(session, sie=sie, reference=reference, as_of=today())["state"])


def _jsonable(document: object) -> object:
    return json.loads(to_json(document))
