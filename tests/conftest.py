"""Shared fixtures: isolated RELAIS_HOME, migrated databases (SQLite and PostgreSQL), Prefect.

Each test gets its own database: on SQLite a copy of a migrated template file, on PostgreSQL
a schema created once per test session (per worker under ``pytest -n``) and truncated between
tests. The environment points ``RELAIS_DATABASE_URL`` at that database, so in-process CLI calls
and subprocesses see it.

The PostgreSQL server is shared by every worker, and by any other test run on the machine: tests
hold a shared lock on it while they use it, and a test marked ``postgres_server_alone`` (it
restarts the server) holds it alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from relais import db
from relais.settings import reset_settings

POSTGRES_URL = os.environ.get("RELAIS_TEST_POSTGRES_URL")

# Quiet, offline Prefect for any flow a test runs.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


#: The lock every test run on this machine takes to use the PostgreSQL server.
SERVER_LOCK = Path(tempfile.gettempdir()) / "relais-tests-postgresql-server.lock"


@contextlib.contextmanager
def postgres_server(alone: bool = False) -> Iterator[None]:
    """Use the PostgreSQL server beside other tests, or ``alone`` (to restart it)."""
    # Read-only: a lock file another user created (mode 644) locks as well.
    handle = os.open(SERVER_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield
    finally:
        os.close(handle)  # releases the lock


def _reset_caches() -> None:
    reset_settings()
    db.reset_engines()


@pytest.fixture
def relais_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh RELAIS_HOME with the default (SQLite) database inside."""
    home = tmp_path / "relais-home"
    home.mkdir()
    monkeypatch.setenv("RELAIS_HOME", str(home))
    monkeypatch.delenv("RELAIS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RELAIS_QUEUE_ROOT", raising=False)
    monkeypatch.delenv("RELAIS_TIMEZONE", raising=False)
    _reset_caches()
    yield home
    _reset_caches()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, copied for each test that needs one."""
    path = tmp_path_factory.mktemp("template") / "relais.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL schema of its own for this test session, migrated once."""
    if not POSTGRES_URL:
        pytest.skip("RELAIS_TEST_POSTGRES_URL is not set")
    schema = f"relais_test_{uuid.uuid4().hex[:10]}"
    admin = db.make_engine(POSTGRES_URL)
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with postgres_server():
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
    try:
        yield url
    finally:
        with postgres_server():
            admin.dispose()  # its connections may predate a restart
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _truncate_postgres(engine: Engine) -> None:
    with engine.begin() as connection:
        tables = connection.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{name}"' for name in tables)
        if names:
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest,
    relais_home: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The URL of a fresh, migrated database, also set as RELAIS_DATABASE_URL."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            path = relais_home / "relais.db"
            shutil.copyfile(sqlite_template, path)
            url = f"sqlite:///{path}"
        else:
            url = request.getfixturevalue("postgres_schema_url")
            alone = request.node.get_closest_marker("postgres_server_alone") is not None
            stack.enter_context(postgres_server(alone))
            engine = db.make_engine(url)
            _truncate_postgres(engine)
            engine.dispose()
        monkeypatch.setenv("RELAIS_DATABASE_URL", url)
        _reset_caches()
        yield url


@pytest.fixture
def engine(database_url: str) -> Engine:
    """The engine of the test's database (the same one the CLI and flows will use)."""
    return db.get_engine()


@pytest.fixture
def sqlite_engine(relais_home: Path, sqlite_template: Path) -> Engine:
    """A fresh SQLite database only, for tests that need no PostgreSQL variant."""
    shutil.copyfile(sqlite_template, relais_home / "relais.db")
    _reset_caches()
    return db.get_engine()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
