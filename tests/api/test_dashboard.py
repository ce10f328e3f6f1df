"""The supervisors' dashboard: the right numbers for the fixture, sign-in, scope, item pages."""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from relais.dashboard import dashboard_data
from relais.db import session_scope
from relais.queries import sla_at_risk, sla_breaches
from tests.api_fixtures import World

END_OF_NOVEMBER = "/dashboard?as_of=2026-11-30"
AGE_LABELS = ["0–7 j", "8–15 j", "16–30 j", "31–60 j", "61–90 j", "> 90 j"]


class _Tables(HTMLParser):
    """Cells of the tables of a page, by table id, one list of texts per row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.ids: dict[str, str] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids[values["id"] or ""] = tag
        if tag == "table":
            self._table = values.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._table is not None and self._row:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def _figure(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()


def _chart_data(html: str) -> dict[str, object]:
    match = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S)
    assert match
    return dict(json.loads(match.group(1)))


def test_supervisor_dashboard_shows_the_fixtures_numbers(client: TestClient, world: World) -> None:
    response = client.get(END_OF_NOVEMBER, headers=world.headers("sup-75"))
    assert response.status_code == 200
    html = response.text
    # Open on 30 November: R-D, R-E, R-F (suspended), R-H, R-I (local), R-W (waiting).
    assert _figure(html, "total-open") == "6"
    assert _figure(html, "total-breached") == "1"  # R-E
    assert _figure(html, "total-at-risk") == "1"  # R-H, due 2 December
    assert _figure(html, "total-legal") == "1"  # R-E, legal deadline 15 November
    tables = _tables(html)
    # service, name, open, on track, at risk, breached, suspended, legal
    assert tables["per-service"] == [
        ["ANT-18-VIERZON", "Antenne de Vierzon", "4", "1", "1", "1", "1", "1"],
        ["SIE-75-02", "SIE Paris 2e", "1", "1", "0", "0", "0", "0"],
        ["–", "En attente d'affectation", "1", "0", "0", "0", "0", "0"],
    ]
    # SIE, name, open, waiting, at risk, breached, legal
    assert tables["per-sie"] == [
        ["SIE-75-17", "SIE Paris 17e", "3", "0", "0", "1", "1"],
        ["SIE-75-02", "SIE Paris 2e", "1", "0", "0", "0", "0"],
        ["SIE-75-08", "SIE Paris 8e", "2", "1", "1", "0", "0"],
    ]
    assert [row[1] for row in tables["breaches"]] == ["R-E"]
    assert tables["breaches"][0][5] == "43"
    assert [row[1] for row in tables["at-risk"]] == ["R-H"]
    assert [row[1] for row in tables["legal"]] == ["R-E"]
    charts = _chart_data(html)
    # Days since receipt: R-W 3, R-D 14, R-H 27 and R-I 20, R-F 60, R-E 199.
    assert charts["ages"] == {"labels": AGE_LABELS, "series": {"open": [1, 1, 2, 1, 0, 1]}}
    assert '<a href="/dashboard/items/SIE-75-17/R-E">R-E</a>' in html


def test_another_directorate_sees_only_its_own(client: TestClient, world: World) -> None:
    html = client.get(END_OF_NOVEMBER, headers=world.headers("sup-57")).text
    assert _figure(html, "total-open") == "1"
    assert _figure(html, "total-breached") == "1"
    assert [row[0] for row in _tables(html)["per-service"]] == ["ANT-57-FORBACH"]
    assert "R-E" not in html and "SIE-75" not in html


def test_a_host_supervisor_sees_its_services_items(client: TestClient, world: World) -> None:
    html = client.get(END_OF_NOVEMBER, headers=world.headers("sup-18")).text
    assert [row[0] for row in _tables(html)["per-service"]] == ["ANT-18-VIERZON"]
    assert _figure(html, "total-open") == "4"


def test_admin_sees_everything_and_may_narrow(client: TestClient, world: World) -> None:
    html = client.get(END_OF_NOVEMBER, headers=world.headers("admin")).text
    assert _figure(html, "total-open") == "7"
    assert _figure(html, "total-breached") == "2"
    narrowed = client.get(f"{END_OF_NOVEMBER}&directorate=DDFIP57", headers=world.headers("admin"))
    assert _figure(narrowed.text, "total-open") == "1"


def test_a_supervisor_cannot_widen_its_scope(client: TestClient, world: World) -> None:
    html = client.get(f"{END_OF_NOVEMBER}&directorate=DDFIP57", headers=world.headers("sup-75"))
    assert _figure(html.text, "total-open") == "6"


def test_signing_in_with_a_query_token_sets_a_cookie_and_drops_the_token(
    client: TestClient, world: World
) -> None:
    token = world.tokens["sup-75"]
    response = client.get(f"{END_OF_NOVEMBER}&token={token}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == END_OF_NOVEMBER
    cookie = response.headers["set-cookie"]
    assert "relais_token=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    # The client keeps the cookie: the next page needs no token.
    page = client.get(END_OF_NOVEMBER)
    assert page.status_code == 200
    assert _figure(page.text, "total-open") == "6"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    client.get("/dashboard/logout")
    assert client.get(END_OF_NOVEMBER).status_code == 401


@pytest.mark.parametrize("token", [None, "rls_unknown", "revoked"])
def test_without_a_valid_token_the_dashboard_asks_to_sign_in(
    client: TestClient, world: World, token: str | None
) -> None:
    raw = world.tokens.get(token or "", token)
    url = END_OF_NOVEMBER if raw is None else f"{END_OF_NOVEMBER}&token={raw}"
    response = client.get(url, follow_redirects=False)
    assert response.status_code == 401
    assert "/dashboard?token=" in response.text
    assert "total-open" not in response.text


def test_the_item_page_behind_the_links(client: TestClient, world: World) -> None:
    response = client.get("/dashboard/items/SIE-75-17/R-F", headers=world.headers("sup-75"))
    assert response.status_code == 200
    history = _tables(response.text)["history"]
    assert [row[1] for row in history] == [
        "réception",
        "affectation",
        "prise en charge",
        "suspension",
    ]
    assert history[1][3] == "ANT-18-VIERZON (CONV-75-VIERZON v1)"


@pytest.mark.parametrize(
    ("token", "path"),
    [("sup-57", "SIE-75-17/R-F"), ("svc-forbach", "SIE-75-17/R-F"), ("admin", "SIE-75-17/NOPE")],
)
def test_item_pages_outside_the_scope_are_404(
    client: TestClient, world: World, token: str, path: str
) -> None:
    response = client.get(f"/dashboard/items/{path}", headers=world.headers(token))
    assert response.status_code == 404
    assert "Dossier introuvable" in response.text


def test_chart_library_is_served_locally(client: TestClient) -> None:
    response = client.get("/static/chart.umd.js")
    assert response.status_code == 200
    assert response.text.startswith("/*!\n * Chart.js v4")
    assert "Released under the MIT License" in response.text[:300]


@pytest.mark.parametrize("as_of", ["2026-09-30", "2026-10-31", "2026-11-30", "2026-12-15"])
def test_dashboard_counts_agree_with_the_sla_queries(world: World, as_of: str) -> None:
    day = date.fromisoformat(as_of)
    with session_scope() as session:
        data = dashboard_data(session, as_of=day)
        breaches = sla_breaches(session, as_of=day)
        legal = sla_breaches(session, as_of=day, legal=True)
        at_risk = sla_at_risk(session, as_of=day)
    assert data["totals"]["breached"] == len(breaches)
    assert data["totals"]["legal"] == len(legal)
    assert data["totals"]["at_risk"] == len(at_risk)
    per_holder = {h["code"]: h["breached"] for h in data["holders"] if h["breached"]}
    expected: dict[str, int] = {}
    for row in breaches:
        expected[row["assignee"]] = expected.get(row["assignee"], 0) + 1
    assert per_holder == expected
