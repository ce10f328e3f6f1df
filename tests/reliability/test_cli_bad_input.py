"""Commands given values at the edges: each ends in a clear message and exit 1 or 2, never a
traceback, and changes nothing it was not asked to change."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from relais.cli.main import app
from relais.db import get_engine
from tests.api_fixtures import World
from tests.reliability.helpers import assert_consistent, database_fingerprint

runner = CliRunner()


def _clear_refusal(arguments: list[str]) -> str:
    result = runner.invoke(app, arguments)
    assert result.exit_code in (1, 2), (arguments, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        arguments,
        repr(result.exception),
    )
    assert "Traceback" not in result.output
    return result.stderr


@pytest.mark.parametrize("day", ["0001-01-01", "1899-12-31", "2199-12-31", "9999-12-31"])
@pytest.mark.parametrize(
    "command",
    [
        ["sla", "breaches"],
        ["sla", "breaches", "--legal"],
        ["sla", "at-risk"],
        ["worklist", "--service", "ANT-18-VIERZON"],
        ["sla", "scan"],
    ],
    ids=["breaches", "legal", "at-risk", "worklist", "scan"],
)
def test_dates_outside_the_calendars_are_refused(
    world: World, command: list[str], day: str
) -> None:
    before = database_fingerprint(get_engine())
    message = _clear_refusal([*command, "--as-of", day])
    assert "as-of" in message.lower() or "as_of" in message.lower()
    assert database_fingerprint(get_engine()) == before


@pytest.mark.parametrize("at", ["0001-01-01", "1899-12-31", "2199-12-31", "9999-12-31T23:00:00"])
@pytest.mark.parametrize(
    ("reference", "event"),
    [("R-W", "cancel"), ("R-F", "resume"), ("R-D", "suspend")],
)
def test_event_times_outside_the_calendars_are_refused(
    world: World, at: str, reference: str, event: str
) -> None:
    sie = "SIE-75-08" if reference == "R-W" else "SIE-75-17"
    before = database_fingerprint(get_engine())
    _clear_refusal(
        ["items", "event", "--sie", sie, "--ref", reference, "--event", event, "--at", at]
    )
    assert database_fingerprint(get_engine()) == before


def test_an_event_file_row_far_in_the_future_is_refused_on_its_own(
    world: World, tmp_path: Path
) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "sie;reference;event;at;reason\n"
        "SIE-75-17;R-F;resume;9999-12-31;\n"
        "SIE-75-17;R-D;suspend;2199-12-31;\n"
        "SIE-75-08;R-W;cancel;2027-01-04;\n",
        "utf-8",
    )
    result = runner.invoke(app, ["items", "events", str(events), "--format", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 0, result.output
    assert '"applied": 1' in result.stdout and '"refused": 2' in result.stdout
    assert_consistent(get_engine())


@pytest.mark.parametrize("target", ["directory", "missing-parent-under-a-file"])
def test_a_report_that_cannot_be_written_is_a_clear_error(
    world: World, tmp_path: Path, target: str
) -> None:
    if target == "directory":
        out = tmp_path
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "report.csv"
    message = _clear_refusal(
        ["report", "--convention", "CONV-75-VIERZON", "--month", "2026-11", "--out", str(out)]
    )
    assert str(out) in message
