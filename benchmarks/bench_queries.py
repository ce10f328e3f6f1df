"""Benchmark of the supervisors' breach queries and the SLA scan, SQLite and PostgreSQL.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.bench_queries --items 1000000 --backend both

It is the ``sla`` stage of ``benchmarks.bench_pipeline`` (same generated data set: items
received night after night over 60 days by 120 SIEs of 12 directorates, 12 remote services),
registered there at run time; every option of that harness applies. On a fresh copy of the
generated database per scenario, each item is assigned on its intake day the way routing
assigns it (destination from the conventions in force, due date from ``calendar_day``, an
``assigned`` history row), all set-based, then:

* scenario ``worked``: agents have worked for 60 days (deterministic by item id: most items
  done on time, some late, some still open, a few suspended, with their history rows); the
  breach query of one exporting and one host directorate, at-risk, a service's worklist and
  the legal breaches are timed (``--repeats`` runs each, p50 and p95), then two full scans;
* scenario ``all-open``: nobody worked; every one of the items is open, most of them past
  their due date. Two full scans (the first records every breach, the second none) and the
  breach query of one directorate are timed.

A full scan is what the ``scan-slas`` flow does in its tasks: record new breaches (with the
counts per holder and process and the open totals), then read the worst cases.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    case,
    func,
    insert,
    literal,
    select,
    update,
)

from benchmarks import bench_pipeline as pipeline
from models.tables import CalendarDay, ItemEvent, Sie, WorkItem
from models.types import UTCDateTime
from relais import db

_items: Any = WorkItem.__table__  # type: ignore[attr-defined]
_events: Any = ItemEvent.__table__  # type: ignore[attr-defined]
_sies: Any = Sie.__table__  # type: ignore[attr-defined]
_days: Any = CalendarDay.__table__  # type: ignore[attr-defined]

#: The directorates whose breaches are queried: one exporting (its 10 SIEs), one host.
EXPORTING = "DRFIP75"
HOST = "DDFIP27"
SERVICE = "ANT-27-PONT-AUDEMER"
BATCH = 20_000
#: Timed runs of each query (after two warm-up runs); ``--repeats N`` changes it.
REPEATS = 30

_bench = MetaData()
destination_table = Table(
    "bench_destination",
    _bench,
    Column("sie_code", String(32), primary_key=True),
    Column("process", String(32), primary_key=True),
    Column("assignee", String(32)),
    Column("assignment_kind", String(8)),
    Column("convention_id", String(64)),
    Column("convention_version", Integer),
    Column("perimeter_line_id", Integer),
    Column("target_business_days", Integer),
    prefixes=["TEMPORARY"],
)
work_table = Table(
    "bench_work",
    _bench,
    Column("item_id", Integer, primary_key=True),
    Column("state", String(16)),
    Column("event_at", UTCDateTime()),
    Column("suspend_at", UTCDateTime()),
    Column("day", Date),
    Column("suspended_on", Date),
    prefixes=["TEMPORARY"],
)


# --- preparing the data -------------------------------------------------------------------


def assign_all(connection: Connection, as_of: date) -> int:
    """Assign every received item on its intake day, as routing would have; return how many."""
    from sqlmodel import Session

    from relais.conventions import coverage_on
    from relais.domain.routing import destinations

    with Session(bind=connection) as session:
        coverage = coverage_on(session, as_of)
    sie_codes = connection.execute(select(_sies.c.code)).scalars().all()
    table = destinations(sie_codes, coverage)
    destination_table.create(connection)
    connection.execute(
        insert(destination_table),
        [
            {
                "sie_code": sie,
                "process": process,
                "assignee": d.assignee,
                "assignment_kind": d.kind,
                "convention_id": d.convention_id,
                "convention_version": d.convention_version,
                "perimeter_line_id": d.perimeter_line_id,
                "target_business_days": d.target_business_days,
            }
            for (sie, process), d in table.items()
        ],
    )
    d, received = destination_table, _events.alias("received")
    assigned = connection.execute(
        update(_items)
        .where(
            _items.c.state == "received",
            d.c.sie_code == _items.c.sie_code,
            d.c.process == _items.c.process,
            received.c.item_id == _items.c.id,
            received.c.event == "received",
        )
        .values(
            state="assigned",
            assignee=d.c.assignee,
            assignment_kind=d.c.assignment_kind,
            convention_id=d.c.convention_id,
            convention_version=d.c.convention_version,
            perimeter_line_id=d.c.perimeter_line_id,
            target_business_days=d.c.target_business_days,
            # Assigned the night of intake: the as-of date of the received event.
            assigned_on=received.c.as_of,
        )
    ).rowcount
    # Statistics still say no item has a holder: without fresh ones the planner guesses. On
    # SQLite the partial holder index was empty when analysed, so it has no statistics at
    # all: at a million items the due-date update below then walked every business day of
    # the calendar and, for each, every item of its office (minutes instead of seconds).
    connection.exec_driver_sql("ANALYZE work_item")
    start, due = _days.alias("start_day"), _days.alias("due_day")
    connection.execute(
        update(_items)
        .where(
            start.c.office == _items.c.assignee,
            start.c.day == _items.c.assigned_on,
            due.c.office == start.c.office,
            due.c.ordinal == start.c.ordinal + _items.c.target_business_days,
            due.c.is_business,
        )
        .values(due_on=due.c.day)
    )
    # Routing runs at 00:00 on the intake day, the time of the received event.
    _history(connection, "assigned", lifecycle=None)
    destination_table.drop(connection)
    return assigned


def _history(connection: Connection, event: str, lifecycle: Any) -> None:
    """History rows: ``assigned`` for every item, or lifecycle rows from ``bench_work``.

    ``lifecycle`` is (time column, day column, state before, state after) of ``event``.
    """
    w = _items
    now = literal(datetime.now(UTC), UTCDateTime())
    columns = [
        "item_id",
        "event",
        "at",
        "by",
        "from_state",
        "to_state",
        "assignee",
        "assignment_kind",
        "convention_id",
        "convention_version",
        "perimeter_line_id",
        "as_of",
        "due_on",
        "recorded_at",
    ]
    carried = (
        w.c.assignee,
        w.c.assignment_kind,
        w.c.convention_id,
        w.c.convention_version,
        w.c.perimeter_line_id,
    )
    if lifecycle is None:
        rows = select(
            w.c.id,
            literal("assigned"),
            w.c.last_event_at,
            literal("bench"),
            literal("received"),
            literal("assigned"),
            *carried,
            w.c.assigned_on,
            w.c.due_on,
            now,
        )
    else:
        k = work_table
        at, day, before, after = lifecycle
        rows = (
            select(
                w.c.id,
                literal(event),
                at,
                literal("bench"),
                literal(before),
                literal(after),
                *carried,
                day,
                w.c.due_on,
                now,
            )
            .select_from(w.join(k, k.c.item_id == w.c.id))
            .where(k.c.state.in_(_EVENT_STATES[event]))
        )
    connection.execute(insert(_events).from_select(columns, rows))


_EVENT_STATES = {
    "start": ("in_progress", "suspended"),
    "suspend": ("suspended",),
    "complete": ("completed",),
}


def _draw(item_id: int) -> int:
    """A deterministic pseudo-random number 0-99 per item."""
    return (item_id * 7919 + 17) % 100


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, clock_time(hour), tzinfo=pipeline.PARIS)


def simulate_work(connection: Connection, as_of: date) -> dict[str, int]:
    """Sixty days of agents' work: start, suspend and complete items, with their history."""
    yesterday = as_of - timedelta(days=1)
    work_table.create(connection)
    counts: dict[str, int] = {}
    batch: list[dict[str, Any]] = []
    rows = connection.execute(
        select(_items.c.id, _items.c.assigned_on, _items.c.due_on)
        .order_by(_items.c.id)
        .execution_options(yield_per=BATCH)
    )
    for item_id, assigned_on, due_on in rows:
        r = _draw(item_id)
        start_day = min(yesterday, assigned_on + timedelta(days=1))
        state, day = "assigned", start_day
        suspended_on: date | None = None
        if due_on < as_of:
            if r < 85:
                state, day = "completed", max(start_day, due_on - timedelta(days=r % 3))
            elif r < 92:
                state, day = "completed", min(yesterday, due_on + timedelta(days=r - 84))
            elif r < 98:
                state, day = "in_progress", start_day
            else:
                state, day, suspended_on = "suspended", start_day, start_day
        elif r < 30:
            state, day = "completed", min(yesterday, assigned_on + timedelta(days=1 + r % 5))
        elif r < 70:
            state, day = "in_progress", start_day
        elif r >= 95:
            state, day, suspended_on = "suspended", start_day, start_day
        counts[state] = counts.get(state, 0) + 1
        if state != "assigned":
            batch.append(
                {
                    "item_id": item_id,
                    "state": state,
                    "event_at": _at(day, 9),
                    "suspend_at": _at(day, 15) if suspended_on else None,
                    "day": day,
                    "suspended_on": suspended_on,
                }
            )
        if len(batch) >= BATCH:
            connection.execute(insert(work_table), batch)
            batch = []
    if batch:
        connection.execute(insert(work_table), batch)
    k = work_table
    for event, (before, after) in (
        ("start", ("assigned", "in_progress")),
        ("suspend", ("in_progress", "suspended")),
        ("complete", ("assigned", "completed")),
    ):
        at = k.c.suspend_at if event == "suspend" else k.c.event_at
        day = k.c.suspended_on if event == "suspend" else k.c.day
        _history(connection, event, lifecycle=(at, day, before, after))

    connection.execute(
        update(_items)
        .where(k.c.item_id == _items.c.id)
        .values(
            state=k.c.state,
            suspended_on=k.c.suspended_on,
            completed_on=case((k.c.state == "completed", k.c.day), else_=None),
            last_event_at=func.coalesce(k.c.suspend_at, k.c.event_at),
        )
    )
    work_table.drop(connection)
    return counts


