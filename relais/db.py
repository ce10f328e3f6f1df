"""Database engine, sessions and schema migrations (SQLite by default, PostgreSQL too)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from relais.errors import ConfigurationError
from relais.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

#: The Alembic revision this code expects; bump with each new migration.
HEAD_REVISION = "0006"

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: Page cache of each SQLite connection, in KiB (routing raises it for its own run).
SQLITE_CACHE_KIB = 32 * 1024
#: WAL pages after which a commit copies the log into the database (SQLite's default: 1,000).
SQLITE_CHECKPOINT_PAGES = 16_384

#: Seconds a background checkpointer waits for another commit before its thread ends.
CHECKPOINTER_IDLE_SECONDS = 5.0

#: Rows per index SQLite's ANALYZE looks at: plans as good as a full analysis, in milliseconds.
SQLITE_ANALYSIS_LIMIT = 1000
#: PostgreSQL: a table whose rows changed by more than this share since its last analysis.
STALE_STATISTICS_SHARE = 0.1

# An arbitrary constant key for PostgreSQL's advisory lock around migrations.
_PG_MIGRATION_LOCK = 0x52454C41


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (API, queries) run while the nightly cycle writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Listings read thousands of rows scattered over the table (a directorate's breaches touch
    # ~3,000 pages of a million-item database): with SQLite's default 2 MB cache every answer
    # read them again. The cache grows only as pages are read.
    cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    # Intake commits a file at a time: with the default every commit of a 10,000-row file
    # copied the log into the database and waited for the disk. Every 64 MB of log instead,
    # index pages that several files change are copied once: intake ~10 % faster. After a
    # larger transaction (a night's routing), the log file is cut back to that size.
    pages = SQLITE_CHECKPOINT_PAGES
    cursor.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    cursor.execute(f"PRAGMA journal_size_limit = {pages * 4096}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with Relais's connection settings (no migration)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # No server-side prepared statements: after five runs psycopg would prepare a listing
    # query and PostgreSQL could switch it to a generic plan that ignores the partial indexes.
    return create_engine(url, pool_pre_ping=True, connect_args={"prepare_threshold": None})


# --- SQLite: checkpoints beside a long series of commits ------------------------------------

_log = logging.getLogger(__name__)


class _Checkpointer:
    """A thread that copies a SQLite database's WAL into the database after commits.

    ``nudge`` after a commit; the thread runs a ``PASSIVE`` checkpoint (it never waits for
    readers nor blocks the writer), one more if commits came meanwhile, and ends after
    ``CHECKPOINTER_IDLE_SECONDS`` without one.
    """

    def __init__(self, file_uri: str) -> None:
        self._file = file_uri
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Checkpoints run so far (tests and benchmarks read it).
        self.runs = 0

    def nudge(self) -> None:
        with self._lock:
            self._wanted.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="relais-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def idle(self, timeout: float) -> bool:
        """Wait until no checkpoint is wanted nor running; whether that happened in time."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _loop(self) -> None:
        while True:
            if not self._wanted.wait(CHECKPOINTER_IDLE_SECONDS):
                with self._lock:
                    if not self._wanted.is_set():
                        self._thread = None
                        return
            self._wanted.clear()
            try:
                # A connection of its own, in autocommit: no pool, no events, no transaction
                # (a pooled one could hold a reader's snapshot that a writer then waits on);
                # read-write only: it never creates a database where a file was deleted.
                connection = sqlite3.connect(
                    f"{self._file}?mode=rw", uri=True, timeout=30, isolation_level=None
                )
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                finally:
                    connection.close()
                self.runs += 1
            except Exception as error:  # the next commit's checkpoint will catch up
                _log.debug("WAL checkpoint failed: %s", error)


_checkpointers: dict[str, _Checkpointer] = {}
_checkpointers_lock = threading.Lock()


