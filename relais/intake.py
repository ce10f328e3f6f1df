"""Intake: turning the files SIEs drop in their queues into work items (SPEC §4).

Each file is ingested in ONE transaction: its accepted rows (``work_item``), their ``received``
events, its rejected rows (``intake_rejection``) and the ``intake_file`` row that records it
(SIE, file name, SHA-256, counts). Only then is its errors file written (temp file + rename) and
the file moved out of ``incoming/``. A crash before the commit leaves nothing behind; a crash
after it leaves the file in ``incoming/`` with its ``intake_file`` row committed, and the next
run only finishes the errors file and the move, from what the database recorded. Either way the
end state and the reported counts are those of one clean run.

Rows are streamed in batches (:mod:`relais.intake_reader`; a large file is read and validated
by a reader process while this one writes) and written set-based: on SQLite one ``INSERT …
SELECT`` of the batch from its JSON text and one of its ``received`` events, on PostgreSQL a
``COPY`` of each. The unique (SIE, reference) constraint settles what is new; a row whose
reference is already taken is a duplicate when its normalised values are the same
(:func:`relais.domain.intake.row_content`), and rejected otherwise, whether the first one came
from an earlier file or the same file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from models.tables import IntakeFile, IntakeRejection, ItemEvent, Sie, WorkItem
from relais.csvcells import safe_cell
from relais.db import checkpoints_aside
from relais.domain.intake import REASON_CONFLICT, RowContent, row_content
from relais.errors import ConfigurationError, NotFoundError
from relais.intake_reader import (
    READER_PROCESS_BATCH,
    READER_PROCESS_FIRST_BATCH,
    READER_PROCESS_MIN_BYTES,
    NewRow,
    RowBatch,
    lend_reader_process,
    read_batches,
    spare_core,
)
from relais.queuefiles import (
    PROCESSED,
    REJECTED,
    UnreadableFileError,
    inspect_file,
    queue_files,
    sie_folders,
)

#: Rows validated and written together; bounds memory whatever the size of a file.
BATCH_SIZE: Final = 10_000
#: Name suffix of the errors file written for a file with rejected rows.
ERRORS_SUFFIX: Final = ".errors.csv"
ERRORS_HEADER: Final = ("line", "reference", "reason")

# Folders intake creates: never writable by everyone, whatever the umask says.
_FOLDER_MODE: Final = 0o775
# Class of the PostgreSQL advisory locks that serialise the intake of one SIE ("RQ").
_PG_INTAKE_LOCK: Final = 0x5251

_work_item = WorkItem.__table__  # type: ignore[attr-defined]
_item_event = ItemEvent.__table__  # type: ignore[attr-defined]
_intake_file = IntakeFile.__table__  # type: ignore[attr-defined]
_rejection = IntakeRejection.__table__  # type: ignore[attr-defined]
_sie = Sie.__table__  # type: ignore[attr-defined]


# --- Progress -------------------------------------------------------------------------------

ProgressCallback = Callable[[int], None]
_progress_listeners: list[ProgressCallback] = []
_progress_lock = threading.Lock()


@contextlib.contextmanager
def reporting_progress(callback: ProgressCallback) -> Iterator[None]:
    """Call ``callback(bytes)`` as intake reads queue files, in this process, while inside."""
    with _progress_lock:
        _progress_listeners.append(callback)
    try:
        yield
    finally:
        with _progress_lock:
            _progress_listeners.remove(callback)


def _report_progress(advanced: int) -> None:
    if advanced > 0:
        for callback in tuple(_progress_listeners):
            callback(advanced)


# --- Results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What intake did with one file (``unreadable`` says why a file could not be read)."""

    sie: str
    file: str
    accepted: int
    duplicates: int
    rejected: int
    unreadable: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The file's entry of the ``relais intake`` JSON output."""
        return {
            "sie": self.sie,
            "file": self.file,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True)
