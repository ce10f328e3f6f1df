"""Nightly routing in the database, set-based (SPEC §6).

A run is a handful of statements whatever the number of items, all in one transaction under an
exclusive lock:

1. the routing table: every (SIE, catalogue process) with its destination on the as-of date (the
   convention line in force, or the SIE itself), its places left for the day and its due date,
   computed once per pair from ``calendar_day`` (a few thousand rows, in a temporary table);
2. the plan: received items, and assigned items whose holder or convention version changed,
   joined with the routing table; lines with a daily capacity rank their candidates oldest
   first with ``ROW_NUMBER()`` and take as many as they have places;
3. one ``UPDATE … FROM`` of the planned items and one ``INSERT … SELECT`` of their ``assigned``
   events (on SQLite, a run that assigns most items rebuilds the item indexes afterwards
   instead of updating them entry by entry).

The rules themselves are stated on plain values in ``relais.domain.routing``. A dry run makes
the same plan and rolls back; draft conventions are evaluated as if applied, in a dry run.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlmodel import Session

from models.documents import ConventionDocument
from models.tables import CalendarDay, ItemEvent, RemoteService, RunLock, Sie, WorkItem
from models.types import UTCDateTime
from relais.calendars import ensure_calendar_years
from relais.conventions import coverage_on, validate_files
from relais.cpus import usable_cores
from relais.db import get_engine, refresh_statistics, sqlite_indexes
from relais.domain.conventions import Coverage
from relais.domain.routing import (
    LOCAL,
    REMOTE,
    Destination,
    Move,
    RoutingResult,
    ServiceLoad,
    destinations,
    remaining_capacity,
)
from relais.errors import ConfigurationError, ConflictError
from relais.settings import get_settings

#: Name of the ``run_lock`` row that makes routing runs exclusive.
ROUTING_LOCK: Final = "routing"
#: Years of calendar materialised past the as-of year: a 250-business-day target ends within one.
CALENDAR_YEARS_AHEAD: Final = 2
#: SQLite page cache of a routing run, in KiB (the connection's own is restored afterwards).
SQLITE_CACHE_KIB: Final = 128 * 1024
#: SQLite: memory an index build sorts in before it hands a run of keys to a helper thread,
#: in KiB. The four largest item indexes of a million items took 4.4–6.1 s to build with the
#: run's cache (one sort, one thread), 2.7–4.2 s with 8 MB and a helper (benchmarks/README.md).
SQLITE_SORT_KIB: Final = 8 * 1024
#: PostgreSQL ``work_mem`` of a routing transaction (``SET LOCAL``: this transaction only).
POSTGRES_WORK_MEM: Final = "64MB"
#: How many times a run is retried when items change under it (PostgreSQL only, rare).
_ATTEMPTS: Final = 3
#: SQLite: a run that assigns at least this share of all work items drops the item indexes it
#: would otherwise update entry by entry and builds them again once written (a sorted,
#: bottom-up build). Measured on a million items (benchmarks/README.md): keeping the indexes
#: costs ~13 µs per assigned item, rebuilding them ~5.5 µs per item in the table; the two
#: meet at about 40 % of the items.
SQLITE_REBUILD_SHARE: Final = 0.4
#: SQLite: when at least this share of all work items is assigned, the check of assigned
#: items for a new holder reads the table in order instead of walking the SIE index and
#: fetching each item from it. A million items, all assigned: 0.8–1.5 s against 3.4–3.9 s;
#: the two meet where about a quarter to a third of the items are assigned.
SQLITE_SCAN_SHARE: Final = 0.25

_items = WorkItem.__table__  # type: ignore[attr-defined]
_events = ItemEvent.__table__  # type: ignore[attr-defined]
_days = CalendarDay.__table__  # type: ignore[attr-defined]
_lock = RunLock.__table__  # type: ignore[attr-defined]

_OPEN_HELD_STATES: Final = ("assigned", "in_progress", "suspended")

# --- Temporary tables (per transaction: dropped at commit on PostgreSQL, by hand on SQLite) --

_temporary = MetaData()
_ITEM_ID = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is the rowid

targets = Table(
    "routing_target",
    _temporary,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sie_code", String(32), nullable=False),
    Column("process", String(32), nullable=False),
    Column("assignee", String(32), nullable=False),
    Column("assignment_kind", String(8), nullable=False),
    Column("convention_id", String(64)),
    Column("convention_version", Integer),
    Column("perimeter_line_id", Integer),
    Column("target_business_days", Integer, nullable=False),
    Column("daily_capacity", Integer),
    Column("remaining", Integer),
    Column("due_on", Date),
    Column("reason", Text),
    UniqueConstraint("sie_code", "process"),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)

plan = Table(
    "routing_plan",
    _temporary,
    Column("item_id", _ITEM_ID, primary_key=True, autoincrement=False),
    Column("target_id", Integer, nullable=False),
    Column("from_state", String(16), nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)

capped = Table(
    "routing_capped",
    _temporary,
    Column("item_id", _ITEM_ID, primary_key=True, autoincrement=False),
    Column("target_id", Integer, nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("place", BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


class _ItemsChangedDuringRun(Exception):
    """A planned item changed state between planning and writing (a concurrent event)."""


def start_of_day(as_of: date, timezone: ZoneInfo) -> datetime:
    """00:00 local on ``as_of``: the time of routing's ``assigned`` events."""
    return datetime.combine(as_of, time(0), tzinfo=timezone)


