"""Two routing runs at the same moment, in two real processes: each item is assigned once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from models.tables import ItemEvent, WorkItem
from relais.calendars import ensure_calendar_years
from relais.db import session_scope
from relais.routing import CALENDAR_YEARS_AHEAD
from tests.routing_data import (
    NewItem,
    add_items,
    apply_convention,
    convention_document,
    load_reference_data,
)

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 26)
ITEMS_PER_SIE = 700
CAPACITY = 500

# Each process imports everything first, then waits for the start file, so that both
# routing runs begin within milliseconds of each other.
WORKER = """
import json, sys, time
from datetime import date
from pathlib import Path
from relais.routing import route_work_items
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
started = time.time()
result = route_work_items(as_of=date.fromisoformat(sys.argv[2]), author=sys.argv[3])
print(json.dumps({"started": started, "ended": time.time(), "result": result.to_json()}))
"""


@pytest.mark.slow
def test_two_concurrent_runs_never_assign_an_item_twice(engine: Engine, tmp_path: Path) -> None:
    load_reference_data(tmp_path, engine)
    line = {"process": "tva_refund", "sies": ["SIE-75-08"], "daily_capacity": CAPACITY}
    apply_convention(tmp_path, engine, convention_document("CONV-75-VIERZON", 1, perimeter=[line]))
    add_items(
        engine,
        [
            NewItem(sie, f"R{n:04d}", "tva_refund", date(2026, 11, 1 + n % 20))
            for sie in ("SIE-75-08", "SIE-75-17")
            for n in range(ITEMS_PER_SIE)
        ],
    )
    with session_scope(engine) as session:
        # Calendars ready beforehand: their first materialisation would serialise the runs
        # by itself and hide whether routing's own lock works.
        ensure_calendar_years(session, AS_OF.year, AS_OF.year + CALENDAR_YEARS_AHEAD)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(go), AS_OF.isoformat(), f"worker-{n}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    time.sleep(2.0)  # let both finish importing
    go.touch()
    outputs = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))

    results = [output["result"] for output in outputs]
    assigned_per_run = [sum(result["assigned"].values()) for result in results]
    expected = ITEMS_PER_SIE + CAPACITY  # SIE-75-17 stays local, SIE-75-08 is capped
    # The runs were serialised: one did the work, the other found nothing left to assign.
    assert sorted(assigned_per_run) == [0, expected]
    assert sorted(result["unchanged"] for result in results) == [0, expected]
    assert {result["waiting_capacity"] for result in results} == {ITEMS_PER_SIE - CAPACITY}

    items = WorkItem.__table__  # type: ignore[attr-defined]
    events = ItemEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        per_item = connection.execute(
            select(events.c.item_id, func.count())
            .where(events.c.event == "assigned")
            .group_by(events.c.item_id)
        ).all()
        assigned_items = connection.execute(
            select(func.count()).select_from(items).where(items.c.state == "assigned")
        ).scalar_one()
        remote = connection.execute(
            select(func.count()).select_from(items).where(items.c.assignee == "ANT-18-VIERZON")
        ).scalar_one()
        authors = (
            connection.execute(select(events.c.by).where(events.c.event == "assigned").distinct())
            .scalars()
            .all()
        )
    assert len(per_item) == assigned_items == expected
    assert {count for _, count in per_item} == {1}
    assert remote == CAPACITY  # the daily capacity held across both processes
    assert len(authors) == 1