class QueueDiscovery:
    """Queue folders found under the root: SIEs to ingest, and folders no SIE owns."""

    known: list[str]
    unknown: list[str]


@dataclass(slots=True)
class _Counts:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class _Recorded:
    file_id: int
    outcome: FileOutcome


def summarise(outcomes: Iterable[FileOutcome], unknown_sies: Sequence[str] = ()) -> dict[str, Any]:
    """The ``relais intake`` JSON document: each file, the totals, and what was left aside."""
    files = list(outcomes)
    return {
        "files": [outcome.as_json() for outcome in files],
        "accepted": sum(outcome.accepted for outcome in files),
        "duplicates": sum(outcome.duplicates for outcome in files),
        "rejected": sum(outcome.rejected for outcome in files),
        "unknown_sies": list(unknown_sies),
        "unreadable": [
            {"sie": outcome.sie, "file": outcome.file, "reason": outcome.unreadable}
            for outcome in files
            if outcome.unreadable is not None
        ],
    }


# --- Discovery ------------------------------------------------------------------------------


def known_sie_codes(connection: Connection) -> set[str]:
    """Codes of the SIEs in the reference data."""
    return set(connection.execute(select(_sie.c.code)).scalars())


def discover_queues(engine: Engine, root: Path, sie: str | None = None) -> QueueDiscovery:
    """The SIE folders to ingest under ``root`` (only ``sie`` if given) and the unknown ones.

    Raises :class:`NotFoundError` when ``sie`` is not an SIE of the reference data.
    """
    with engine.connect() as connection:
        known = known_sie_codes(connection)
    if sie is not None:
        if sie not in known:
            raise NotFoundError(f"unknown SIE: {sie}")
        return QueueDiscovery(known=[sie], unknown=[])
    folders = sie_folders(root)
    return QueueDiscovery(
        known=[name for name in folders if name in known],
        unknown=[name for name in folders if name not in known],
    )


# --- Ingesting ------------------------------------------------------------------------------


def ingest_sie(
    engine: Engine,
    *,
    sie_code: str,
    root: Path,
    as_of: date,
    author: str,
    flow_run_id: str | None = None,
    timezone: tzinfo | None = None,
    batch_size: int = BATCH_SIZE,
    reader_process: bool | None = None,
    next_sie: str | None = None,
) -> list[FileOutcome]:
    """Ingest the files waiting in one SIE's queue, one at a time, in name order.

    ``reader_process``: read files in a reader process beside the writes (True), in this
    process (False), or as ``RELAIS_INTAKE_READER`` says (None; by default, on SQLite, large
    files in a reader process when a second core is there). ``next_sie``: the SIE whose
    queue is taken next, whose first file a reader process may read ahead.
    """
    outcomes = []
    paths = queue_files(root, sie_code)
    for index, path in enumerate(paths):
        if index + 1 < len(paths):
            read_ahead: Path | None = paths[index + 1]
        else:
            read_ahead = next(iter(queue_files(root, next_sie)), None) if next_sie else None
        outcome = ingest_file(
            engine,
            sie_code=sie_code,
            path=path,
            as_of=as_of,
            author=author,
            flow_run_id=flow_run_id,
            timezone=timezone,
            batch_size=batch_size,
            reader_process=reader_process,
            read_ahead=read_ahead,
        )
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def ingest_file(
    engine: Engine,
    *,
    sie_code: str,
    path: Path,
    as_of: date,
    author: str,
    flow_run_id: str | None = None,
    timezone: tzinfo | None = None,
    batch_size: int = BATCH_SIZE,
    reader_process: bool | None = None,
    read_ahead: Path | None = None,
) -> FileOutcome | None:
    """Ingest one queue file of ``sie_code`` and move it out of ``incoming/``.

    ``read_ahead``: the file taken after this one, for a reader process to read ahead.

    ``as_of`` is the day of intake: the latest allowed ``received_on`` and the date of the
    ``received`` events (at 00:00 local time), written with ``author`` as their author.
    Returns None when the file vanished meanwhile (another intake run took it).
    """
    if timezone is None:
        from relais.settings import get_settings

        timezone = get_settings().timezone
    try:
        inspection = inspect_file(path)
    except FileNotFoundError:
        return None
    recorded = _recorded(engine, sie_code, path.name, inspection.sha256)
    if recorded is None:
        job = _FileJob(
            sie_code=sie_code,
            path=path,
            sha256=inspection.sha256,
            as_of=as_of,
            at=datetime.combine(as_of, time(0), tzinfo=timezone),
            author=author,
            flow_run_id=flow_run_id,
            batch_size=batch_size,
            size=inspection.size,
            reader_process=reader_process,
            read_ahead=read_ahead,
        )
        problem = inspection.problem
        try:
            if problem is None and inspection.encoding is not None:
                try:
                    recorded = job.run(engine, inspection.encoding)
                except UnreadableFileError as error:
                    problem = str(error)
            if recorded is None:
                recorded = job.record_unreadable(engine, problem or "unreadable file")
        except IntegrityError:
            # Another intake run recorded this very file first: finish it from its record.
            recorded = _recorded(engine, sie_code, path.name, inspection.sha256)
            if recorded is None:
                raise
        _report_progress(inspection.size - job.progress_reported)
    else:
        _report_progress(inspection.size)
    try:
        _finish(engine, recorded, path)
    except FileNotFoundError:
        if path.exists():
            raise
        return None  # moved by another intake run that recorded the same file
    except OSError as error:
        # A full disk, or a folder that cannot be written: the rows are recorded, the file
        # stays in incoming/ and the next run only finishes it (errors file and move).
        where = f" ({error.filename})" if error.filename else ""
        raise ConfigurationError(
            f"{sie_code}/{path.name}: rows recorded, but the file could not be finished: "
            f"{error.strerror or error}{where}. It stays in incoming/; fix the queue folder "
            "and run intake again to finish it"
        ) from error
    return recorded.outcome