# --- measuring ----------------------------------------------------------------------------


def _timed(repeats: int, call: Callable[[], Any]) -> dict[str, Any]:
    """Run ``call`` twice to warm up, then ``repeats`` times; p50/p95 in milliseconds."""
    result = None
    for _ in range(2):
        result = call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, max(0, round(0.95 * len(samples)) - 1))]
    rows = len(result) if isinstance(result, list) else None
    return {"p50_ms": statistics.median(samples), "p95_ms": p95, "rows": rows}


def _scan(engine: Any, as_of: date) -> dict[str, Any]:
    """One full scan as the flow's tasks run it: record (one transaction), then worst cases."""
    from relais.db import session_scope
    from relais.scan import record_new_breaches, worst_breaches

    started = time.perf_counter()
    with session_scope(engine) as session:
        result = record_new_breaches(
            session, as_of=as_of, flow_run_id="bench", now=datetime.now(UTC)
        )
    recorded = time.perf_counter() - started
    with session_scope(engine) as session:
        worst = worst_breaches(session, as_of=as_of)
    return {
        "seconds": time.perf_counter() - started,
        "record_seconds": recorded,
        "new_sla": result.new_sla,
        "new_legal": result.new_legal,
        "open_sla": result.open_breaches["sla"],
        "worst": len(worst),
    }


