"""Benchmarks of the nightly pipeline on a large generated data set, SQLite and PostgreSQL.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.bench_pipeline --items 1000000 --backend both

The harness generates ``--items`` received work items (with their ``received`` events) over
120 SIEs of 12 exporting directorates and 12 conventions (13 versions, some lines capped)
directly in the database with bulk inserts, then runs each stage of ``STAGES`` on a fresh
copy of that database per measurement, in a separate process so that its peak memory is its
own. A stage is a function taking a ``StageContext`` and returning named figures: ``intake``
(``bench_intake``), ``routing`` (here) and ``sla`` (``bench_queries``) are in ``STAGES``.

Stage ``routing`` measures:

* ``route_work_items`` end to end (lock, calendars check, coverage, plan, writes, commit);
* the raw SQL lower bound of routing's writes on the same plan: one ``UPDATE … FROM`` of the
  same columns and one ``INSERT … SELECT`` of the same history rows, then commit;
* a naive routing, one Prefect task per item (ORM read, Python rules, ORM write, commit), on
  the ``--naive-sample`` oldest items, under a temporary Prefect server;

and prints the ratios against the targets. PostgreSQL databases are created next to the one
of ``--postgres-url`` (default ``RELAIS_BENCH_POSTGRES_URL``, then
``RELAIS_TEST_POSTGRES_URL``, then the local test server) and dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import Engine, make_url, text

from relais import db
from relais.domain.sla import legal_due_on

PARIS = ZoneInfo("Europe/Paris")
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]

# Exporting directorates (métropole departments) paired with host sites; illustrative only.
PAIRS = (
    ("75", "27", "PONT-AUDEMER"),
    ("13", "02", "LAON"),
    ("69", "55", "VERDUN"),
    ("59", "52", "CHAUMONT"),
    ("33", "18", "VIERZON"),
    ("31", "85", "FONTENAY"),
    ("44", "47", "AGEN"),
    ("67", "57", "FORBACH"),  # an Alsace-Moselle calendar for the antenna
    ("76", "40", "DAX"),
    ("35", "26", "VALENCE"),
    ("21", "23", "GUERET"),
    ("45", "15", "AURILLAC"),
)
SIES_PER_DIRECTORATE = 10
#: Relative frequency of each process among generated items.
PROCESS_WEIGHTS = {
    "tva_refund": 30,
    "filing_reminder": 15,
    "payment_reminder": 15,
    "ex_officio_taxation": 5,
    "cfe_ifer_dispute": 5,
    "gespro_premises": 10,
    "auvisir": 10,
    "medoc_web": 10,
}
BATCH = 50_000
SIREN = "732829320"


# --- Data set ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataSet:
    """What to generate."""

    items: int
    as_of: date
    seed: int = 20261126
    #: "migrations" (what production runs) or "models" (tables built from models/tables.py).
    schema: str = "migrations"

    @property
    def capacity(self) -> int:
        """Daily capacity of capped lines: about two thirds of their candidates."""
        return max(1, self.items // 100)


def reference_document() -> dict[str, Any]:
    """Directorates, SIEs and remote services of the benchmark (illustrative)."""
    directorates, sies, services = [], [], []
    for exporter, host, town in PAIRS:
        directorates.append(
            {"code": f"DRFIP{exporter}", "name": f"Direction {exporter}", "department": exporter}
        )
        directorates.append(
            {"code": f"DDFIP{host}", "name": f"Direction {host}", "department": host}
        )
        for number in range(1, SIES_PER_DIRECTORATE + 1):
            sies.append(
                {
                    "code": f"SIE-{exporter}-{number:02d}",
                    "name": f"SIE {exporter} n°{number}",
                    "directorate": f"DRFIP{exporter}",
                }
            )
        services.append(
            {
                "code": f"ANT-{host}-{town}",
                "name": f"Antenne de {town.title()}",
                "town": town.title(),
                "department": host,
                "host_directorate": f"DDFIP{host}",
                "agents": 40,
            }
        )
    closures = [{"office": services[4]["code"], "date": date(2026, 12, 24), "reason": "Fermeture"}]
    return {"directorates": directorates, "sies": sies, "services": services, "closures": closures}


def convention_documents(data: DataSet) -> list[dict[str, Any]]:
    """Twelve conventions; the first has a second version, even ones cap their VAT line."""
    documents = []
    for index, (exporter, host, town) in enumerate(PAIRS):
        sies = [f"SIE-{exporter}-{n:02d}" for n in range(1, SIES_PER_DIRECTORATE + 1)]
        vat: dict[str, Any] = {"process": "tva_refund", "sies": sies[:6]}
        if index % 2 == 0:
            vat["daily_capacity"] = data.capacity
        medoc: dict[str, Any] = {"process": "medoc_web", "sies": sies[:4]}
        if index % 3 == 0:
            medoc["daily_capacity"] = data.capacity // 2 or 1
        base: dict[str, Any] = {
            "id": f"CONV-{exporter}-{town}",
            "version": 1,
            "exporting_directorate": f"DRFIP{exporter}",
            "host_directorate": f"DDFIP{host}",
            "service": f"ANT-{host}-{town}",
            "effective_from": date(2024, 1, 1),
            "perimeter": [
                vat,
                {"process": "cfe_ifer_dispute", "sies": "all"},
                {"process": "gespro_premises", "sies": sies[:8], "target_business_days": 25},
                {"process": "auvisir", "sies": "all"},
                medoc,
            ],
        }
        documents.append(base)
        if index == 0:
            documents.append(
                {
                    **base,
                    "version": 2,
                    "effective_from": date(2025, 6, 1),
                    "perimeter": [{**vat, "target_business_days": 15}, *base["perimeter"][1:]],
                }
            )
    return documents


def _item_rows(data: DataSet) -> Iterator[ItemRow]:
    """Work items as intake leaves them, deterministic for a given seed."""
    rng = random.Random(data.seed)
    sies = [
        f"SIE-{exporter}-{number:02d}"
        for exporter, _, _ in PAIRS
        for number in range(1, SIES_PER_DIRECTORATE + 1)
    ]
    processes = list(PROCESS_WEIGHTS)
    cumulative = []
    total = 0
    for weight in PROCESS_WEIGHTS.values():
        total += weight
        cumulative.append(total)
    for item_id in range(1, data.items + 1):
        process = rng.choices(processes, cum_weights=cumulative)[0]
        # Ingested night after night over 60 days (ids follow intake, as in production),
        # each item received by its SIE up to three days before its intake.
        intake_on = data.as_of - timedelta(days=59 - (item_id - 1) * 60 // data.items)
        received_on = intake_on - timedelta(days=rng.randrange(0, 4))
        amount = rng.randrange(10_000, 50_000_000) if process == "tva_refund" else None
        reference = f"B{item_id:09d}"
        sie = sies[rng.randrange(len(sies))]
        yield ItemRow(
            id=item_id,
            sie_code=sie,
            reference=reference,
            process=process,
            received_on=received_on,
            amount_cents=amount,
            legal_due_on=_legal(process, received_on),
            intake_at=datetime.combine(intake_on, clock_time(0), tzinfo=PARIS),
            intake_on=intake_on,
        )


@dataclass(frozen=True, slots=True)
class ItemRow:
    """One generated work item (and what its ``received`` event needs)."""

    id: int
    sie_code: str
    reference: str
    process: str
    received_on: date
    amount_cents: int | None
    legal_due_on: date | None
    intake_at: datetime
    intake_on: date


ITEM_COLUMNS = (
    "id, sie_code, reference, process, siren, received_on, amount_cents, legal_due_on, "
    "state, last_event_at, created_at"
)
EVENT_COLUMNS = "id, item_id, event, at, by, to_state, as_of, recorded_at"


def _item_values(row: ItemRow, now: datetime) -> tuple[Any, ...]:
    return (
        row.id,
        row.sie_code,
        row.reference,
        row.process,
        SIREN,
        row.received_on,
        row.amount_cents,
        row.legal_due_on,
        "received",
        row.intake_at,
        now,
    )


def _event_values(row: ItemRow, now: datetime) -> tuple[Any, ...]:
    return (row.id, row.id, "received", row.intake_at, "bench", "received", row.intake_on, now)


def _batches(rows: Iterator[ItemRow], size: int = BATCH) -> Iterator[list[ItemRow]]:
    batch: list[ItemRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's storage formats on SQLite: ISO dates, UTC datetimes without zone.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _bulk_items_sqlite(engine: Engine, data: DataSet) -> None:
    now = datetime.now(UTC)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-262144")
        # Secondary indexes are built once at the end: much faster than row by row.
        indexes = cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('work_item', 'item_event')"
        ).fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for batch in _batches(_item_rows(data)):
            cursor.executemany(
                f"INSERT INTO work_item ({ITEM_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                [tuple(map(_sqlite_value, _item_values(row, now))) for row in batch],
            )
            cursor.executemany(
                f"INSERT INTO item_event ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 8)})",
                [tuple(map(_sqlite_value, _event_values(row, now))) for row in batch],
            )
            raw.commit()
        for _, sql in indexes:
            cursor.execute(sql)
        cursor.execute("ANALYZE")
        raw.commit()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def _bulk_items_postgres(engine: Engine, data: DataSet) -> None:
    now = datetime.now(UTC)
    raw = engine.raw_connection()
    try:
        connection: Any = raw.driver_connection
        with connection.cursor() as cursor:
            # Secondary indexes (not those behind a constraint) are built once at the end.
            cursor.execute(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "WHERE t.relname IN ('work_item', 'item_event') AND t.relnamespace = "
                "to_regnamespace(current_schema()) AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
            )
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            with cursor.copy(f"COPY work_item ({ITEM_COLUMNS}) FROM STDIN") as copy:
                for row in _item_rows(data):
                    copy.write_row(_item_values(row, now))
            with cursor.copy(f"COPY item_event ({EVENT_COLUMNS}) FROM STDIN") as copy:
                for row in _item_rows(data):
                    copy.write_row(_event_values(row, now))
            for table in ("work_item", "item_event"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            for _, definition in indexes:
                cursor.execute(definition)
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")
    finally:
        raw.close()


def _legal(process: str, received_on: date) -> date | None:
    return legal_due_on(process, received_on)


def generate(url: str, data: DataSet, workdir: Path) -> dict[str, float]:
    """Create the schema, load reference data and conventions, bulk-insert items; return timings.

    ``data.schema == "models"`` builds the tables straight from ``models/tables.py`` instead
    of running the migrations: it measures a schema change before its migration is written.
    """
    from relais.calendars import ensure_calendar_years
    from relais.conventions import apply_files
    from relais.db import session_scope
    from relais.reference import load_reference

    timings: dict[str, float] = {}
    engine = db.make_engine(url)
    try:
        started = time.perf_counter()
        if data.schema == "models":
            from sqlmodel import SQLModel

            import models.tables  # noqa: F401  (registers the tables)

            SQLModel.metadata.create_all(engine)
        else:
            db.upgrade(engine)
        files = workdir / "files"
        files.mkdir(parents=True, exist_ok=True)
        reference = files / "reference.yaml"
        reference.write_text(yaml.safe_dump(reference_document(), allow_unicode=True), "utf-8")
        load_reference(reference, engine=engine)
        paths = []
        for document in convention_documents(data):
            path = files / f"{document['id'].lower()}-v{document['version']}.yaml"
            path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
            paths.append(path)
        apply_files(paths, engine=engine)
        with session_scope(engine) as session:
            # Materialised once a year in production; a nightly run only checks it.
            ensure_calendar_years(session, data.as_of.year, data.as_of.year + 2)
        timings["reference, conventions, calendars"] = time.perf_counter() - started
        started = time.perf_counter()
        if engine.dialect.name == "sqlite":
            _bulk_items_sqlite(engine, data)
        else:
            _bulk_items_postgres(engine, data)
        timings[f"bulk insert {data.items:,} items + events"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return timings


# --- Backends -----------------------------------------------------------------------------


class Backend(Protocol):
    """A database product holding one pristine generated copy and handing out fresh clones."""

    name: str

    def prepare(self, data: DataSet) -> dict[str, float]:
        """Generate the pristine database; return timings."""
        ...

    def clone(self) -> contextlib.AbstractContextManager[str]:
        """A fresh copy of the pristine database, as a URL, removed afterwards."""
        ...

    def cleanup(self) -> None:
        """Remove the pristine database."""
        ...


@dataclass
class SqliteBackend:
    """Generated once into a file; each measurement works on a copy of the file."""

    workdir: Path
    name: str = "sqlite"

    @property
    def pristine(self) -> Path:
        return self.workdir / "pristine.db"

    def prepare(self, data: DataSet) -> dict[str, float]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.pristine}{suffix}").unlink(missing_ok=True)
        return generate(f"sqlite:///{self.pristine}", data, self.workdir)

    @contextlib.contextmanager
    def clone(self) -> Iterator[str]:
        copy = self.workdir / "run.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.pristine, copy)
        os.sync()  # the copy's write-back must not land in the middle of a measurement
        try:
            yield f"sqlite:///{copy}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)

    def cleanup(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.pristine}{suffix}").unlink(missing_ok=True)


@dataclass
class PostgresBackend:
    """Generated once into its own database; clones are ``CREATE DATABASE … TEMPLATE``."""

    server_url: str
    workdir: Path
    name: str = "postgresql"
    # Named after the process: two harness runs on one server must not share databases.
    pristine_name: str = field(default_factory=lambda: f"relais_bench_{os.getpid()}_pristine")
    clone_name: str = field(default_factory=lambda: f"relais_bench_{os.getpid()}_run")

    def _url(self, database: str) -> str:
        return (
            make_url(self.server_url)
            .set(database=database, query={})
            .render_as_string(hide_password=False)
        )

    def _admin(self, statement: str) -> None:
        engine = db.make_engine(self.server_url).execution_options(isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def prepare(self, data: DataSet) -> dict[str, float]:
        self._admin(f'DROP DATABASE IF EXISTS "{self.clone_name}"')
        self._admin(f'DROP DATABASE IF EXISTS "{self.pristine_name}"')
        self._admin(f'CREATE DATABASE "{self.pristine_name}"')
        return generate(self._url(self.pristine_name), data, self.workdir)

    @contextlib.contextmanager
    def clone(self) -> Iterator[str]:
        self._admin(f'DROP DATABASE IF EXISTS "{self.clone_name}"')
        self._admin(f'CREATE DATABASE "{self.clone_name}" TEMPLATE "{self.pristine_name}"')
        self._admin("CHECKPOINT")
        try:
            yield self._url(self.clone_name)
        finally:
            self._admin(f'DROP DATABASE IF EXISTS "{self.clone_name}"')

    def cleanup(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.pristine_name}"')


# --- Workers (run in their own process: clean timings and peak memory) --------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_probe() -> float:
    """Seconds for a fixed pure-Python workload, best of three.

    The machines these figures come from are shared: the same code ran 30–40 % slower on
    some days. Printed beside the figures, this tells a slow machine from slower code.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(2_000_000):
            total += len(str(number))
        best = min(best, time.perf_counter() - started)
    return best