def _recorded(engine: Engine, sie_code: str, file_name: str, sha256: str) -> _Recorded | None:
    """The committed record of this exact file (name and content), if it was ingested."""
    with engine.connect() as connection:
        row = connection.execute(
            select(
                _intake_file.c.id,
                _intake_file.c.accepted,
                _intake_file.c.duplicates,
                _intake_file.c.rejected,
                _intake_file.c.unreadable_reason,
            ).where(
                _intake_file.c.sie_code == sie_code,
                _intake_file.c.file_name == file_name,
                _intake_file.c.sha256 == sha256,
            )
        ).first()
    if row is None:
        return None
    return _Recorded(row.id, FileOutcome(sie_code, file_name, *row[1:4], row.unreadable_reason))


@dataclass(slots=True)
class _FileJob:
    """The transaction that ingests one readable file."""

    sie_code: str
    path: Path
    sha256: str
    as_of: date
    at: datetime
    author: str
    flow_run_id: str | None
    batch_size: int
    size: int = 0
    reader_process: bool | None = None
    #: The file intake takes next, for a reader process to read ahead.
    read_ahead: Path | None = None
    progress_reported: int = 0
    counts: _Counts = field(default_factory=_Counts)

    def record_unreadable(self, engine: Engine, reason: str) -> _Recorded:
        """Record a file that cannot be read at all (no rows are taken from it)."""
        with engine.begin() as connection:
            file_id = self._insert_file_row(connection, unreadable_reason=reason)
        return _Recorded(file_id, FileOutcome(self.sie_code, self.path.name, 0, 0, 0, reason))

    def _insert_file_row(self, connection: Connection, unreadable_reason: str | None) -> int:
        statement = (
            insert(_intake_file)
            .values(
                sie_code=self.sie_code,
                file_name=self.path.name,
                sha256=self.sha256,
                accepted=0,
                duplicates=0,
                rejected=0,
                unreadable_reason=unreadable_reason,
                as_of=self.as_of,
                flow_run_id=self.flow_run_id,
                ingested_at=datetime.now(UTC),
            )
            .returning(_intake_file.c.id)
        )
        return int(connection.execute(statement).scalar_one())

    def run(self, engine: Engine, encoding: str) -> _Recorded:
        """Ingest every row in one transaction; raises UnreadableFileError (rolled back)."""
        now = datetime.now(UTC)
        # On SQLite the commit leaves copying the log into the database to a thread, which
        # does it while the next file is written.
        with engine.connect() as connection, checkpoints_aside(connection), connection.begin():
            # The file row first: on SQLite this write takes the database's write lock for the
            # whole transaction, and a concurrent run ingesting the same file fails here.
            file_id = self._insert_file_row(connection, unreadable_reason=None)
            driver_error = connection.dialect.loaded_dbapi.Error
            try:
                writer = _writer_for(connection, self, file_id, now)
                try:
                    for batch in self._batches(encoding, writer):
                        self._write(connection, writer, batch, file_id)
                        self._advance(batch.bytes_read)
                finally:
                    writer.close()
            except driver_error as error:
                # The writers use the driver's cursor: give its errors SQLAlchemy's classes, so
                # that retries see a lock or a lost connection as transient, like elsewhere.
                raise DBAPIError.instance(None, None, error, driver_error) from error
            connection.execute(
                update(_intake_file)
                .where(_intake_file.c.id == file_id)
                .values(
                    accepted=self.counts.accepted,
                    duplicates=self.counts.duplicates,
                    rejected=self.counts.rejected,
                )
            )
        counts = self.counts
        outcome = FileOutcome(
            self.sie_code, self.path.name, counts.accepted, counts.duplicates, counts.rejected
        )
        return _Recorded(file_id, outcome)

    def _batches(self, encoding: str, writer: _Writer) -> Iterator[RowBatch]:
        """The file's batches, read here or, for a large file, by a reader process."""
        as_json = writer.as_json
        if self._in_reader_process(self.size, writer):
            size = min(self.batch_size, READER_PROCESS_BATCH)
            first = READER_PROCESS_FIRST_BATCH
            then = self.read_ahead
            if then is not None:
                try:
                    if not self._in_reader_process(then.stat().st_size, writer):
                        then = None
                except OSError:
                    then = None
            with lend_reader_process(self.path) as reader:
                if then is not None:
                    # Another reader process reads the next file meanwhile.
                    with lend_reader_process(then) as other:
                        other.read_ahead(then, self.as_of, size, as_json)
                yield from reader.batches(
                    self.path, encoding, self.as_of, size, as_json, first, sha256=self.sha256
                )
        else:
            yield from read_batches(self.path, encoding, self.as_of, self.batch_size, as_json)

    def _in_reader_process(self, size: int, writer: _Writer) -> bool:
        """Whether a file of ``size`` bytes is read by a reader process."""
        if self.reader_process is not None:
            return self.reader_process
        from relais.settings import get_settings

        mode = get_settings().intake_reader
        return mode == "process" or (
            mode == "auto"
            and writer.reader_process_helps
            and size >= READER_PROCESS_MIN_BYTES
            and spare_core()
        )

    def _write(
        self, connection: Connection, writer: _Writer, batch: RowBatch, file_id: int
    ) -> None:
        counts = self.counts
        rejections = batch.rejections
        if batch.count:
            # The batch's references that were taken before it: line, new and stored content.
            taken = writer.write(batch)
            counts.accepted += batch.count - len(taken)
            stored: dict[str, RowContent] = {}
            for line, reference, content, stored_content in taken:
                stored[reference] = stored_content
                if content == stored_content:
                    counts.duplicates += 1
                else:
                    rejections.append((line, reference, REASON_CONFLICT))
            for line, reference, content, first in batch.repeats:
                if content == stored.get(reference, first):
                    counts.duplicates += 1
                else:
                    rejections.append((line, reference, REASON_CONFLICT))
        if rejections:
            counts.rejected += len(rejections)
            connection.execute(
                insert(_rejection),
                [
                    {
                        "intake_file_id": file_id,
                        "line": line,
                        "reference": None if reference is None else reference[:100],
                        "reason": reason,
                    }
                    for line, reference, reason in rejections
                ],
            )

    def _advance(self, bytes_read: int) -> None:
        _report_progress(bytes_read - self.progress_reported)
        self.progress_reported = max(self.progress_reported, bytes_read)


