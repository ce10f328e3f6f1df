"""API tokens at rest and in use: only a hash is ever stored, sent to SQL or compared.

Checks look for the raw token where it must not be: every byte of the database files (SQLite,
WAL included), every text column (PostgreSQL), every SQL parameter sent while authenticating,
the listing commands, and the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from typer.testing import CliRunner

from relais import tokens as tokens_module
from relais.cli.main import app
from relais.db import session_scope
from relais.reference import load_reference
from tests.reliability.conftest import SHIPPED_REFERENCE

runner = CliRunner()


def _create(name: str, *extra: str) -> str:
    result = runner.invoke(app, ["tokens", "create", "--name", name, *extra])
    assert result.exit_code == 0, result.output
    raw = result.stdout.strip().splitlines()[-1]
    assert raw.startswith("rls_") and len(raw) >= 40
    # The token is printed once, alone on the last line, and nowhere else.
    assert result.output.count(raw) == 1
    return raw


def _all_text_in_database(engine: Engine) -> str:
    """Every value of every table, as text (PostgreSQL: row_to_json of each row)."""
    chunks: list[str] = []
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            for table in list(tables):
                rows = connection.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t'))
                chunks.extend(row[0] for row in rows)
        else:
            tables = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table'")
            ).scalars()
            for table in list(tables):
                for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                    chunks.extend(str(value) for value in row)
    return "\n".join(chunks)


def test_the_database_holds_only_hashes(engine: Engine, relais_home: Path) -> None:
    load_reference(SHIPPED_REFERENCE, engine=engine)
    raws = [
        _create("admin-1", "--role", "admin"),
        _create("sup-1", "--role", "supervisor", "--directorate", "DRFIP75"),
        _create("svc-1", "--role", "service", "--service", "ANT-18-VIERZON"),
    ]
    runner.invoke(app, ["tokens", "revoke", "sup-1"])
    stored = _all_text_in_database(engine)
    for raw in raws:
        assert raw not in stored
        assert raw[4:] not in stored  # nor the random part alone
        assert hashlib.sha256(raw.encode()).hexdigest() in stored
    if engine.dialect.name == "sqlite":
        # The files themselves (database, WAL, journal): not a byte of any token.
        engine.dispose()
        for path in relais_home.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                for raw in raws:
                    assert raw.encode() not in content, path


def test_listings_show_neither_tokens_nor_hashes(sqlite_engine: Engine) -> None:
    load_reference(SHIPPED_REFERENCE, engine=sqlite_engine)
    raw = _create("admin-1", "--role", "admin")
    digest = hashlib.sha256(raw.encode()).hexdigest()
    for output_format in ("table", "json"):
        listed = runner.invoke(app, ["tokens", "list", "--format", output_format])
        assert listed.exit_code == 0
        assert raw not in listed.output and digest not in listed.output
    document = json.loads(runner.invoke(app, ["tokens", "list", "--format", "json"]).stdout)
    assert {key for entry in document for key in entry} & {"token", "token_hash", "hash"} == set()


def test_refused_creations_never_print_a_token(sqlite_engine: Engine) -> None:
    load_reference(SHIPPED_REFERENCE, engine=sqlite_engine)
    _create("taken", "--role", "admin")
    for arguments in (
        ["--name", "taken", "--role", "admin"],
        ["--name", "x y", "--role", "admin"],
        ["--name", "s", "--role", "supervisor"],
        ["--name", "s", "--role", "supervisor", "--directorate", "NOPE"],
        ["--name", "s", "--role", "service", "--service", "x'); DROP TABLE api_token;--"],
    ):
        result = runner.invoke(app, ["tokens", "create", *arguments])
        assert result.exit_code in (1, 2), arguments
        assert "rls_" not in result.output
    with session_scope(sqlite_engine) as session:
        names = session.connection().execute(text("SELECT name FROM api_token")).scalars().all()
    assert names == ["taken"]


def test_authentication_looks_up_the_hash_and_compares_in_constant_time(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_reference(SHIPPED_REFERENCE, engine=sqlite_engine)
    raw = _create("admin-1", "--role", "admin")
    parameters: list[Any] = []

    def spy_sql(_conn: Any, _cursor: Any, _statement: str, params: Any, *_args: Any) -> None:
        parameters.append(params)

    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def spy_compare(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", spy_compare)
    event.listen(sqlite_engine, "before_cursor_execute", spy_sql)
    try:
        with session_scope(sqlite_engine) as session:
            assert tokens_module.authenticate(session, raw) is not None
            assert tokens_module.authenticate(session, raw[:-1] + "x") is None
            assert tokens_module.authenticate(session, "rls_" + "A" * 500) is None
    finally:
        event.remove(sqlite_engine, "before_cursor_execute", spy_sql)
    digest = hashlib.sha256(raw.encode()).hexdigest()
    assert compared and all(digest in pair for pair in compared)
    sent = repr(parameters)
    assert digest in sent
    assert raw not in sent and raw[:-1] not in sent


def test_failed_authentication_logs_no_token(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from relais.api import create_app

    load_reference(SHIPPED_REFERENCE, engine=sqlite_engine)
    raw = _create("admin-1", "--role", "admin")
    forged = raw[:-2] + "zz"
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app()) as client:
        assert (
            client.get(
                "/api/conventions", headers={"Authorization": f"Bearer {forged}"}
            ).status_code
            == 401
        )
        assert (
            client.get("/api/conventions", headers={"Authorization": f"Bearer {raw}"}).status_code
            == 200
        )
        assert client.get(f"/dashboard?token={forged}").status_code == 401
    # What the server side logged (the test client's own request log is not the server's).
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert raw not in logged and forged not in logged


@pytest.mark.parametrize("workers", [1, 2])
def test_a_real_server_never_writes_a_token_to_its_log(
    sqlite_engine: Engine, tmp_path: Path, workers: int
) -> None:
    """``relais api`` logs each request; a dashboard sign-in link carries the token in its
    query string, which must not reach the access log."""
    import httpx

    from tests.reliability.helpers import python_child
    from tests.reliability.test_concurrency import _free_port, _wait_for_health

    load_reference(SHIPPED_REFERENCE, engine=sqlite_engine)
    raw = _create("admin-1", "--role", "admin")
    sqlite_engine.dispose()
    port = _free_port()
    log = tmp_path / "api.log"
    server = python_child(
        "from relais.cli.main import main; main()",
        args=["api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        log=log,
    )
    try:
        _wait_for_health(port)
        base = f"http://127.0.0.1:{port}"
        signed_in = httpx.get(f"{base}/dashboard?token={raw}&as_of=2026-11-20")
        assert signed_in.status_code == 303
        assert raw not in signed_in.headers["location"]
        assert httpx.get(f"{base}/dashboard?token={raw[:-1]}x").status_code == 401
        headers = {"Authorization": f"Bearer {raw}"}
        assert httpx.get(f"{base}/api/conventions", headers=headers).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    written = log.read_text("utf-8")
    assert "GET /dashboard?" in written, "the access log is on: the check below means something"
    assert raw not in written and raw[:-1] not in written
