"""The demo's queue files: valid rows valid, bad rows bad as intended, and always the same."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import yaml

from relais.demo import (
    DEMO_FILE_PREFIX,
    DEMO_REFERENCE_PREFIX,
    DEMO_SIES,
    Defect,
    DemoFile,
    FileFormat,
    break_siren,
    day_files,
    demo_days,
    luhn_valid,
    make_siren,
    write_files,
)
from relais.domain.catalogue import CATALOGUE
from relais.domain.sla import add_months

DAYS = demo_days(date(2026, 11, 26), 6)
SHIPPED_REFERENCE = Path(__file__).resolve().parents[1] / "relais" / "data" / "reference.yaml"


def all_files(seed: int = 20231) -> list[tuple[int, date, DemoFile]]:
    return [
        (index, day, demo_file)
        for index, day in enumerate(DAYS)
        for demo_file in day_files(day, index, final=index == len(DAYS) - 1, seed=seed)
    ]


def parse(demo_file: DemoFile) -> list[dict[str, str]]:
    """Read a rendered file back the way an SIE's reader would, without the generator's help."""
    raw = demo_file.render()
    if demo_file.file_format is FileFormat.JSONL:
        return [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    if demo_file.file_format is FileFormat.CSV_CP1252:
        text, delimiter = raw.decode("cp1252"), ";"
    else:
        text, delimiter = raw.decode("utf-8"), ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [{key.lower(): value for key, value in row.items() if value} for row in reader]


def test_luhn_rule() -> None:
    assert luhn_valid("79927398713")  # the textbook example
    assert not luhn_valid("79927398710")
    assert luhn_valid("123 456 782")
    assert not luhn_valid("12345678A")


def test_made_up_sirens_are_valid_and_broken_ones_are_not() -> None:
    import random

    rng = random.Random(7)
    for _ in range(500):
        siren = make_siren(rng)
        assert len(siren) == 9 and luhn_valid(siren)
        assert not luhn_valid(break_siren(siren))


def test_demo_days_are_paris_working_days() -> None:
    # 11 November is a public holiday, 7–8 November a weekend.
    assert demo_days(date(2026, 11, 12), 4) == [
        date(2026, 11, 6),
        date(2026, 11, 9),
        date(2026, 11, 10),
        date(2026, 11, 12),
    ]


def test_the_demo_sies_exist_in_the_shipped_reference_data() -> None:
    shipped = yaml.safe_load(SHIPPED_REFERENCE.read_text(encoding="utf-8"))
    codes = {sie["code"] for sie in shipped["sies"]}
    assert {sie for sie, _ in DEMO_SIES} <= codes


def test_generation_is_deterministic() -> None:
    first = [(f.sie, f.name, f.render()) for _, _, f in all_files()]
    second = [(f.sie, f.name, f.render()) for _, _, f in all_files()]
    other_seed = [(f.sie, f.name, f.render()) for _, _, f in all_files(seed=1)]
    assert first == second
    assert first != other_seed


def test_volumes_are_a_scaled_down_day_of_metropolitan_sies() -> None:
    per_night = [sum(len(f.rows) for f in day_files(day, i)) for i, day in enumerate(DAYS)]
    assert all(100 <= count <= 250 for count in per_night), per_night


def test_clean_rows_satisfy_every_intake_rule() -> None:
    for _, day, demo_file in all_files():
        assert demo_file.name.startswith(DEMO_FILE_PREFIX)
        for row in demo_file.rows:
            assert row.reference.startswith(DEMO_REFERENCE_PREFIX)
            assert row.received_on <= day
            if row.defect is not None:
                continue
            assert luhn_valid(row.siren), row
            assert row.process in CATALOGUE
            if row.process == "tva_refund":
                assert row.amount_cents is not None and row.amount_cents > 0


def test_references_are_unique_per_sie_except_the_duplicate() -> None:
    seen: dict[str, set[str]] = {}
    for _, _, demo_file in all_files():
        references = seen.setdefault(demo_file.sie, set())
        for row in demo_file.rows:
            if row.defect is Defect.DUPLICATE:
                assert row.reference in references
            else:
                assert row.reference not in references
                references.add(row.reference)


def test_each_kind_of_bad_row_appears_once_and_is_bad_in_the_file() -> None:
    found: dict[Defect, list[dict[str, str]]] = {}
    for _, _, demo_file in all_files():
        parsed = parse(demo_file)
        for row, line in zip(demo_file.rows, parsed, strict=True):
            if row.defect is not None:
                found.setdefault(row.defect, []).append(line)
    assert {defect: len(lines) for defect, lines in found.items()} == {
        Defect.INVALID_SIREN: 1,
        Defect.UNKNOWN_PROCESS: 1,
        Defect.MISSING_AMOUNT: 1,
        Defect.DUPLICATE: 1,
    }
    assert not luhn_valid(found[Defect.INVALID_SIREN][0]["siren"])
    assert found[Defect.UNKNOWN_PROCESS][0]["process"] not in CATALOGUE
    missing = found[Defect.MISSING_AMOUNT][0]
    assert missing["process"] == "tva_refund" and "amount" not in missing


def test_the_duplicate_repeats_an_earlier_row_exactly() -> None:
    earlier: dict[tuple[str, str], dict[str, str]] = {}
    duplicates = []
    for _, _, demo_file in all_files():
        for row, line in zip(demo_file.rows, parse(demo_file), strict=True):
            key = (demo_file.sie, row.reference)
            if row.defect is Defect.DUPLICATE:
                duplicates.append((line, earlier[key]))
            else:
                earlier[key] = line
    assert len(duplicates) == 1
    assert duplicates[0][0] == duplicates[0][1]


def test_file_formats_are_the_ones_intake_must_read() -> None:
    formats = [f.file_format for _, _, f in all_files()]
    assert formats.count(FileFormat.CSV_CP1252) == 1
    assert formats.count(FileFormat.JSONL) == 1
    windows = next(f for _, _, f in all_files() if f.file_format is FileFormat.CSV_CP1252)
    raw = windows.render()
    assert b"\r\n" in raw and b";" in raw
    assert b"\x80" in raw  # the euro sign in Windows-1252
    text = raw.decode("cp1252")
    assert "\u00a0" in text  # no-break space between thousands
    assert any(line.count("/") >= 2 for line in text.splitlines()[1:])  # DD/MM/YYYY dates
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        raise AssertionError("the Windows export should not be valid UTF-8")
    jsonl = next(f for _, _, f in all_files() if f.file_format is FileFormat.JSONL)
    assert jsonl.name.endswith(".jsonl")
    assert all(line["reference"].startswith(DEMO_REFERENCE_PREFIX) for line in parse(jsonl))


def test_files_land_complete_in_incoming(tmp_path: Path) -> None:
    files = day_files(DAYS[0], 0)
    written = write_files(tmp_path, files)
    assert [p.relative_to(tmp_path).parts[1] for p in written] == ["incoming"] * len(files)
    assert not list(tmp_path.rglob("*.part"))
    assert written[0].read_bytes() == files[0].render()


def test_only_the_final_night_brings_claims_past_their_legal_deadline() -> None:
    last = DAYS[-1]
    late = [
        (index, row)
        for index, day, demo_file in all_files()
        for row in demo_file.rows
        if add_months(row.received_on, 6) < day
    ]
    assert [index for index, _ in late] == [len(DAYS) - 1] * 2
    assert all(row.process == "tva_refund" and row.defect is None for _, row in late)
    assert all(add_months(row.received_on, 6) < last for _, row in late)
