"""Benchmark of intake: SIE queue files to work items, against a raw bulk insert of the same rows.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.bench_intake --rows 1000000 --sies 100 --backend both

It writes ``--rows`` rows over ``--sies`` SIE queues (CSV UTF-8 with BOM and ``;`` with French
amounts, CSV Windows-1252 with ``,`` and CRLF, JSONL; about 0.6 % bad rows, duplicates and
conflicting rows), then, each in a process of its own on a fresh database:

* ``raw``: the lower bound: the same rows, already normalised in memory, bulk inserted into
  ``work_item`` (``executemany`` in batches of 10,000 on SQLite, ``COPY`` on PostgreSQL); only
  the inserts and commits are timed;
* ``intake``: ``relais.intake`` on the queue folders (discovery, hashing, decoding, parsing,
  validation, duplicate detection, ``work_item`` + ``received`` events + rejections, errors
  files, moves), timed end to end, with the peak memory of the process and its reader.

``--flow-sample N`` also measures the Prefect overhead: the flow ``intake-sie-queues`` on N
rows over 10 SIEs against ``relais.intake`` called directly on the same files (a temporary
Prefect server is started first and not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, text

from benchmarks.bench_pipeline import machine_probe, peak_memory_mb
from relais import db
from relais.domain.intake import format_amount, luhn_valid
from relais.domain.sla import legal_due_on

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 20)
PARIS = ZoneInfo("Europe/Paris")
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BATCH = 10_000

PROCESSES = (
    ("tva_refund", 30),
    ("filing_reminder", 15),
    ("payment_reminder", 15),
    ("ex_officio_taxation", 5),
    ("cfe_ifer_dispute", 8),
    ("gespro_premises", 9),
    ("auvisir", 9),
    ("medoc_web", 9),
)
LABELS = (
    None,
    None,
    "Demande 3519 – dossier complet",
    "Relance après mise en demeure",
    "Locaux de Créteil, Évry",
    "Réclamation CFE (établissement principal)",
)


def sie_code(number: int) -> str:
    """The code of the n-th benchmark SIE."""
    return f"SIE-B{number:03d}"


def _sirens(count: int, rng: random.Random) -> list[str]:
    sirens: list[str] = []
    while len(sirens) < count:
        candidate = f"{rng.randrange(10**8, 10**9)}"
        if luhn_valid(candidate):
            sirens.append(candidate)
    return sirens


def generate_rows(sie: int, count: int) -> Iterator[tuple[dict[str, Any], tuple[Any, ...], str]]:
    """Rows of one SIE: (raw cells, normalised work_item values, kind), deterministic.

    ``kind`` is ``ok``, ``bad`` (rejected by validation), ``dup`` (an exact repeat) or
    ``conflict`` (same reference, another amount).
    """
    rng = random.Random(sie)
    sirens = _sirens(500, rng)
    names = [name for name, _ in PROCESSES]
    weights = [weight for _, weight in PROCESSES]
    recent: list[tuple[dict[str, Any], tuple[Any, ...]]] = []
    for number in range(count):
        roll = rng.random()
        if recent and roll < 0.002:
            raw, values = rng.choice(recent)
            yield raw, values, "dup"
            continue
        if recent and roll < 0.003:
            raw, values = rng.choice(recent)
            yield {**raw, "amount": "1,01"}, values, "conflict"
            continue
        process = rng.choices(names, weights)[0]
        siren = rng.choice(sirens)
        received = AS_OF - timedelta(days=rng.randrange(0, 90))
        cents = rng.randrange(10_000, 50_000_000) if process == "tva_refund" or roll > 0.8 else None
        label = rng.choice(LABELS)
        reference = f"{sie_code(sie)}-{number:07d}"
        spaced = f"{siren[:3]} {siren[3:6]} {siren[6:]}" if roll > 0.9 else siren
        raw = {
            "reference": reference,
            "process": process,
            "siren": spaced,
            "received_on": received.isoformat() if roll < 0.7 else f"{received:%d/%m/%Y}",
            "amount": "" if cents is None else _amount_text(cents, rng),
            "label": label or "",
        }
        kind = "ok"
        if roll > 0.996:
            raw["siren"] = siren[:8] + str((int(siren[8]) + 1) % 10)
            kind = "bad"
        elif roll > 0.994:
            raw["received_on"] = (AS_OF + timedelta(days=3)).isoformat()
            kind = "bad"
        values = (
            sie_code(sie),
            reference,
            process,
            siren,
            received,
            cents,
            label,
            legal_due_on(process, received),
            False,  # legal_due_given
        )
        if kind == "ok" and len(recent) < 1000:
            recent.append((raw, values))
        yield raw, values, kind


def _amount_text(cents: int, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.5:
        return format_amount(cents)  # "12 345,67 €" with narrow no-break spaces
    if style < 0.8:
        return f"{cents // 100}.{cents % 100:02d}"
    return f"{cents // 100},{cents % 100:02d}"


def write_queues(root: Path, sies: int, rows: int) -> dict[str, int]:
    """Write every SIE's queue file; return the count of rows per kind."""
    kinds: dict[str, int] = {"ok": 0, "bad": 0, "dup": 0, "conflict": 0}
    per_sie = rows // sies
    for sie in range(sies):
        incoming = root / sie_code(sie) / "incoming"
        incoming.mkdir(parents=True)
        style = sie % 10
        columns = ("reference", "process", "siren", "received_on", "amount", "label")
        if style == 9:
            with (incoming / "export.jsonl").open("w", encoding="utf-8") as handle:
                for raw, _values, kind in generate_rows(sie, per_sie):
                    kinds[kind] += 1
                    handle.write(json.dumps(raw, ensure_ascii=False) + "\n")
            continue
        if style == 8:
            encoding, delimiter, newline = "cp1252", ",", "\r\n"
        else:
            encoding, delimiter, newline = "utf-8-sig", ";", "\n"
        with (incoming / "export.csv").open("w", encoding=encoding, newline="") as handle:
            handle.write(delimiter.join(columns) + newline)
            for raw, _values, kind in generate_rows(sie, per_sie):
                kinds[kind] += 1
                cells = [raw[name] for name in columns]
                if encoding == "cp1252":
                    cells[4] = cells[4].replace("\u202f", " ").replace("\u00a0", " ")
                line = delimiter.join(
                    f'"{cell}"' if delimiter in cell or '"' in cell else cell for cell in cells
                )
                handle.write(line + newline)
    return kinds


