"""SIE queue folders and the files in them: discovery, decoding and streaming rows (SPEC §4).

Layout: ``<root>/<SIE code>/incoming/`` holds the files SIEs drop, ``processed/`` the files once
ingested, ``rejected/`` the errors files (and the files that could not be read at all).

A file is read twice, both times as a stream: :func:`inspect_file` hashes it and settles its
encoding (UTF-8 with or without BOM, else Windows-1252; NUL bytes or bytes that fit neither
make it unreadable); :func:`read_rows` then yields its rows as raw text cells in
:data:`relais.domain.intake.COLUMNS` order, never holding the whole file in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from operator import itemgetter
from pathlib import Path
from typing import Final

from relais.domain.intake import COLUMNS, REQUIRED_COLUMNS, json_cell

INCOMING: Final = "incoming"
PROCESSED: Final = "processed"
REJECTED: Final = "rejected"

#: Only these are read; writers drop ``*.part``/``*.tmp`` files and rename them when complete.
QUEUE_SUFFIXES: Final = (".csv", ".jsonl")

_CHUNK: Final = 1 << 20
_COLUMN_SET: Final = frozenset(COLUMNS)
_UTF8_BOM: Final = codecs.BOM_UTF8
_UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: The five bytes Windows-1252 leaves undefined: any other byte string decodes (a search is
#: ten times faster than decoding the file a second time).
_CP1252_UNDEFINED: Final = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
# Excel-style CSV allows huge quoted fields; a label is at most a few kilobytes, but a broken
# quote can swallow the rest of a file: keep the limit generous yet bounded.
_FIELD_LIMIT: Final = 1 << 20

RawCells = tuple[str | None, ...]


class UnreadableFileError(Exception):
    """A queue file that cannot be read at all; the message says why (no file content)."""


@dataclass(frozen=True, slots=True)
class FileInspection:
    """What a first pass over a file found: hash, size, and encoding or why it is unreadable."""

    sha256: str
    size: int
    encoding: str | None
    problem: str | None = None


#: One row of a file: (line number, cells in COLUMNS order or None, problem, reference).
#: Rows that could not be split into cells carry a problem instead (and the reference, when
#: it could be found, for the errors file). Plain tuples: files can hold millions of rows.
RawRow = tuple[int, RawCells | None, str | None, str | None]


def sie_folders(root: Path) -> list[str]:
    """Names of the folders directly under the queue root, sorted (one per SIE)."""
    if not root.is_dir():
        return []
    entries = os.scandir(root)
    return sorted(entry.name for entry in entries if entry.is_dir() and entry.name[0] != ".")


def is_queue_file(name: str) -> bool:
    """Whether a file name is one intake reads (``*.csv``, ``*.jsonl``, any case)."""
    return name.lower().endswith(QUEUE_SUFFIXES) and not name.startswith(".")


def incoming_files(root: Path, sie_code: str) -> list[Path]:
    """The files waiting in an SIE's ``incoming/`` folder, in name order."""
    incoming = root / sie_code / INCOMING
    if not incoming.is_dir():
        return []
    return sorted(
        (Path(entry.path) for entry in os.scandir(incoming) if entry.is_file()),
        key=lambda path: path.name,
    )


def queue_files(root: Path, sie_code: str) -> list[Path]:
    """The incoming files intake will read, in the order it reads them."""
    return [path for path in incoming_files(root, sie_code) if is_queue_file(path.name)]


def inspect_file(path: Path) -> FileInspection:
    """Hash ``path`` and settle its encoding in one streaming pass.

    A file with NUL bytes (binary content) or bytes that are neither UTF-8 nor Windows-1252
    comes back with a ``problem`` and no encoding; the hash is always computed.
    """
    digest = sha256()
    utf8: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()
    cp1252 = True  # no byte Windows-1252 leaves undefined so far
    size = 0
    has_bom = False
    problem: str | None = None
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if size == 0:
                has_bom = chunk.startswith(_UTF8_BOM)
                if chunk.startswith(_UTF16_BOMS):
                    problem = "UTF-16 text: save the file as UTF-8 (or Windows-1252)"
            size += len(chunk)
            digest.update(chunk)
            if problem is not None:
                continue
            if b"\x00" in chunk:
                problem = "binary content (NUL bytes), not a text file"
                continue
            if utf8 is not None:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = None
            if cp1252 and _CP1252_UNDEFINED.search(chunk) is not None:
                cp1252 = False
            if utf8 is None and not cp1252:
                problem = "neither UTF-8 nor Windows-1252 text"
    if problem is None and utf8 is not None:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:  # a truncated multi-byte sequence at the very end
            utf8 = None
    encoding: str | None = None
    if problem is None:
        if utf8 is not None:
            encoding = "utf-8-sig" if has_bom else "utf-8"
        elif cp1252 and not has_bom:
            encoding = "cp1252"
        else:
            problem = "neither UTF-8 nor Windows-1252 text"
    return FileInspection(digest.hexdigest(), size, encoding, problem)