def peak_memory_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a process (this one by default) since it started (VmHWM).

    ``ru_maxrss`` would not do: Linux carries it over from the forking parent across exec.
    It is only the fallback for this process, where ``/proc`` is missing; 0 for another.
    """
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    if pid != "self":
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_route(url: str, as_of: date) -> dict[str, Any]:
    """Time ``route_work_items`` end to end on the database at ``url``."""
    from relais.routing import route_work_items

    engine = db.make_engine(url)
    cpu = _cpu_seconds()
    started = time.perf_counter()
    result = route_work_items(as_of=as_of, engine=engine)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    # The same night again: nothing left to do, but every assigned item is checked for a
    # change of holder (the steady cost of a night with few new items). A real next night
    # comes after autovacuum has refreshed PostgreSQL's statistics of the million rows the
    # first run changed (untimed here); with the stale ones it misjudges the check's plan.
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE work_item")
            connection.commit()
    started = time.perf_counter()
    again = route_work_items(as_of=as_of, engine=engine)
    second_seconds = time.perf_counter() - started
    if again.assigned_total or again.reassigned:
        raise RuntimeError("a second run on the same night changed something")
    with engine.connect() as connection:
        undated = connection.execute(
            text("SELECT count(*) FROM work_item WHERE state = 'assigned' AND due_on IS NULL")
        ).scalar_one()
        events = connection.execute(
            text("SELECT count(*) FROM item_event WHERE event = 'assigned'")
        ).scalar_one()
    engine.dispose()
    assigned = sum(result.assigned.values())
    if undated or events != assigned + result.reassigned:
        raise RuntimeError(f"inconsistent routing: {undated} undated, {events} events")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "second_run_seconds": second_seconds,
        "result": result.to_json(),
        "assigned": assigned,
        "considered": assigned + result.waiting_capacity,
        "peak_memory_mb": peak_memory_mb(),
    }


def worker_lower_bound(url: str, as_of: date) -> dict[str, Any]:
    """Time only routing's writes, as raw SQL, on exactly the plan routing makes."""
    from relais.routing import POSTGRES_WORK_MEM, SQLITE_CACHE_KIB, RoutingRun

    engine = db.make_engine(url)
    at = datetime.combine(as_of, clock_time(0), tzinfo=PARIS)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # The same page caches as a routing run.
            connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
            connection.exec_driver_sql(f"PRAGMA temp.cache_size = -{SQLITE_CACHE_KIB // 4}")
        else:
            connection.exec_driver_sql(f"SET work_mem = '{POSTGRES_WORK_MEM}'")
        connection.commit()
        with connection.begin():
            run = RoutingRun(connection, as_of=as_of, dry_run=True)
            run.prepare()
            run.plan()
            # Untimed: the plan as one flat table, the input a lower bound writes from.
            connection.exec_driver_sql(
                "CREATE TEMPORARY TABLE lb_plan AS SELECT p.item_id, p.from_state, t.assignee, "
                "t.assignment_kind, t.convention_id, t.convention_version, t.perimeter_line_id, "
                "t.target_business_days, t.due_on FROM routing_plan p "
                "JOIN routing_target t ON t.id = p.target_id"
            )
            if not sqlite:
                connection.exec_driver_sql("ANALYZE lb_plan")
            planned = connection.exec_driver_sql("SELECT count(*) FROM lb_plan").scalar_one()
            if sqlite:
                for name in ("routing_capped", "routing_plan", "routing_target"):
                    connection.exec_driver_sql(f"DROP TABLE temp.{name}")
        if sqlite:  # a rollback leaves no trace on SQLite: on the items as routing finds them
            bare_seconds = _bare_update(connection)
        at_value = _sqlite_value(at) if sqlite else at
        now_value = _sqlite_value(datetime.now(UTC)) if sqlite else datetime.now(UTC)
        cpu = _cpu_seconds()
        started = time.perf_counter()
        with connection.begin():
            connection.execute(
                text(
                    "UPDATE work_item SET state = 'assigned', assignee = l.assignee, "
                    "assignment_kind = l.assignment_kind, convention_id = l.convention_id, "
                    "convention_version = l.convention_version, "
                    "perimeter_line_id = l.perimeter_line_id, assigned_on = :as_of, "
                    "target_business_days = l.target_business_days, due_on = l.due_on, "
                    "last_event_at = :at FROM lb_plan AS l WHERE work_item.id = l.item_id"
                    # SQLite's fastest form: walk the plan, look items up by rowid.
                    + (" + 0" if sqlite else "")
                ),
                {"as_of": as_of, "at": at_value},
            )
            update_seconds = time.perf_counter() - started
            connection.execute(
                text(
                    "INSERT INTO item_event (item_id, event, at, by, from_state, to_state, "
                    "assignee, assignment_kind, convention_id, convention_version, "
                    "perimeter_line_id, as_of, due_on, recorded_at) "
                    "SELECT item_id, 'assigned', :at, 'bench', from_state, 'assigned', assignee, "
                    "assignment_kind, convention_id, convention_version, perimeter_line_id, "
                    ":as_of, due_on, :now FROM lb_plan"
                ),
                {"as_of": as_of, "at": at_value, "now": now_value},
            )
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
        if not sqlite:
            bare_seconds = _bare_update(connection)
    engine.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "update_seconds": update_seconds,
        "bare_update_seconds": bare_seconds,
        "rows": planned,
        "peak_memory_mb": peak_memory_mb(),
    }


