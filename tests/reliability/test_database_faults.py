"""The database goes away, or is locked, in the middle of a run.

PostgreSQL: the run's own server connections are terminated (``pg_terminate_backend``, only
the backends of this test's engine, found by their ``application_name``: the shared server and
other tests' connections are left alone) at a seed-chosen SQL statement. The run must fail
with an error the tasks' retry rule takes as transient, leave nothing half-written, and a
retry must end in the clean run's state.

SQLite: another process holds the write lock for a while; the run waits for it (busy
timeout) and ends in the clean state.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self

import pytest
from sqlalchemy import Engine, event, text

from relais import db
from tasks.common import is_transient
from tests.reliability import scenarios
from tests.reliability.helpers import (
    assert_consistent,
    clean_run,
    database_fingerprint,
    queue_tree,
)

OPERATIONS = ("intake", "routing", "scan", "events")


class AtStatement:
    """Does ``act()`` once, after the n-th SQL statement of ``engine`` (counted in ``count``)."""

    def __init__(self, engine: Engine, at: int) -> None:
        self.engine, self.at = engine, at
        self.count = 0

    def act(self) -> None:
        raise NotImplementedError

    def __call__(self, *_args: Any) -> None:
        self.count += 1
        if self.count == self.at:
            self.act()

    def __enter__(self) -> Self:
        event.listen(self.engine, "after_cursor_execute", self)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "after_cursor_execute", self)


class BackendTerminator(AtStatement):
    """At the n-th statement of ``engine``, terminate every server connection it holds."""

    def __init__(self, engine: Engine, admin: Engine, application_name: str, at: int) -> None:
        super().__init__(engine, at)
        self.admin, self.name = admin, application_name
        self.terminated = 0

    def act(self) -> None:
        with self.admin.connect() as connection:
            self.terminated = len(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = :name "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"name": self.name},
                ).all()
            )
            connection.commit()


def _clean_run_then_prepared(
    operation: str, engine: Engine, tmp_path: Path, name: str
) -> tuple[Any, Path, Any, Any]:
    """The clean run's outcome, then a fresh work folder prepared for the faulty run, with
    the database and queue folders as they are before it."""
    clean = clean_run(operation, engine, tmp_path)
    workdir = tmp_path / name
    workdir.mkdir()
    scenarios.prepare(operation, engine, workdir)
    return clean, workdir, database_fingerprint(engine), queue_tree(workdir)


def _with_application_name(url: str, name: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}application_name={name}"


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("seed", [5, 17])
def test_terminated_connections_fail_cleanly_and_a_retry_recovers(
    postgres_schema_url: str, engine: Engine, tmp_path: Path, operation: str, seed: int
) -> None:
    clean, workdir, before, files_before = _clean_run_then_prepared(
        operation, engine, tmp_path, "faulty"
    )

    name = f"relais-fault-{uuid.uuid4().hex[:12]}"
    faulty = db.make_engine(_with_application_name(postgres_schema_url, name))
    admin = db.make_engine(os.environ["RELAIS_TEST_POSTGRES_URL"])
    # SQL statements only (renames are no database fault): a random one of the clean run's.
    statements = max(2, clean.points.count - len(clean.points.before_renames) * 2)
    at = random.Random(f"{operation}-{seed}").randint(1, statements)
    try:
        with BackendTerminator(faulty, admin, name, at) as terminator:
            try:
                scenarios.run(operation, faulty, workdir)
            except Exception as error:
                failure: BaseException | None = error
            else:
                failure = None
        assert terminator.count >= at, "the run ended before the chosen statement"
        assert terminator.terminated >= 1
        assert_consistent(engine)
        if failure is not None:
            assert is_transient(failure), repr(failure)[:300]
            if operation in ("routing", "scan"):
                # One transaction: all of it or nothing of it.
                assert database_fingerprint(engine) == before
                assert queue_tree(workdir) == files_before
            # What a task retry does: the same operation again, on a fresh connection.
            scenarios.run(operation, faulty, workdir)
        # (No failure: the connection died between two transactions and the pool's
        # pre-ping replaced it; the run then simply finished.)
    finally:
        faulty.dispose()
        admin.dispose()
    assert_consistent(engine)
    assert database_fingerprint(engine) == clean.database
    if operation != "events":
        assert queue_tree(workdir) == clean.files


class ServerRestarter(AtStatement):
    """At the n-th statement of ``engine``, restart the PostgreSQL server itself (fast mode:
    every session of every client is cut), and wait until it accepts connections again."""

    restarted = False

    def act(self) -> None:
        _restart_server()
        self.restarted = True


PG_CTLCLUSTER = shutil.which("pg_ctlcluster")


def _cluster_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    return versions[-1] if versions else ""


def _restart_server() -> None:
    """Stop the local cluster (fast: sessions cut, no wait), start it, wait until it is up."""
    command = [PG_CTLCLUSTER or "pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version()]
    subprocess.run([*command, "main", "stop", "-m", "fast"], check=False, timeout=60)
    subprocess.run([*command, "main", "start"], check=True, timeout=60)
    for _ in range(60):
        ready = subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False, timeout=10
        )
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back after its restart")


def _can_restart_the_server() -> bool:
    url = os.environ.get("RELAIS_TEST_POSTGRES_URL", "")
    local = "@127.0.0.1" in url or "@localhost" in url
    return bool(PG_CTLCLUSTER and _cluster_version() and local and os.geteuid() == 0)


@pytest.mark.postgres
@pytest.mark.postgres_server_alone
@pytest.mark.slow
@pytest.mark.skipif(
    not _can_restart_the_server(), reason="needs a local pg_ctlcluster server and root"
)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("operation", ["intake", "routing"])
def test_a_server_restarted_mid_run_fails_the_run_cleanly_and_a_retry_recovers(
    postgres_schema_url: str, engine: Engine, tmp_path: Path, operation: str
) -> None:
    """PostgreSQL itself stopped and started again in the middle of a run (not only the
    run's connections): the run fails with a transient error, routing has written nothing
    and intake only whole files, and a retry ends in the clean run's state."""
    clean, workdir, before, files_before = _clean_run_then_prepared(
        operation, engine, tmp_path, "restarted"
    )
    faulty = db.make_engine(postgres_schema_url)
    # Inside the work: intake's first file is being written, routing has planned.
    at = {"intake": 4, "routing": 12}[operation]
    try:
        with ServerRestarter(faulty, at) as restarter, pytest.raises(Exception) as failure:
            scenarios.run(operation, faulty, workdir)
        assert restarter.restarted
        assert is_transient(failure.value), repr(failure.value)[:300]
        engine.dispose()  # the test's own connections died with the server too
        assert_consistent(engine)
        if operation == "routing":
            assert database_fingerprint(engine) == before
            assert queue_tree(workdir) == files_before
        scenarios.run(operation, faulty, workdir)
    finally:
        faulty.dispose()
    assert_consistent(engine)
    assert database_fingerprint(engine) == clean.database
    assert queue_tree(workdir) == clean.files


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["intake", "routing"])
def test_a_locked_sqlite_database_makes_the_run_wait_not_fail(
    sqlite_engine: Engine, tmp_path: Path, operation: str
) -> None:
    clean = clean_run(operation, sqlite_engine, tmp_path)
    workdir = tmp_path / "locked"
    workdir.mkdir()
    scenarios.prepare(operation, sqlite_engine, workdir)
    locked = threading.Event()
    hold_seconds = 1.5

    def hold_the_write_lock() -> None:
        other = db.make_engine(str(sqlite_engine.url))
        with other.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(hold_seconds)
            connection.exec_driver_sql("ROLLBACK")
        other.dispose()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert locked.wait(10)
    started = time.monotonic()
    scenarios.run(operation, sqlite_engine, workdir)
    waited = time.monotonic() - started
    holder.join()
    assert waited >= hold_seconds * 0.8, "the run cannot have written while the lock was held"
    assert_consistent(sqlite_engine)
    assert database_fingerprint(sqlite_engine) == clean.database
    assert queue_tree(workdir) == clean.files


