"""Helpers of the intake tests: queue folders, files in every accepted shape, database reads."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from models.tables import IntakeFile, ItemEvent, WorkItem
from relais.db import session_scope
from relais.intake import FileOutcome, discover_queues, ingest_sie, summarise
from tests.builders import add_reference, siren_for

AS_OF = date(2026, 11, 20)
SIE = "SIE-75-08"
OTHER_SIE = "SIE-75-17"
HEADER = ("reference", "process", "siren", "received_on", "amount", "legal_due_on", "label")

SIREN = siren_for(73_282_932)  # valid (Luhn) and shaped like a real one, but made up


def add_sies(engine: Engine) -> None:
    """The standard reference data (SIE-75-02, SIE-75-08, SIE-75-17, …), without calendars."""
    with session_scope(engine) as session:
        add_reference(session, calendars=False)


def incoming(root: Path, sie: str = SIE) -> Path:
    """The ``incoming/`` folder of ``sie``, created."""
    folder = root / sie / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def row(
    reference: str,
    process: str = "medoc_web",
    siren: str = SIREN,
    received_on: str = "2026-11-02",
    amount: str = "",
    legal_due_on: str = "",
    label: str = "",
) -> dict[str, str]:
    """A row as an SIE writes it (every value as text)."""
    return {
        "reference": reference,
        "process": process,
        "siren": siren,
        "received_on": received_on,
        "amount": amount,
        "legal_due_on": legal_due_on,
        "label": label,
    }


def csv_text(
    rows: Iterable[Mapping[str, str]],
    *,
    delimiter: str = ";",
    newline: str = "\n",
    header: Sequence[str] = HEADER,
) -> str:
    """CSV text with ``header`` (quoting cells that hold the delimiter, quotes or newlines)."""

    def cell(value: str) -> str:
        if any(mark in value for mark in (delimiter, '"', "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(header)]
    lines += [delimiter.join(cell(values.get(name, "")) for name in header) for values in rows]
    return newline.join(lines) + newline


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, str]],
    *,
    encoding: str = "utf-8",
    delimiter: str = ";",
    newline: str = "\n",
    header: Sequence[str] = HEADER,
) -> Path:
    """Write a queue CSV file (``encoding`` ``utf-8-sig`` for a BOM, ``cp1252`` for Windows)."""
    text = csv_text(rows, delimiter=delimiter, newline=newline, header=header)
    path.write_bytes(text.encode(encoding))
    return path


def write_jsonl(path: Path, documents: Iterable[Mapping[str, Any]]) -> Path:
    """Write a JSONL queue file, one object a line."""
    path.write_text(
        "".join(json.dumps(document, ensure_ascii=False) + "\n" for document in documents),
        encoding="utf-8",
    )
    return path


def run_intake(
    engine: Engine,
    root: Path,
    as_of: date = AS_OF,
    *,
    sie: str | None = None,
    author: str = "test-run",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Intake without Prefect, as the flow does it; returns the ``relais intake`` document."""
    discovery = discover_queues(engine, root, sie)
    outcomes: list[FileOutcome] = []
    options: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    known = discovery.known
    for code, next_code in zip(known, [*known[1:], None], strict=False):
        outcomes += ingest_sie(
            engine,
            sie_code=code,
            root=root,
            as_of=as_of,
            author=author,
            next_sie=next_code,
            **options,
        )
    return summarise(outcomes, discovery.unknown)


def items(engine: Engine, sie: str = SIE) -> list[dict[str, Any]]:
    """The work items of ``sie`` by reference, as dicts of column values."""
    table = WorkItem.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(
            select(table).where(table.c.sie_code == sie).order_by(table.c.reference)
        ).mappings()
        return [dict(values) for values in rows]


def item(engine: Engine, reference: str, sie: str = SIE) -> dict[str, Any]:
    """One work item by reference."""
    matches = [values for values in items(engine, sie) if values["reference"] == reference]
    assert len(matches) == 1, f"{sie}/{reference}: {len(matches)} item(s)"
    return matches[0]


def events(engine: Engine) -> list[dict[str, Any]]:
    """Every item event, oldest first."""
    table = ItemEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return [dict(v) for v in connection.execute(select(table).order_by(table.c.id)).mappings()]


def intake_files(engine: Engine) -> list[dict[str, Any]]:
    """Every ``intake_file`` row, in order of recording."""
    table = IntakeFile.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return [dict(v) for v in connection.execute(select(table).order_by(table.c.id)).mappings()]


def errors_rows(path: Path) -> list[list[str]]:
    """The rows of an errors file after its header (and checks the header and encoding)."""
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "errors files start with a UTF-8 BOM"
    lines = raw[3:].decode("utf-8").splitlines()
    assert lines[0] == "line;reference;reason"
    return list(csv.reader(lines[1:], delimiter=";"))


def _numbered_row(number: int) -> dict[str, str]:
    return row(
        f"R{number:06d}",
        process="tva_refund",
        amount=f"{number},{number % 100:02d}",
        received_on=f"{1 + number % 28:02d}/10/2026",
        label=f"Dossier n° {number}",
    )


def mixed_rows(count: int) -> list[dict[str, str]]:
    """``count`` rows of a busy day: mostly accepted, a rejected row, a conflict and a
    repeat about every thousand rows (the first of each within the first ten rows)."""
    rows = []
    for number in range(count):
        if number % 997 == 5:
            rows.append(row(f"R{number:06d}", process="unknown"))  # rejected
        elif number % 1009 == 7:
            # Conflicts with the row before.
            rows.append({**_numbered_row(number - 1), "amount": "1"})
        elif number % 1013 == 9:
            rows.append(_numbered_row(number - 2))  # repeats an earlier row: duplicate
        else:
            rows.append(_numbered_row(number))
    return rows