def _bare_update(connection: Any) -> float:
    """Seconds of the yardstick the routing targets were set against, rolled back.

    A bare ``UPDATE … FROM`` of the plan's rows: one column, on the table with its primary
    key only. On SQLite it runs before the lower bound, on the received items as routing
    finds them; on PostgreSQL after it (its rollback leaves a dead row per item behind),
    where an update that moves a row costs the same whatever the row held.
    """
    sqlite = connection.dialect.name == "sqlite"
    transaction = connection.begin()
    try:
        if sqlite:  # the driver begins before DML only: the DROP INDEX must not autocommit
            connection.exec_driver_sql("BEGIN")
        _drop_secondary_indexes(connection, "work_item")
        started = time.perf_counter()
        connection.exec_driver_sql(
            "UPDATE work_item SET assignee = l.assignee FROM lb_plan AS l "
            "WHERE work_item.id = l.item_id" + (" + 0" if sqlite else "")
        )
        return time.perf_counter() - started
    finally:
        transaction.rollback()
        if sqlite:
            kept = db.sqlite_indexes(connection, "work_item")
            connection.rollback()
            if not kept:
                raise RuntimeError("the yardstick's rollback lost work_item's indexes")


def _drop_secondary_indexes(connection: Any, table: str) -> None:
    """Drop every index of ``table`` but its primary key (in the caller's transaction).

    SQLite keeps the automatic index of a ``UNIQUE`` constraint (it cannot be dropped, and
    an update leaves it alone unless its columns change); PostgreSQL, where any update that
    moves a row adds an entry to every index, drops the constraint.
    """
    if connection.dialect.name == "sqlite":
        for name, _ in db.sqlite_indexes(connection, table):
            connection.exec_driver_sql(f'DROP INDEX "{name}"')
        return
    constraints = connection.exec_driver_sql(
        "SELECT conname FROM pg_constraint WHERE conrelid = %(table)s::regclass AND contype = 'u'",
        {"table": table},
    ).scalars()
    for name in list(constraints):
        connection.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    indexes = connection.exec_driver_sql(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %(table)s::regclass AND NOT i.indisprimary",
        {"table": table},
    ).scalars()
    for name in list(indexes):
        connection.exec_driver_sql(f'DROP INDEX "{name}"')


