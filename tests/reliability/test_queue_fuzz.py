"""Hostile SIE queue files: intake never crashes, never half-writes, never re-emits a formula.

Fuzzed files (random bytes, random encodings, delimiters, line ends, headers, odd cells, JSON
of any shape) each go through intake. Whatever the file, afterwards:

* the file has left ``incoming/`` (to ``processed/``, or to ``rejected/`` when unreadable);
* the counts are the database's: accepted = items created from the file, rejected = the
  errors file's rows = the rejections stored; nothing else was written;
* no cell of an errors file starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``,
  tab, carriage return), whatever the file held;
* the history stays consistent (one ``received`` event per item, states match histories).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from relais.cli.main import app
from relais.intake import ingest_file
from relais.reports import build_report, render_csv
from relais.settings import get_settings
from tests.builders import siren_for
from tests.reliability import scenarios
from tests.reliability.helpers import FUZZ, assert_consistent

SIE = "SIE-75-08"
AS_OF = date(2026, 11, 2)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULAS = [
    '=HYPERLINK("http://x","y")',
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
]
_names = itertools.count()


@pytest.fixture
def world(sqlite_engine: Engine, tmp_path: Path) -> tuple[Engine, Path]:
    """Reference data and a convention; the queue root under ``tmp_path``."""
    scenarios.build_world(sqlite_engine, tmp_path)
    return sqlite_engine, tmp_path / "queues"


def _drop(root: Path, name: str, content: bytes) -> Path:
    incoming = root / SIE / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / name
    path.write_bytes(content)
    return path


def _errors_rows(root: Path, name: str) -> list[list[str]] | None:
    errors = root / SIE / "rejected" / f"{name}.errors.csv"
    if not errors.exists():
        return None
    raw = errors.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "errors files are UTF-8 with a BOM"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))


def _assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), row


def _ingest_and_check(engine: Engine, root: Path, name: str, content: bytes) -> Any:
    path = _drop(root, name, content)
    with engine.connect() as connection:
        items_before = connection.execute(text("SELECT count(*) FROM work_item")).scalar_one()
    outcome = ingest_file(engine, sie_code=SIE, path=path, as_of=AS_OF, author="cli", batch_size=7)
    assert outcome is not None
    assert not path.exists(), "the file must leave incoming/"
    moved_to = "rejected" if outcome.unreadable else "processed"
    assert (root / SIE / moved_to / name).exists()
    with engine.connect() as connection:
        file_id, accepted, rejected = connection.execute(
            text(
                "SELECT id, accepted, rejected FROM intake_file "
                "WHERE sie_code = :sie AND file_name = :name"
            ),
            {"sie": SIE, "name": name},
        ).one()
        created = connection.execute(
            text("SELECT count(*) FROM work_item WHERE intake_file_id = :id"), {"id": file_id}
        ).scalar_one()
        items_after = connection.execute(text("SELECT count(*) FROM work_item")).scalar_one()
    assert (accepted, rejected) == (outcome.accepted, outcome.rejected)
    assert created == outcome.accepted == items_after - items_before
    rows = _errors_rows(root, name)
    if outcome.unreadable:
        assert rows is not None and len(rows) == 2
        assert rows[1][2].startswith("unreadable file: ")
        assert outcome.accepted == outcome.rejected == outcome.duplicates == 0
    elif outcome.rejected:
        assert rows is not None and len(rows) == outcome.rejected + 1
    else:
        assert rows is None
    if rows is not None:
        assert rows[0] == ["line", "reference", "reason"]
        _assert_no_formula(rows)
    assert_consistent(engine)
    return outcome


# --- strategies ------------------------------------------------------------------------------

ODD_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            *FORMULAS,
            "x'); DROP TABLE work_item;--",
            '"',
            '""',
            "a;b",
            "a,b",
            "ligne\nsuivante",
            "\u00a0",
            "€",
            "\ufeff",
            "\x1f",
            "9" * 40,
        ]
    ),
)


@st.composite
def cell_values(draw: st.DrawFn, number: int) -> dict[str, str]:
    """One row: plausible values, some replaced by odd text."""
    values = {
        "reference": f"R-{number % 7}",  # few references: duplicates and conflicts happen
        "process": draw(st.sampled_from(["tva_refund", "medoc_web", "TVA_REFUND", "knitting"])),
        "siren": draw(st.sampled_from([siren_for(number), "732 829 320", "123456789", ""])),
        "received_on": draw(st.sampled_from(["2026-10-01", "01/10/2026", "2026-02-30", ""])),
        "amount": draw(st.sampled_from(["1500", "1 500,50 €", "-3", "0", "", "1e3"])),
        "legal_due_on": draw(st.sampled_from(["", "2027-01-01", "2020-01-01"])),
        "label": draw(st.sampled_from(["", "Dossier", "Crédit de TVA"])),
    }
    for column in draw(st.lists(st.sampled_from(sorted(values)), max_size=3)):
        values[column] = draw(ODD_TEXT)
    return values


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    columns = ["reference", "process", "siren", "received_on", "amount", "legal_due_on", "label"]
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    if draw(st.integers(0, 4)) == 0:
        columns = [c for c in columns if c != draw(st.sampled_from(columns))]
    if draw(st.integers(0, 4)) == 0:
        columns.append(draw(st.sampled_from(["extra", "Reference", "=1+1"])))
    header = [c.upper() if draw(st.booleans()) else c for c in columns]
    delimiter = draw(st.sampled_from([";", ","]))
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
    )
    writer.writerow(header)
    for number in range(draw(st.integers(0, 12))):
        values = draw(cell_values(number))
        row = [values.get(column.lower(), "x") for column in columns]
        if draw(st.integers(0, 9)) == 0:
            row = row[: draw(st.integers(0, len(row)))]  # a short row
        writer.writerow(row)
    text_ = buffer.getvalue()
    if draw(st.integers(0, 9)) == 0:
        text_ = text_[: draw(st.integers(0, len(text_)))]  # a truncated file
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16", "latin-1"]))
    return text_.encode(encoding, errors="replace")


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    lines = []
    scalar = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), ODD_TEXT
    )
    for number in range(draw(st.integers(0, 10))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append(draw(st.text(max_size=20)))  # not JSON
        elif kind == 1:
            lines.append(json.dumps(draw(st.lists(scalar, max_size=3))))
        else:
            values: dict[str, Any] = dict(draw(cell_values(number)))
            for key in draw(st.lists(st.sampled_from(sorted(values)), max_size=2)):
                values[key] = draw(st.one_of(scalar, st.lists(scalar, max_size=2)))
            lines.append(json.dumps(values, ensure_ascii=draw(st.booleans())))
    return ("\n".join(lines) + "\n").encode("utf-8")


# --- fuzz ------------------------------------------------------------------------------------


@FUZZ
@given(content=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".jsonl", ".CSV"]))
def test_random_bytes(world: tuple[Engine, Path], content: bytes, suffix: str) -> None:
    engine, root = world
    _ingest_and_check(engine, root, f"noise-{next(_names)}{suffix}", content)


@FUZZ
@given(content=csv_files())
def test_fuzzed_csv_files(world: tuple[Engine, Path], content: bytes) -> None:
    engine, root = world
    _ingest_and_check(engine, root, f"fuzz-{next(_names)}.csv", content)


@FUZZ
@given(content=jsonl_files())
def test_fuzzed_jsonl_files(world: tuple[Engine, Path], content: bytes) -> None:
    engine, root = world
    _ingest_and_check(engine, root, f"fuzz-{next(_names)}.jsonl", content)


# --- targeted cases --------------------------------------------------------------------------


def _csv(*rows: str, header: str = "reference;process;siren;received_on;amount;label") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (_csv(f"R-1;tva_refund;{siren_for(1)};2026-10-01;100;{'x' * 2001}"), "rejected"),
        (_csv(f"{'R' * 101};tva_refund;{siren_for(1)};2026-10-01;100;"), "rejected"),
        (_csv(f"R-1;tva_refund;{siren_for(1)};2026-10-01;{'9' * 30};"), "rejected"),
        (_csv(f'R-1;tva_refund;{siren_for(1)};2026-10-01;100;"{"x" * (2 << 20)}"'), "unreadable"),
        (
            _csv(f"R-1;{siren_for(1)};2026-10-01", header="reference;siren;received_on"),
            "unreadable",
        ),
        (_csv('R-1;tva_refund;"unterminated'), "rejected"),
        (b"", "unreadable"),
        (b"\xef\xbb\xbf", "unreadable"),
        ("reference;process\n".encode("utf-16"), "unreadable"),
        (b"reference;process;siren;received_on\n\x81\x8d\x8f\x90\x9d\n", "unreadable"),
    ],
    ids=[
        "label-too-long",
        "reference-too-long",
        "amount-too-large",
        "field-over-2-MB",
        "missing-columns",
        "runaway-quote",
        "empty",
        "bom-only",
        "utf-16",
        "undefined-cp1252-bytes",
    ],
)
def test_oversized_and_malformed_files_end_clearly(
    world: tuple[Engine, Path], content: bytes, expect: str
) -> None:
    engine, root = world
    outcome = _ingest_and_check(engine, root, f"case-{next(_names)}.csv", content)
    if expect == "unreadable":
        assert outcome.unreadable
    else:
        assert (outcome.accepted, outcome.rejected) == (0, 1)


def _parse(text_: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text_.lstrip("\ufeff"), newline=""), delimiter=";"))


def test_formulas_never_come_back_unescaped_in_any_csv_output(
    world: tuple[Engine, Path],
) -> None:
    """References and labels shaped like formulas, then every CSV Relais writes from them."""
    engine, root = world
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow(["reference", "process", "siren", "received_on", "amount", "label"])
    for amount in ("100", "999"):  # the second round conflicts: references in the errors file
        for index, formula in enumerate(FORMULAS):
            writer.writerow(
                [formula, "tva_refund", siren_for(10 + index), "2026-10-01", amount, formula]
            )
    outcome = _ingest_and_check(engine, root, "formulas.csv", buffer.getvalue().encode("utf-8"))
    assert outcome.accepted >= 5 and outcome.rejected >= len(FORMULAS)
    errors = _errors_rows(root, "formulas.csv")
    assert errors is not None and any(row[1].startswith("'=") for row in errors)

    from relais.db import session_scope
    from relais.routing import route_work_items

    route_work_items(as_of=date(2026, 11, 3), engine=engine)
    runner = CliRunner()
    outputs = {
        "breaches --legal": ["sla", "breaches", "--as-of", "2027-06-01", "--legal"],
        "breaches": ["sla", "breaches", "--as-of", "2027-06-01", "--include-completed"],
        "at-risk": ["sla", "at-risk", "--as-of", "2026-11-27"],
    }
    for name, command in outputs.items():
        result = runner.invoke(app, [*command, "--format", "csv"])
        assert result.exit_code == 0, (name, result.output)
        listed = _parse(result.stdout)
        _assert_no_formula(listed)
        if name != "at-risk":
            assert len(listed) == outcome.accepted + 1, name  # every item, header first
    with session_scope(engine) as session:
        report = build_report(
            session,
            convention_id="CONV-75-VIERZON",
            month="2026-11",
            zone=get_settings().timezone,
        )
    _assert_no_formula(_parse(render_csv(report)))


def test_event_files_with_formulas_get_a_safe_errors_file(
    world: tuple[Engine, Path], tmp_path: Path
) -> None:
    """Formulas in every column of an event file: the refused rows' errors file quotes them
    (references, and any value a refusal message starts with) as text."""
    from relais.items import import_events

    engine, _root = world
    buffer = io.StringIO()
    # CRLF line ends: the writer then quotes the cells holding a carriage return.
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["sie", "reference", "event", "at", "reason"])
    for formula in FORMULAS:
        writer.writerow([formula, formula, "start", "", formula])
        writer.writerow(["SIE-75-08", formula, formula, formula, formula])
    path = tmp_path / "events.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    outcome = import_events(path, by="cli", engine=engine)
    assert outcome.applied == 0 and outcome.refused == 2 * len(FORMULAS)
    assert outcome.errors_file is not None
    rows = _parse(outcome.errors_file.read_text("utf-8-sig"))
    assert len(rows) == outcome.refused + 1
    _assert_no_formula(rows)
    assert_consistent(engine)