@contextlib.contextmanager
def exclusive_transaction(
    engine: Engine, *, holder: str, commit: bool, now: datetime | None = None
) -> Iterator[Connection]:
    """One transaction that no other routing run shares; committed only if ``commit``.

    SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock up front (a second run waits
    for it, busy timeout then retry). PostgreSQL: writing the ``run_lock`` row locks it until
    the end of the transaction; a second run blocks on it and, once it gets it, reads what the
    first one committed (READ COMMITTED takes a fresh snapshot per statement). A run that
    writes also locks ``work_item`` against other writers (reads go on), so events posted
    meanwhile wait for it rather than forcing it to start again.
    """
    now = now or datetime.now(UTC)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            with _sqlite_bulk_cache(connection):
                # The driver's implicit BEGIN is a deferred one: take over transaction control.
                connection.execution_options(isolation_level="AUTOCOMMIT")
                with connection.begin():
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    try:
                        _take_lock(connection, holder, now)
                        yield connection
                    except BaseException:
                        connection.exec_driver_sql("ROLLBACK")
                        raise
                    connection.exec_driver_sql("COMMIT" if commit else "ROLLBACK")
            return
        transaction = connection.begin()
        try:
            # Hash joins of a million plan rows stay in memory instead of spilling in batches.
            connection.exec_driver_sql(f"SET LOCAL work_mem = '{POSTGRES_WORK_MEM}'")
            _take_lock(connection, holder, now)
            if commit:
                # Writers of items (events, intake) wait for the run instead of changing
                # planned items under it, as SQLite's write lock makes them do; readers go on.
                connection.exec_driver_sql("LOCK TABLE work_item IN EXCLUSIVE MODE")
            yield connection
        except BaseException:
            transaction.rollback()
            raise
        if commit:
            transaction.commit()
        else:
            transaction.rollback()


@contextlib.contextmanager
def _sqlite_bulk_cache(connection: Connection) -> Iterator[None]:
    """A large page cache for the run, the connection's own restored afterwards.

    A bulk run rewrites every page of the table and its indexes: with SQLite's default 2 MB
    cache it would read and write the same index pages over and over.
    """
    main, temp = (
        connection.exec_driver_sql(f"PRAGMA {schema}.cache_size").scalar_one()
        for schema in ("main", "temp")
    )
    connection.commit()
    try:
        connection.exec_driver_sql(f"PRAGMA main.cache_size = -{SQLITE_CACHE_KIB}")
        connection.exec_driver_sql(f"PRAGMA temp.cache_size = -{SQLITE_CACHE_KIB // 4}")
        connection.commit()
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA main.cache_size = {int(main)}")
        connection.exec_driver_sql(f"PRAGMA temp.cache_size = {int(temp)}")
        connection.commit()