def worker_naive(url: str, as_of: date, sample: int, prefect_home: str) -> dict[str, Any]:
    """One Prefect task per item on the ``sample`` oldest received items."""
    os.environ["PREFECT_HOME"] = prefect_home
    os.environ.pop("PREFECT_API_URL", None)  # a temporary server of its own
    from relais.prefect_env import configure_prefect

    configure_prefect()
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from sqlmodel import Session, col, func, select

    from models.tables import ItemEvent, Sie, WorkItem
    from relais.calendars import office_calendars
    from relais.conventions import coverage_on
    from relais.domain.calendar import calendar_for
    from relais.domain.routing import destinations
    from relais.domain.sla import compute_due_on

    engine = db.make_engine(url)
    at = datetime.combine(as_of, clock_time(0), tzinfo=PARIS)
    with Session(engine) as session:
        table = destinations(session.exec(select(Sie.code)).all(), coverage_on(session, as_of))
        calendars = {
            code: calendar_for(department, closures)
            for code, (department, closures) in office_calendars(session).items()
        }
        ids = session.exec(
            select(WorkItem.id)
            .where(col(WorkItem.state) == "received")
            .order_by(col(WorkItem.received_on), col(WorkItem.sie_code), col(WorkItem.reference))
            .limit(sample)
        ).all()

    @task(cache_policy=NO_CACHE)
    def route_one_item(item_id: int) -> str:
        with Session(engine) as session:
            item = session.get(WorkItem, item_id)
            if item is None or item.state != "received":
                return "skipped"
            destination = table[(item.sie_code, item.process)]
            if destination.daily_capacity is not None:
                used = session.exec(
                    select(func.count())
                    .select_from(ItemEvent)
                    .where(
                        col(ItemEvent.event) == "assigned",
                        col(ItemEvent.perimeter_line_id) == destination.perimeter_line_id,
                        col(ItemEvent.as_of) == as_of,
                    )
                ).one()
                if used >= destination.daily_capacity:
                    return "waiting"
            due_on = compute_due_on(
                calendars[destination.assignee], as_of, destination.target_business_days
            )
            item.state = "assigned"
            item.assignee = destination.assignee
            item.assignment_kind = destination.kind
            item.convention_id = destination.convention_id
            item.convention_version = destination.convention_version
            item.perimeter_line_id = destination.perimeter_line_id
            item.assigned_on = as_of
            item.target_business_days = destination.target_business_days
            item.due_on = due_on
            item.last_event_at = at
            session.add(item)
            session.add(
                ItemEvent(
                    item_id=item_id,
                    event="assigned",
                    at=at,
                    by="bench",
                    from_state="received",
                    to_state="assigned",
                    assignee=destination.assignee,
                    assignment_kind=destination.kind,
                    convention_id=destination.convention_id,
                    convention_version=destination.convention_version,
                    perimeter_line_id=destination.perimeter_line_id,
                    as_of=as_of,
                    due_on=due_on,
                    recorded_at=datetime.now(UTC),
                )
            )
            session.commit()
            return "assigned"

    @flow(name="naive-route-per-item")
    def naive_route(item_ids: list[int]) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        for item_id in item_ids:
            outcome = route_one_item(item_id)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    @flow(name="naive-warm-up")
    def warm_up() -> None:
        """Starts the temporary server outside the timing."""

    warm_up()
    started = time.perf_counter()
    outcomes = naive_route([item_id for item_id in ids if item_id is not None])
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "items": len(ids), "outcomes": outcomes}


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "route": worker_route,
    "lower-bound": worker_lower_bound,
    "naive": worker_naive,
}