class RowReader:
    """Streams the rows of one queue file (CSV or JSONL) as :class:`RawRow` values.

    ``bytes_read`` tells how far into the file reading has got, for progress bars.
    """

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self._raw = io.FileIO(path, "r")
        buffered = io.BufferedReader(self._raw, buffer_size=_CHUNK)
        self._text = io.TextIOWrapper(buffered, encoding=encoding, newline="")
        self.is_jsonl = path.name.lower().endswith(".jsonl")
        self._csv_layout: tuple[str, list[int], int] | None = None
        self._header_line = 1
        if not self.is_jsonl:
            self._csv_layout = self._read_header()

    @property
    def bytes_read(self) -> int:
        """Bytes consumed from the file so far (read ahead by at most one buffer)."""
        return self._raw.tell() if not self._raw.closed else 0

    def close(self) -> None:
        """Close the file."""
        self._text.close()

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[RawRow]:
        if self.is_jsonl:
            return self._jsonl_rows()
        return self._csv_rows()

    def _read_header(self) -> tuple[str, list[int], int]:
        header_line = self._text.readline()
        delimiter: str | None = None
        # Excel may write a "sep=;" line before the header to name the delimiter.
        hint = header_line.strip().lower()
        if hint.startswith("sep=") and len(hint) == 5 and hint[4] in ";,":
            delimiter = hint[4]
            header_line = self._text.readline()
            self._header_line = 2
        if not header_line.strip():
            raise UnreadableFileError("no header line")
        if delimiter is None:
            # Whichever of ";" and "," the header uses more (column names hold neither); a
            # one-column header can only be missing columns anyway.
            delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
        names = next(csv.reader([header_line], delimiter=delimiter))
        columns = [name.strip().lstrip("\ufeff").lower() for name in names]
        twice = sorted({name for name in COLUMNS if columns.count(name) > 1})
        if twice:
            raise UnreadableFileError(f"column given twice: {', '.join(twice)}")
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise UnreadableFileError(f"missing column(s): {', '.join(missing)}")
        # Absent optional columns read a None appended to each row, one past the last cell.
        width = len(columns)
        indices = [columns.index(name) if name in columns else width for name in COLUMNS]
        return delimiter, indices, width

    def _csv_rows(self) -> Iterator[RawRow]:
        assert self._csv_layout is not None
        delimiter, indices, width = self._csv_layout
        pad = width in indices
        get = itemgetter(*indices)
        reference_index = indices[0]
        csv.field_size_limit(_FIELD_LIMIT)
        reader = csv.reader(self._text, delimiter=delimiter, strict=False)
        first_line = self._header_line + 1
        consumed = 0  # lines read by the reader so far, after the header
        try:
            for cells in reader:
                line = consumed + first_line  # where this record starts, even if it spans lines
                consumed = reader.line_num
                count = len(cells)
                if count != width:
                    if count > width and not any(cells[width:]):
                        del cells[width:]  # trailing empty cells, as spreadsheets write them
                    elif any(cell.strip() for cell in cells):
                        reference = cells[reference_index] if reference_index < count else None
                        problem = f"wrong number of fields: {count} instead of {width}"
                        yield (line, None, problem, reference)
                        continue
                    else:
                        continue  # a blank line
                if not cells[reference_index] and not any(cell.strip() for cell in cells):
                    continue  # a row of empty cells
                if pad:
                    cells.append(None)  # type: ignore[arg-type]
                yield (line, get(cells), None, None)
        except csv.Error as error:
            near = consumed + first_line
            raise UnreadableFileError(f"malformed CSV near line {near}: {error}") from None

    def _jsonl_rows(self) -> Iterator[RawRow]:
        loads = json.loads
        for line, text in enumerate(self._text, start=1):
            if not text.strip():
                continue
            try:
                document = loads(text)
            except ValueError:
                yield (line, None, "invalid JSON", None)
                continue
            if not isinstance(document, dict):
                yield (line, None, "not a JSON object", None)
                continue
            if not _COLUMN_SET.issuperset(document):  # keys in another case, or extra keys
                document = {str(key).strip().lower(): value for key, value in document.items()}
            cells = tuple(map(document.get, COLUMNS))
            if not all(cell is None or type(cell) is str for cell in cells):
                try:
                    cells = tuple(map(json_cell, cells))
                except TypeError:
                    reference = document.get("reference")
                    problem = "invalid value: true/false, list or object where text is expected"
                    yield (line, None, problem, reference if isinstance(reference, str) else None)
                    continue
            yield (line, cells, None, None)