@contextlib.contextmanager
def _sqlite_sorting(connection: Connection) -> Iterator[None]:
    """Sorts in parallel (index builds, large ``GROUP BY``): a small budget and helper threads.

    SQLite sorts in memory up to the size of the page cache: with the run's large cache the
    keys of a million items are sorted in one list, by one thread, once the table has been
    read. With a budget of a few MB they are sorted in runs, by helper threads, while the
    table is still being read, and the runs merged.
    """
    cache, threads = (
        connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
        for name in ("main.cache_size", "threads")
    )
    connection.exec_driver_sql(f"PRAGMA main.cache_size = -{SQLITE_SORT_KIB}")
    # One core reads the table, the others sort.
    connection.exec_driver_sql(f"PRAGMA threads = {max(0, round(usable_cores()) - 1)}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA threads = {int(threads)}")
        connection.exec_driver_sql(f"PRAGMA main.cache_size = {int(cache)}")


def _take_lock(connection: Connection, holder: str, now: datetime) -> None:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    statement = upsert(_lock).values(name=ROUTING_LOCK, holder=holder[:100], acquired_at=now)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_lock.c.name],
            set_={
                "holder": statement.excluded.holder,
                "acquired_at": statement.excluded.acquired_at,
            },
        )
    )


@dataclass(frozen=True, slots=True)
class _Target:
    """A row of the routing table, as kept in Python for the summary."""

    sie_code: str
    process: str
    destination: Destination