def run_worker(name: str, **arguments: Any) -> dict[str, Any]:
    """Run a worker in a fresh interpreter and return what it printed (JSON).

    It starts once earlier writes are on disk, so that it does not share the disk with the
    kernel writing back the database generated or changed just before.
    """
    os.sync()
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_pipeline",
        "worker",
        name,
        json.dumps(arguments, default=str),
    ]
    completed = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- Stages -------------------------------------------------------------------------------


@dataclass
class StageContext:
    """What a stage gets: the backend (fresh clones on demand), the data set and options."""

    backend: Backend
    data: DataSet
    options: argparse.Namespace
    figures: dict[str, Any] = field(default_factory=dict)


def stage_routing(context: StageContext) -> dict[str, Any]:
    """Routing end to end, its raw write lower bound, and the naive per-item flow."""
    as_of = context.data.as_of.isoformat()
    with context.backend.clone() as url:
        routed = run_worker("route", url=url, as_of=as_of)
    with context.backend.clone() as url:
        bound = run_worker("lower-bound", url=url, as_of=as_of)
    figures: dict[str, Any] = {
        "routing seconds": routed["seconds"],
        "routing CPU seconds (client)": routed["cpu_seconds"],
        "second run, nothing to do, seconds": routed["second_run_seconds"],
        "items considered": routed["considered"],
        "items assigned": routed["assigned"],
        "waiting for capacity": routed["result"]["waiting_capacity"],
        "routing peak memory MB": routed["peak_memory_mb"],
        "lower bound seconds": bound["seconds"],
        "lower bound CPU seconds (client)": bound["cpu_seconds"],
        "lower bound rows": bound["rows"],
        "routing / lower bound": routed["seconds"] / bound["seconds"],
        # The targets' yardstick: 2.4 s (SQLite) and 7.3 s (PostgreSQL) for 1 M rows on the
        # machine they were set on; this one's speed against it, and routing at that speed.
        "bare UPDATE … FROM seconds": bound["bare_update_seconds"],
        "routing / bare UPDATE": routed["seconds"] / bound["bare_update_seconds"],
    }
    reference = BARE_UPDATE_SECONDS[context.backend.name] * bound["rows"] / 1_000_000
    figures["routing at the yardstick's speed, seconds"] = (
        routed["seconds"] * reference / bound["bare_update_seconds"]
    )
    if bound["rows"] != routed["assigned"]:
        raise RuntimeError("the lower bound did not write the rows routing wrote")
    sample = context.options.naive_sample
    if sample:
        prefect_home = str(Path(context.options.workdir) / "prefect-home")
        with context.backend.clone() as url:
            naive = run_worker(
                "naive", url=url, as_of=as_of, sample=sample, prefect_home=prefect_home
            )
        routing_per_item = routed["seconds"] / max(1, routed["considered"])
        naive_per_item = naive["seconds"] / max(1, naive["items"])
        figures.update(
            {
                "naive seconds": naive["seconds"],
                "naive items": naive["items"],
                "naive ms per item": naive_per_item * 1000,
                "routing µs per item": routing_per_item * 1e6,
                "naive / routing per item": naive_per_item / routing_per_item,
            }
        )
    return figures