# --- Phases (each run in its own process) ------------------------------------------------------


def _engine(url: str) -> Engine:
    engine = db.make_engine(url)
    db.upgrade(engine)
    return engine


def _add_sies(engine: Engine, sies: int) -> None:
    from models.tables import Directorate, Sie

    with engine.begin() as connection:
        connection.execute(
            insert(Directorate.__table__).values(code="DRFIP75", name="Bench", department="75")  # type: ignore[attr-defined]
        )
        connection.execute(
            insert(Sie.__table__),  # type: ignore[attr-defined]
            [
                {
                    "code": sie_code(n),
                    "name": f"SIE {n}",
                    "directorate_code": "DRFIP75",
                    "department": "75",
                }
                for n in range(sies)
            ],
        )


def phase_raw(url: str, sies: int, rows: int) -> dict[str, Any]:
    """Bulk insert the same rows, normalised beforehand; time the inserts only.

    Into ``work_item`` (its indexes, as intake finds them), then, as the machine's yardstick,
    into a bare table of the same columns with no index but its primary key.
    """
    engine = _engine(url)
    _add_sies(engine, sies)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE TABLE bare_item (LIKE work_item INCLUDING DEFAULTS); "
                "ALTER TABLE bare_item ADD PRIMARY KEY (id)"
            )
        else:
            connection.exec_driver_sql("CREATE TABLE bare_item AS SELECT * FROM work_item WHERE 0")
    result = _bulk_insert(engine, "work_item", sies, rows)
    bare = _bulk_insert(engine, "bare_item", sies, rows)
    engine.dispose()
    return {
        **result,
        "bare_seconds": bare["seconds"],
        "peak_rss_mb": peak_memory_mb(),
    }


