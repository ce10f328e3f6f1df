"""Every CLI command is documented in the README, and the README's examples exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from relais.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    if _is_group(command):
        paths: list[str] = []
        for name, sub in command.commands.items():
            paths.extend(_command_paths(sub, (*prefix, name)))
        return paths
    return [" ".join(prefix)]


def test_every_command_is_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    commands = _command_paths(typer.main.get_command(app))
    assert commands, "no command registered"
    missing = [c for c in commands if not re.search(rf"relais {re.escape(c)}\b", readme)]
    assert missing == []


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    assert _is_group(root)

    def walk(command: Any, path: str) -> list[str]:
        if _is_group(command):
            return [p for n, c in command.commands.items() for p in walk(c, f"{path} {n}")]
        return [] if (command.help or "").strip() else [path]

    assert walk(root, "relais") == []


def test_no_flag_reads_as_if_it_took_a_value() -> None:
    """Help leaves a flag's value column empty: ``--dry-run``, not ``--dry-run <bool>``."""
    from typer.testing import CliRunner

    runner = CliRunner()
    shown = {}
    for path in _command_paths(typer.main.get_command(app)):
        result = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        shown[path] = result.output
    route = shown["route"]
    assert re.search(r"--dry-run\s+Compute", route)
    assert re.search(r"--as-of\s+YYYY-MM-DD", route)