#: A bare ``UPDATE … FROM`` of 1 M rows on the machines the routing targets were set on.
BARE_UPDATE_SECONDS: dict[str, float] = {"sqlite": 2.4, "postgresql": 7.3}

#: Stages by name, run in this order (``intake`` and ``sla`` register themselves first/last).
STAGES: dict[str, Callable[[StageContext], dict[str, Any]]] = {"routing": stage_routing}

#: Targets per stage: figure → (limit per backend or for all, "max"/"min").
TARGETS: dict[str, dict[str, tuple[dict[str, float], str]]] = {
    "routing": {
        "routing seconds": ({"sqlite": 15.0, "postgresql": 30.0}, "max"),
        "routing / lower bound": ({"*": 2.0}, "max"),
        "naive / routing per item": ({"*": 400.0}, "min"),
        "routing peak memory MB": ({"*": 500.0}, "max"),
    }
}


def _check(stage: str, backend: str, figures: dict[str, Any]) -> list[str]:
    lines = []
    for figure, (limits, sense) in TARGETS.get(stage, {}).items():
        if figure not in figures:
            continue
        limit = limits.get(backend, limits.get("*"))
        if limit is None:
            continue
        value = figures[figure]
        ok = value <= limit if sense == "max" else value >= limit
        bound = "≤" if sense == "max" else "≥"
        lines.append(
            f"  {'ok  ' if ok else 'MISS'} {figure} {value:,.2f} (target {bound} {limit:g})"
        )
    return lines


