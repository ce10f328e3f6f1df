"""API tokens: only hashes stored, scopes checked, revocation immediate; the CLI around them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from models.tables import ApiToken
from relais.cli.main import app
from relais.db import session_scope
from relais.errors import ConflictError, NotFoundError, ValidationError
from relais.tokens import (
    TOKEN_PREFIX,
    Principal,
    Role,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
)
from tests.builders import add_reference

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
def reference(engine: Engine) -> Engine:
    """The standard directorates and services (tokens are scoped to them)."""
    with session_scope(engine) as session:
        add_reference(session, calendars=False)
    return engine


def _create(name: str, role: str = "admin", **scope: str) -> str:
    with session_scope() as session:
        return create_token(session, name=name, role=role, now=NOW, **scope)


def test_only_the_hash_of_a_token_is_stored(reference: Engine) -> None:
    raw = _create("ops")
    assert raw.startswith(TOKEN_PREFIX)
    assert len(raw) == len(TOKEN_PREFIX) + 43  # 32 random bytes, URL-safe base64
    with session_scope() as session:
        stored = session.exec(select(ApiToken)).one()[0]  # type: ignore[call-overload]
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    row_values = [str(value) for value in stored.model_dump().values()]
    assert not any(raw in value or raw[len(TOKEN_PREFIX) :] in value for value in row_values)


def test_the_sqlite_file_never_contains_the_token(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        add_reference(session, calendars=False)
    raw = _create("ops")
    sqlite_engine.dispose()
    database = sqlite_engine.url.database
    assert database is not None
    with open(database, "rb") as handle:
        content = handle.read()
    assert raw.encode() not in content
    assert raw[len(TOKEN_PREFIX) :].encode() not in content


def test_two_tokens_never_share_a_value(reference: Engine) -> None:
    assert _create("a") != _create("b")


def test_authenticate_gives_the_principal_with_its_scope(reference: Engine) -> None:
    raw = _create("sup", role="supervisor", directorate="DRFIP75")
    with session_scope() as session:
        principal = authenticate(session, raw)
    assert principal == Principal(name="sup", role=Role.SUPERVISOR, directorate="DRFIP75")


@pytest.mark.parametrize(
    "candidate", ["", "rls_", "rls_nope", "not-even-prefixed", "rls_" + "x" * 500]
)
def test_unknown_tokens_do_not_authenticate(reference: Engine, candidate: str) -> None:
    _create("ops")
    with session_scope() as session:
        assert authenticate(session, candidate) is None


def test_a_token_with_a_changed_character_does_not_authenticate(reference: Engine) -> None:
    raw = _create("ops")
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    with session_scope() as session:
        assert authenticate(session, tampered) is None


def test_revocation_is_immediate_and_kept(reference: Engine) -> None:
    raw = _create("ops")
    with session_scope() as session:
        assert authenticate(session, raw) is not None
    with session_scope() as session:
        assert revoke_token(session, name="ops", now=NOW) == NOW
    with session_scope() as session:
        assert authenticate(session, raw) is None
        # Revoking again keeps the first time.
        assert revoke_token(session, name="ops", now=NOW + timedelta(days=1)) == NOW


def test_revoking_an_unknown_name_is_not_found(reference: Engine) -> None:
    with session_scope() as session, pytest.raises(NotFoundError, match="no token named ghost"):
        revoke_token(session, name="ghost", now=NOW)


def test_names_are_unique_even_after_revocation(reference: Engine) -> None:
    _create("ops")
    with session_scope() as session:
        revoke_token(session, name="ops", now=NOW)
    with pytest.raises(ConflictError, match="already exists"):
        _create("ops")


@pytest.mark.parametrize(
    ("role", "scope", "message"),
    [
        ("supervisor", {}, "needs --directorate"),
        ("supervisor", {"directorate": "DRFIP99"}, "unknown directorate: DRFIP99"),
        ("supervisor", {"directorate": "DRFIP75", "service": "ANT-18-VIERZON"}, "not --service"),
        ("service", {}, "needs --service"),
        ("service", {"service": "ANT-99-NOWHERE"}, "unknown remote service: ANT-99-NOWHERE"),
        ("service", {"service": "ANT-18-VIERZON", "directorate": "DDFIP18"}, "not --directorate"),
        ("admin", {"directorate": "DRFIP75"}, "sees everything"),
        ("owner", {}, "unknown role"),
    ],
)
def test_each_role_names_exactly_its_scope(
    reference: Engine, role: str, scope: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _create("t", role=role, **scope)


@pytest.mark.parametrize("name", ["", "with space", "-leading-dash", "x" * 101, "é"])
def test_bad_names_are_refused(reference: Engine, name: str) -> None:
    with pytest.raises(ValidationError, match="invalid token name"):
        _create(name)


def test_listing_shows_scope_and_state_never_secrets(reference: Engine) -> None:
    raw = _create("svc", role="service", service="ANT-18-VIERZON")
    _create("adm")
    with session_scope() as session:
        revoke_token(session, name="adm", now=NOW)
        listed = list_tokens(session)
    assert [token["name"] for token in listed] == ["adm", "svc"]
    assert set(listed[0]) == {
        "name",
        "role",
        "directorate",
        "service",
        "created_at",
        "revoked_at",
        "active",
    }
    assert (listed[0]["active"], listed[1]["active"]) == (False, True)
    assert listed[1]["service"] == "ANT-18-VIERZON"
    digest = hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in repr(listed) and digest not in repr(listed)


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_create_prints_the_token_alone_on_the_last_line(reference: Engine) -> None:
    result = CliRunner().invoke(
        app,
        ["tokens", "create", "--name", "sup", "--role", "supervisor", "--directorate", "DRFIP75"],
    )
    assert result.exit_code == 0, result.output
    last_line = result.output.rstrip("\n").splitlines()[-1]
    assert last_line.startswith(TOKEN_PREFIX) and " " not in last_line
    assert result.stdout.strip() == last_line  # stdout holds the token and nothing else
    with session_scope() as session:
        assert authenticate(session, last_line) is not None


def test_cli_list_json_and_revoke(reference: Engine) -> None:
    runner = CliRunner()
    runner.invoke(app, ["tokens", "create", "--name", "ops", "--role", "admin"])
    listed = json.loads(runner.invoke(app, ["tokens", "list", "--format", "json"]).stdout)
    assert [(t["name"], t["role"], t["active"]) for t in listed] == [("ops", "admin", True)]
    assert runner.invoke(app, ["tokens", "revoke", "ops"]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["tokens", "list", "--format", "json"]).stdout)
    assert listed[0]["active"] is False and listed[0]["revoked_at"]
    table = runner.invoke(app, ["tokens", "list"])
    assert table.exit_code == 0 and "ops" in table.stdout


def test_cli_errors_exit_1_and_usage_errors_2(reference: Engine) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["tokens", "revoke", "ghost"])
    assert unknown.exit_code == 1
    assert "Error: no token named ghost" in unknown.stderr
    missing_scope = runner.invoke(app, ["tokens", "create", "--name", "s", "--role", "service"])
    assert missing_scope.exit_code == 1
    assert "needs --service" in missing_scope.stderr
    bad_role = runner.invoke(app, ["tokens", "create", "--name", "s", "--role", "owner"])
    assert bad_role.exit_code == 2
