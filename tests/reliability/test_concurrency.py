"""Runs that overlap: two nights' intake and routing at once, routing while intake writes, and
lifecycle events posted through a real API server while routing reassigns the same items.

The order in which concurrent runs see the files may differ from a single run's (so items
capped by a daily capacity may differ), but these hold whatever the interleaving:

* every queue file is ingested once and moved once: intake's records equal one clean run's;
* no item is assigned twice on the same day, no capped line exceeds its daily capacity, and
  once the dust settles one more routing run changes nothing;
* every event the API accepted is in the history exactly once; an item started by its
  service is never moved away afterwards; nothing answers 500.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from relais.db import session_scope
from relais.tokens import create_token
from tests.reliability import scenarios
from tests.reliability.helpers import (
    assert_consistent,
    clean_run,
    database_fingerprint,
    finish,
    python_child,
    scenario_children,
    wait_for_line,
)

CAPACITY = 400  # the daily capacity of the scenario's capped line (tva_refund)


def _assert_routing_invariants(engine: Engine) -> None:
    with engine.connect() as connection:
        twice = connection.execute(
            text(
                "SELECT item_id, as_of, count(*) FROM item_event WHERE event = 'assigned' "
                "GROUP BY item_id, as_of HAVING count(*) > 1"
            )
        ).all()
        assert twice == [], twice[:5]
        per_line = connection.execute(
            text(
                "SELECT l.daily_capacity, count(e.id) FROM item_event e "
                "JOIN perimeter_line l ON l.id = e.perimeter_line_id "
                "WHERE e.event = 'assigned' AND l.daily_capacity IS NOT NULL "
                "GROUP BY l.id, l.daily_capacity, e.as_of"
            )
        ).all()
        assert per_line, "the scenario must exercise a capped line"
        for capacity, assigned in per_line:
            assert assigned <= capacity
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM work_item WHERE state = 'received' AND process = "
                "'tva_refund' AND sie_code IN ('SIE-75-08', 'SIE-75-17')"
            )
        ).scalar_one()
        # Waiting items only while the line is full: nothing is lost between runs.
        assert waiting == 0 or max(count for _, count in per_line) == CAPACITY
        unrouted = connection.execute(
            text(
                "SELECT count(*) FROM work_item WHERE state = 'received' AND NOT "
                "(process = 'tva_refund' AND sie_code IN ('SIE-75-08', 'SIE-75-17'))"
            )
        ).scalar_one()
        assert unrouted == 0


def _assert_intake_as_clean(engine: Engine, tmp_path: Path, workdir: Path) -> None:
    expected = clean_run("intake", engine, tmp_path / "reference")
    actual = database_fingerprint(engine)
    for table in ("intake_file", "intake_rejection"):
        assert actual[table] == expected.database[table], table
    for sie in scenarios.QUEUE_SIES:
        processed = sorted(p.name for p in (workdir / "queues" / sie / "processed").iterdir())
        assert processed == ["export-1.csv", "export-2.csv"]
        assert not list((workdir / "queues" / sie / "incoming").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(
    "operations",
    [("pipeline", "pipeline"), ("intake", "routing-loop", "routing-loop")],
    ids=["two-nights-at-once", "routing-while-intake-writes"],
)
def test_overlapping_runs_lose_nothing_and_assign_once(
    engine: Engine, tmp_path: Path, operations: tuple[str, ...]
) -> None:
    (tmp_path / "reference").mkdir()
    clean_run("intake", engine, tmp_path / "reference")  # computed before the world exists
    workdir = tmp_path / "overlap"
    workdir.mkdir()
    scenarios.build_world(engine, workdir)
    scenarios.drop_queue_files(workdir / "queues")
    engine.dispose()
    outcomes = [finish(child) for child in scenario_children(operations, workdir)]
    for code, out, err in outcomes:
        assert code == 0, err[-3000:]
        assert "DONE" in out
    # Routing once more after everything: the last items in, then nothing else to do.
    scenarios.run("routing", engine, workdir)
    settled = database_fingerprint(engine)
    result = scenarios.run("routing", engine, workdir)
    assert sum(result.assigned.values()) == result.reassigned == 0
    assert database_fingerprint(engine) == settled
    assert_consistent(engine)
    _assert_intake_as_clean(engine, tmp_path, workdir)
    _assert_routing_invariants(engine)


# --- events through the API while routing moves the same items --------------------------------

REROUTE_DAY = date(2026, 11, 16)
START_AT = "2026-11-16T10:00:00+01:00"


# Routes once released; a run refused because items kept changing under it (nothing written)
# is run again, as an operator or a retry would, and counted.
ROUTER = """
import sys, time
from datetime import date
from relais.db import get_engine
from relais.errors import ConflictError
from relais.routing import route_work_items
print("READY", flush=True)
sys.stdin.readline()
refused = 0
while True:
    try:
        result = route_work_items(as_of=date.fromisoformat(sys.argv[1]), engine=get_engine())
        break
    except ConflictError:
        refused += 1
        if refused > 100:  # 20 s after the traffic ended at the latest: a real failure
            raise
        time.sleep(0.2)