def _print_figures(title: str, figures: dict[str, Any]) -> None:
    print(title, flush=True)
    for name, value in figures.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"  {name:<44} {shown}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness (or, with ``worker``, one measurement in this process)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["worker"]:
        name, payload = arguments[1], json.loads(arguments[2])
        payload["as_of"] = date.fromisoformat(payload["as_of"])
        print(json.dumps(WORKERS[name](**payload), default=str))
        return 0

    # The intake stage and the scan and breach-query stage live beside their own workers;
    # they register themselves.
    from benchmarks import bench_intake, bench_queries

    # (Run as a script this module is __main__: register into its own tables.)
    bench_intake.register(STAGES, TARGETS)
    bench_queries.register(STAGES, TARGETS)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages")
    parser.add_argument("--naive-sample", type=int, default=2000, help="0 skips the naive run")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 26))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "RELAIS_BENCH_POSTGRES_URL",
            os.environ.get("RELAIS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        ),
    )
    parser.add_argument(
        "--workdir", default=None, help="where SQLite files go (default: a temp dir)"
    )
    parser.add_argument(
        "--schema",
        choices=("migrations", "models"),
        default="migrations",
        help="build the schema with the migrations (default) or from models/tables.py",
    )
    parser.add_argument("--json-out", default=None, help="also write every figure to this file")
    options = parser.parse_args(arguments)
    temporary = None
    if options.workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="relais-bench-")
        options.workdir = temporary.name
    workdir = Path(options.workdir)
    stages = [name.strip() for name in options.stages.split(",") if name.strip()]
    unknown = [name for name in stages if name not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)} (known: {', '.join(STAGES)})")
    data = DataSet(items=options.items, as_of=options.as_of, schema=options.schema)
    backends: list[Backend] = []
    if options.backend in ("sqlite", "both"):
        backends.append(SqliteBackend(workdir / "sqlite"))
    if options.backend in ("postgresql", "both"):
        backends.append(PostgresBackend(options.postgres_url, workdir / "postgresql"))

    print(
        f"Relais pipeline benchmark — {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"{datetime.now(PARIS).date().isoformat()}; {data.items:,} items, "
        f"{len(PAIRS) * SIES_PER_DIRECTORATE} SIEs, {len(PAIRS)} conventions; "
        f"machine probe {machine_probe():.3f} s",
        flush=True,
    )
    report: dict[str, Any] = {"items": data.items, "as_of": data.as_of.isoformat(), "runs": {}}
    verdicts: list[str] = []
    try:
        for backend in backends:
            try:
                _print_figures(f"[{backend.name}] generate", backend.prepare(data))
                for stage in stages:
                    context = StageContext(backend=backend, data=data, options=options)
                    figures = STAGES[stage](context)
                    _print_figures(f"[{backend.name}] {stage}", figures)
                    checks = _check(stage, backend.name, figures)
                    for line in checks:
                        print(line, flush=True)
                    verdicts.extend(line for line in checks if "MISS" in line)
                    report["runs"][f"{backend.name}/{stage}"] = figures
            finally:
                backend.cleanup()
    finally:
        if temporary is not None:
            temporary.cleanup()
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(report, indent=2, default=str), "utf-8")
    return 1 if verdicts else 0


if __name__ == "__main__":
    raise SystemExit(main())
