"""Queue files read into batches here and by a reader process: same batches, same outcome."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from relais.intake import reporting_progress
from relais.intake_reader import (
    READER_PROCESS_MIN_BYTES,
    ReaderProcess,
    ReaderProcessError,
    RowBatch,
    lend_reader_process,
    read_batches,
    spare_core,
    stop_reader_processes,
)
from relais.queuefiles import UnreadableFileError, inspect_file
from relais.settings import reset_settings
from tests.intake_data import (
    AS_OF,
    OTHER_SIE,
    SIE,
    add_sies,
    events,
    incoming,
    intake_files,
    items,
    mixed_rows,
    row,
    run_intake,
    write_csv,
)


def _file(folder: Path, count: int = 60, name: str = "export.csv") -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = write_csv(folder / name, mixed_rows(count))
    encoding = inspect_file(path).encoding
    assert encoding is not None
    return path, encoding


@pytest.fixture
def reader() -> Iterator[ReaderProcess]:
    process = ReaderProcess()
    yield process
    process.stop()


@pytest.mark.parametrize("as_json", [True, False])
def test_a_reader_process_yields_the_batches_read_here(
    tmp_path: Path, reader: ReaderProcess, as_json: bool
) -> None:
    path, encoding = _file(tmp_path)
    here = list(read_batches(path, encoding, AS_OF, 8, as_json))
    there = list(reader.batches(path, encoding, AS_OF, 8, as_json))
    assert there == here
    assert len(here) == 60 // 8 + 1
    assert sum(batch.count for batch in here) > 0
    assert any(batch.repeats for batch in here) and any(batch.rejections for batch in here)
    assert all(isinstance(batch, RowBatch) for batch in there)
    assert here[-1].bytes_read == path.stat().st_size


@pytest.mark.parametrize("as_json", [True, False])
def test_rows_whose_reference_an_earlier_batch_had_are_marked_taken(
    tmp_path: Path, as_json: bool
) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [row("R1"), row("R2"), row("R1", amount="5"), row("R3"), row("R2"), row("R4")],
    )
    batches = list(read_batches(path, "utf-8", AS_OF, 2, as_json))

    def lines(rows: Any) -> list[int]:
        return [new_row[0] for new_row in (json.loads(rows) if as_json else rows)]

    assert [lines(batch.taken) for batch in batches] == [[], [4], [6], []]
    assert [batch.taken_count for batch in batches] == [0, 1, 1, 0]
    assert [lines(batch.new) for batch in batches] == [[2, 3], [4, 5], [6, 7], []]


def test_the_file_s_own_error_is_raised_here_and_the_reader_serves_on(
    tmp_path: Path, reader: ReaderProcess
) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("reference;process\nR1;auvisir\n", encoding="utf-8")
    with pytest.raises(UnreadableFileError, match="missing column"):
        list(reader.batches(broken, "utf-8", AS_OF, 8, True))
    assert reader.alive
    path, encoding = _file(tmp_path)
    assert list(reader.batches(path, encoding, AS_OF, 8, True)) == list(
        read_batches(path, encoding, AS_OF, 8, True)
    )


def test_a_file_abandoned_half_way_stops_its_reader(tmp_path: Path, reader: ReaderProcess) -> None:
    path, encoding = _file(tmp_path)
    batches = reader.batches(path, encoding, AS_OF, 8, True)
    next(batches)
    batches.close()  # the writer gave up on the file
    assert not reader.alive


def test_a_reader_that_dies_is_an_error_of_its_own(tmp_path: Path, reader: ReaderProcess) -> None:
    path, encoding = _file(tmp_path, count=400)
    batches = reader.batches(path, encoding, AS_OF, 8, True)
    next(batches)
    os.kill(reader._process.pid, signal.SIGKILL)
    with pytest.raises(ReaderProcessError, match="stopped"):
        list(batches)
    assert not reader.alive


def _read_here(path: Path, size: int = 8) -> list[RowBatch]:
    encoding = inspect_file(path).encoding
    assert encoding is not None
    return list(read_batches(path, encoding, AS_OF, size, True))


def _read_there(reader: ReaderProcess, path: Path, then: Path | None = None) -> list[RowBatch]:
    """``path`` read by ``reader``, which then reads ``then`` ahead."""
    inspection = inspect_file(path)
    assert inspection.encoding is not None
    batches = list(
        reader.batches(path, inspection.encoding, AS_OF, 8, True, sha256=inspection.sha256)
    )
    if then is not None:
        reader.read_ahead(then, AS_OF, 8, True)
    return batches


@pytest.mark.parametrize("count", [90, 3_000])  # read to the end before it is asked for, or not
def test_the_file_named_next_is_read_ahead_and_taken_as_read(
    tmp_path: Path, reader: ReaderProcess, count: int
) -> None:
    first, _ = _file(tmp_path, name="a.csv")
    second, _ = _file(tmp_path, count=count, name="b.csv")
    assert _read_there(reader, first, then=second) == _read_here(first)
    # Nobody asked for b.csv yet: the reader process is already sending it.
    assert reader._connection.poll(10)
    assert _read_there(reader, second) == _read_here(second)
    assert reader.alive


@pytest.mark.parametrize("count", [20, 3_000])
def test_a_read_ahead_not_asked_for_is_dropped(
    tmp_path: Path, reader: ReaderProcess, count: int
) -> None:
    first, _ = _file(tmp_path, name="a.csv")
    skipped, _ = _file(tmp_path, count=count, name="b.csv")  # already recorded, say
    other, _ = _file(tmp_path, count=70, name="c.csv")
    _read_there(reader, first, then=skipped)
    assert reader._connection.poll(10)
    assert _read_there(reader, other, then=skipped) == _read_here(other)
    assert _read_there(reader, skipped) == _read_here(skipped)
    assert reader.alive


def test_a_file_changed_after_its_read_ahead_is_read_again(
    tmp_path: Path, reader: ReaderProcess
) -> None:
    first, _ = _file(tmp_path, name="a.csv")
    second, _ = _file(tmp_path, count=40, name="b.csv")
    _read_there(reader, first, then=second)
    assert reader._connection.poll(10)
    write_csv(second, mixed_rows(50)[10:])
    assert _read_there(reader, second) == _read_here(second)


def test_a_read_ahead_of_a_file_gone_or_unreadable_is_skipped(
    tmp_path: Path, reader: ReaderProcess
) -> None:
    first, _ = _file(tmp_path, name="a.csv")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"reference;process\x00\n")
    later, _ = _file(tmp_path, count=30, name="c.csv")
    _read_there(reader, first, then=tmp_path / "gone.csv")
    _read_there(reader, later, then=binary)
    assert _read_there(reader, first) == _read_here(first)
    broken = tmp_path / "broken.csv"
    broken.write_text("reference;process\nR1;auvisir\n", encoding="utf-8")
    _read_there(reader, later, then=broken)  # read ahead, and its error kept for the taker
    with pytest.raises(UnreadableFileError, match="missing column"):
        _read_there(reader, broken)
    assert reader.alive


def test_another_reader_reads_the_next_file_and_is_lent_for_it(tmp_path: Path) -> None:
    stop_reader_processes()
    first, encoding = _file(tmp_path, name="a.csv")
    second, _ = _file(tmp_path, count=90, name="b.csv")
    with lend_reader_process(first) as reader:
        with lend_reader_process(second) as other:
            assert other is not reader
            other.read_ahead(second, AS_OF, 8, True)
        assert list(reader.batches(first, encoding, AS_OF, 8, True)) == _read_here(first)
    with lend_reader_process(second) as taker:
        assert taker is other and taker.reading_ahead == str(second)
        assert _read_there(taker, second) == _read_here(second)
        assert taker.reading_ahead is None
    stop_reader_processes()


def test_a_second_read_ahead_replaces_the_first(tmp_path: Path, reader: ReaderProcess) -> None:
    first, _ = _file(tmp_path, count=3_000, name="a.csv")
    second, _ = _file(tmp_path, count=50, name="b.csv")
    reader.read_ahead(first, AS_OF, 8, True)
    reader.read_ahead(second, AS_OF, 8, True)
    assert reader.reading_ahead == str(second)
    assert _read_there(reader, second) == _read_here(second)
    assert _read_there(reader, first) == _read_here(first)


def test_lent_readers_are_kept_for_the_next_file_unless_they_stopped() -> None:
    stop_reader_processes()
    with lend_reader_process() as first:
        pass
    with lend_reader_process() as again:
        assert again is first
        again.stop()
    with lend_reader_process() as other:
        assert other is not first and other.alive
    stop_reader_processes()
    assert not other.alive


def test_intake_after_its_reader_died_mid_file_leaves_nothing_and_a_rerun_is_clean(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sies(engine)
    root = tmp_path / "queues"
    rows = mixed_rows(3_000)
    write_csv(incoming(root, SIE) / "export.csv", rows)
    write_csv(incoming(root, OTHER_SIE) / "export.csv", rows)
    monkeypatch.setenv("RELAIS_INTAKE_READER", "process")
    reset_settings()
    stop_reader_processes()

    def kill_the_reader(_advanced: int) -> None:
        for pid in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split():
            if b"relais.intake_reader" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGKILL)

    with reporting_progress(kill_the_reader), pytest.raises(ReaderProcessError):
        run_intake(engine, root, sie=SIE, batch_size=100)
    assert items(engine, SIE) == [] and intake_files(engine) == []
    assert (incoming(root, SIE) / "export.csv").exists()

    rerun = run_intake(engine, root, sie=SIE, batch_size=100)
    clean = run_intake(engine, root, sie=OTHER_SIE, batch_size=100)
    assert [{**f, "sie": None} for f in rerun["files"]] == [
        {**f, "sie": None} for f in clean["files"]
    ]
    compared = ("reference", "process", "siren", "received_on", "amount_cents", "label")
    assert [tuple(i[c] for c in compared) for i in items(engine, SIE)] == [
        tuple(i[c] for c in compared) for i in items(engine, OTHER_SIE)
    ]
    assert len(events(engine)) == 2 * len(items(engine, SIE)) > 0


def test_auto_uses_a_reader_process_for_large_files_on_sqlite_only(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sies(engine)
    root = tmp_path / "queues"
    write_csv(incoming(root, SIE) / "small.csv", mixed_rows(50))
    large = write_csv(incoming(root, OTHER_SIE) / "large.csv", mixed_rows(6_000))
    assert large.stat().st_size >= READER_PROCESS_MIN_BYTES
    monkeypatch.setenv("RELAIS_INTAKE_READER", "auto")
    reset_settings()
    read_there: list[str] = []
    batches = ReaderProcess.batches

    def recording(
        self: ReaderProcess, path: Path, *arguments: Any, **options: Any
    ) -> Iterator[RowBatch]:
        read_there.append(path.name)
        return batches(self, path, *arguments, **options)

    monkeypatch.setattr(ReaderProcess, "batches", recording)
    summary = run_intake(engine, root)
    assert [f["file"] for f in summary["files"]] == ["small.csv", "large.csv"]
    sqlite_with_cores = engine.dialect.name == "sqlite" and spare_core()
    assert read_there == (["large.csv"] if sqlite_with_cores else [])


def test_batch_json_is_what_json_dumps_writes_of_the_rows(tmp_path: Path) -> None:
    rows = mixed_rows(200)
    for number, cells in enumerate(rows[:40]):
        # Free text with what JSON escapes: quotes, backslashes, line breaks, tabs, accents.
        cells["reference"] = f'R"{number}\\é'
        cells["label"] = f'Libellé "{number}"\\ sur\ndeux lignes\tet œ €'
    path = write_csv(tmp_path / "export.csv", rows)
    encoding = inspect_file(path).encoding
    assert encoding is not None
    as_text = list(read_batches(path, encoding, AS_OF, 16, True))
    as_rows = list(read_batches(path, encoding, AS_OF, 16, False))
    assert sum(batch.count for batch in as_rows) >= 150
    escaped = "".join(str(batch.new) for batch in as_text)
    assert '\\"' in escaped and "\\n" in escaped and "\\\\" in escaped and "é" in escaped
    for text, plain in zip(as_text, as_rows, strict=True):
        assert text.new == json.dumps(plain.new, ensure_ascii=False, separators=(",", ":"))
        assert (text.count, text.repeats, text.rejections) == (
            plain.count,
            plain.repeats,
            plain.rejections,
        )