@pytest.mark.postgres
@pytest.mark.flow
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_flow_retries_the_task_whose_connection_died(
    prefect_harness: None,
    postgres_schema_url: str,
    engine: Engine,
    relais_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through Prefect: the intake task's connection is terminated inside a file's
    transaction; the retry rule sees a transient error, the retry finishes the queue, and the
    intake then routing runs end as one clean run of both."""
    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    from flows.intake import intake_sie_queues
    from flows.routing import route_work_items
    from relais.settings import get_settings, reset_settings

    clean = clean_run("pipeline", engine, relais_home)
    scenarios.build_world(engine, relais_home)
    name = f"relais-fault-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RELAIS_DATABASE_URL", _with_application_name(postgres_schema_url, name))
    reset_settings()
    db.reset_engines()
    scenarios.drop_queue_files(get_settings().queue_root)
    faulty = db.get_engine()
    admin = db.make_engine(os.environ["RELAIS_TEST_POSTGRES_URL"])
    try:
        # The 4th statement: inside the first file's transaction, its rows being written.
        with BackendTerminator(faulty, admin, name, at=4) as terminator:
            intake = intake_sie_queues(as_of=scenarios.INTAKE_DAY, return_state=True)
    finally:
        admin.dispose()
    assert terminator.terminated >= 1
    assert intake.is_completed(), intake.message
    routing = route_work_items(as_of=scenarios.ROUTING_DAY, return_state=True)
    assert routing.is_completed(), routing.message
    intake_run = intake.state_details.flow_run_id
    assert intake_run is not None
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[intake_run]))
        )
    assert [task.name for task in tasks if task.run_count > 1] == ["ingest-SIE-75-02"]
    assert_consistent(engine)
    database = database_fingerprint(engine)
    for table in ("work_item", "intake_file", "intake_rejection"):
        assert database[table] == clean.database[table], table
    # Histories too, but for their author: the flow runs' ids here, "cli" in the clean run.
    assert [row[:4] + row[5:] for row in database["item_event"]] == [
        row[:4] + row[5:] for row in clean.database["item_event"]
    ]