# --- Writers: one per backend ------------------------------------------------------------------

_RECEIVED_EVENT_COLUMNS: Final = "item_id, event, at, by, to_state, as_of, flow_run_id, recorded_at"
_WORK_ITEM_COLUMNS: Final = (
    "sie_code, reference, process, siren, received_on, amount_cents, label, legal_due_on, "
    "legal_due_given, state, intake_file_id, last_event_at, created_at"
)
# The columns row_content compares, in its arguments' order.
_CONTENT_COLUMNS: Final = (
    "process, siren, received_on, amount_cents, legal_due_on, legal_due_given, label"
)
#: A row of a batch whose reference was already taken: line, reference, its content and the
#: content of the row already there.
TakenRow = tuple[int, str, RowContent, RowContent]


def _new_row_content(row: NewRow) -> RowContent:
    return row_content(row[2], row[3], row[4], row[5], row[7], row[8], row[6])


class _Writer:
    """Inserts batches of new rows and their ``received`` events, in the caller's transaction.

    ``write`` returns the batch's rows whose reference was already taken (:data:`TakenRow`).
    """

    #: Whether the writer takes a batch's new rows as JSON text.
    as_json: bool = False
    #: Whether a reader process makes large files faster (see ``RELAIS_INTAKE_READER``).
    reader_process_helps: bool = False

    def __init__(self, connection: Connection, job: _FileJob, file_id: int, now: datetime) -> None:
        self._connection = connection
        self._sie_code = job.sie_code
        self._file_id = file_id
        self._events = (job.at, job.author, job.as_of, job.flow_run_id, now)

    def write(self, batch: RowBatch) -> list[TakenRow]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the writer holds (the transaction stays the caller's)."""


def _writer_for(connection: Connection, job: _FileJob, file_id: int, now: datetime) -> _Writer:
    if connection.dialect.name == "postgresql":
        return _PostgresWriter(connection, job, file_id, now)
    return _SqliteWriter(connection, job, file_id, now)


# The columns of a new row in a batch's JSON array (see relais.intake_reader.NewRow).
# json_extract(value, '$[n]') takes two thirds of the time of value ->> n on SQLite 3.40.
_JSON_ROW: Final = ", ".join(f"json_extract(value, '$[{index}]')" for index in range(1, 9))
_STORED_CONTENT: Final = ", ".join(f"work_item.{name}" for name in _CONTENT_COLUMNS.split(", "))


class _SqliteWriter(_Writer):
    """One ``INSERT … SELECT … FROM json_each(?)`` per batch: SQLite unpacks the rows itself.

    Binding rows one by one from Python costs as much as SQLite's own JSON reading, and the
    batch's JSON text is made by whoever read the file (a reader process, for large files).
    """

    as_json = True
    # The writes take one core and reading about as long again: a reader process puts the
    # second core to work (PostgreSQL's server already does, and a third process slowed it).
    reader_process_helps = True

    def __init__(self, connection: Connection, job: _FileJob, file_id: int, now: datetime) -> None:
        super().__init__(connection, job, file_id, now)
        self._cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        at = job.at
        # Stored in SQLAlchemy's own text format, so SQL comparisons with values it binds hold.
        dialect = connection.dialect
        stamp = _work_item.c.last_event_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._at = stamp(at) if stamp else at
        self._now = stamp(now) if stamp else now
        # "WHERE true": SQLite's rule for an upsert whose rows come from a SELECT with a join.
        self._insert = (
            f"INSERT INTO work_item ({_WORK_ITEM_COLUMNS}) "
            f"SELECT ?, {_JSON_ROW}, 'received', ?, ?, ? FROM json_each(?) WHERE true "
            "ON CONFLICT (sie_code, reference) DO NOTHING"
        )
        # The items a batch created are the file's items above the largest id before it (the
        # run holds the database's write lock, and new rowids only grow).
        self._received = (
            f"INSERT INTO item_event ({_RECEIVED_EVENT_COLUMNS}) "
            "SELECT id, 'received', ?, ?, 'received', ?, ?, ? FROM work_item "
            "WHERE id > ? AND intake_file_id = ? ORDER BY id"
        )
        _, author, as_of, flow_run_id, _ = self._events
        self._event_values = (self._at, author, as_of.isoformat(), flow_run_id, self._now)

    def close(self) -> None:
        self._cursor.close()

    def write(self, batch: RowBatch) -> list[TakenRow]:
        cursor = self._cursor
        cursor.execute("SELECT max(id) FROM work_item")
        last_id = cursor.fetchone()[0] or 0
        cursor.execute(
            self._insert, (self._sie_code, self._file_id, self._at, self._now, batch.new)
        )
        inserted = cursor.rowcount
        cursor.execute(self._received, (*self._event_values, last_id, self._file_id))
        if inserted == batch.count:
            return []
        # Rows that were there before this batch hold the references it could not take: look
        # up the rows marked taken by the reader if they account for all of them, else all.
        rows = batch.taken if batch.count - inserted == batch.taken_count else batch.new
        cursor.execute(
            f"SELECT value, {_STORED_CONTENT} FROM json_each(?) JOIN work_item "
            "ON work_item.sie_code = ? AND work_item.reference = json_extract(value, '$[1]') "
            "WHERE work_item.id <= ? ORDER BY json_extract(value, '$[0]')",
            (rows, self._sie_code, last_id),
        )
        taken = []
        for found in cursor.fetchall():
            row = json.loads(found[0])
            taken.append((row[0], row[1], _new_row_content(row), row_content(*found[1:])))
        return taken


class _PostgresWriter(_Writer):
    """``COPY`` of the new rows straight into ``work_item``, the taken references looked up first.

    ``COPY`` has no ``ON CONFLICT``; a transaction-scoped advisory lock per SIE keeps other
    intake runs from inserting the same SIE's references between the look-up and the copy
    (and it is about twice as fast as ``INSERT … ON CONFLICT DO NOTHING`` from a staging table).
    The new items' ids are drawn from their sequence first, so that their ``received`` events
    are copied too, without reading the items back (PostgreSQL has no statistics of a table
    being filled and would scan it whole for each batch).
    """

    def __init__(self, connection: Connection, job: _FileJob, file_id: int, now: datetime) -> None:
        super().__init__(connection, job, file_id, now)
        self._driver = connection.connection.driver_connection
        with self._driver.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_PG_INTAKE_LOCK, job.sie_code)
            )

    def write(self, batch: RowBatch) -> list[TakenRow]:
        sie, file_id = self._sie_code, self._file_id
        at, author, as_of, flow_run_id, now = self._events
        rows = batch.new
        assert not isinstance(rows, str)
        with self._driver.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(
                f"SELECT reference, {_CONTENT_COLUMNS} FROM work_item"
                " WHERE sie_code = %s AND reference = ANY(%s)",
                (sie, [row[1] for row in rows]),
            )
            stored = {found[0]: row_content(*found[1:]) for found in cursor.fetchall()}
            if stored:
                taken = [
                    (row[0], row[1], _new_row_content(row), stored[row[1]])
                    for row in rows
                    if row[1] in stored
                ]
                rows = [row for row in rows if row[1] not in stored]
                if not rows:
                    return taken
            else:
                taken = []
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('work_item', 'id'))"
                " FROM generate_series(1, %s)",
                (len(rows),),
            )
            ids = [item_id for (item_id,) in cursor.fetchall()]
            with cursor.copy(f"COPY work_item (id, {_WORK_ITEM_COLUMNS}) FROM STDIN") as copy:
                for item_id, row in zip(ids, rows, strict=True):
                    copy.write_row((item_id, sie, *row[1:], "received", file_id, at, now))
            with cursor.copy(f"COPY item_event ({_RECEIVED_EVENT_COLUMNS}) FROM STDIN") as copy:
                for item_id in ids:
                    copy.write_row(
                        (item_id, "received", at, author, "received", as_of, flow_run_id, now)
                    )
        return taken