class RoutingRun:
    """One routing run inside an exclusive transaction (see ``exclusive_transaction``).

    ``run()`` does everything; the steps are separate so that a benchmark can time the
    unavoidable writes alone on exactly the same plan.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        as_of: date,
        author: str = "cli",
        flow_run_id: str | None = None,
        drafts: Sequence[ConventionDocument] = (),
        draft_sources: Sequence[str] = (),
        dry_run: bool = False,
        timezone: ZoneInfo | None = None,
        now: datetime | None = None,
    ) -> None:
        """Prepare a run on ``connection`` for ``as_of``; nothing is read yet."""
        self.connection = connection
        self.as_of = as_of
        self.author = author
        self.flow_run_id = flow_run_id
        self.drafts = tuple(drafts)
        self.draft_sources = tuple(draft_sources)
        #: A what-if run (draft files given, even if identical to stored versions).
        self.what_if = bool(self.drafts or self.draft_sources)
        self.dry_run = dry_run or self.what_if
        self.at = start_of_day(as_of, timezone or get_settings().timezone)
        self.now = now or datetime.now(UTC)
        self._targets: dict[int, _Target] = {}
        self._assigned_before = 0
        self._items_total: int | None = None
        self._load_before: dict[str, int] = {}
        self._planned = 0
        self._result: RoutingResult | None = None

    # -- the whole run -------------------------------------------------------------------

    def run(self) -> RoutingResult:
        """Build the routing table, plan, write (unless a dry run), and summarise."""
        refresh_statistics(self.connection)  # tonight's intake may have changed the table much
        self.prepare()
        self.plan()
        self.write()
        return self.result()

    # -- step 1: routing table ----------------------------------------------------------

    def prepare(self) -> None:
        """Materialise calendars, then fill the routing table with due dates and places."""
        session = Session(bind=self.connection)
        try:
            ensure_calendar_years(session, self.as_of.year, self.as_of.year + CALENDAR_YEARS_AHEAD)
            coverage = self._coverage(session)
        finally:
            session.close()
        sie_codes = self.connection.execute(select(Sie.__table__.c.code)).scalars().all()  # type: ignore[attr-defined]
        table = destinations(sie_codes, coverage)
        used = self._assigned_today(
            {d.perimeter_line_id for d in table.values() if d.daily_capacity}
        )
        rows: list[dict[str, Any]] = []
        for target_id, ((sie_code, process), destination) in enumerate(sorted(table.items()), 1):
            self._targets[target_id] = _Target(sie_code, process, destination)
            line = destination.perimeter_line_id
            rows.append(
                {
                    "id": target_id,
                    "sie_code": sie_code,
                    "process": process,
                    "assignee": destination.assignee,
                    "assignment_kind": destination.kind,
                    "convention_id": destination.convention_id,
                    "convention_version": destination.convention_version,
                    "perimeter_line_id": line,
                    "target_business_days": destination.target_business_days,
                    "daily_capacity": destination.daily_capacity,
                    "remaining": remaining_capacity(
                        destination.daily_capacity, used.get(line, 0) if line else 0
                    ),
                    "due_on": None,
                    "reason": _reassignment_reason(destination),
                }
            )
        self._drop_temporary()  # a run that died on this pooled connection may have left them
        for table_ in (targets, plan, capped):
            table_.create(self.connection)
        if self.connection.dialect.name == "postgresql":
            # The plan is only ever hashed, never probed by item: without its primary key a
            # million-row plan is written in two thirds of the time. (SQLite keeps it: there
            # it is the rowid, the order the update walks the items in.)
            self.connection.exec_driver_sql(
                "ALTER TABLE routing_plan DROP CONSTRAINT routing_plan_pkey"
            )
        if rows:
            self.connection.execute(insert(targets), rows)
        self._fill_due_dates()

    def _coverage(self, session: Session) -> dict[tuple[str, str], Coverage]:
        """What covers each (SIE, process) on the as-of date, drafts applied; draft lines get
        negative ids so that their capacity is counted per line like stored ones."""
        coverage = coverage_on(session, self.as_of, drafts=self.drafts)
        synthetic: dict[tuple[str, int, int], int] = {}
        resolved: dict[tuple[str, str], Coverage] = {}
        for key, cover in coverage.items():
            if cover.line_id is None:
                line_key = (cover.convention_id, cover.version, cover.position)
                cover = replace(cover, line_id=synthetic.setdefault(line_key, -len(synthetic) - 1))
            resolved[key] = cover
        return resolved

    def _assigned_today(self, lines: set[int | None]) -> dict[int, int]:
        """Assignments already recorded under each capped line on the as-of date."""
        stored = sorted(line for line in lines if line is not None and line > 0)
        if not stored:
            return {}
        rows = self.connection.execute(
            select(_events.c.perimeter_line_id, func.count())
            .where(
                _events.c.perimeter_line_id.is_not(None),  # the index's own condition
                _events.c.perimeter_line_id.in_(bindparam("lines", expanding=True)),
                _events.c.as_of == self.as_of,
                _events.c.event == "assigned",
            )
            .group_by(_events.c.perimeter_line_id),
            {"lines": stored},
        )
        return {line: count for line, count in rows}

    def _fill_due_dates(self) -> None:
        """due_on of each pair: the holder's business day of ordinal ordinal(as_of) + target."""
        start = _days.alias("start_day")
        due = _days.alias("due_day")
        due_on = (
            select(due.c.day)
            .select_from(
                start.join(
                    due,
                    and_(
                        due.c.office == start.c.office,
                        due.c.ordinal == start.c.ordinal + targets.c.target_business_days,
                    ),
                )
            )
            .where(
                start.c.office == targets.c.assignee,
                start.c.day == self.as_of,
                due.c.is_business,
            )
            .scalar_subquery()
        )
        self.connection.execute(update(targets).values(due_on=due_on))
        missing = (
            self.connection.execute(
                select(targets.c.assignee).where(targets.c.due_on.is_(None)).distinct()
            )
            .scalars()
            .all()
        )
        if missing:
            raise ConfigurationError(
                f"no business calendar for {', '.join(sorted(missing)[:5])} around "
                f"{self.as_of.isoformat()}: check the reference data of these offices"
            )

    # -- step 2: plan --------------------------------------------------------------------

    def plan(self) -> None:
        """Choose the items that move; capped lines keep their oldest candidates only."""
        w, t = _items, targets
        pairs = w.join(t, and_(t.c.sie_code == w.c.sie_code, t.c.process == w.c.process))
        # An item is routed only once it exists on the as-of date (replays of past nights).
        # Wrapped in coalesce so that no planner ranges over the last_event_at index (nearly
        # every item matches): the state indexes below find the few candidates instead.
        existing = func.coalesce(w.c.last_event_at, w.c.last_event_at) <= self.at
        columns = ["item_id", "target_id", "from_state"]
        self.connection.execute(
            insert(plan).from_select(
                columns,
                select(w.c.id, t.c.id, w.c.state)
                .select_from(pairs)
                .where(w.c.state == "received", existing),
            )
        )
        # Assigned items always have a due date: the term lets the partial SIE index serve.
        assigned = and_(w.c.state == "assigned", w.c.due_on.is_not(None))
        self._assigned_before = self.connection.execute(
            select(func.count()).select_from(w).where(assigned)
        ).scalar_one()
        if self._assigned_mostly():
            # Wrapped so that no index serves: one pass over the table, in rowid order.
            assigned_now = func.coalesce(w.c.state, w.c.state) == "assigned"
        else:
            assigned_now = assigned
        self.connection.execute(
            insert(plan).from_select(
                columns,
                select(w.c.id, t.c.id, w.c.state)
                .select_from(pairs)
                .where(
                    assigned_now,
                    existing,
                    or_(
                        w.c.assignee.is_distinct_from(t.c.assignee),
                        w.c.convention_id.is_distinct_from(t.c.convention_id),
                        w.c.convention_version.is_distinct_from(t.c.convention_version),
                    ),
                ),
            )
        )
        if self.connection.dialect.name == "postgresql":
            # Temporary tables get no automatic statistics: without them the planner guesses.
            self.connection.exec_driver_sql("ANALYZE routing_target")
            self.connection.exec_driver_sql("ANALYZE routing_plan")
        if any(target.destination.daily_capacity for target in self._targets.values()):
            self._keep_within_capacity()
        if self.what_if:
            self._load_before = self._open_load()

    def _assigned_mostly(self) -> bool:
        """SQLite: whether assigned items are ``SQLITE_SCAN_SHARE`` of all items or more."""
        if self.connection.dialect.name != "sqlite" or not self._assigned_before:
            return False
        return self._assigned_before >= SQLITE_SCAN_SHARE * self._item_count()

    def _item_count(self) -> int:
        """How many work items there are (counted once per run: the run holds the lock)."""
        if self._items_total is None:
            self._items_total = self.connection.execute(
                select(func.count()).select_from(_items)
            ).scalar_one()
        return self._items_total

    def _driving(self, item_id: Any) -> Any:
        """``item_id`` of a plan table, made the side a join with work_item starts from.

        On SQLite "+ 0" stops the planner from scanning a million work items to probe the
        plan: it walks the plan and looks items up by rowid instead, in id order.
        """
        return item_id + 0 if self.connection.dialect.name == "sqlite" else item_id

    def _keep_within_capacity(self) -> None:
        """Rank the candidates of each capped line oldest first; drop those beyond its places."""
        w, t, p, c = _items, targets, plan, capped
        self.connection.execute(
            insert(c).from_select(
                ["item_id", "target_id", "from_state", "place"],
                select(
                    p.c.item_id,
                    p.c.target_id,
                    p.c.from_state,
                    func.row_number().over(
                        partition_by=t.c.perimeter_line_id,
                        order_by=(w.c.received_on, w.c.sie_code, w.c.reference),
                    ),
                )
                .select_from(
                    p.join(t, t.c.id == p.c.target_id).join(w, w.c.id == self._driving(p.c.item_id))
                )
                .where(t.c.daily_capacity.is_not(None)),
            )
        )
        self.connection.execute(
            delete(p).where(
                p.c.item_id.in_(
                    select(c.c.item_id)
                    .select_from(c.join(t, t.c.id == c.c.target_id))
                    .where(c.c.place > t.c.remaining)
                )
            )
        )

    # -- step 3: write -------------------------------------------------------------------

    def write(self) -> None:
        """Apply the plan: one UPDATE of the items, one INSERT of their history rows."""
        w, t, p = _items, targets, plan
        self._summarise_plan()
        if self.dry_run:
            self._drop_temporary()
            return
        matches = [w.c.id == self._driving(p.c.item_id), t.c.id == p.c.target_id]
        if self.connection.dialect.name == "postgresql":
            # Lifecycle events may run meanwhile (SQLite's write lock excludes them): an item
            # started since the plan was made is left alone, and the run starts over.
            matches.append(w.c.state == p.c.from_state)
        with self._indexes_rebuilt_if_bulk():
            self._write_items_and_events(matches)
        self._drop_temporary()

    def _write_items_and_events(self, matches: list[Any]) -> None:
        w, t, p = _items, targets, plan
        updated = self.connection.execute(
            update(w)
            .where(*matches)
            .values(
                state="assigned",
                assignee=t.c.assignee,
                assignment_kind=t.c.assignment_kind,
                convention_id=t.c.convention_id,
                convention_version=t.c.convention_version,
                perimeter_line_id=t.c.perimeter_line_id,
                assigned_on=self.as_of,
                target_business_days=t.c.target_business_days,
                due_on=t.c.due_on,
                last_event_at=self.at,
            )
        ).rowcount
        if updated != self._planned:
            raise _ItemsChangedDuringRun(f"{self._planned - updated} item(s) changed meanwhile")
        self.connection.execute(
            insert(_events).from_select(
                [
                    "item_id",
                    "event",
                    "at",
                    "by",
                    "reason",
                    "from_state",
                    "to_state",
                    "assignee",
                    "assignment_kind",
                    "convention_id",
                    "convention_version",
                    "perimeter_line_id",
                    "as_of",
                    "due_on",
                    "flow_run_id",
                    "recorded_at",
                ],
                select(
                    p.c.item_id,
                    literal("assigned"),
                    literal(self.at, UTCDateTime()),
                    literal(self.author[:100]),
                    # Only reassignments say why: a first assignment needs no reason.
                    case((p.c.from_state == "assigned", t.c.reason), else_=None),
                    p.c.from_state,
                    literal("assigned"),
                    t.c.assignee,
                    t.c.assignment_kind,
                    t.c.convention_id,
                    t.c.convention_version,
                    t.c.perimeter_line_id,
                    literal(self.as_of, Date()),
                    t.c.due_on,
                    literal(self.flow_run_id, String(64)),
                    literal(self.now, UTCDateTime()),
                ).select_from(p.join(t, t.c.id == p.c.target_id)),
            )
        )

    @contextlib.contextmanager
    def _indexes_rebuilt_if_bulk(self) -> Iterator[None]:
        """SQLite, when the run assigns a large share of all items: drop the item indexes the
        writes would update one entry at a time, and build them again afterwards.

        Inside the run's transaction: a failure rolls the drop back with everything else, and
        readers keep their snapshot (indexes included) until the commit. PostgreSQL keeps its
        indexes: dropping one would lock readers out of ``work_item`` for the whole run.
        """
        if self.connection.dialect.name != "sqlite" or not self._planned:
            yield
            return
        if self._planned < SQLITE_REBUILD_SHARE * self._item_count():
            yield
            return
        # The unique key's own index is not among them: routing changes no SIE nor reference,
        # and building it again would check every pair again.
        definitions = sqlite_indexes(self.connection, "work_item")
        for name, _ in definitions:
            self.connection.exec_driver_sql(f'DROP INDEX "{name}"')
        yield
        with _sqlite_sorting(self.connection):
            for _, sql in definitions:
                self.connection.exec_driver_sql(sql)
        # Dropping an index drops its statistics: take them again, on the routed table.
        refresh_statistics(self.connection)

    def _drop_temporary(self) -> None:
        # PostgreSQL drops them at commit or rollback; SQLite keeps them on the connection.
        if self.connection.dialect.name == "sqlite":
            for table_ in (capped, plan, targets):
                self.connection.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table_.name}")

    # -- summary -------------------------------------------------------------------------

    def _summarise_plan(self) -> None:
        """Count the plan per destination and state before it is applied."""
        t, p, c, w = targets, plan, capped, _items
        assigned: Counter[str] = Counter()
        by_convention: Counter[str] = Counter()
        by_sie: dict[str, Counter[str]] = defaultdict(Counter)
        by_service: Counter[str] = Counter()
        reassigned = 0
        planned = 0
        sqlite = self.connection.dialect.name == "sqlite"
        # The plan's million rows are sorted to be grouped: in runs, on every core.
        with _sqlite_sorting(self.connection) if sqlite else contextlib.nullcontext():
            per_target = self.connection.execute(
                select(p.c.target_id, p.c.from_state, func.count()).group_by(
                    p.c.target_id, p.c.from_state
                )
            ).all()
        for target_id, from_state, count in per_target:
            target = self._targets[target_id]
            destination = target.destination
            planned += count
            if destination.convention_id is not None:
                by_convention[f"{destination.convention_id} v{destination.convention_version}"] += (
                    count
                )
            if from_state == "received":
                assigned[destination.assignee] += count
                by_sie[target.sie_code][destination.kind] += count
                if destination.kind == REMOTE:
                    by_service[destination.assignee] += count
            else:
                reassigned += count
        waiting = held = 0
        for from_state, count in self.connection.execute(
            select(c.c.from_state, func.count())
            .select_from(c.join(t, t.c.id == c.c.target_id))
            .where(c.c.place > t.c.remaining)
            .group_by(c.c.from_state)
        ):
            if from_state == "received":
                waiting += count
            else:
                held += count
        rows = self.connection.execute(
            select(
                w.c.process,
                w.c.assignee,
                w.c.convention_id,
                w.c.convention_version,
                t.c.assignee,
                t.c.convention_id,
                t.c.convention_version,
                func.count(),
            )
            .select_from(
                p.join(w, w.c.id == self._driving(p.c.item_id)).join(t, t.c.id == p.c.target_id)
            )
            .where(p.c.from_state == "assigned")
            .group_by(
                w.c.process,
                w.c.assignee,
                w.c.convention_id,
                w.c.convention_version,
                t.c.assignee,
                t.c.convention_id,
                t.c.convention_version,
            )
        )
        moves = [
            Move(
                process=process,
                from_holder=source or "",
                to_holder=target_holder,
                items=count,
                from_convention=_version_label(source_id, source_version),
                to_convention=_version_label(target_id, target_version),
            )
            for (
                process,
                source,
                source_id,
                source_version,
                target_holder,
                target_id,
                target_version,
                count,
            ) in rows
        ]
        moves.sort(key=lambda move: (move.process, move.from_holder, move.to_holder))
        self._planned = planned
        load: dict[str, ServiceLoad] | None = None
        if self.what_if:
            load = self._load_after(assigned, moves)
        self._result = RoutingResult(
            as_of=self.as_of,
            dry_run=self.dry_run,
            assigned=dict(assigned),
            reassigned=reassigned,
            waiting_capacity=waiting,
            unchanged=self._assigned_before - reassigned,
            held_for_capacity=held,
            by_convention=dict(sorted(by_convention.items())),
            assigned_by_service=dict(sorted(by_service.items())),
            assigned_by_sie={sie: dict(kinds) for sie, kinds in sorted(by_sie.items())},
            moves=moves,
            drafts=self.draft_sources,
            load=load,
        )

    def _open_load(self) -> dict[str, int]:
        """Open items (assigned, in progress, suspended) held by each remote service."""
        services = _service_codes(self.connection)
        rows = self.connection.execute(
            select(_items.c.assignee, func.count())
            .where(_items.c.state.in_(_OPEN_HELD_STATES), _items.c.assignment_kind == REMOTE)
            .group_by(_items.c.assignee)
        )
        return {assignee: count for assignee, count in rows if assignee in services}

    def _load_after(
        self, assigned: Mapping[str, int], moves: Sequence[Move]
    ) -> dict[str, ServiceLoad]:
        """Load of every remote service after the plan, from the load before and the moves."""
        services = _service_codes(self.connection)
        after = Counter(self._load_before)
        for assignee, count in assigned.items():
            if assignee in services:
                after[assignee] += count
        for move in moves:
            if move.from_holder in services:
                after[move.from_holder] -= move.items
            if move.to_holder in services:
                after[move.to_holder] += move.items
        return {
            service: ServiceLoad(before=self._load_before.get(service, 0), after=after[service])
            for service in sorted(services)
        }

    def result(self) -> RoutingResult:
        """The run's summary (after ``write``)."""
        if self._result is None:
            raise RuntimeError("the run has not been planned and written yet")
        return self._result