def _bulk_insert(engine: Engine, table: str, sies: int, rows: int) -> dict[str, Any]:
    """Insert the generated rows into ``table``, a transaction per SIE; time the inserts."""
    at = datetime.combine(AS_OF, datetime.min.time(), tzinfo=PARIS).astimezone(UTC)
    now = datetime.now(UTC)
    columns = (
        "sie_code, reference, process, siren, received_on, amount_cents, label, legal_due_on,"
        " legal_due_given, state, last_event_at, created_at"
    )
    elapsed = cpu = 0.0
    inserted = 0
    per_sie = rows // sies
    for sie in range(sies):
        batch = [values for _raw, values, kind in generate_rows(sie, per_sie) if kind == "ok"]
        with engine.begin() as connection:
            driver = connection.connection.driver_connection
            started, cpu_started = time.perf_counter(), time.process_time()
            if engine.dialect.name == "postgresql":
                statement = f"COPY {table} ({columns}) FROM STDIN"
                with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                    for values in batch:
                        copy.write_row((*values, "received", at, now))
            else:
                stamp_at = at.replace(tzinfo=None).isoformat(" ", "microseconds")
                stamp_now = now.replace(tzinfo=None).isoformat(" ", "microseconds")
                cursor = driver.cursor()  # type: ignore[union-attr]
                for start in range(0, len(batch), BATCH):
                    cursor.executemany(
                        f"INSERT INTO {table} ({columns}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?)",
                        [
                            (
                                *v[:4],
                                v[4].isoformat(),
                                v[5],
                                v[6],
                                None if v[7] is None else v[7].isoformat(),
                                v[8],
                                stamp_at,
                                stamp_now,
                            )
                            for v in batch[start : start + BATCH]
                        ],
                    )
            connection.commit()
            elapsed += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
        inserted += len(batch)
    return {"seconds": elapsed, "cpu": cpu, "rows": inserted}


def phase_intake(url: str, root: str, sies: int) -> dict[str, Any]:
    """Run intake over every queue folder; time everything after the engine is ready."""
    from relais.intake import discover_queues, ingest_sie, summarise

    engine = _engine(url)
    if sies:
        _add_sies(engine, sies)
    started, cpu_started = time.perf_counter(), time.process_time()
    discovery = discover_queues(engine, Path(root))
    outcomes = []
    known = discovery.known
    for code, next_code in zip(known, [*known[1:], None], strict=False):
        # As the flow does: one SIE after the other, the next one's first file read ahead.
        outcomes.extend(
            ingest_sie(
                engine,
                sie_code=code,
                root=Path(root),
                as_of=AS_OF,
                author="bench",
                timezone=PARIS,
                next_sie=next_code,
            )
        )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    readers_mb = _children_peak_memory_mb()
    summary = summarise(outcomes, discovery.unknown)
    with engine.connect() as connection:
        items = connection.execute(text("SELECT count(*) FROM work_item")).scalar_one()
        events = connection.execute(text("SELECT count(*) FROM item_event")).scalar_one()
    engine.dispose()
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "files": len(outcomes),
        "accepted": summary["accepted"],
        "duplicates": summary["duplicates"],
        "rejected": summary["rejected"],
        "work_items": items,
        "events": events,
        "peak_rss_mb": peak_memory_mb(),
        "reader_peak_rss_mb": readers_mb,
    }


def _children_peak_memory_mb() -> float:
    """Peak resident memory of the reader processes this process started (VmHWM, summed)."""
    pid = os.getpid()
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        return 0.0
    return sum(peak_memory_mb(int(child)) for child in children.read_text().split())


def phase_flow(url: str, root: str, direct_url: str, direct_root: str) -> dict[str, Any]:
    """The flow on one copy of the queues, ``relais.intake`` directly on the other."""
    from relais.prefect_env import configure_prefect
    from relais.settings import reset_settings

    configure_prefect()
    engine = _engine(url)
    _add_sies(engine, 10)
    engine.dispose()
    os.environ["RELAIS_DATABASE_URL"] = url
    from flows.intake import intake_sie_queues

    # Warm-up on empty queues: the temporary server starts and the flow is registered.
    os.environ["RELAIS_QUEUE_ROOT"] = str(Path(root).parent / "empty-queues")
    reset_settings()
    intake_sie_queues(as_of=AS_OF)
    os.environ["RELAIS_QUEUE_ROOT"] = root
    reset_settings()
    started = time.perf_counter()
    flow_summary = intake_sie_queues(as_of=AS_OF)
    flow_seconds = time.perf_counter() - started
    direct = phase_intake(direct_url, direct_root, 10)
    return {
        "flow_seconds": flow_seconds,
        "direct_seconds": direct["seconds"],
        "accepted": flow_summary["accepted"],
        "direct_accepted": direct["accepted"],
    }


