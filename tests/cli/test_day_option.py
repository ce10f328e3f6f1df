"""``--as-of`` days: one parser for every command, and errors that say what is wrong."""

from __future__ import annotations

import re
from datetime import date

import pytest
import typer
from typer.testing import CliRunner

from relais.cli.main import app
from relais.cli.output import parse_day

runner = CliRunner()

COMMANDS = (
    ["route"],
    ["intake"],
    ["sla", "breaches"],
    ["conventions", "list"],
)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-11-26", date(2026, 11, 26)),
        (" 2026-11-26 ", date(2026, 11, 26)),
        ("2028-02-29", date(2028, 2, 29)),
        ("2026-12-31", date(2026, 12, 31)),
    ],
)
def test_days_written_yyyy_mm_dd_are_read(text: str, day: date) -> None:
    assert parse_day(text) == day


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-13-01", "'2026-13-01' is not a date: month must be in 1..12"),
        ("2026-02-29", "'2026-02-29' is not a date: day is out of range for month"),
        ("2026-04-31", "'2026-04-31' is not a date: day is out of range for month"),
        ("26/11/2026", "'26/11/2026' is not a day written YYYY-MM-DD"),
        ("20261126", "'20261126' is not a day written YYYY-MM-DD"),
        ("2026-W48-4", "'2026-W48-4' is not a day written YYYY-MM-DD"),
        ("2026-11-26T00:00", "'2026-11-26T00:00' is not a day written YYYY-MM-DD"),
        ("", "'' is not a day written YYYY-MM-DD"),
    ],
)
def test_other_text_is_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(typer.BadParameter) as refused:
        parse_day(text)
    assert says in str(refused.value)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_an_impossible_day_as_a_usage_error(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--as-of", "2026-02-30"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "is not a date: day is out of range for month" in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_shows_the_form_of_a_day_in_its_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert re.search(r"--as-of\s+YYYY-MM-DD\s", result.stdout)