def worker_sla(url: str, as_of: date, scenario: str, repeats: int) -> dict[str, Any]:
    """Prepare one scenario on the database at ``url`` and time the queries and scans."""
    from relais.db import session_scope
    from relais.queries import sla_at_risk, sla_breaches, worklist

    engine = db.make_engine(url)
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    with engine.begin() as connection:
        figures["assigned"] = assign_all(connection, as_of)
    figures["prepare assign seconds"] = time.perf_counter() - started
    if scenario == "worked":
        started = time.perf_counter()
        with engine.begin() as connection:
            figures["states"] = simulate_work(connection, as_of)
        figures["prepare work seconds"] = time.perf_counter() - started
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
        else:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
        figures["open items"] = connection.execute(
            select(func.count())
            .select_from(_items)
            .where(_items.c.state.in_(("assigned", "in_progress", "suspended")))
        ).scalar_one()

    def query(call: Callable[..., Any], **arguments: Any) -> Callable[[], Any]:
        def run() -> Any:
            with session_scope(engine) as session:
                return call(session, as_of=as_of, **arguments)

        return run

    figures["breaches exporting directorate"] = _timed(
        repeats, query(sla_breaches, directorate=EXPORTING)
    )
    if scenario == "worked":
        figures["breaches host directorate"] = _timed(
            repeats, query(sla_breaches, directorate=HOST)
        )
        figures["breaches exporting, with missed"] = _timed(
            repeats, query(sla_breaches, directorate=EXPORTING, include_completed=True)
        )
        figures["legal breaches exporting"] = _timed(
            repeats, query(sla_breaches, directorate=EXPORTING, legal=True)
        )
        figures["at risk exporting directorate"] = _timed(
            repeats, query(sla_at_risk, directorate=EXPORTING)
        )
        figures["worklist of a service"] = _timed(repeats, query(worklist, service=SERVICE))
        figures["worklist first 100"] = _timed(repeats, query(worklist, service=SERVICE, limit=100))
        figures["breaches exporting, 30 days ago"] = _timed(
            repeats,
            lambda: _at_date(engine, as_of - timedelta(days=30)),
        )
    figures["scan first"] = _scan(engine, as_of)
    figures["scan again"] = _scan(engine, as_of)
    engine.dispose()
    figures["peak_memory_mb"] = pipeline.peak_memory_mb()
    return figures