def _version_label(convention_id: str | None, version: int | None) -> str | None:
    """The label "CONV-ID v2" of a convention version, or None for a local assignment."""
    return None if convention_id is None else f"{convention_id} v{version}"


def _reassignment_reason(destination: Destination) -> str:
    """Why a reassigned item moved, in the words of its history (French, users read it)."""
    if destination.kind == LOCAL:
        return "Réaffectation au SIE : aucune convention en vigueur ne couvre ce processus"
    return (
        f"Réaffectation selon la convention {destination.convention_id} "
        f"version {destination.convention_version}"
    )


def _service_codes(connection: Connection) -> set[str]:
    return set(
        connection.execute(select(RemoteService.__table__.c.code)).scalars().all()  # type: ignore[attr-defined]
    )


def load_drafts(
    engine: Engine, paths: Sequence[str | Path]
) -> tuple[list[ConventionDocument], list[str]]:
    """Validate draft convention files as ``relais conventions validate`` does; return the
    documents to evaluate and the warnings. Raises ``ValidationError`` listing every error."""
    check = validate_files(paths, engine=engine)
    check.raise_for_errors("what-if refused")
    # A draft identical to a stored version changes nothing: evaluating the stored one keeps
    # its line ids, hence the capacity already used today.
    documents = [
        candidate.document
        for candidate, (_, _, _, status) in zip(check.candidates, check.outcomes, strict=True)
        if status == "new"
    ]
    return documents, check.warnings


