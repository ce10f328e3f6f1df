"""Intake into the database (SQLite and PostgreSQL): rows, duplicates, rejections, files, moves."""

from __future__ import annotations

import os
import unicodedata
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, text

from models.tables import IntakeRejection, WorkItem
from models.types import UTCDateTime
from relais import db
from relais.csvcells import safe_cell
from relais.errors import NotFoundError
from relais.intake import discover_queues, ingest_file, reporting_progress
from relais.settings import reset_settings
from tests.intake_data import (
    AS_OF,
    OTHER_SIE,
    SIE,
    SIREN,
    add_sies,
    errors_rows,
    events,
    incoming,
    intake_files,
    item,
    items,
    row,
    run_intake,
    write_csv,
    write_jsonl,
)

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True, params=["inline", "process"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case twice: files read in this process, and by a reader process."""
    monkeypatch.setenv("RELAIS_INTAKE_READER", request.param)
    reset_settings()
    return str(request.param)


@pytest.fixture
def root(engine: Engine, tmp_path: Path) -> Path:
    add_sies(engine)
    queues = tmp_path / "queues"
    queues.mkdir()
    return queues


def _file_counts(summary: dict[str, object]) -> list[tuple[str, str, int, int, int]]:
    return [
        (f["sie"], f["file"], f["accepted"], f["duplicates"], f["rejected"])  # type: ignore[index]
        for f in summary["files"]  # type: ignore[attr-defined]
    ]


# --- Accepted rows ---------------------------------------------------------------------------


def test_accepted_rows_are_stored_normalised_with_their_received_event(
    engine: Engine, root: Path
) -> None:
    write_csv(
        incoming(root) / "export.csv",
        [
            row(
                "R1",
                "tva_refund",
                "732 829 320",
                "02/11/2026",
                "12\u202f345,67\u00a0€",
                label="Créteil",
            ),
            row("R2", "auvisir", received_on="2026-11-20"),
            row("R3", "cfe_ifer_dispute", received_on="2026-05-31", legal_due_on="2026-12-15"),
        ],
        encoding="utf-8-sig",
    )
    summary = run_intake(engine, root, author="flow-run-1")
    assert summary == {
        "files": [
            {"sie": SIE, "file": "export.csv", "accepted": 3, "duplicates": 0, "rejected": 0}
        ],
        "accepted": 3,
        "duplicates": 0,
        "rejected": 0,
        "unknown_sies": [],
        "unreadable": [],
    }
    refund = item(engine, "R1")
    assert (refund["process"], refund["siren"], refund["received_on"]) == (
        "tva_refund",
        SIREN,
        date(2026, 11, 2),
    )
    assert refund["amount_cents"] == 1_234_567
    assert refund["label"] == "Créteil"
    assert refund["legal_due_on"] == date(2027, 5, 2)
    assert refund["state"] == "received" and refund["assignee"] is None
    assert item(engine, "R2")["legal_due_on"] is None
    assert item(engine, "R3")["legal_due_on"] == date(2026, 12, 15)

    midnight = datetime.combine(AS_OF, time(0), tzinfo=PARIS)
    history = events(engine)
    assert [(e["item_id"], e["event"], e["to_state"]) for e in history] == [
        (values["id"], "received", "received") for values in items(engine)
    ]
    for event in history:
        assert event["at"] == midnight
        assert event["by"] == "flow-run-1" and event["as_of"] == AS_OF
        assert event["from_state"] is None
    assert all(values["last_event_at"] == midnight for values in items(engine))

    [record] = intake_files(engine)
    assert (record["sie_code"], record["file_name"], record["as_of"]) == (SIE, "export.csv", AS_OF)
    assert (record["accepted"], record["duplicates"], record["rejected"]) == (3, 0, 0)
    assert record["unreadable_reason"] is None
    assert (root / SIE / "processed" / "export.csv").exists()
    assert list((root / SIE / "incoming").iterdir()) == []
    assert not (root / SIE / "rejected").exists()


def test_text_values_are_stored_exactly_whatever_their_characters(
    engine: Engine, root: Path
) -> None:
    # SQLite takes batches as JSON text: quotes, backslashes, newlines, separators and
    # characters outside the BMP must come out as they went in.
    labels = [
        'Dit "urgent" – voir C:\\dossiers\\2026',
        "Première ligne\nseconde ligne",
        "Sépar\u2028ateur, \u00a0espace insécable, 🧾 reçu",
        "Ligature \ufb01n, e\u0301 décomposé",
    ]
    references = ['R"1', "R\\2", "Réf-3 🧾", "R 4"]
    write_csv(
        incoming(root) / "export.csv",
        [row(reference, label=label) for reference, label in zip(references, labels, strict=True)],
    )
    assert run_intake(engine, root)["accepted"] == 4
    stored = {values["reference"]: values["label"] for values in items(engine)}
    assert stored == {
        reference: unicodedata.normalize("NFC", label)
        for reference, label in zip(references, labels, strict=True)
    }


def test_stored_instants_compare_equal_to_values_bound_by_sqlalchemy(
    engine: Engine, root: Path
) -> None:
    # Other queries filter on these columns with bound parameters: the stored text (SQLite)
    # must be the very format SQLAlchemy binds.
    write_csv(incoming(root) / "a.csv", [row("R1"), row("R2")])
    run_intake(engine, root)
    midnight = datetime.combine(AS_OF, time(0), tzinfo=PARIS)
    table = WorkItem.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        same = connection.execute(
            select(func.count()).where(table.c.last_event_at == midnight)
        ).scalar_one()
        day = connection.execute(
            select(func.count()).where(table.c.received_on == date(2026, 11, 2))
        ).scalar_one()
    assert (same, day) == (2, 2)
    assert isinstance(table.c.last_event_at.type, UTCDateTime)


# --- Rejections ------------------------------------------------------------------------------

REJECTED_ROWS = [
    (row("B01", siren="732829321"), "invalid SIREN: wrong check digit (Luhn)"),
    (row("B02", siren="7328293"), "invalid SIREN: not 9 digits"),
    (row("B03", process="tva"), "unknown process"),
    (row("B04", process=""), "missing process"),
    (row("", label="no reference"), "missing reference"),
    (row("B06", "tva_refund"), "missing amount (required for tva_refund)"),
    (row("B07", "tva_refund", amount="1.234"), "invalid amount"),
    (row("B08", "tva_refund", amount="0,00"), "amount must be greater than 0"),
    (
        row("B09", received_on="2026-02-30"),
        "invalid received_on: expected YYYY-MM-DD or DD/MM/YYYY",
    ),
    (row("B10", received_on="21/11/2026"), "received_on after the day of intake (2026-11-20)"),
    (row("B11", legal_due_on="2026-11-01"), "legal_due_on before received_on"),
    (row("B12", legal_due_on="bientôt"), "invalid legal_due_on: expected YYYY-MM-DD or DD/MM/YYYY"),
    (row("B13" + "x" * 100), "reference longer than 100 characters"),
    (row("B14", label="x" * 2001), "label longer than 2000 characters"),
    (row("B15", siren=""), "missing SIREN"),
]


def test_each_rejection_reason_lands_in_the_errors_file(engine: Engine, root: Path) -> None:
    rows = [row("OK1")] + [values for values, _reason in REJECTED_ROWS]
    write_csv(incoming(root) / "mixed.csv", rows)
    summary = run_intake(engine, root)
    assert _file_counts(summary) == [(SIE, "mixed.csv", 1, 0, len(REJECTED_ROWS))]
    assert [values["reference"] for values in items(engine)] == ["OK1"]
    errors = errors_rows(root / SIE / "rejected" / "mixed.csv.errors.csv")
    expected = [
        [str(line), values["reference"][:100], reason]
        for line, (values, reason) in enumerate(REJECTED_ROWS, start=3)
    ]
    assert errors == expected
    with engine.connect() as connection:
        rejections = IntakeRejection.__table__  # type: ignore[attr-defined]
        stored = connection.execute(
            select(rejections.c.line, rejections.c.reason).order_by(rejections.c.line)
        ).all()
    assert [(line, reason) for line, reason in stored] == [
        (int(line), reason) for line, _ref, reason in expected
    ]
    assert (root / SIE / "processed" / "mixed.csv").exists()


def test_errors_file_is_bom_semicolon_and_formula_safe(engine: Engine, root: Path) -> None:
    write_csv(
        incoming(root) / "x.csv",
        [
            row('=HYPERLINK("http://x")', process="nope"),
            row("+33", process="nope"),
            row("-12", process="nope"),
            row("@SUM(A1)", process="nope"),
            row("A;B", process="nope"),
        ],
    )
    run_intake(engine, root)
    path = root / SIE / "rejected" / "x.csv.errors.csv"
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfline;reference;reason\r\n")
    assert [cells[1] for cells in errors_rows(path)] == [
        '\'=HYPERLINK("http://x")',
        "'+33",
        "'-12",
        "'@SUM(A1)",
        "A;B",
    ]
    assert safe_cell("=1") == "'=1" and safe_cell(None) == "" and safe_cell("ok") == "ok"


def test_no_taxpayer_value_in_rejection_reasons(engine: Engine, root: Path) -> None:
    write_csv(
        incoming(root) / "x.csv",
        [row("R1", "tva_refund", siren="732829321", amount="98 765,43", label="Secret SARL")],
    )
    run_intake(engine, root)
    [[line, reference, reason]] = errors_rows(root / SIE / "rejected" / "x.csv.errors.csv")
    assert (line, reference) == ("2", "R1")
    assert reason == "invalid SIREN: wrong check digit (Luhn)"


# --- Encodings and formats -------------------------------------------------------------------


def test_encodings_delimiters_and_line_ends(engine: Engine, root: Path) -> None:
    folder = incoming(root)
    write_csv(folder / "1-bom.csv", [row("U1", label="Créteil")], encoding="utf-8-sig")
    write_csv(
        folder / "2-windows.csv",
        [row("W1", label="Créteil"), row("W2", "tva_refund", amount="1 234,50 €")],
        encoding="cp1252",
        delimiter=",",
        newline="\r\n",
    )
    write_csv(folder / "3-crlf.csv", [row("C1")], newline="\r\n")
    header = ("REFERENCE", "Process", "SIREN", "Received_On")
    write_csv(
        folder / "4-case.csv",
        [{"REFERENCE": "H1", "Process": "auvisir", "SIREN": SIREN, "Received_On": "2026-11-02"}],
        header=header,
    )
    summary = run_intake(engine, root)
    assert [f[2:] for f in _file_counts(summary)] == [(1, 0, 0), (2, 0, 0), (1, 0, 0), (1, 0, 0)]
    assert item(engine, "U1")["label"] == "Créteil"
    assert item(engine, "W1")["label"] == "Créteil"
    assert item(engine, "W2")["amount_cents"] == 123_450
    compared = ("process", "siren", "received_on", "label", "legal_due_given")
    assert [item(engine, "W1")[c] for c in compared] == [item(engine, "U1")[c] for c in compared]


def test_french_amounts_with_no_break_spaces(engine: Engine, root: Path) -> None:
    write_csv(
        incoming(root) / "amounts.csv",
        [
            row("A1", "tva_refund", amount="12\u00a0345,67\u00a0€"),
            row("A2", "tva_refund", amount="12\u202f345,67\u202f€"),
            row("A3", "tva_refund", amount="12 345,67 €"),
            row("A4", "tva_refund", amount="12345.67"),
        ],
    )
    run_intake(engine, root)
    assert {values["amount_cents"] for values in items(engine)} == {1_234_567}


def test_same_row_in_other_encodings_and_formats_is_a_duplicate(engine: Engine, root: Path) -> None:
    folder = incoming(root)
    values = row("D1", "tva_refund", "732829320", "2026-11-02", "12345.67", label="Créteil")
    write_csv(folder / "a.csv", [values], encoding="utf-8")
    write_csv(
        folder / "b.csv",
        [row("D1", "TVA_REFUND", "732 829 320", "02/11/2026", "12 345,67 €", label="Créteil")],
        encoding="cp1252",
        delimiter=",",
        newline="\r\n",
    )
    write_jsonl(
        folder / "c.jsonl",
        [
            {
                "reference": "D1",
                "process": "tva_refund",
                "siren": 732829320,
                "received_on": "2026-11-02",
                "amount": 12345.67,
                "label": "Cre\u0301teil",
            }
        ],
    )
    summary = run_intake(engine, root)
    assert _file_counts(summary) == [
        (SIE, "a.csv", 1, 0, 0),
        (SIE, "b.csv", 0, 1, 0),
        (SIE, "c.jsonl", 0, 1, 0),
    ]
    assert len(items(engine)) == 1 and len(events(engine)) == 1
    assert not (root / SIE / "rejected").exists()


# --- Duplicates and conflicts ----------------------------------------------------------------


def test_duplicates_and_conflicts_across_files_and_sies(engine: Engine, root: Path) -> None:
    write_csv(incoming(root) / "a.csv", [row("R1", amount="10"), row("R2")])
    write_csv(incoming(root, OTHER_SIE) / "a.csv", [row("R1", amount="99")])
    first = run_intake(engine, root)
    assert first["accepted"] == 3  # the same reference in another SIE is another item
    write_csv(incoming(root) / "b.csv", [row("R1", amount="10,00"), row("R2", amount="5")])
    second = run_intake(engine, root)
    assert _file_counts(second) == [(SIE, "b.csv", 0, 1, 1)]
    assert errors_rows(root / SIE / "rejected" / "b.csv.errors.csv") == [
        ["3", "R2", "same reference with different values"]
    ]
    assert item(engine, "R2")["amount_cents"] is None  # the first one stays


@pytest.mark.parametrize("batch_size", [1000, 2])
def test_duplicates_and_conflicts_within_one_file(
    engine: Engine, root: Path, batch_size: int
) -> None:
    rows = [
        row("R1", amount="10"),
        row("R2"),
        row("R1", amount="10,00"),  # duplicate (same batch when batches are large)
        row("R1", amount="11"),  # conflict
        row("R3"),
        row("R2", label="autre"),  # conflict
        row("R3"),  # duplicate
    ]
    write_csv(incoming(root) / "a.csv", rows)
    summary = run_intake(engine, root, batch_size=batch_size)
    assert _file_counts(summary) == [(SIE, "a.csv", 3, 2, 2)]
    assert errors_rows(root / SIE / "rejected" / "a.csv.errors.csv") == [
        ["5", "R1", "same reference with different values"],
        ["7", "R2", "same reference with different values"],
    ]
    assert [values["reference"] for values in items(engine)] == ["R1", "R2", "R3"]
    assert item(engine, "R1")["amount_cents"] == 1000
    assert len(events(engine)) == 3


def test_rows_taken_by_an_earlier_file_and_by_an_earlier_batch_in_one_batch(
    engine: Engine, root: Path
) -> None:
    # The reader marks R2 (its first batch had it) but not R1 (taken by the first file): the
    # writer must look up the whole batch, not only the marked row.
    write_csv(incoming(root) / "a.csv", [row("R1", amount="10")])
    run_intake(engine, root)
    write_csv(
        incoming(root) / "b.csv",
        [row("R2"), row("R3"), row("R2"), row("R1", amount="11"), row("R4")],
    )
    summary = run_intake(engine, root, batch_size=2)
    assert _file_counts(summary) == [(SIE, "b.csv", 3, 1, 1)]
    assert errors_rows(root / SIE / "rejected" / "b.csv.errors.csv") == [
        ["5", "R1", "same reference with different values"]
    ]
    assert item(engine, "R1")["amount_cents"] == 1000


def test_a_repeat_is_judged_against_the_stored_row_not_the_first_in_its_file(
    engine: Engine, root: Path
) -> None:
    write_csv(incoming(root) / "a.csv", [row("R1", amount="10")])
    run_intake(engine, root)
    # Within the next file, R1 first differs from the stored row, then repeats it exactly.
    write_csv(incoming(root) / "b.csv", [row("R1", amount="11"), row("R1", amount="10")])
    summary = run_intake(engine, root)
    assert _file_counts(summary) == [(SIE, "b.csv", 0, 1, 1)]
    assert errors_rows(root / SIE / "rejected" / "b.csv.errors.csv") == [
        ["2", "R1", "same reference with different values"]
    ]


def test_on_sqlite_the_log_is_copied_into_the_database_beside_the_next_file(
    engine: Engine, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL checkpoints on its own")
    monkeypatch.setattr(db, "CHECKPOINTER_IDLE_SECONDS", 0.05)
    checkpointer = db.checkpointer(engine)
    before = checkpointer.runs
    for name in ("a.csv", "b.csv"):
        write_csv(incoming(root) / name, [row(f"{name}-{n}") for n in range(50)])
    assert run_intake(engine, root)["accepted"] == 100
    assert checkpointer.idle(timeout=30)
    assert checkpointer.runs > before  # one per file at most: commits that come meanwhile join
    with engine.connect() as connection:  # the pool's connection commits as usual again
        pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    assert pages == db.SQLITE_CHECKPOINT_PAGES


def test_a_legal_deadline_given_is_not_the_same_row_as_that_deadline_computed(
    engine: Engine, root: Path
) -> None:
    # A VAT refund received on 31 August is due on 28 February: given or computed, the
    # deadline is the same day, but a row that gave it is not the row that did not.
    refund = {"process": "tva_refund", "amount": "10", "received_on": "2026-08-31"}
    write_csv(
        incoming(root) / "a.csv",
        [row("R1", **refund, legal_due_on="2027-02-28"), row("R2", **refund)],
    )
    run_intake(engine, root)
    assert [item(engine, r)["legal_due_on"] for r in ("R1", "R2")] == [date(2027, 2, 28)] * 2
    assert [bool(item(engine, r)["legal_due_given"]) for r in ("R1", "R2")] == [True, False]
    write_csv(
        incoming(root) / "b.csv",
        [
            row("R1", **refund),  # conflict: R1 gave its deadline
            row("R2", **refund, legal_due_on="28/02/2027"),  # conflict: R2 did not
            row("R1", **refund, legal_due_on="28/02/2027"),  # duplicate
            row("R2", **refund),  # duplicate
        ],
    )
    summary = run_intake(engine, root)
    assert _file_counts(summary) == [(SIE, "b.csv", 0, 2, 2)]
    assert errors_rows(root / SIE / "rejected" / "b.csv.errors.csv") == [
        ["2", "R1", "same reference with different values"],
        ["3", "R2", "same reference with different values"],
    ]


def test_same_file_content_under_a_new_name_is_all_duplicates(engine: Engine, root: Path) -> None:
    rows = [row("R1"), row("R2", process="tva")]
    write_csv(incoming(root) / "a.csv", rows)
    run_intake(engine, root)
    write_csv(incoming(root) / "b.csv", rows)
    assert _file_counts(run_intake(engine, root)) == [(SIE, "b.csv", 0, 1, 1)]


def test_a_file_dropped_again_under_its_name_keeps_both_copies(engine: Engine, root: Path) -> None:
    write_csv(incoming(root) / "a.csv", [row("R1"), row("R2", process="tva")])
    first = run_intake(engine, root)
    write_csv(incoming(root) / "a.csv", [row("R1"), row("R2", process="tva")])
    again = run_intake(engine, root)
    # The very same file (name and content) was ingested: the recorded counts, nothing new.
    assert _file_counts(again) == _file_counts(first) == [(SIE, "a.csv", 1, 0, 1)]
    assert sorted(p.name for p in (root / SIE / "processed").iterdir()) == ["a.csv", "a~2.csv"]
    assert (root / SIE / "rejected" / "a~2.csv.errors.csv").exists()
    assert len(items(engine)) == 1 and len(intake_files(engine)) == 1
    write_csv(incoming(root) / "a.csv", [row("R3")])  # same name, new content: a new file
    assert _file_counts(run_intake(engine, root)) == [(SIE, "a.csv", 1, 0, 0)]
    assert (root / SIE / "processed" / "a~3.csv").exists()


# --- Files and folders -----------------------------------------------------------------------


def test_unreadable_file_goes_to_rejected_with_the_reason(engine: Engine, root: Path) -> None:
    folder = incoming(root)
    (folder / "garbage.csv").write_bytes(os.urandom(4096) + b"\x00\xff")
    (folder / "headless.csv").write_text("a;b;c\n1;2;3\n", encoding="utf-8")
    write_csv(folder / "ok.csv", [row("R1")])
    summary = run_intake(engine, root)
    assert _file_counts(summary) == [
        (SIE, "garbage.csv", 0, 0, 0),
        (SIE, "headless.csv", 0, 0, 0),
        (SIE, "ok.csv", 1, 0, 0),
    ]
    assert summary["unreadable"] == [
        {
            "sie": SIE,
            "file": "garbage.csv",
            "reason": "binary content (NUL bytes), not a text file",
        },
        {
            "sie": SIE,
            "file": "headless.csv",
            "reason": "missing column(s): reference, process, siren, received_on",
        },
    ]
    rejected = root / SIE / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == [
        "garbage.csv",
        "garbage.csv.errors.csv",
        "headless.csv",
        "headless.csv.errors.csv",
    ]
    assert errors_rows(rejected / "garbage.csv.errors.csv") == [
        ["", "", "unreadable file: binary content (NUL bytes), not a text file"]
    ]
    assert [r["unreadable_reason"] is not None for r in intake_files(engine)] == [True, True, False]


def test_a_file_that_breaks_mid_way_is_rolled_back_whole(engine: Engine, root: Path) -> None:
    path = incoming(root) / "broken.csv"
    write_csv(path, [row(f"R{n}") for n in range(10)])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f'R99;auvisir;{SIREN};"' + "x" * (2**20 + 1))
    summary = run_intake(engine, root, batch_size=3)
    assert summary["accepted"] == 0
    assert summary["unreadable"][0]["reason"].startswith("malformed CSV near line 12")
    assert items(engine) == [] and events(engine) == []
    assert (root / SIE / "rejected" / "broken.csv").exists()


def test_unknown_sie_folders_are_left_untouched_and_reported(engine: Engine, root: Path) -> None:
    unknown = write_csv(incoming(root, "SIE-99-99") / "a.csv", [row("R1")])
    write_csv(incoming(root) / "a.csv", [row("R1")])
    summary = run_intake(engine, root)
    assert summary["unknown_sies"] == ["SIE-99-99"]
    assert _file_counts(summary) == [(SIE, "a.csv", 1, 0, 0)]
    assert unknown.exists()
    assert sorted(p.name for p in (root / "SIE-99-99").iterdir()) == ["incoming"]
    with pytest.raises(NotFoundError, match="unknown SIE: SIE-99-99"):
        discover_queues(engine, root, "SIE-99-99")
    assert discover_queues(engine, root, OTHER_SIE).known == [OTHER_SIE]


def test_partial_files_are_ignored_and_files_are_taken_in_name_order(
    engine: Engine, root: Path
) -> None:
    folder = incoming(root)
    write_csv(folder / "b.csv", [row("R1", amount="2")])
    write_csv(folder / "a.csv", [row("R1", amount="1")])
    write_csv(folder / "0.csv.part", [row("R1", amount="0,5")])
    write_csv(folder / "0.tmp", [row("R1", amount="0,5")])
    summary = run_intake(engine, root)
    assert [f[1] for f in _file_counts(summary)] == ["a.csv", "b.csv"]
    assert item(engine, "R1")["amount_cents"] == 100
    assert sorted(p.name for p in folder.iterdir()) == ["0.csv.part", "0.tmp"]


def test_as_of_replays_a_past_night(engine: Engine, root: Path) -> None:
    write_csv(
        incoming(root) / "a.csv",
        [row("R1", received_on="2026-11-18"), row("R2", received_on="2026-11-19")],
    )
    summary = run_intake(engine, root, as_of=date(2026, 11, 18))
    assert _file_counts(summary) == [(SIE, "a.csv", 1, 0, 1)]
    assert errors_rows(root / SIE / "rejected" / "a.csv.errors.csv") == [
        ["3", "R2", "received_on after the day of intake (2026-11-18)"]
    ]
    [event] = events(engine)
    assert event["at"] == datetime(2026, 11, 17, 23, 0, tzinfo=UTC)  # 00:00 in Paris
    assert event["as_of"] == date(2026, 11, 18)
    assert intake_files(engine)[0]["as_of"] == date(2026, 11, 18)
    write_csv(incoming(root) / "b.csv", [row("R2", received_on="2026-11-19")])
    assert _file_counts(run_intake(engine, root, as_of=date(2026, 11, 19))) == [
        (SIE, "b.csv", 1, 0, 0)
    ]


def test_progress_reports_every_byte(engine: Engine, root: Path) -> None:
    path = write_csv(incoming(root) / "a.csv", [row(f"R{n}") for n in range(50)])
    size = path.stat().st_size
    advances: list[int] = []
    with reporting_progress(advances.append):
        ingest_file(engine, sie_code=SIE, path=path, as_of=AS_OF, author="t", batch_size=7)
    assert sum(advances) == size  # (how it advances within a file: test_queuefiles)


def test_the_database_is_left_consistent_counts(engine: Engine, root: Path) -> None:
    write_csv(incoming(root) / "a.csv", [row("R1"), row("R2"), row("R2"), row("R3", "x")])
    run_intake(engine, root)
    with engine.connect() as connection:
        rejected = connection.execute(text("SELECT count(*) FROM intake_rejection")).scalar_one()
    [record] = intake_files(engine)
    assert (record["accepted"], record["duplicates"], record["rejected"]) == (2, 1, 1)
    assert rejected == 1 and len(items(engine)) == 2 and len(events(engine)) == 2


def test_a_file_taken_meanwhile_by_another_run_is_not_reported(engine: Engine, root: Path) -> None:
    path = incoming(root) / "gone.csv"
    assert ingest_file(engine, sie_code=SIE, path=path, as_of=AS_OF, author="t") is None
    assert intake_files(engine) == []


def test_driver_errors_surface_as_sqlalchemy_errors_for_retries(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    import relais.intake
    from tasks.common import is_transient

    add_sies(sqlite_engine)
    root = tmp_path / "queues"
    write_csv(incoming(root) / "a.csv", [row("R1"), row("R2")])

    def locked(self: object, pending: object) -> dict[str, str]:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(relais.intake._SqliteWriter, "write", locked)
    with pytest.raises(OperationalError) as raised:
        run_intake(sqlite_engine, root)
    assert is_transient(raised.value)
    assert items(sqlite_engine) == [] and intake_files(sqlite_engine) == []
    assert (root / SIE / "incoming" / "a.csv").exists()


def test_cli_refuses_an_unknown_sie_and_a_malformed_date_before_running_the_flow(
    engine: Engine, root: Path
) -> None:
    from typer.testing import CliRunner

    from relais.cli.main import app

    runner = CliRunner()
    unknown = runner.invoke(app, ["intake", "--sie", "SIE-99-99", "--format", "json"])
    assert unknown.exit_code == 1
    assert "Error: unknown SIE: SIE-99-99" in unknown.stderr and unknown.stdout == ""
    malformed = runner.invoke(app, ["intake", "--as-of", "20/11/2026"])
    assert malformed.exit_code == 2
