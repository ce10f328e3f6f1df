"""Schema management: migrations create exactly the models' schema, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, select, text
from sqlmodel import Session, SQLModel, col

import models.tables  # noqa: F401
from models.tables import RunLock
from relais import db


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_schema_is_at_head(engine: Engine) -> None:
    assert db.current_revision(engine) == db.HEAD_REVISION


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    assert db.upgrade(engine) == db.HEAD_REVISION


def test_timestamps_come_back_aware_in_utc(engine: Engine) -> None:
    paris_winter = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=paris_winter)
    with Session(engine) as session:
        session.add(RunLock(name="routing", acquired_at=moment))
        session.commit()
    with Session(engine) as session:
        # sqlmodel's overloads of `session.exec` name only its own select types, though it runs
        # SQLAlchemy's as `Session.execute` does.
        stored = session.exec(select(col(RunLock.acquired_at))).one()[0]  # type: ignore[call-overload]
    assert stored.tzinfo is not None
    assert stored == moment
    assert stored.utcoffset() == UTC.utcoffset(None)


def test_sqlite_uses_wal(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


def test_partial_indexes_keep_their_condition(engine: Engine) -> None:
    # Alembic's comparison ignores index conditions: check them against the database.
    partial = {
        index.name: index.dialect_options[engine.dialect.name]["where"]
        for table in SQLModel.metadata.tables.values()
        for index in table.indexes
        if index.dialect_options[engine.dialect.name]["where"] is not None
    }
    assert partial, "no partial index declared"
    if engine.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
    else:
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    with engine.connect() as connection:
        # SQLite lists its automatic indexes with no SQL.
        definitions: dict[str, str | None] = dict(connection.exec_driver_sql(query).all())
    for name in partial:
        assert name is not None
        assert " WHERE " in (definitions.get(name) or "").upper(), name


def _has_statistics(connection: Connection, table: str) -> bool:
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_stat1 WHERE tbl = :table"
    else:
        query = (
            "SELECT count(*) FROM pg_stats WHERE tablename = :table"
            " AND schemaname = current_schema()"
        )
    return bool(connection.execute(text(query), {"table": table}).scalar_one())


def test_a_table_never_analysed_gets_statistics(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE stats_probe (id INTEGER, code VARCHAR(8))")
        connection.execute(
            text("INSERT INTO stats_probe (id, code) VALUES (:id, :code)"),
            [{"id": n, "code": f"C{n % 7}"} for n in range(500)],
        )
        connection.exec_driver_sql("CREATE INDEX ix_stats_probe_code ON stats_probe (code)")
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # A database that was never analysed has no statistics table at all.
                assert not connection.execute(
                    text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                ).scalar_one() or not _has_statistics(connection, "stats_probe")
            else:
                assert not _has_statistics(connection, "stats_probe")
            db.refresh_statistics(connection, "stats_probe")
        with engine.connect() as connection:
            assert _has_statistics(connection, "stats_probe")
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE stats_probe")


def _migrate(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as connection:
        config = db.alembic_config(connection)
        if revision < (db.current_revision(engine) or ""):
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def test_0006_tells_given_legal_deadlines_from_the_fingerprints_it_drops(engine: Engine) -> None:
    from hashlib import sha256

    def fingerprint(given: str) -> str:
        """What intake stored for a tva_refund of 0.10 € received 2026-08-31, no label."""
        values = ("tva_refund", "732829320", "2026-08-31", "10", given, "")
        return sha256("\x1f".join(values).encode()).hexdigest()

    # (reference, legal_due_on, fingerprint intake stored): the deadline given with the row,
    # the same deadline computed, a given deadline equal to the computed one, no deadline.
    rows = [
        ("GIVEN", "2027-01-15", fingerprint("2027-01-15")),
        ("COMPUTED", "2027-02-28", fingerprint("")),
        ("SAME", "2027-02-28", fingerprint("2027-02-28")),
        ("NONE", None, fingerprint("")),
    ]
    try:
        _migrate(engine, "0005")
        with engine.begin() as connection:
            for reference, deadline, stored in rows:
                connection.execute(
                    text(
                        "INSERT INTO work_item (sie_code, reference, process, siren, received_on,"
                        " amount_cents, legal_due_on, fingerprint, state, last_event_at,"
                        " created_at) VALUES ('SIE', :reference, 'tva_refund', '732829320',"
                        " '2026-08-31', 10, :deadline, :stored, 'received', :now, :now)"
                    ),
                    {
                        "reference": reference,
                        "deadline": deadline,
                        "stored": stored,
                        "now": datetime.now(UTC),
                    },
                )
        _migrate(engine, "head")
        with engine.connect() as connection:
            query = text("SELECT reference, legal_due_given FROM work_item")
            given: dict[str, bool] = {row[0]: row[1] for row in connection.execute(query)}
        assert given == {"GIVEN": True, "COMPUTED": False, "SAME": True, "NONE": False}

        _migrate(engine, "0005")  # and back: the same fingerprints again
        with engine.connect() as connection:
            query = text("SELECT reference, fingerprint FROM work_item")
            fingerprints: dict[str, str] = {row[0]: row[1] for row in connection.execute(query)}
        assert fingerprints == {reference: fingerprint for reference, _, fingerprint in rows}
    finally:
        _migrate(engine, "head")


def test_checkpoints_aside_leave_the_wal_to_a_thread_that_ends_when_idle(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "CHECKPOINTER_IDLE_SECONDS", 0.05)
    checkpointer = db.checkpointer(sqlite_engine)
    before = checkpointer.runs

    def autocheckpoint(connection: Connection) -> int:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    with sqlite_engine.connect() as connection:
        with db.checkpoints_aside(connection), connection.begin():
            # Inside: a commit of this connection copies nothing into the database itself.
            assert autocheckpoint(connection) == 0
            connection.execute(
                RunLock.__table__.insert().values(name="x", acquired_at=datetime.now(UTC))  # type: ignore[attr-defined]
            )
        assert autocheckpoint(connection) == db.SQLITE_CHECKPOINT_PAGES
    assert checkpointer.idle(timeout=10)  # its thread ran the checkpoint and ended
    assert checkpointer.runs == before + 1
