"""SQL injection attempts through every door: CLI options, API paths and parameters, queue
files, event files, reference YAML. After each, the tables are intact and the hostile text,
where it was accepted as data, is stored exactly as given (bound, never spliced into SQL).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from relais.cli.main import app
from relais.db import get_engine
from relais.errors import ValidationError
from relais.intake import ingest_sie
from relais.reference import load_reference
from tests.api_fixtures import World
from tests.builders import siren_for
from tests.reliability import scenarios
from tests.reliability.helpers import assert_consistent, table_counts

INJECTIONS = [
    "x'); DROP TABLE work_item;--",
    "x'; DELETE FROM item_event; --",
    "' OR '1'='1",
    '" OR ""="',
    "1; UPDATE work_item SET state='completed'",
    "%",
    "_",
    "\\'; SELECT pg_sleep(5); --",
]
TABLES = ("work_item", "item_event", "api_token", "convention_version", "sie", "intake_file")
runner = CliRunner()


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_cli_options(world: World, hostile: str) -> None:
    engine = get_engine()
    before = table_counts(engine, TABLES)
    completed_before = _completed(engine)
    commands = [
        ["items", "show", "--sie", hostile, "--ref", hostile],
        ["items", "show", "--sie", "SIE-75-08", "--ref", hostile],
        ["items", "event", "--sie", hostile, "--ref", "R-A", "--event", "start"],
        ["items", "event", "--sie", "SIE-75-08", "--ref", hostile, "--event", "cancel"],
        ["sla", "breaches", "--sie", hostile],
        ["sla", "breaches", "--directorate", hostile],
        ["sla", "breaches", "--service", hostile],
        ["sla", "at-risk", "--process", hostile],
        ["worklist", "--service", hostile],
        ["conventions", "show", hostile],
        ["tokens", "revoke", hostile],
        ["report", "--convention", hostile, "--month", "2026-11", "--format", "json"],
    ]
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code in (1, 2), (command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), command
    assert table_counts(engine, TABLES) == before
    assert _completed(engine) == completed_before


def _completed(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM work_item WHERE state = 'completed'")
            ).scalar_one()
        )


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_api_paths_and_parameters(client: TestClient, world: World, hostile: str) -> None:
    engine = get_engine()
    before = table_counts(engine, TABLES)
    completed_before = _completed(engine)
    headers = world.headers("admin")
    quoted = hostile.replace("%", "%25")
    for path in (
        f"/api/items/{quoted}/{quoted}",
        f"/api/items/SIE-75-08/{quoted}",
        f"/api/services/{quoted}/worklist",
        f"/api/conventions/{quoted}",
        f"/api/reports/{quoted}/2026-11",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code in (404, 422), (path, response.status_code)
    for parameter in ("sie", "directorate", "service", "process", "as_of"):
        response = client.get("/api/sla/breaches", params={parameter: hostile}, headers=headers)
        assert response.status_code in (404, 422), (parameter, response.status_code)
    response = client.post(
        f"/api/items/{quoted}/R-A/events", json={"event": "start"}, headers=headers
    )
    assert response.status_code in (404, 422)
    response = client.post(
        "/api/items/SIE-75-08/R-A/events", json={"event": hostile}, headers=headers
    )
    assert response.status_code in (409, 422)
    assert table_counts(engine, TABLES) == before
    assert _completed(engine) == completed_before


def test_hostile_reasons_are_stored_verbatim(client: TestClient, world: World) -> None:
    engine = get_engine()
    reason = " | ".join(INJECTIONS)
    response = client.post(
        "/api/items/SIE-75-08/R-W/events",
        json={"event": "cancel", "at": "2027-01-04", "reason": reason},
        headers=world.headers("admin"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["history"][-1]["reason"] == reason
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT reason FROM item_event WHERE event = 'cancel' AND reason = :r"),
            {"r": reason},
        ).scalar_one()
    assert stored == reason
    assert_consistent(engine)


def test_queue_files_and_event_files(engine: Engine, tmp_path: Path) -> None:
    """Hostile references and labels are data: stored as given, routed, evented, shown."""
    scenarios.build_world(engine, tmp_path)
    root = tmp_path / "queues"
    incoming = root / "SIE-75-08" / "incoming"
    incoming.mkdir(parents=True)
    lines = ["reference;process;siren;received_on;amount;label"]
    for index, hostile in enumerate(INJECTIONS):
        cell = '"' + hostile.replace('"', '""') + '"'
        lines.append(f"{cell};tva_refund;{siren_for(index + 1)};2026-10-01;100;{cell}")
    (incoming / "hostile.csv").write_text("\n".join(lines) + "\n", "utf-8")
    # A folder whose name is itself hostile: an unknown SIE, left untouched.
    (root / "x'); DROP TABLE sie;--" / "incoming").mkdir(parents=True)
    outcome = ingest_sie(
        engine, sie_code="SIE-75-08", root=root, as_of=date(2026, 11, 2), author="cli"
    )
    assert [(o.accepted, o.rejected) for o in outcome if o] == [(len(INJECTIONS), 0)]
    with engine.connect() as connection:
        stored: dict[str, str] = dict(
            connection.execute(
                text("SELECT reference, label FROM work_item WHERE sie_code = 'SIE-75-08'")
            ).all()
        )
    assert stored == {hostile: hostile for hostile in INJECTIONS}
    from relais.intake import discover_queues

    assert discover_queues(engine, root).unknown == ["x'); DROP TABLE sie;--"]

    from relais.routing import route_work_items

    route_work_items(as_of=date(2026, 11, 3), engine=engine)
    events = tmp_path / "events.csv"
    rows = ["sie;reference;event;at;reason"]
    for hostile in INJECTIONS:
        cell = '"' + hostile.replace('"', '""') + '"'
        rows.append(f"SIE-75-08;{cell};start;2026-11-04;{cell}")
        rows.append(f"{cell};{cell};start;2026-11-04;")
    events.write_text("\n".join(rows) + "\n", "utf-8")
    from relais.items import import_events

    result = import_events(events, by="cli", engine=engine)
    assert (result.applied, result.refused) == (len(INJECTIONS), len(INJECTIONS))
    with engine.connect() as connection:
        started = connection.execute(
            text("SELECT count(*) FROM work_item WHERE state = 'in_progress'")
        ).scalar_one()
    assert started == len(INJECTIONS)
    assert table_counts(engine, ("sie",)) == {"sie": 4}
    assert_consistent(engine)


def test_reference_codes_are_validated_before_any_sql(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "reference.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "directorates": [
                    {"code": hostile, "name": hostile, "department": "75"} for hostile in INJECTIONS
                ]
            }
        ),
        "utf-8",
    )
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=engine)
    assert len(caught.value.problems) == len(INJECTIONS)
    assert table_counts(engine, ("directorate",)) == {"directorate": 0}