def _run_phase(*arguments: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    # Each phase starts once the previous one's writes are on disk: otherwise the kernel
    # writes back half a gigabyte of the last database while the phase runs, and its
    # commits wait behind that.
    os.sync()
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_intake", "--phase", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"phase {arguments[0]} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- Databases --------------------------------------------------------------------------------


class Databases:
    """Fresh databases for each phase: SQLite files, or PostgreSQL schemas dropped at the end."""

    def __init__(self, backend: str, workdir: Path, postgres_url: str) -> None:
        self.backend = backend
        self.workdir = workdir
        self.postgres_url = postgres_url
        self.schemas: list[str] = []

    def fresh(self, name: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.workdir / f'{name}-{uuid.uuid4().hex[:8]}.db'}"
        schema = f"bench_intake_{name}_{uuid.uuid4().hex[:8]}"
        admin = db.make_engine(self.postgres_url)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        self.schemas.append(schema)
        separator = "&" if "?" in self.postgres_url else "?"
        return f"{self.postgres_url}{separator}options=-csearch_path%3D{schema}"

    def drop(self) -> None:
        if not self.schemas:
            return
        admin = db.make_engine(self.postgres_url)
        with admin.begin() as connection:
            for schema in self.schemas:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run(
    backend: str, rows: int, sies: int, postgres_url: str, flow_sample: int, repeat: int
) -> None:
    """Generate the queues once, then measure raw and intake on ``backend``."""
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores,")
    print(
        f"{date.today().isoformat()}; {rows:,} rows over {sies} SIE queues, backend {backend}; "
        f"machine probe {machine_probe():.3f} s"
    )
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as workdir:
        work = Path(workdir)
        template = work / "queues-template"
        started = time.perf_counter()
        kinds = write_queues(template, sies, rows)
        size = sum(path.stat().st_size for path in template.rglob("*") if path.is_file())
        print(
            f"{'generate files':<34}{time.perf_counter() - started:8.2f} s  "
            f"({size / 2**20:.0f} MiB; {kinds})"
        )
        databases = Databases(backend, work, postgres_url)
        try:
            raws, intakes = [], []
            # Alternate the two phases; keep each one's fastest run (the least disturbed by
            # whatever else the machine is doing).
            for attempt in range(repeat):
                raws.append(_run_phase("raw", databases.fresh("raw"), str(sies), str(rows)))
                queues = work / f"queues-{attempt}"
                shutil.copytree(template, queues)
                intake_url = databases.fresh("intake")
                intakes.append(_run_phase("intake", intake_url, str(queues), str(sies)))
            raw = min(raws, key=lambda result: result["seconds"])
            intake = min(intakes, key=lambda result: result["seconds"])
            if repeat > 1:
                raw_times = ", ".join(f"{result['seconds']:.1f}" for result in raws)
                intake_times = ", ".join(f"{result['seconds']:.1f}" for result in intakes)
                print(f"{'runs (s)':<34}raw {raw_times}; intake {intake_times}")
            _report(backend, rows, raw, intake)
            if flow_sample:
                sample_flow, sample_direct = work / "sample-flow", work / "sample-direct"
                write_queues(sample_flow, 10, flow_sample)
                write_queues(sample_direct, 10, flow_sample)
                env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home")}
                flow = _run_phase(
                    "flow",
                    databases.fresh("flow"),
                    str(sample_flow),
                    databases.fresh("direct"),
                    str(sample_direct),
                    env=env,
                )
                overhead = flow["flow_seconds"] - flow["direct_seconds"]
                print(
                    f"{'flow overhead (10 SIEs)':<34}{overhead:8.2f} s  "
                    f"(flow {flow['flow_seconds']:.2f} s, direct {flow['direct_seconds']:.2f} s,"
                    f" {flow_sample:,} rows)"
                )
        finally:
            databases.drop()


def _report(backend: str, rows: int, raw: dict[str, Any], intake: dict[str, Any]) -> None:
    raw_rate = raw["rows"] / raw["seconds"]
    rate = rows / intake["seconds"]
    ratio = intake["seconds"] / raw["seconds"]
    print(
        f"{'raw bulk insert (work_item)':<34}{raw['seconds']:8.2f} s  "
        f"{raw_rate:>9,.0f} rows/s  (cpu here {raw['cpu']:.2f} s; {raw['rows']:,} rows)"
    )
    print(
        f"{'bare insert (primary key only)':<34}{raw['bare_seconds']:8.2f} s  "
        f"{raw['rows'] / raw['bare_seconds']:>9,.0f} rows/s  (same rows, no index to maintain)"
    )
    print(
        f"{'intake (validation, events, files)':<34}{intake['seconds']:8.2f} s  "
        f"{rate:>9,.0f} rows/s  (cpu here {intake['cpu']:.2f} s; "
        f"peak {intake['peak_rss_mb']:.0f} MB + reader {intake['reader_peak_rss_mb']:.0f} MB)"
    )
    print(
        f"{'':<34}{intake['files']} files: {intake['accepted']:,} accepted, "
        f"{intake['duplicates']:,} duplicates, {intake['rejected']:,} rejected; "
        f"{intake['events']:,} events"
    )
    # The rate and the ratio are targets on SQLite; PostgreSQL is measured too.
    checks = {"< 300 MB": intake["peak_rss_mb"] + intake["reader_peak_rss_mb"] < 300}
    if backend == "sqlite":
        checks = {">= 100,000 rows/s": rate >= 100_000, "<= 2.5 x raw": ratio <= 2.5, **checks}
    verdict = ", ".join(f"{name} {'ok' if passed else 'MISSED'}" for name, passed in checks.items())
    print(f"{'intake / raw':<34}{ratio:8.2f} x   ({verdict})")
    print(f"{'intake / raw, cpu of the process':<34}{intake['cpu'] / raw['cpu']:8.2f} x")


# --- Stage of the pipeline harness -----------------------------------------------------------

#: Queues the ``intake`` stage spreads its rows over (the issue's "100 SIE queues").
STAGE_SIES = 100

#: Targets of the ``intake`` stage (see ``benchmarks.bench_pipeline.TARGETS``).
TARGETS: dict[str, tuple[dict[str, float], str]] = {
    "intake rows/s": ({"sqlite": 100_000.0}, "min"),
    "intake / raw": ({"sqlite": 2.5}, "max"),
    "intake peak memory MB": ({"*": 300.0}, "max"),
}


def stage_intake(context: Any) -> dict[str, Any]:
    """The pipeline harness's ``intake`` stage: as many rows as it has items, 100 queues.

    The queue files are generated untimed; raw and intake then run once each, in processes
    of their own, on fresh databases of the stage's backend.
    """
    rows, backend = context.data.items, context.backend.name
    work = Path(tempfile.mkdtemp(prefix="intake-", dir=context.options.workdir))
    try:
        write_queues(work / "queues", STAGE_SIES, rows)
        databases = Databases(backend, work, context.options.postgres_url)
        try:
            raw = _run_phase("raw", databases.fresh("raw"), str(STAGE_SIES), str(rows))
            intake = _run_phase(
                "intake", databases.fresh("intake"), str(work / "queues"), str(STAGE_SIES)
            )
        finally:
            databases.drop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rows in the queue files": rows,
        "raw insert seconds": raw["seconds"],
        "raw rows/s": raw["rows"] / raw["seconds"],
        "bare insert rows/s (primary key only)": raw["rows"] / raw["bare_seconds"],
        "intake seconds": intake["seconds"],
        "intake CPU seconds": intake["cpu"],
        "intake rows/s": rows / intake["seconds"],
        "intake / raw": intake["seconds"] / raw["seconds"],
        "intake peak memory MB": intake["peak_rss_mb"] + intake["reader_peak_rss_mb"],
        "of which the reader process MB": intake["reader_peak_rss_mb"],
        "accepted": intake["accepted"],
        "duplicates": intake["duplicates"],
        "rejected": intake["rejected"],
        "received events": intake["events"],
    }