def _at_date(engine: Any, day: date) -> list[dict[str, Any]]:
    from relais.db import session_scope
    from relais.queries import sla_breaches

    with session_scope(engine) as session:
        return sla_breaches(session, as_of=day, directorate=EXPORTING)


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {"sla": worker_sla}


def run_worker(name: str, **arguments: Any) -> dict[str, Any]:
    """Run a worker of this module in a fresh interpreter and return what it printed."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_queries",
        "worker",
        name,
        json.dumps(arguments, default=str),
    ]
    completed = subprocess.run(
        command,
        cwd=pipeline.ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(pipeline.ROOT)},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- the stage ----------------------------------------------------------------------------


def stage_sla(context: pipeline.StageContext) -> dict[str, Any]:
    """Breach queries on worked data; full scans on worked and all-open data."""
    as_of = context.data.as_of.isoformat()
    repeats = REPEATS
    figures: dict[str, Any] = {}
    with context.backend.clone() as url:
        worked = run_worker("sla", url=url, as_of=as_of, scenario="worked", repeats=repeats)
    with context.backend.clone() as url:
        all_open = run_worker("sla", url=url, as_of=as_of, scenario="all-open", repeats=repeats)
    figures["worked: open items"] = worked["open items"]
    for name in (
        "breaches exporting directorate",
        "breaches host directorate",
        "breaches exporting, with missed",
        "breaches exporting, 30 days ago",
        "legal breaches exporting",
        "at risk exporting directorate",
        "worklist of a service",
        "worklist first 100",
    ):
        timing = worked[name]
        figures[f"worked: {name} p95 ms"] = timing["p95_ms"]
        figures[f"worked: {name} p50 ms"] = timing["p50_ms"]
        figures[f"worked: {name} rows"] = timing["rows"]
    for label, run in (("worked", worked), ("all open", all_open)):
        first, again = run["scan first"], run["scan again"]
        figures[f"{label}: scan seconds"] = first["seconds"]
        figures[f"{label}: scan new breaches"] = first["new_sla"] + first["new_legal"]
        figures[f"{label}: scan again seconds"] = again["seconds"]
        figures[f"{label}: scan again new breaches"] = again["new_sla"] + again["new_legal"]
    figures["all open: open items"] = all_open["open items"]
    breaches = all_open["breaches exporting directorate"]
    figures["all open: breaches exporting directorate p95 ms"] = breaches["p95_ms"]
    figures["all open: breaches exporting directorate rows"] = breaches["rows"]
    figures["preparation seconds (not timed)"] = worked["prepare assign seconds"] + worked.get(
        "prepare work seconds", 0
    )
    figures["peak memory MB"] = max(worked["peak_memory_mb"], all_open["peak_memory_mb"])
    return figures


TARGETS: dict[str, tuple[dict[str, float], str]] = {
    "worked: breaches exporting directorate p95 ms": ({"*": 100.0}, "max"),
    "worked: breaches host directorate p95 ms": ({"*": 100.0}, "max"),
    "all open: scan seconds": ({"*": 20.0}, "max"),
    "worked: scan seconds": ({"*": 20.0}, "max"),
}


def register(stages: dict[str, Any], targets: dict[str, Any]) -> None:
    """Make ``sla`` a stage of the pipeline harness (its ``STAGES``, ``TARGETS``)."""
    stages["sla"] = stage_sla
    targets["sla"] = TARGETS


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sla`` stage through the pipeline harness (or one worker, with ``worker``)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["worker"]:
        name, payload = arguments[1], json.loads(arguments[2])
        payload["as_of"] = date.fromisoformat(payload["as_of"])
        print(json.dumps(WORKERS[name](**payload), default=str))
        return 0
    global REPEATS
    if "--repeats" in arguments:
        index = arguments.index("--repeats")
        REPEATS = int(arguments[index + 1])
        del arguments[index : index + 2]
    register(pipeline.STAGES, pipeline.TARGETS)
    if not any(argument.startswith("--stages") for argument in arguments):
        arguments += ["--stages", "sla"]
    return pipeline.main(arguments)


if __name__ == "__main__":
    raise SystemExit(main())
