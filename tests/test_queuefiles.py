"""Queue folders and files: discovery, encodings, delimiters, headers, JSONL, line numbers."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.queuefiles import (
    RowReader,
    UnreadableFileError,
    inspect_file,
    queue_files,
    sie_folders,
)
from tests.intake_data import SIREN, incoming, row, write_csv, write_jsonl


def _rows(path: Path) -> list[tuple[int, tuple[str | None, ...] | None, str | None, str | None]]:
    inspection = inspect_file(path)
    assert inspection.problem is None, inspection.problem
    assert inspection.encoding is not None
    with RowReader(path, inspection.encoding) as reader:
        return list(reader)


# --- Discovery -------------------------------------------------------------------------------


def test_only_csv_and_jsonl_files_are_read_in_name_order(tmp_path: Path) -> None:
    folder = incoming(tmp_path, "SIE-75-08")
    for name in ("b.csv", "a.jsonl", "c.CSV", "d.csv.part", "e.tmp", "f.txt", ".hidden.csv"):
        (folder / name).write_text("x", encoding="utf-8")
    (folder / "sub.csv").mkdir()
    assert [p.name for p in queue_files(tmp_path, "SIE-75-08")] == ["a.jsonl", "b.csv", "c.CSV"]


def test_sie_folders_are_the_directories_under_the_root(tmp_path: Path) -> None:
    for name in ("SIE-75-17", "SIE-75-08", ".trash"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.txt").write_text("x", encoding="utf-8")
    assert sie_folders(tmp_path) == ["SIE-75-08", "SIE-75-17"]
    assert sie_folders(tmp_path / "missing") == []
    assert queue_files(tmp_path, "SIE-75-08") == []


# --- Encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp1252", "cp1252")],
)
def test_encoding_is_detected_and_labels_decode(
    tmp_path: Path, encoding: str, detected: str
) -> None:
    path = write_csv(tmp_path / "f.csv", [row("R1", label="Créteil – « Évry »")], encoding=encoding)
    inspection = inspect_file(path)
    assert inspection.encoding == detected
    assert inspection.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert inspection.size == path.stat().st_size
    [(_line, cells, _problem, _reference)] = _rows(path)
    assert cells is not None and cells[0] == "R1" and cells[6] == "Créteil – « Évry »"


def test_windows_1252_after_the_first_megabyte(tmp_path: Path) -> None:
    rows = [row(f"R{n:06d}", label="x" * 40) for n in range(20_000)]
    rows.append(row("LAST", label="Créteil"))
    path = write_csv(tmp_path / "big.csv", rows, encoding="cp1252")
    assert path.stat().st_size > 2**20
    assert inspect_file(path).encoding == "cp1252"
    assert _rows(path)[-1][1][6] == "Créteil"  # type: ignore[index]


def test_binary_garbage_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(os.urandom(5000) + b"\x00")
    inspection = inspect_file(path)
    assert inspection.encoding is None
    assert inspection.problem == "binary content (NUL bytes), not a text file"
    assert inspection.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bytes_that_are_neither_utf8_nor_windows_1252(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"reference;process\n\x81\x8d\x8f\x90\x9d;x\n")
    assert inspect_file(path).problem == "neither UTF-8 nor Windows-1252 text"


# --- CSV layout ------------------------------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "newline"), [(";", "\n"), (",", "\r\n"), (";", "\r\n")])
def test_delimiter_is_sniffed_and_line_ends_do_not_matter(
    tmp_path: Path, delimiter: str, newline: str
) -> None:
    path = write_csv(
        tmp_path / "f.csv",
        [row("R1", amount="12,50", label="a;b,c"), row("R2")],
        delimiter=delimiter,
        newline=newline,
    )
    rows = _rows(path)
    assert [(line, cells[0], cells[4], cells[6]) for line, cells, _p, _r in rows] == [  # type: ignore[index]
        (2, "R1", "12,50", "a;b,c"),
        (3, "R2", "", ""),
    ]


def test_headers_are_case_insensitive_in_any_order_and_optional_columns_may_lack(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        f" SIREN ;Reference;RECEIVED_ON;Process;extra\n{SIREN};R1;2026-11-02;auvisir;ignored\n",
        encoding="utf-8",
    )
    [(line, cells, problem, _reference)] = _rows(path)
    assert line == 2 and problem is None
    assert cells == ("R1", "auvisir", SIREN, "2026-11-02", None, None, None)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "no header line"),
        ("\n\n", "no header line"),
        ("reference;process;siren\nR1;auvisir;1\n", "missing column(s): received_on"),
        ("a,b\n1,2\n", "missing column(s): reference, process, siren, received_on"),
        (
            "reference;process;siren;received_on;Reference\n",
            "column given twice: reference",
        ),
    ],
)
def test_files_without_a_usable_header_are_unreadable(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UnreadableFileError, match=f"^{re.escape(reason)}$"):
        RowReader(path, "utf-8")


def test_line_numbers_count_blank_lines_and_multi_line_cells(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        "reference;process;siren;received_on;label\n"
        f"R1;auvisir;{SIREN};2026-11-02;\n"
        "\n"
        f'R2;auvisir;{SIREN};2026-11-02;"two\nlines"\n'
        ";;;;\n"
        f"R3;auvisir;{SIREN};2026-11-02;;;\n"
        f"R4;auvisir;{SIREN};2026-11-02;x;surplus\n"
        f"R5;auvisir;{SIREN}\n",
        encoding="utf-8",
    )
    rows = _rows(path)
    assert [
        (line, cells[0] if cells else None, problem, ref) for line, cells, problem, ref in rows
    ] == [
        (2, "R1", None, None),
        (4, "R2", None, None),
        (7, "R3", None, None),
        (8, None, "wrong number of fields: 6 instead of 5", "R4"),
        (9, None, "wrong number of fields: 3 instead of 5", "R5"),
    ]
    assert rows[1][1][6] == "two\nlines"  # type: ignore[index]


def test_a_runaway_quote_makes_the_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        "reference;process;siren;received_on\n" + f'R1;auvisir;{SIREN};"' + "x" * (2**20 + 10),
        encoding="utf-8",
    )
    with pytest.raises(UnreadableFileError, match="malformed CSV near line 2"):
        _rows(path)


# --- JSONL -----------------------------------------------------------------------------------


def test_jsonl_objects_with_any_key_case_and_json_numbers(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    write_jsonl(
        path,
        [
            {
                "Reference": "R1",
                "PROCESS": "tva_refund",
                "siren": int(SIREN),
                "received_on": "2026-11-02",
                "amount": 12345.5,
                "label": "Créteil",
                "other": [1],
            },
            {
                "reference": "R2",
                "process": "auvisir",
                "siren": SIREN,
                "received_on": "2026-11-02",
                "amount": None,
            },
        ],
    )
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n{not json\n[1, 2]\n")
        handle.write(json.dumps({"reference": "R3", "label": {"nested": True}}) + "\n")
    assert _rows(path) == [
        (1, ("R1", "tva_refund", SIREN, "2026-11-02", "12345.5", None, "Créteil"), None, None),
        (2, ("R2", "auvisir", SIREN, "2026-11-02", None, None, None), None, None),
        (4, None, "invalid JSON", None),
        (5, None, "not a JSON object", None),
        (
            6,
            None,
            "invalid value: true/false, list or object where text is expected",
            "R3",
        ),
    ]


def test_bytes_read_advances_for_progress(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", [row(f"R{n}", label="x" * 100) for n in range(30_000)])
    size = path.stat().st_size
    with RowReader(path, "utf-8") as reader:
        seen = [reader.bytes_read for index, _row in enumerate(reader) if index % 5000 == 0]
        assert reader.bytes_read == size
    assert seen == sorted(seen) and seen[0] < size and seen[-1] > size // 2


def test_utf16_exports_are_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "unicode.csv"
    path.write_bytes("reference;process\r\nR1;auvisir\r\n".encode("utf-16"))
    inspection = inspect_file(path)
    assert inspection.problem == "UTF-16 text: save the file as UTF-8 (or Windows-1252)"


def test_excel_separator_line_names_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text(
        "sep=,\r\nreference,process,siren,received_on,label\r\n"
        f"R1,auvisir,{SIREN},2026-11-02,a;b\r\n",
        encoding="cp1252",
    )
    assert _rows(path) == [
        (3, ("R1", "auvisir", SIREN, "2026-11-02", None, None, "a;b"), None, None)
    ]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.binary(max_size=40)
        | st.text(max_size=20).map(lambda text: text.encode("utf-8"))
        | st.sampled_from([b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d", b"\xc3\x81", b"\xe9"]),
        max_size=8,
    )
)
def test_the_encoding_found_is_the_first_of_utf8_and_cp1252_that_decodes(
    tmp_path: Path, parts: list[bytes]
) -> None:
    data = b"reference;process;siren;received_on\n" + b"".join(parts).replace(b"\x00", b"")
    path = tmp_path / "export.csv"
    path.write_bytes(data)

    def decodes(encoding: str) -> bool:
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            return False
        return True

    expected = "utf-8" if decodes("utf-8") else "cp1252" if decodes("cp1252") else None
    assert inspect_file(path).encoding == expected
