"""Who may call the API at all: bearer tokens, 401s, revocation, and the open endpoints."""

from __future__ import annotations

import gc
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relais.api import create_app, create_served_app
from relais.cli.api import RedactTokens
from relais.db import session_scope
from relais.tokens import create_token, revoke_token
from tests.api_fixtures import World

PROTECTED = [
    ("GET", "/api/items/SIE-75-08/R-A"),
    ("POST", "/api/items/SIE-75-08/R-H/events"),
    ("GET", "/api/sla/breaches"),
    ("GET", "/api/sla/at-risk"),
    ("GET", "/api/services/ANT-18-VIERZON/worklist"),
    ("GET", "/api/conventions"),
    ("GET", "/api/conventions/CONV-75-VIERZON"),
    ("GET", "/api/reports/CONV-75-VIERZON/2026-11"),
]


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    if method == "POST":
        return client.post(path, json={"event": "start"}, headers=headers)
    return client.get(path, headers=headers)


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_document_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/health",
        "/api/items/{sie}/{reference}",
        "/api/items/{sie}/{reference}/events",
        "/api/sla/breaches",
        "/api/sla/at-risk",
        "/api/services/{code}/worklist",
        "/api/conventions",
        "/api/conventions/{convention_id}",
        "/api/reports/{convention_id}/{month}",
    }


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer rls_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "rls_no-scheme"},
    ],
    ids=["missing", "unknown", "empty", "basic", "no-scheme"],
)
def test_missing_or_unknown_tokens_get_401_json(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = _call(client, method, path, headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_a_revoked_token_gets_401(client: TestClient, world: World, method: str, path: str) -> None:
    response = _call(client, method, path, world.headers("revoked"))
    assert response.status_code == 401
    assert response.json() == {"detail": "unknown or revoked token"}


def test_revocation_takes_effect_on_the_next_request(client: TestClient, world: World) -> None:
    with session_scope() as session:
        token = create_token(session, name="temp", role="admin", now=datetime.now(UTC))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/conventions", headers=headers).status_code == 200
    with session_scope() as session:
        revoke_token(session, name="temp", now=datetime.now(UTC))
    assert client.get("/api/conventions", headers=headers).status_code == 401


def test_the_scheme_is_case_insensitive(client: TestClient, world: World) -> None:
    headers = {"Authorization": f"bearer {world.tokens['admin']}"}
    assert client.get("/api/conventions", headers=headers).status_code == 200


def test_unknown_paths_answer_json_404(client: TestClient, world: World) -> None:
    response = client.get("/api/nothing-here", headers=world.headers("admin"))
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_the_access_log_never_shows_a_query_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/dashboard?as_of=2026-11-30&token=rls_secret&x=1", "1.1", 303),
        None,
    )
    assert RedactTokens().filter(record)
    assert "rls_secret" not in record.getMessage()
    assert "/dashboard?as_of=2026-11-30&token=***&x=1" in record.getMessage()


def test_the_served_application_freezes_what_it_loaded(world: World) -> None:
    """``relais api`` serves ``create_served_app()``: the same routes, with what was loaded at
    startup left out of the cycle collector's full passes."""
    frozen = gc.get_freeze_count()
    try:
        served = create_served_app()
        assert gc.get_freeze_count() > frozen
        with TestClient(served) as client:
            response = client.get("/api/sla/breaches", headers=world.headers("sup-75"))
            assert response.status_code == 200
    finally:
        gc.unfreeze()
    assert served.openapi() == create_app().openapi()