def register(stages: dict[str, Any], targets: dict[str, Any]) -> None:
    """Make ``intake`` the first stage of the pipeline harness (its ``STAGES``, ``TARGETS``)."""
    others = dict(stages)
    stages.clear()
    stages.update({"intake": stage_intake, **others})
    targets["intake"] = TARGETS


def main() -> None:
    """Parse the command line and run the benchmark (or one phase of it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sies", type=int, default=100)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("RELAIS_BENCH_POSTGRES_URL")
        or os.environ.get("RELAIS_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_URL,
    )
    parser.add_argument("--flow-sample", type=int, default=0, metavar="ROWS")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each phase (fastest kept)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.phase:
        name, *rest = arguments.phase
        if name == "raw":
            result = phase_raw(rest[0], int(rest[1]), int(rest[2]))
        elif name == "intake":
            result = phase_intake(rest[0], rest[1], int(rest[2]))
        else:
            result = phase_flow(*rest)
        print(json.dumps(result))
        return
    backends = ("sqlite", "postgresql") if arguments.backend == "both" else (arguments.backend,)
    for backend in backends:
        run(
            backend,
            arguments.rows,
            arguments.sies,
            arguments.postgres_url,
            arguments.flow_sample,
            arguments.repeat,
        )


if __name__ == "__main__":
    main()