# --- Finishing: errors file and move --------------------------------------------------------


def _finish(engine: Engine, recorded: _Recorded, path: Path) -> None:
    """Write the errors file (if any) and move the file out of ``incoming/``."""
    outcome = recorded.outcome
    sie_folder = path.parent.parent
    target = sie_folder / (REJECTED if outcome.unreadable is not None else PROCESSED)
    target.mkdir(mode=_FOLDER_MODE, exist_ok=True)
    final_name = _free_name(target, path.name)
    if outcome.unreadable is not None:
        _write_errors_file(
            sie_folder / REJECTED, final_name, [("", "", f"unreadable file: {outcome.unreadable}")]
        )
    elif outcome.rejected:
        with engine.connect() as connection:
            rows = connection.execution_options(yield_per=BATCH_SIZE).execute(
                select(_rejection.c.line, _rejection.c.reference, _rejection.c.reason)
                .where(_rejection.c.intake_file_id == recorded.file_id)
                .order_by(_rejection.c.line, _rejection.c.id)
            )
            _write_errors_file(sie_folder / REJECTED, final_name, rows)
    os.replace(path, target / final_name)


def _free_name(folder: Path, name: str) -> str:
    """``name``, or ``stem~2.suffix`` (3, …) if a file of that name was already moved there."""
    if not (folder / name).exists():
        return name
    stem, dot, suffix = name.rpartition(".")
    number = 2
    while True:
        candidate = f"{stem}~{number}{dot}{suffix}"
        if not (folder / candidate).exists():
            return candidate
        number += 1