def route_work_items(
    *,
    as_of: date,
    dry_run: bool = False,
    draft_files: Sequence[str | Path] = (),
    author: str = "cli",
    flow_run_id: str | None = None,
    engine: Engine | None = None,
) -> RoutingResult:
    """Route every received item and move assigned ones whose holder changed, for ``as_of``.

    Draft convention files are validated like ``relais conventions validate`` and evaluated
    as if applied; they imply a dry run. Raises ``ValidationError`` for a bad draft and
    ``ConflictError`` if items keep changing under the run.
    """
    engine = engine or get_engine()
    drafts: list[ConventionDocument] = []
    sources: list[str] = []
    if draft_files:
        drafts, _warnings = load_drafts(engine, draft_files)
        sources = [str(path) for path in draft_files]
    commit = not (dry_run or draft_files)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with exclusive_transaction(engine, holder=author, commit=commit) as connection:
                return RoutingRun(
                    connection,
                    as_of=as_of,
                    author=author,
                    flow_run_id=flow_run_id,
                    drafts=drafts,
                    draft_sources=sources,
                    dry_run=not commit,
                ).run()
        except _ItemsChangedDuringRun as error:
            if attempt == _ATTEMPTS:
                raise ConflictError(
                    f"routing stopped: {error} during {_ATTEMPTS} runs; nothing was written, "
                    "run it again"
                ) from None
    raise AssertionError("unreachable")
