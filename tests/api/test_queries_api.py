"""SLA queries, worklists, conventions and reports through the API, with each role's scope."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import TypedDict

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relais.api.scope import Scope
from relais.cli.main import app
from relais.db import session_scope
from relais.queries import sla_breaches
from relais.tokens import Principal, Role
from tests.api_fixtures import TOKEN_SPECS, World

END_OF_NOVEMBER = {"as_of": "2026-11-30"}


class _ItemRow(TypedDict):
    """The item fields the scope filter of listings reads."""

    sie: str
    assignee: str | None
    reference: str


def _refs(client: TestClient, world: World, token: str, path: str, **params: str) -> list[str]:
    response = client.get(path, params=params, headers=world.headers(token))
    assert response.status_code == 200, response.text
    return [row["reference"] for row in response.json()]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("admin", ["R-M", "R-E"]),
        ("sup-75", ["R-E"]),  # the Paris SIE's item held at Vierzon
        ("sup-18", ["R-E"]),  # the host side of the same item
        ("sup-57", ["R-M"]),
        ("svc-vierzon", ["R-E"]),
        ("svc-forbach", ["R-M"]),
    ],
)
def test_breaches_are_restricted_to_the_callers_scope(
    client: TestClient, world: World, token: str, expected: list[str]
) -> None:
    assert _refs(client, world, token, "/api/sla/breaches", **END_OF_NOVEMBER) == expected


def test_breaches_are_the_clis_json(client: TestClient, world: World) -> None:
    response = client.get(
        "/api/sla/breaches",
        params={**END_OF_NOVEMBER, "directorate": "DRFIP75"},
        headers=world.headers("admin"),
    )
    with session_scope() as session:
        expected = sla_breaches(session, as_of=date(2026, 11, 30), directorate="DRFIP75")
    assert response.json() == [
        {
            key: (value.isoformat() if hasattr(value, "isoformat") else value)
            for key, value in row.items()
        }
        for row in expected
    ]
    assert response.json()[0]["business_days_overdue"] == 43


#: Each token's listing and the CLI's equivalent filters.
CLI_FILTERS = {
    "admin": [],
    "sup-75": ["--directorate", "DRFIP75"],
    "sup-18": ["--directorate", "DDFIP18"],
    "svc-vierzon": ["--service", "ANT-18-VIERZON"],
}
LISTINGS = [
    ("/api/sla/breaches", {}, ["sla", "breaches"]),
    (
        "/api/sla/breaches",
        {"include_completed": "true"},
        ["sla", "breaches", "--include-completed"],
    ),
    ("/api/sla/breaches", {"legal": "true"}, ["sla", "breaches", "--legal"]),
    ("/api/sla/at-risk", {}, ["sla", "at-risk"]),
]


@pytest.mark.parametrize("token", list(CLI_FILTERS))
@pytest.mark.parametrize(("path", "params", "command"), LISTINGS)
def test_listings_answer_exactly_the_clis_json(
    client: TestClient,
    world: World,
    token: str,
    path: str,
    params: dict[str, str],
    command: list[str],
) -> None:
    response = client.get(path, params={**END_OF_NOVEMBER, **params}, headers=world.headers(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    cli = CliRunner().invoke(
        app, [*command, "--as-of", "2026-11-30", *CLI_FILTERS[token], "--format", "json"]
    )
    assert cli.exit_code == 0, cli.output
    assert response.json() == json.loads(cli.stdout)


def test_worklist_answers_exactly_the_clis_json(client: TestClient, world: World) -> None:
    response = client.get(
        "/api/services/ANT-18-VIERZON/worklist",
        params=END_OF_NOVEMBER,
        headers=world.headers("admin"),
    )
    assert response.headers["content-type"] == "application/json"
    cli = CliRunner().invoke(
        app,
        ["worklist", "--service", "ANT-18-VIERZON", "--as-of", "2026-11-30", "--format", "json"],
    )
    assert cli.exit_code == 0, cli.output
    assert response.json() == json.loads(cli.stdout)
    assert len(response.json()) == 4


@pytest.mark.parametrize("token", TOKEN_SPECS)
def test_the_scope_filter_of_listings_is_the_item_rule(world: World, token: str) -> None:
    role, directorate, service = TOKEN_SPECS[token]
    principal = Principal(name=token, role=Role(role), directorate=directorate, service=service)
    codes = ["SIE-75-08", "SIE-57-01", "SIE-18-01", "ANT-18-VIERZON", "ANT-57-FORBACH", "NOPE"]
    rows: list[_ItemRow] = [
        {"sie": sie, "assignee": holder, "reference": f"{sie}/{holder}"}
        for sie in codes
        for holder in [*codes, None]
    ]
    with session_scope() as session:
        scope = Scope.load(session, principal)
    kept = scope.filter_items(rows)
    assert kept == [row for row in rows if scope.allows_item(row["sie"], row["assignee"])]
    assert kept
    assert len(kept) < len(rows) or role == "admin"


@pytest.mark.parametrize(
    ("token", "params", "expected"),
    [
        ("sup-75", {"directorate": "DDFIP57"}, []),  # asking for another directorate: overlap
        ("sup-18", {"directorate": "DRFIP75"}, ["R-E"]),  # Paris items held at Vierzon
        ("svc-vierzon", {"service": "ANT-57-FORBACH"}, []),
        ("admin", {"include_completed": "true"}, ["R-M", "R-E", "R-C"]),
        ("sup-75", {"include_completed": "true"}, ["R-E", "R-C"]),
        ("admin", {"legal": "true"}, ["R-E"]),
        ("admin", {"sie": "SIE-57-01"}, ["R-M"]),
        ("admin", {"process": "filing_reminder"}, []),
    ],
)
def test_breach_filters_apply_on_top_of_the_scope(
    client: TestClient, world: World, token: str, params: dict[str, str], expected: list[str]
) -> None:
    refs = _refs(client, world, token, "/api/sla/breaches", **END_OF_NOVEMBER, **params)
    assert sorted(refs) == sorted(expected)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("admin", ["R-H"]),
        ("sup-75", ["R-H"]),
        ("sup-18", ["R-H"]),
        ("sup-57", []),
        ("svc-vierzon", ["R-H"]),
        ("svc-forbach", []),
    ],
)
def test_at_risk_by_role(client: TestClient, world: World, token: str, expected: list[str]) -> None:
    # R-H is due on 2 December: 2 business days left on 30 November (threshold 4).
    assert _refs(client, world, token, "/api/sla/at-risk", **END_OF_NOVEMBER) == expected


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"directorate": "DRFIP99"}, 404),
        ({"process": "knitting"}, 422),
        ({"as_of": "2026-02-30"}, 422),
        ({"as_of": "3000-01-01"}, 422),
        ({"include_completed": "maybe"}, 422),
    ],
)
def test_bad_query_parameters(
    client: TestClient, world: World, params: dict[str, str], status: int
) -> None:
    response = client.get("/api/sla/breaches", params=params, headers=world.headers("admin"))
    assert response.status_code == status
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("token", "code", "expected"),
    [
        ("admin", "ANT-18-VIERZON", ["R-E", "R-F", "R-H", "R-D"]),
        ("sup-18", "ANT-18-VIERZON", ["R-E", "R-F", "R-H", "R-D"]),  # hosts it
        ("sup-75", "ANT-18-VIERZON", ["R-E", "R-F", "R-H", "R-D"]),  # works for it
        ("svc-vierzon", "ANT-18-VIERZON", ["R-E", "R-F", "R-H", "R-D"]),
        ("sup-75", "SIE-75-02", ["R-I"]),  # an SIE's local items
        ("svc-forbach", "ANT-57-FORBACH", ["R-M"]),
    ],
)
def test_worklists_in_scope(
    client: TestClient, world: World, token: str, code: str, expected: list[str]
) -> None:
    refs = _refs(client, world, token, f"/api/services/{code}/worklist", **END_OF_NOVEMBER)
    assert refs == expected


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("sup-57", "ANT-18-VIERZON"),
        ("svc-forbach", "ANT-18-VIERZON"),
        ("svc-vierzon", "ANT-57-FORBACH"),
        ("sup-18", "SIE-75-02"),
        ("admin", "ANT-99-NOWHERE"),
        ("sup-75", "ANT-99-NOWHERE"),
    ],
)
def test_worklists_outside_the_scope_are_404(
    client: TestClient, world: World, token: str, code: str
) -> None:
    response = client.get(f"/api/services/{code}/worklist", headers=world.headers(token))
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown service {code}"}


def test_worklist_rows_carry_their_sla_status(client: TestClient, world: World) -> None:
    response = client.get(
        "/api/services/ANT-18-VIERZON/worklist",
        params=END_OF_NOVEMBER,
        headers=world.headers("svc-vierzon"),
    )
    statuses = {row["reference"]: row["status"] for row in response.json()}
    assert statuses == {"R-E": "breached", "R-F": "suspended", "R-H": "at_risk", "R-D": "on_track"}


CONVENTION_READERS = {
    "CONV-75-VIERZON": {"admin", "sup-75", "sup-18", "svc-vierzon"},
    "CONV-57-FORBACH": {"admin", "sup-57", "svc-forbach"},
}
TOKENS = ("admin", "sup-75", "sup-18", "sup-57", "svc-vierzon", "svc-forbach")


@pytest.mark.parametrize("token", TOKENS)
def test_convention_list_by_role(client: TestClient, world: World, token: str) -> None:
    response = client.get("/api/conventions", headers=world.headers(token))
    assert response.status_code == 200
    listed = {row["id"] for row in response.json()}
    assert listed == {cid for cid, readers in CONVENTION_READERS.items() if token in readers}


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize("convention", list(CONVENTION_READERS))
def test_convention_show_and_report_by_role(
    client: TestClient, world: World, token: str, convention: str
) -> None:
    shown = client.get(f"/api/conventions/{convention}", headers=world.headers(token))
    report = client.get(f"/api/reports/{convention}/2026-11", headers=world.headers(token))
    if token in CONVENTION_READERS[convention]:
        assert shown.status_code == 200
        assert shown.json()["id"] == convention
        assert report.status_code == 200
        assert report.json()["convention"] == convention
    else:
        for response in (shown, report):
            assert response.status_code == 404
            assert response.json() == {"detail": f"no convention {convention}"}


def test_convention_version_query(client: TestClient, world: World) -> None:
    headers = world.headers("admin")
    assert (
        client.get("/api/conventions/CONV-75-VIERZON?version=1", headers=headers).json()["version"]
        == 1
    )
    missing = client.get("/api/conventions/CONV-75-VIERZON?version=7", headers=headers)
    assert missing.status_code == 404
    assert "no version 7" in missing.json()["detail"]


def test_report_json_matches_the_hand_checked_totals(client: TestClient, world: World) -> None:
    body = client.get(
        "/api/reports/CONV-75-VIERZON/2026-11", headers=world.headers("sup-75")
    ).json()
    assert body["totals"] == {
        "assigned": 4,
        "completed": 3,
        "backlog": 4,
        "median_business_days": 19.0,
        "p90_business_days": 26.2,
        "share_met": 0.667,
        "open_breaches": 1,
        "legal_breaches": 1,
    }


def test_report_in_csv_and_html(client: TestClient, world: World) -> None:
    headers = world.headers("admin")
    as_csv = client.get("/api/reports/CONV-75-VIERZON/2026-11?format=csv", headers=headers)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig")), delimiter=";"))
    assert [(row["sie"], row["process"], row["backlog"]) for row in rows] == [
        ("SIE-75-08", "filing_reminder", "0"),
        ("SIE-75-08", "tva_refund", "1"),
        ("SIE-75-17", "tva_refund", "3"),
    ]
    as_html = client.get("/api/reports/CONV-75-VIERZON/2026-11?format=html", headers=headers)
    assert as_html.headers["content-type"].startswith("text/html")
    assert "<svg" in as_html.text


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "novembre", "0000-01"])
def test_malformed_months_are_422(client: TestClient, world: World, month: str) -> None:
    response = client.get(f"/api/reports/CONV-75-VIERZON/{month}", headers=world.headers("admin"))
    assert response.status_code == 422


def test_unknown_convention_report_is_404(client: TestClient, world: World) -> None:
    response = client.get("/api/reports/CONV-NOPE/2026-11", headers=world.headers("admin"))
    assert response.status_code == 404