print("DONE", refused, result.reassigned, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _end_filing_reminders(engine: Engine, workdir: Path) -> None:
    """Version 2 of the convention drops filing reminders from REROUTE_DAY: the assigned,
    unstarted ones go back to their SIE at the next routing."""
    from tests.routing_data import apply_convention, convention_document

    apply_convention(
        workdir / "conventions",
        engine,
        convention_document(
            "CONV-75-VIERZON",
            2,
            effective_from=REROUTE_DAY,
            perimeter=[
                {
                    "process": "tva_refund",
                    "sies": ["SIE-75-08", "SIE-75-17"],
                    "target_business_days": 20,
                    "daily_capacity": CAPACITY,
                }
            ],
        ),
    )


async def _post_starts(
    port: int, token: str, items: list[tuple[str, str]], release_routing: asyncio.Event
) -> list[tuple[str, str, int]]:
    limits = httpx.Limits(max_connections=16)
    headers = {"Authorization": f"Bearer {token}"}
    results: list[tuple[str, str, int]] = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=60
    ) as client:
        semaphore = asyncio.Semaphore(16)

        async def post(sie: str, reference: str) -> None:
            async with semaphore:
                response = await client.post(
                    f"/api/items/{sie}/{reference}/events",
                    json={"event": "start", "at": START_AT},
                )
            results.append((sie, reference, response.status_code))
            if len(results) == len(items) // 4:
                release_routing.set()  # routing starts once a quarter has been answered

        await asyncio.gather(*(post(sie, ref) for sie, ref in items))
    return results


@pytest.mark.slow
def test_events_posted_through_the_api_while_routing_runs(engine: Engine, tmp_path: Path) -> None:
    workdir = tmp_path / "api"
    workdir.mkdir()
    scenarios.build_world(engine, workdir)
    scenarios.drop_queue_files(workdir / "queues")
    scenarios.run("pipeline", engine, workdir)
    _end_filing_reminders(engine, workdir)
    with engine.connect() as connection:
        items = [
            (row[0], row[1])
            for row in connection.execute(
                text(
                    "SELECT sie_code, reference FROM work_item WHERE state = 'assigned' "
                    "AND process = 'filing_reminder' ORDER BY sie_code, reference"
                )
            )
        ]
    assert len(items) > 200
    with session_scope(engine) as session:
        token = create_token(
            session,
            name="svc-vierzon",
            role="service",
            service="ANT-18-VIERZON",
            now=datetime.now(UTC),
        )
    engine.dispose()

    port = _free_port()
    server = python_child(
        "from relais.cli.main import main; main()",
        args=["api", "--host", "127.0.0.1", "--port", str(port)],
        log=tmp_path / "api.log",
    )
    router = python_child(ROUTER, args=[REROUTE_DAY.isoformat()], stdin=True)
    try:
        _wait_for_health(port)
        wait_for_line(router, "READY")

        async def scenario() -> list[tuple[str, str, int]]:
            release = asyncio.Event()

            async def release_router() -> None:
                await release.wait()
                assert router.stdin is not None
                router.stdin.write("GO\n")
                router.stdin.flush()

            releaser = asyncio.create_task(release_router())
            results = await _post_starts(port, token, items, release)
            await releaser
            return results

        results = asyncio.run(scenario())
        code, out, err = finish(router)
        assert code == 0, err[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
        for child in (server, router):
            for stream in (child.stdout, child.stderr, child.stdin):
                if stream is not None:
                    stream.close()

    statuses = Counter(status for _, _, status in results)
    assert set(statuses) <= {201, 404}, statuses
    assert len(results) == len(items)
    refused, reassigned = (int(word) for word in out.split()[-2:])
    assert reassigned > 0, "routing must have moved some items"
    with engine.connect() as connection:
        rows = {
            (row.sie_code, row.reference): row
            for row in connection.execute(
                text(
                    "SELECT w.sie_code, w.reference, w.state, w.assignee, "
                    "(SELECT count(*) FROM item_event e WHERE e.item_id = w.id "
                    " AND e.event = 'start') AS starts, "
                    "(SELECT max(e.id) FROM item_event e WHERE e.item_id = w.id "
                    " AND e.event = 'assigned') AS last_assigned, "
                    "(SELECT max(e.id) FROM item_event e WHERE e.item_id = w.id "
                    " AND e.event = 'start') AS started "
                    "FROM work_item w WHERE w.process = 'filing_reminder'"
                )
            )
        }
    for sie, reference, status in results:
        row: Any = rows[(sie, reference)]
        if status == 201:
            # Accepted once, kept once, and never moved away after the start.
            assert (row.state, row.assignee, row.starts) == ("in_progress", "ANT-18-VIERZON", 1)
            assert row.last_assigned < row.started
        else:
            # Refused because routing had already given it back to its SIE.
            assert (row.state, row.assignee, row.starts) == ("assigned", sie, 0)
    # Writers wait for routing (SQLite's write lock, PostgreSQL's table lock): the run is
    # never refused, and it commits while events are being posted, so both outcomes happen.
    assert refused == 0
    assert statuses[201] > 0 and statuses[404] > 0, statuses
    assert_consistent(engine)
    _assert_routing_invariants(engine)


def _wait_for_health(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the API server did not start")
