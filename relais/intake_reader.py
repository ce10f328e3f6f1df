"""Queue files read into batches of validated rows, here or in a reader process beside intake.

Intake's time per row is about half reading and validating (Python) and half writing (the
database). :func:`read_batches` does the first part; intake writes what it yields. For a
large file the same generator runs in a *reader process* (:class:`ReaderProcess`), so that
rows are read and validated on another core while the database writes the ones before, and
a second reader process reads the next file meanwhile. Batches are the same either way, and
so is everything written.

Nothing here touches the database or Prefect: the reader process starts with this module and
the domain's validation only.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from json.encoder import encode_basestring as _quote  # as json.dumps quotes text
from multiprocessing.connection import Connection, Pipe
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, Final

from relais.cpus import usable_cores
from relais.domain.intake import (
    IntakeRow,
    RowContent,
    RowRejection,
    RowValidator,
    intake_row_content,
)
from relais.queuefiles import RowReader, inspect_file

#: Bytes of batches a reader process may hold while intake is busy writing: a whole
#: ordinary queue file read ahead, or the start of a large one.
READER_PROCESS_BUFFER: Final = 16 * 1024 * 1024
#: Reader processes yield their core to the writing one (three processes share two cores
#: while one reader sends a file and the other reads the next).
READER_PROCESS_NICENESS: Final = 5
#: Files at least this large are read in a reader process when the machine has a core to spare.
READER_PROCESS_MIN_BYTES: Final = 256 * 1024
#: Rows per batch when a reader process reads: small enough that the database starts writing
#: a file's rows soon after the file is opened, large enough that statements per batch stay cheap.
READER_PROCESS_BATCH: Final = 2_000
#: The first batch of a file read by a reader process; the next ones grow by a third up to the
#: batch size, so that the writer, slower per row, never waits for them.
READER_PROCESS_FIRST_BATCH: Final = 250
#: References of a file's earlier batches remembered to tell its rows taken for sure (see
#: ``RowBatch.taken``); past this many the memory starts over (rows then go unmarked, and the
#: writer looks them up as it would without the mark).
EARLIER_REFERENCES: Final = 200_000

#: A new row: its line and the values of its ``work_item`` columns, dates as ISO text.
NewRow = tuple[int, str, str, str, str, int | None, str | None, str | None, bool]
#: A later occurrence of a reference: its line, the reference, its content and the content of
#: the reference's first occurrence in the batch (see :func:`relais.domain.intake.row_content`).
Repeat = tuple[int, str, RowContent, RowContent]


@dataclass(slots=True)
class RowBatch:
    """The rows of one batch of a file, validated, in file order.

    ``new`` holds the first occurrence of each reference in the batch (:data:`NewRow`), or
    its JSON text (an array of those arrays) when read for SQLite. ``repeats`` are the later
    occurrences (:data:`Repeat`), and ``rejections`` the refused rows, as (line, reference as
    given, reason).

    ``taken`` are the rows of ``new`` whose reference a new row of an earlier batch of the
    file had (in the same form as ``new``, ``taken_count`` of them): once that batch is
    written the reference is in the database, so these rows are taken for sure. When they are
    all the batch's taken rows, the writer looks up only them (see ``_SqliteWriter``).
    """

    new: list[NewRow] | str
    count: int
    repeats: list[Repeat] = field(default_factory=list)
    rejections: list[tuple[int, str | None, str]] = field(default_factory=list)
    bytes_read: int = 0
    taken: list[NewRow] | str = field(default_factory=list)
    taken_count: int = 0


def read_batches(
    path: Path,
    encoding: str,
    as_of: date,
    batch_size: int,
    as_json: bool,
    first_batch_size: int | None = None,
) -> Generator[RowBatch, None, None]:
    """The file's rows in batches of ``batch_size`` rows read (the last one may be empty).

    With ``first_batch_size``, batches start at that size and grow by a third each time.

    Raises :class:`relais.queuefiles.UnreadableFileError` when the file turns out not to be
    a queue file (its batches so far must then be thrown away).
    """
    validate = RowValidator(as_of)
    firsts: dict[str, IntakeRow] = {}  # reference -> its first occurrence in the batch
    earlier: set[str] = set()  # references of the new rows of the file's earlier batches
    new: list[Any] = []  # NewRow tuples, or their JSON texts
    taken: list[Any] = []  # those of them whose reference is in ``earlier``
    repeats: list[Repeat] = []
    rejections: list[tuple[int, str | None, str]] = []
    days: dict[date, str] = {}  # ISO texts of the few days a file holds
    in_batch = 0
    limit = min(batch_size, first_batch_size or batch_size)
    with RowReader(path, encoding) as reader:
        for line, cells, problem, reference in reader:
            if cells is None:
                rejections.append((line, reference, problem or "unreadable row"))
            else:
                row = validate(*cells)
                if isinstance(row, RowRejection):
                    rejections.append((line, row[0], row[1]))
                else:
                    first = firsts.get(row[0])
                    if first is not None:
                        content = intake_row_content(row)
                        repeats.append((line, row[0], content, intake_row_content(first)))
                    else:
                        firsts[row[0]] = row
                        day, deadline = row[3], row[6]
                        received = days.get(day) or days.setdefault(day, day.isoformat())
                        legal = None
                        if deadline is not None:
                            legal = days.get(deadline) or days.setdefault(
                                deadline, deadline.isoformat()
                            )
                        if as_json:
                            new.append(_json_row(line, row, received, legal))
                        else:
                            new.append((line, *row[:3], received, row[4], row[5], legal, row[7]))
                        if row[0] in earlier:
                            taken.append(new[-1])
            in_batch += 1
            if in_batch >= limit:
                yield _batch(new, as_json, repeats, rejections, reader.bytes_read, taken)
                if len(earlier) + len(firsts) > EARLIER_REFERENCES:
                    earlier.clear()
                earlier.update(firsts)
                firsts, new, repeats, rejections, taken = {}, [], [], [], []
                in_batch = 0
                limit = min(batch_size, limit + (limit + 2) // 3)
        yield _batch(new, as_json, repeats, rejections, reader.bytes_read, taken)


def _json_row(line: int, row: IntakeRow, received: str, legal: str | None) -> str:
    """A :data:`NewRow` as the JSON array ``json.dumps`` writes (``ensure_ascii=False``).

    Only the reference and the label are free text; the process is a catalogue code, the
    SIREN nine digits and dates ISO: nothing there to escape.
    """
    amount = "null" if row[4] is None else row[4]
    label = "null" if row[5] is None else _quote(row[5])
    deadline = "null" if legal is None else f'"{legal}"'
    return (
        f'[{line},{_quote(row[0])},"{row[1]}","{row[2]}","{received}",{amount},{label},'
        f"{deadline},{'true' if row[7] else 'false'}]"
    )


def _batch(
    new: list[Any],
    as_json: bool,
    repeats: list[Repeat],
    rejections: list[tuple[int, str | None, str]],
    bytes_read: int,
    taken: list[Any],
) -> RowBatch:
    def rows(listed: list[Any]) -> Any:
        return f"[{','.join(listed)}]" if as_json else listed

    return RowBatch(rows(new), len(new), repeats, rejections, bytes_read, rows(taken), len(taken))


# --- The reader process -----------------------------------------------------------------------


class ReaderProcessError(RuntimeError):
    """The reader process stopped or failed for a reason of its own (not the file's)."""


def spare_core() -> bool:
    """Whether this process may use more than one core (at least one and a half)."""
    return usable_cores() >= 1.5


@dataclass(frozen=True, slots=True)
class _Request:
    """What a reader process is asked to read: a file and :func:`read_batches`'s arguments."""

    path: str
    encoding: str
    as_of: date
    batch_size: int
    as_json: bool
    first_batch_size: int | None

    def ahead_key(self) -> tuple[object, ...]:
        """What a read-ahead must share with the request that takes it.

        Not the encoding (the reader process settles it) nor the first batch's size: a file
        read ahead is ready when taken, and starts with full batches.
        """
        return (self.path, self.as_of, self.batch_size, self.as_json)

    def batches(self) -> Generator[RowBatch, None, None]:
        return read_batches(
            Path(self.path),
            self.encoding,
            self.as_of,
            self.batch_size,
            self.as_json,
            self.first_batch_size,
        )


class ReaderProcess:
    """A child process running :func:`read_batches` for one file at a time.

    It is sent :func:`read_batches`'s arguments and answers with a header, the batches, then
    ``end`` (or the exception the file raised). It reads on while the writer is busy, up to
    ``READER_PROCESS_BUFFER`` bytes of batches not yet taken, so memory stays flat. A file
    abandoned half-way (the writer failed) stops the process: the next file starts another
    one.

    *Reading ahead*: :meth:`read_ahead` has the child hash a file, settle its encoding and
    read it at once (intake asks a second reader process to do so for the next file while
    the first sends the current one). When the writer asks for that file with the same hash
    and encoding, it takes the batches already read; otherwise the read-ahead is cancelled
    and the file read as asked.
    """

    def __init__(self) -> None:
        ours, theirs = Pipe()
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "relais.intake_reader", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self._connection: Connection = ours
        # The read-ahead the child was told to make (its encoding is the child's to find).
        self._ahead: _Request | None = None

    def batches(
        self,
        path: Path,
        encoding: str,
        as_of: date,
        batch_size: int,
        as_json: bool,
        first_batch_size: int | None = None,
        *,
        sha256: str | None = None,
    ) -> Generator[RowBatch, None, None]:
        """What :func:`read_batches` yields for this file, read in the child.

        ``sha256``: the file's hash as the caller found it (a read-ahead of the file is used
        only if the child found the same).
        """
        request = _Request(str(path), encoding, as_of, batch_size, as_json, first_batch_size)
        finished = False
        try:
            ahead, self._ahead = self._ahead, None
            taken = False
            if ahead is not None:
                found = self._header()
                if found == (sha256, encoding) and ahead.ahead_key() == request.ahead_key():
                    self._connection.send(("adopt", None))
                    taken = True
                else:
                    self._cancel_ahead()
            if not taken:
                self._connection.send(("read", request))
                self._header()
            while True:
                kind, payload = self._receive()
                if kind == "batch":
                    yield payload
                elif kind == "end":
                    finished = True
                    return
                else:
                    finished = True
                    raise payload
        finally:
            if not finished:
                self.stop()

    def read_ahead(
        self,
        path: Path,
        as_of: date,
        batch_size: int,
        as_json: bool,
    ) -> None:
        """Start reading ``path`` now, for a later :meth:`batches` of it (with its hash)."""
        if self._ahead is not None:  # one read-ahead at a time
            self._header()
            self._cancel_ahead()
        self._ahead = _Request(str(path), "", as_of, batch_size, as_json, None)
        self._connection.send(("ahead", self._ahead))

    @property
    def reading_ahead(self) -> str | None:
        """The file this process reads ahead, if any."""
        return None if self._ahead is None else self._ahead.path

    def _receive(self) -> tuple[str, Any]:
        try:
            message: tuple[str, Any] = self._connection.recv()
        except (EOFError, OSError) as error:
            raise ReaderProcessError("the queue file reader process stopped") from error
        return message

    def _header(self) -> Any:
        """The header of the next file's stream: what a read-ahead found, or None."""
        kind, payload = self._receive()
        if kind != "file":
            raise ReaderProcessError(f"the queue file reader process sent {kind!r}")
        return payload

    def _cancel_ahead(self) -> None:
        """Cancel a read-ahead not taken (its header read), and drop what it sent."""
        self._connection.send(("cancel", None))
        while self._receive()[0] not in ("end", "error"):
            pass

    @property
    def alive(self) -> bool:
        return self._process.poll() is None and not self._connection.closed

    def stop(self) -> None:
        """End the child (at once if it is busy) and wait for it."""
        self._ahead = None
        with contextlib.suppress(OSError):
            self._connection.close()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


_idle: list[ReaderProcess] = []
_idle_lock = threading.Lock()


@contextlib.contextmanager
def lend_reader_process(path: Path | None = None) -> Iterator[ReaderProcess]:
    """An idle reader process of this process, or a new one; kept for the next file after.

    The one reading ``path`` ahead if there is one, else preferably one reading nothing ahead.
    """
    wanted = None if path is None else str(path)
    with _idle_lock:
        ranked = sorted(
            _idle,
            key=lambda idle: (idle.reading_ahead != wanted, idle.reading_ahead is not None),
        )
        reader = ranked[0] if ranked else None
        if reader is not None:
            _idle.remove(reader)
    if reader is None or not reader.alive:
        reader = ReaderProcess()
    try:
        yield reader
    finally:
        if reader.alive:
            with _idle_lock:
                _idle.append(reader)


@atexit.register
def stop_reader_processes() -> None:
    """Stop the idle reader processes (at exit, or when a test wants a clean slate)."""
    with _idle_lock:
        readers = list(_idle)
        _idle.clear()
    for reader in readers:
        reader.stop()


class _Outbox:
    """The child's end of the pipe, with room for a few megabytes of batches.

    A read-ahead goes on while the parent is busy with the file before: messages wait here
    (framed as ``Connection.send`` frames them, so the parent reads them with ``recv``), and
    sending blocks only past ``limit`` bytes, or before waiting for the parent.
    """

    def __init__(self, connection: Connection, limit: int = READER_PROCESS_BUFFER) -> None:
        self._connection = connection
        # The same socket, written without blocking (the pipe is a Unix socket pair).
        self._socket = socket.socket(fileno=os.dup(connection.fileno()))
        self._waiting: deque[memoryview] = deque()
        self._size = 0
        self._limit = limit

    def send(self, message: tuple[Any, ...]) -> None:
        payload = ForkingPickler.dumps(message)
        if len(payload) > 0x7FFFFFFF:  # Connection's other frame; never a batch of rows
            self.flush()
            self._connection.send(message)
            return
        self._waiting.append(memoryview(struct.pack("!i", len(payload)) + payload))
        self._size += len(payload) + 4
        self._write(block=False)
        if self._size > self._limit:
            self._write(block=True, down_to=self._limit)

    def flush(self) -> None:
        """Send everything waiting (before waiting for the parent)."""
        self._write(block=True, down_to=0)

    def poll(self) -> bool:
        return self._connection.poll()

    def recv(self) -> tuple[Any, ...]:
        self.flush()
        message: tuple[Any, ...] = self._connection.recv()
        return message

    def _write(self, block: bool, down_to: int = 0) -> None:
        while self._waiting and (not block or self._size > down_to):
            view = self._waiting[0]
            try:
                sent = self._socket.send(view, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            self._size -= sent
            if sent < len(view):
                self._waiting[0] = view[sent:]
            else:
                self._waiting.popleft()


def _serve(connection: Connection) -> None:
    """The child's loop: one file per request, until the parent goes away.

    ``read`` asks for a file; ``ahead`` for a read-ahead, announced by ``("file", (sha256,
    encoding))`` (None if it cannot be read), then read at once. Every stream goes on with
    ``batch`` messages and ends with ``end`` or ``error``. During or after a read-ahead the
    parent ``adopt``s it or ``cancel``s it.
    """
    with contextlib.suppress(OSError):
        os.nice(READER_PROCESS_NICENESS)
    outbox = _Outbox(connection)
    while True:
        try:
            kind, request = outbox.recv()
            if kind == "read":
                outbox.send(("file", None))
                _stream(outbox, request, listen=False)
            elif kind == "ahead":
                ahead = _read_ahead(outbox, request)
                if ahead is not None:
                    _stream(outbox, ahead, listen=True)
            # Otherwise the word on a read-ahead already over: nothing to do.
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            return


def _read_ahead(outbox: _Outbox, request: _Request) -> _Request | None:
    """Announce the read-ahead of a file; its request, or None if it cannot be read."""
    try:
        inspection = inspect_file(Path(request.path))
    except OSError:
        inspection = None
    if inspection is None or inspection.encoding is None:
        outbox.send(("file", None))
        outbox.send(("end", None))
        return None
    outbox.send(("file", (inspection.sha256, inspection.encoding)))
    return replace(request, encoding=inspection.encoding)


def _stream(outbox: _Outbox, request: _Request, listen: bool) -> None:
    """Send a file's batches, then ``end`` or the file's error.

    ``listen`` (a read-ahead): between batches, take the parent's word; a ``cancel`` ends the
    stream at once.
    """
    batches = request.batches()
    try:
        for batch in batches:
            outbox.send(("batch", batch))
            if listen and outbox.poll():
                listen = False
                if outbox.recv()[0] != "adopt":
                    break
        batches.close()
        outbox.send(("end", None))
    except (BrokenPipeError, ConnectionResetError):
        raise
    except Exception as error:  # sent to the parent, which raises it in its own frame
        try:
            outbox.send(("error", error))
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception:  # an exception that does not pickle
            detail = traceback.format_exception_only(error)[-1].strip()
            outbox.send(("error", ReaderProcessError(detail)))


if __name__ == "__main__":
    # Run from the module under its own name, so batches pickle as relais.intake_reader's.
    from relais.intake_reader import _serve as serve

    serve(Connection(int(sys.argv[1])))