def _write_errors_file(folder: Path, file_name: str, rows: Iterable[Sequence[object]]) -> Path:
    """Write ``<file name>.errors.csv`` atomically: UTF-8 with BOM, ``;``, header first."""
    folder.mkdir(mode=_FOLDER_MODE, exist_ok=True)
    final = folder / f"{file_name}{ERRORS_SUFFIX}"
    temporary = folder / f".{final.name}.{os.getpid()}.tmp"
    _remove_stale_temporaries(folder, final.name)
    try:
        with temporary.open("w", encoding="utf-8-sig", newline="") as handle:
            _not_world_writable(handle.fileno())
            writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
            writer.writerow(ERRORS_HEADER)
            for line, reference, reason in rows:
                writer.writerow((line, safe_cell(reference), safe_cell(reason)))
        # Renamed complete, never seen half-written. (Not fsynced: like the database with
        # synchronous=NORMAL, it survives a crash of the process, not of the machine.)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def _remove_stale_temporaries(folder: Path, final_name: str) -> None:
    """Delete the temporary errors files that a process killed mid-write left behind."""
    prefix = f".{final_name}."
    for entry in os.scandir(folder):
        pid = entry.name[len(prefix) : -len(".tmp")]
        if entry.name.startswith(prefix) and entry.name.endswith(".tmp") and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:  # its writer is gone: nobody will rename it
                Path(entry.path).unlink(missing_ok=True)
            except PermissionError:  # a live process of another user: not ours to touch
                continue


def _not_world_writable(descriptor: int) -> None:
    """Drop the "others may write" bit a permissive umask would leave on a file we write."""
    mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
    if mode & stat.S_IWOTH:
        os.fchmod(descriptor, mode & ~stat.S_IWOTH)