def checkpointer(engine: Engine) -> _Checkpointer:
    """The background checkpointer of ``engine``'s SQLite database (one per database file)."""
    key = Path(str(engine.url.database)).expanduser().resolve().as_uri()
    with _checkpointers_lock:
        found = _checkpointers.get(key)
        if found is None:
            found = _checkpointers[key] = _Checkpointer(key)
        return found


@contextlib.contextmanager
def checkpoints_aside(connection: Connection) -> Iterator[None]:
    """SQLite: the transactions of this block leave the WAL checkpoint to a background thread.

    A commit that finds more than ``SQLITE_CHECKPOINT_PAGES`` pages in the log copies them into
    the database before it returns. A writer that commits often (intake: one transaction per
    file) would wait for that copy every few files; with this block its commits return at once
    and a thread of the process copies the log meanwhile, on another core, while the next
    transaction writes (SQLite lets one checkpoint run beside one writer). Use it around the
    whole transaction (``connection.begin()`` inside it): the checkpoint is asked for after the
    commit. PostgreSQL and in-memory databases: nothing to do.
    """
    database = connection.engine.url.database
    if connection.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        try:
            driver.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")
        except Exception:
            connection.invalidate()  # never back in the pool without its own checkpoints
        else:
            checkpointer(connection.engine).nudge()


def refresh_statistics(connection: Connection, table: str = "work_item") -> None:
    """Give the query planner statistics of ``table`` that match its contents.

    Bulk runs (routing after a night's intake) plan joins over a million rows: on a database
    never analysed, or after an intake that added a large share of its rows, the planner
    guesses (a million-item routing took 14 s on SQLite without statistics, 12.3 s with).
    SQLite: a sampled ``ANALYZE``, a few milliseconds. PostgreSQL: ``ANALYZE`` of ``table``
    only when autovacuum has not caught up with the changes yet.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_LIMIT}")
        connection.exec_driver_sql(f'ANALYZE "{table}"')
        return
    row = connection.execute(
        text(
            "SELECT n_live_tup, n_mod_since_analyze,"
            " coalesce(last_analyze, last_autoanalyze) IS NULL AS never"
            " FROM pg_stat_user_tables WHERE relid = to_regclass(:table)"
        ),
        {"table": table},
    ).first()
    if row is None:
        return
    if row.never or row.n_mod_since_analyze > STALE_STATISTICS_SHARE * max(row.n_live_tup, 1000):
        connection.exec_driver_sql(f'ANALYZE "{table}"')


def sqlite_indexes(connection: Connection, table: str) -> list[tuple[str, str]]:
    """The indexes of a SQLite table that ``DROP INDEX`` can remove, as (name, CREATE statement).

    A ``UNIQUE`` constraint's own index has no statement and is not listed: it goes with the
    table only.
    """
    rows = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        " AND sql IS NOT NULL",
        (table,),
    )
    return [(name, sql) for name, sql in rows]


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, or None for an empty database."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations between processes that start at the same time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).expanduser().with_suffix(".migrate.lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for Relais's migrations, run on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> str | None:
    """Apply pending migrations to ``engine``'s database; return the revision before."""
    from alembic import command

    with _migration_lock(engine):
        before = current_revision(engine)
        if before == HEAD_REVISION:
            return before
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        return before


def ensure_schema(engine: Engine) -> None:
    """Migrate on first use; refuse a database newer than this code."""
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is not None and revision > HEAD_REVISION:
        raise ConfigurationError(
            f"the database is at schema revision {revision}, newer than this Relais "
            f"({HEAD_REVISION}): upgrade Relais"
        )
    upgrade(engine)


_ENGINES: dict[str, Engine] = {}


def get_engine() -> Engine:
    """The engine of the configured database, migrated to the current schema."""
    url = get_settings().database_url
    engine = _ENGINES.get(url)
    if engine is None:
        engine = make_engine(url)
        ensure_schema(engine)
        _ENGINES[url] = engine
    return engine


def reset_engines() -> None:
    """Dispose cached engines (tests switch databases)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


@contextlib.contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = Session(engine or get_engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
