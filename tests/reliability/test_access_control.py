"""Every endpoint against every role, judged by an oracle written from SPEC §9 alone.

The oracle reads the world's items, SIEs, services and conventions straight from the
database and says who may see what: admin everything; a supervisor the items of their
directorate's SIEs and the items held by services their directorate hosts, and the conventions
where it is either side; a service the items it holds and its own conventions. Each role must
see exactly that (nothing more: no leak; nothing less: no loss), out of scope must look like
"does not exist" (404, same body), and a supervisor may not post events (403).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from relais.db import get_engine, session_scope
from relais.tokens import create_token
from tests.api_fixtures import TOKEN_SPECS, World

#: The world's roles, plus a supervisor of a directorate that has neither items nor conventions.
ROLES = ("admin", "sup-75", "sup-18", "sup-57", "sup-13", "svc-vierzon", "svc-forbach")
AS_OF = "2026-12-15"
LATER = "2027-01-15T10:00:00+01:00"


@dataclass(frozen=True, slots=True)
class Caller:
    """A role as the oracle sees it."""

    role: str
    directorate: str | None
    service: str | None


@dataclass(slots=True)
class Oracle:
    """Who may see what in the world, from the stored reference data and SPEC §9."""

    sie_directorate: dict[str, str]
    service_host: dict[str, str]
    items: list[tuple[str, str, str | None]]
    conventions: dict[str, tuple[str, str, str]]  # id -> (exporting, host, service)

    @classmethod
    def read(cls) -> Oracle:
        with get_engine().connect() as connection:
            return cls(
                sie_directorate=dict(
                    connection.execute(text("SELECT code, directorate_code FROM sie")).all()
                ),
                service_host=dict(
                    connection.execute(
                        text("SELECT code, host_directorate_code FROM remote_service")
                    ).all()
                ),
                items=[
                    (row[0], row[1], row[2])
                    for row in connection.execute(
                        text("SELECT sie_code, reference, assignee FROM work_item")
                    )
                ],
                conventions={
                    row[0]: (row[1], row[2], row[3])
                    for row in connection.execute(
                        text(
                            "SELECT convention_id, exporting_directorate, host_directorate, "
                            "service_code FROM convention_version"
                        )
                    )
                },
            )

    def sees_item(self, caller: Caller, sie: str, holder: str | None) -> bool:
        if caller.role == "admin":
            return True
        if caller.role == "service":
            return holder is not None and holder == caller.service
        return self.sie_directorate.get(sie) == caller.directorate or (
            holder is not None and self.service_host.get(holder) == caller.directorate
        )

    def sees_convention(self, caller: Caller, convention_id: str) -> bool:
        exporting, host, service = self.conventions[convention_id]
        if caller.role == "admin":
            return True
        if caller.role == "service":
            return service == caller.service
        return caller.directorate in (exporting, host)


@pytest.fixture
def tokens(world: World) -> dict[str, tuple[str, Caller]]:
    """Raw token and oracle view of each role (``sup-13`` created here)."""
    with session_scope() as session:
        sup_13 = create_token(
            session,
            name="sup-13",
            role="supervisor",
            directorate="DRFIP13",
            now=datetime(2026, 11, 1, tzinfo=UTC),
        )
    specs = {**TOKEN_SPECS, "sup-13": ("supervisor", "DRFIP13", None)}
    raw = {**world.tokens, "sup-13": sup_13}
    return {name: (raw[name], Caller(*specs[name])) for name in ROLES}


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _item_events(sie: str, reference: str) -> int:
    with get_engine().connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM item_event e JOIN work_item w ON w.id = e.item_id "
                    "WHERE w.sie_code = :sie AND w.reference = :ref"
                ),
                {"sie": sie, "ref": reference},
            ).scalar_one()
        )


@pytest.mark.parametrize("role", ROLES)
def test_item_reads_match_the_oracle(
    client: TestClient, tokens: dict[str, tuple[str, Caller]], role: str
) -> None:
    token, caller = tokens[role]
    oracle = Oracle.read()
    assert len(oracle.items) >= 10
    for sie, reference, holder in [*oracle.items, ("SIE-75-08", "NO-SUCH-ITEM", None)]:
        exists = (sie, reference, holder) in oracle.items
        for path in (f"/api/items/{sie}/{reference}", f"/dashboard/items/{sie}/{reference}"):
            response = client.get(path, headers=_headers(token))
            if exists and oracle.sees_item(caller, sie, holder):
                assert response.status_code == 200, (role, path)
            else:
                assert response.status_code == 404, (role, path, response.status_code)
                if path.startswith("/api/"):
                    # Exactly what a missing item answers: probing teaches nothing.
                    assert response.json() == {"detail": f"unknown item {sie}/{reference}"}


@pytest.mark.parametrize("role", ROLES)
def test_event_posts_match_the_oracle(
    client: TestClient, tokens: dict[str, tuple[str, Caller]], role: str
) -> None:
    token, caller = tokens[role]
    oracle = Oracle.read()
    for sie, reference, holder in oracle.items:
        before = _item_events(sie, reference)
        response = client.post(
            f"/api/items/{sie}/{reference}/events",
            json={"event": "cancel", "at": LATER, "reason": "contrôle d'accès"},
            headers=_headers(token),
        )
        visible = oracle.sees_item(caller, sie, holder)
        if not visible:
            assert response.status_code == 404, (role, sie, reference)
            assert response.json() == {"detail": f"unknown item {sie}/{reference}"}
        elif caller.role == "supervisor":
            assert response.status_code == 403, (role, sie, reference)
        else:
            # Accepted, or refused by the lifecycle (already completed or cancelled).
            assert response.status_code in (201, 409), (role, sie, reference, response.text)
        expected = before + 1 if response.status_code == 201 else before
        assert _item_events(sie, reference) == expected


def _rows(client: TestClient, token: str, path: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(path, params=params, headers=_headers(token))
    assert response.status_code == 200, (path, params, response.text)
    rows = response.json()
    assert isinstance(rows, list)
    return rows


FILTERS: list[dict[str, str]] = [
    {},
    {"directorate": "DRFIP75"},
    {"directorate": "DDFIP18"},
    {"directorate": "DDFIP57"},
    {"directorate": "DRFIP13"},
    {"service": "ANT-18-VIERZON"},
    {"service": "ANT-57-FORBACH"},
    {"sie": "SIE-75-08"},
    {"sie": "SIE-57-01"},
    {"include_completed": "true"},
    {"legal": "true"},
]


@pytest.mark.parametrize("role", ROLES)
def test_breach_and_risk_queries_leak_nothing_and_lose_nothing(
    client: TestClient, tokens: dict[str, tuple[str, Caller]], role: str
) -> None:
    token, caller = tokens[role]
    admin = tokens["admin"][0]
    oracle = Oracle.read()
    for endpoint in ("/api/sla/breaches", "/api/sla/at-risk"):
        for filters in FILTERS:
            if endpoint.endswith("at-risk") and set(filters) & {"include_completed", "legal"}:
                continue
            params = {"as_of": AS_OF, **filters}
            response = client.get(endpoint, params=params, headers=_headers(token))
            if response.status_code == 404:
                # An unknown filter value answers 404 for everyone, admin included.
                assert (
                    client.get(endpoint, params=params, headers=_headers(admin)).status_code == 404
                )
                continue
            mine = _rows(client, token, endpoint, **params)
            everything = _rows(client, admin, endpoint, **params)
            assert all(oracle.sees_item(caller, row["sie"], row["assignee"]) for row in mine)
            expected = [
                row for row in everything if oracle.sees_item(caller, row["sie"], row["assignee"])
            ]
            assert mine == expected, (role, endpoint, filters)


@pytest.mark.parametrize("role", ROLES)
def test_worklists_leak_nothing(
    client: TestClient, tokens: dict[str, tuple[str, Caller]], role: str
) -> None:
    token, caller = tokens[role]
    oracle = Oracle.read()
    codes = [*oracle.service_host, *oracle.sie_directorate, "ANT-99-NOWHERE"]
    for code in codes:
        response = client.get(
            f"/api/services/{code}/worklist", params={"as_of": AS_OF}, headers=_headers(token)
        )
        if response.status_code == 404:
            assert response.json() == {"detail": f"unknown service {code}"}
            known = code in oracle.service_host or code in oracle.sie_directorate
            if caller.role == "admin":
                assert not known, code
            if caller.role == "service" and code == caller.service:
                raise AssertionError("a service must read its own worklist")
            continue
        assert response.status_code == 200, (role, code, response.text)
        if caller.role == "service":
            assert code == caller.service
        for row in response.json():
            assert oracle.sees_item(caller, row["sie"], row.get("assignee", code)), (role, row)


@pytest.mark.parametrize("role", ROLES)
def test_conventions_and_reports_match_the_oracle(
    client: TestClient, tokens: dict[str, tuple[str, Caller]], role: str
) -> None:
    token, caller = tokens[role]
    oracle = Oracle.read()
    listed = {row["id"] for row in _rows(client, token, "/api/conventions")}
    assert listed == {cid for cid in oracle.conventions if oracle.sees_convention(caller, cid)}
    for convention_id in [*oracle.conventions, "CONV-NOPE"]:
        visible = convention_id in oracle.conventions and oracle.sees_convention(
            caller, convention_id
        )
        for path in (
            f"/api/conventions/{convention_id}",
            f"/api/reports/{convention_id}/2026-11",
            f"/api/reports/{convention_id}/2026-11?format=csv",
        ):
            response = client.get(path, headers=_headers(token))
            if visible:
                assert response.status_code == 200, (role, path)
            else:
                assert response.status_code == 404, (role, path)
                assert response.json() == {"detail": f"no convention {convention_id}"}


@pytest.mark.parametrize("role", ROLES)
def test_the_dashboard_names_only_offices_in_scope(
    client: TestClient, tokens: dict[str, tuple[str, Caller]], role: str
) -> None:
    token, caller = tokens[role]
    oracle = Oracle.read()
    allowed: set[str] = set()
    for sie, _reference, holder in oracle.items:
        if oracle.sees_item(caller, sie, holder):
            allowed |= {sie, holder or sie}
    for directorate in ("DRFIP75", "DDFIP57", None):
        params = {"as_of": AS_OF, **({"directorate": directorate} if directorate else {})}
        page = client.get("/dashboard", params=params, headers=_headers(token))
        assert page.status_code == 200
        shown = set(re.findall(r"\b(?:SIE|ANT)-[0-9A-Z][0-9A-Z-]*[0-9A-Z]\b", page.text))
        if caller.role != "admin":
            assert shown <= allowed, (role, directorate, shown - allowed)


# --- attacks on authentication itself --------------------------------------------------------


def test_the_dashboard_cookie_does_not_authenticate_the_api(
    client: TestClient, world: World
) -> None:
    """A browser sends the cookie on its own: honouring it on the API would allow CSRF."""
    client.cookies.set("relais_token", world.tokens["admin"])
    before = _item_events("SIE-75-08", "R-W")
    response = client.post("/api/items/SIE-75-08/R-W/events", json={"event": "cancel"})
    assert response.status_code == 401
    assert client.get("/api/sla/breaches").status_code == 401
    assert _item_events("SIE-75-08", "R-W") == before


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer rls_" + "A" * 10_000,
        "Bearer " + "rls_" * 3,
        "Bearer rls_\u00e9\u00e8",
        "Bearer {admin}x",
        "Bearer {admin_upper}",
        "Bearer {admin_hash}",
        "Bearer rls_' OR '1'='1",
        "Bearer %00{admin}",
        "Bearer {admin}, Bearer {admin}",
    ],
)
def test_forged_and_mangled_tokens_are_401(
    client: TestClient, world: World, authorization: str
) -> None:
    from relais.tokens import hash_token

    admin = world.tokens["admin"]
    value = authorization.format(
        admin=admin, admin_upper=admin.upper(), admin_hash=hash_token(admin)
    )
    # Raw bytes: the header may carry what a client library would refuse to encode.
    headers = [(b"Authorization", value.encode("utf-8"))]
    response = client.get("/api/conventions", headers=headers)
    assert response.status_code == 401, value[:60]
    assert response.json()["detail"] in ("unknown or revoked token", "Not authenticated") or (
        "token" in response.json()["detail"]
    )


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path",
    ["/api/items/SIE-75-08/R-A", "/api/items/SIE-75-08/R-A/events", "/api/conventions"],
)
def test_other_methods_are_refused_not_crashed(
    client: TestClient, world: World, method: str, path: str
) -> None:
    before = _item_events("SIE-75-08", "R-A")
    response = client.request(method, path, headers=world.headers("admin"), json={})
    assert response.status_code == 405
    assert _item_events("SIE-75-08", "R-A") == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/items/SIE-75-08/R-A%2F..%2F..%2FSIE-57-01%2FR-M",
        "/api/items/SIE-75-08/..%2FSIE-57-01%2FR-M",
        "/api/items/sie-57-01/R-M",
        "/api/items/SIE-57-01%00/R-M",
        "/api/items/SIE-57-01/R-M%20",
        "/api/items/SIE-57-01/r-m",
    ],
)
def test_path_tricks_do_not_reach_items_out_of_scope(
    client: TestClient, world: World, path: str
) -> None:
    response = client.get(path, headers=world.headers("svc-vierzon"))
    assert response.status_code in (404, 422), response.text
    assert "R-M" not in response.text or response.json()["detail"].startswith("unknown item")
