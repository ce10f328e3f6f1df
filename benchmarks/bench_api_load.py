"""The HTTP API under load: 50 concurrent clients against a database of 1,000,000 items.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.bench_api_load --items 1000000 --backend sqlite

Steps, all bounded and self-stopping:

1. the data set of ``benchmarks.bench_pipeline`` (items received night after night over 60
   days by 120 SIEs of 12 directorates) is bulk-generated in a fresh database, then assigned
   and "worked" for 60 days as in ``benchmarks.bench_queries`` (most items done, some late,
   some open or suspended, with their history), so that breach queries have real answers;
2. three tokens are created (admin, a supervisor of an exporting directorate, a service);
3. ``relais api`` is started on 127.0.0.1 and a free port, in its own process;
4. ``--clients`` asynchronous httpx clients (one connection each) send a deterministic mix of
   requests until ``--requests`` have been answered or ``--max-seconds`` have passed: item
   lookups (``GET /api/items/{sie}/{reference}``, 70 %, by all three tokens) and breach
   queries (``GET /api/sla/breaches`` for the supervisor's directorate, for one SIE, and for
   the service, 30 %);
5. the server is stopped; per kind of request: count, errors (anything but 200, or no
   answer), p50, p95, p99 and max latency, and the throughput; targets: p95 < 200 ms, no
   error.

The load generator shares the machine with the server and the database: on a small machine
its own CPU use is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from benchmarks import bench_pipeline as pipeline
from benchmarks import bench_queries as queries_bench
from relais import db

#: Targets of the load test.
TARGET_P95_MS = 200.0
EXPORTING = queries_bench.EXPORTING  # a supervisor of this directorate
SERVICE = queries_bench.SERVICE  # and a service token for this antenna
SAMPLE_ITEMS = 5_000
#: SQLite page cache while the data set is assigned and worked (KiB).
PREPARE_CACHE_KIB = 262_144


@dataclass(frozen=True, slots=True)
class Request:
    """One request of the mix."""

    kind: str
    path: str
    token: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Results:
    """Latencies (seconds) and errors per kind of request."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    rows: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- preparing the database ---------------------------------------------------------------


def prepare_state(url: str, as_of: date) -> dict[str, Any]:
    """Assign and work the generated items; create the tokens; sample item keys."""
    from relais.db import session_scope
    from relais.tokens import create_token

    engine = db.make_engine(url)
    figures: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                # The updates walk items in index order: with the default 2 MB page cache
                # they spend half their time re-reading pages (this engine is disposed below).
                connection.exec_driver_sql(f"PRAGMA cache_size = -{PREPARE_CACHE_KIB}")
            figures["assigned"] = queries_bench.assign_all(connection, as_of)
            figures["states"] = queries_bench.simulate_work(connection, as_of)
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE"
                )
            else:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
        figures["prepare seconds"] = time.perf_counter() - started
        now = datetime.now(UTC)
        with session_scope(engine) as session:
            tokens = {
                "admin": create_token(session, name="load-admin", role="admin", now=now),
                "supervisor": create_token(
                    session,
                    name="load-supervisor",
                    role="supervisor",
                    directorate=EXPORTING,
                    now=now,
                ),
                "service": create_token(
                    session, name="load-service", role="service", service=SERVICE, now=now
                ),
            }
        with engine.connect() as connection:
            total = connection.execute(text("SELECT max(id) FROM work_item")).scalar_one()
            rng = random.Random(7)
            ids = sorted(rng.sample(range(1, total + 1), min(SAMPLE_ITEMS, total)))
            keys = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join(str(int(i)) for i in chunk)
                keys += [
                    (row[0], row[1])
                    for row in connection.execute(
                        text(f"SELECT sie_code, reference FROM work_item WHERE id IN ({marks})")
                    ).all()
                ]
            supervised = connection.execute(
                text(
                    "SELECT w.sie_code, w.reference FROM work_item w JOIN sie s "
                    "ON s.code = w.sie_code WHERE s.directorate_code = :d ORDER BY w.id LIMIT 2000"
                ),
                {"d": EXPORTING},
            ).all()
            serviced = connection.execute(
                text(
                    "SELECT sie_code, reference FROM work_item WHERE assignee = :s "
                    "ORDER BY id LIMIT 2000"
                ),
                {"s": SERVICE},
            ).all()
            sies = (
                connection.execute(
                    text("SELECT code FROM sie WHERE directorate_code = :d ORDER BY code"),
                    {"d": EXPORTING},
                )
                .scalars()
                .all()
            )
        figures["tokens"] = tokens
        figures["keys"] = {
            "admin": keys,
            "supervisor": [tuple(row) for row in supervised],
            "service": [tuple(row) for row in serviced],
        }
        figures["sies"] = list(sies)
    finally:
        engine.dispose()
    return figures


def request_mix(
    state: dict[str, Any], as_of: date, count: int, seed: int = 11, lookups: float = 0.7
) -> list[Request]:
    """A deterministic sequence of ``count`` requests: ``lookups`` of them item lookups, the
    rest breach queries (40 % by a supervisor, 40 % of one SIE, 20 % by a service)."""
    rng = random.Random(seed)
    tokens: dict[str, str] = state["tokens"]
    keys: dict[str, list[tuple[str, str]]] = state["keys"]
    day = as_of.isoformat()
    mix: list[Request] = []
    for _ in range(count):
        draw = rng.random()
        breach = (draw - lookups) / (1 - lookups) if lookups < 1 else 0.0
        if draw < lookups:
            role = rng.choices(["admin", "supervisor", "service"], weights=[4, 3, 3])[0]
            sie, reference = rng.choice(keys[role])
            mix.append(Request("item lookup", f"/api/items/{sie}/{reference}", tokens[role]))
        elif breach < 0.4:
            mix.append(
                Request(
                    "breaches (directorate)",
                    "/api/sla/breaches",
                    tokens["supervisor"],
                    {"as_of": day},
                )
            )
        elif breach < 0.8:
            mix.append(
                Request(
                    "breaches (one SIE)",
                    "/api/sla/breaches",
                    tokens["admin"],
                    {"as_of": day, "sie": rng.choice(state["sies"])},
                )
            )
        else:
            mix.append(
                Request(
                    "breaches (service)", "/api/sla/breaches", tokens["service"], {"as_of": day}
                )
            )
    return mix


# --- the load -----------------------------------------------------------------------------


async def run_load(
    port: int, mix: list[Request], clients: int, max_seconds: float, rate: float = 0.0
) -> tuple[Results, float]:
    """Send ``mix`` with ``clients`` concurrent clients; stop when done or out of time.

    ``rate`` 0: each client sends its next request as soon as it has the answer to the last
    (the server's saturation). Otherwise the clients together aim at ``rate`` requests per
    second, each sending one every ``clients / rate`` seconds (never two at once).
    """
    results = Results()
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in mix:
        queue.put_nowait(request)
    started = time.perf_counter()
    deadline = started + max_seconds
    interval = clients / rate if rate > 0 else 0.0

    async def client_loop(number: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        next_send = started + (interval * number / clients)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
        ) as client:
            while time.perf_counter() < deadline:
                if interval:
                    await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
                    next_send += interval
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                headers = {"Authorization": f"Bearer {request.token}"}
                sent = time.perf_counter()
                try:
                    response = await client.get(
                        request.path, params=request.params, headers=headers
                    )
                except httpx.HTTPError as error:
                    results.errors[request.kind].append(type(error).__name__)
                    continue
                elapsed = time.perf_counter() - sent
                if response.status_code != 200:
                    results.errors[request.kind].append(str(response.status_code))
                    continue
                results.latencies[request.kind].append(elapsed)
                body = response.json()
                results.rows[request.kind].append(len(body) if isinstance(body, list) else 1)

    await asyncio.gather(*(client_loop(number) for number in range(clients)))
    return results, time.perf_counter() - started


def _wait_for_health(port: int, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the API server exited before answering")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API server did not answer /health in time")


def load_test(
    url: str, workdir: Path, state: dict[str, Any], options: argparse.Namespace
) -> dict[str, Any]:
    """Start ``relais api`` on ``url``, run the load, stop the server; return the figures."""
    port = _free_port()
    home = workdir / "relais-home"
    home.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "PYTHONPATH": str(pipeline.ROOT),
        "RELAIS_HOME": str(home),
        "RELAIS_DATABASE_URL": url,
    }
    log = (workdir / "api.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from relais.cli.main import main; main()",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(options.workers),
        ],
        cwd=pipeline.ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    phases: dict[str, Any] = {}
    try:
        _wait_for_health(port, server)
        # A short warm-up (not counted): connections, caches, the first query plans.
        warm_up = request_mix(state, options.as_of, 100, seed=1)
        asyncio.run(run_load(port, warm_up, min(options.clients, 10), 60))
        for rate in options.rates:
            mix = request_mix(
                state,
                options.as_of,
                options.requests,
                seed=11 + int(rate),
                lookups=options.lookup_share,
            )
            results, elapsed = asyncio.run(
                run_load(port, mix, options.clients, options.max_seconds, rate)
            )
            label = "saturation" if rate == 0 else f"paced at {rate:g} requests/s"
            phases[label] = _figures(results, elapsed, options.clients)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()
    return phases


def _figures(results: Results, elapsed: float, clients: int) -> dict[str, Any]:
    """Counts, errors, throughput and latency percentiles per kind of request."""
    figures: dict[str, Any] = {
        "clients": clients,
        "requests answered": sum(len(v) for v in results.latencies.values()),
        "errors": sum(len(v) for v in results.errors.values()),
        "seconds": elapsed,
    }
    figures["requests per second"] = figures["requests answered"] / elapsed
    every: list[float] = []
    for kind in sorted(set(results.latencies) | set(results.errors)):
        samples = results.latencies.get(kind, [])
        every += samples
        errors = results.errors.get(kind, [])
        entry: dict[str, Any] = {"count": len(samples), "errors": len(errors)}
        if errors:
            entry["error kinds"] = sorted(set(errors))
        if samples:
            entry.update(
                p50_ms=statistics.median(samples) * 1000,
                p95_ms=_percentile(samples, 0.95) * 1000,
                p99_ms=_percentile(samples, 0.99) * 1000,
                max_ms=max(samples) * 1000,
                mean_rows=statistics.fmean(results.rows[kind]),
            )
        figures[kind] = entry
    if every:
        figures["all requests"] = {
            "count": len(every),
            "p50_ms": statistics.median(every) * 1000,
            "p95_ms": _percentile(every, 0.95) * 1000,
            "p99_ms": _percentile(every, 0.99) * 1000,
        }
    return figures


def _print(backend: str, figures: dict[str, Any], checks: list[str]) -> None:
    print(backend, flush=True)
    for name, value in figures.items():
        if isinstance(value, dict):
            shown = ", ".join(
                f"{key} {val:,.1f}" if isinstance(val, float) else f"{key} {val}"
                for key, val in value.items()
            )
            print(f"  {name:<26} {shown}")
        elif isinstance(value, float):
            print(f"  {name:<26} {value:,.2f}")
        else:
            print(f"  {name:<26} {value}")
    for line in checks:
        print(line)


def _checks(figures: dict[str, Any]) -> list[str]:
    lines = []
    for kind, entry in figures.items():
        if isinstance(entry, dict) and "p95_ms" in entry and kind != "all requests":
            ok = entry["p95_ms"] < TARGET_P95_MS
            lines.append(
                f"  {'ok  ' if ok else 'MISS'} {kind} p95 {entry['p95_ms']:,.1f} ms "
                f"(target < {TARGET_P95_MS:g} ms)"
            )
    errors = figures["errors"]
    lines.append(f"  {'ok  ' if errors == 0 else 'MISS'} errors {errors} (target 0)")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Generate, prepare, load, report (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="`relais api --workers`")
    parser.add_argument("--requests", type=int, default=5_000, help="requests to send at most")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="stop each phase after this long"
    )
    parser.add_argument(
        "--rates",
        type=lambda text_: [float(part) for part in text_.split(",")],
        default=[0.0, 50.0],
        help="phases: total requests per second aimed at (0: as fast as answered)",
    )
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 26))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "RELAIS_BENCH_POSTGRES_URL",
            os.environ.get("RELAIS_TEST_POSTGRES_URL", pipeline.DEFAULT_POSTGRES_URL),
        ),
    )
    parser.add_argument("--workdir", default=None, help="where files go (default: a temp dir)")
    parser.add_argument("--json-out", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--lookup-share",
        type=float,
        default=0.7,
        help="share of item lookups in the mix (the rest: breach queries)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the prepared database in --workdir"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a database kept by --keep in --workdir"
    )
    options = parser.parse_args(argv)
    temporary = None
    if options.workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="relais-apiload-")
        options.workdir = temporary.name
    workdir = Path(options.workdir)
    backends = ["sqlite", "postgresql"] if options.backend == "both" else [options.backend]
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"{date.today().isoformat()}; {options.items:,} items, {options.clients} clients, "
        f"up to {options.requests:,} requests or {options.max_seconds:g} s",
        flush=True,
    )
    everything: dict[str, Any] = {}
    failed = False
    try:
        for name in backends:
            backend: Any
            if name == "sqlite":
                backend = pipeline.SqliteBackend(workdir / "sqlite")
            else:
                backend = pipeline.PostgresBackend(
                    options.postgres_url,
                    workdir / "postgresql",
                    pristine_name="relais_apiload_pristine",
                    clone_name="relais_apiload_run",
                )
            url = (
                f"sqlite:///{backend.pristine}"
                if name == "sqlite"
                else backend._url(backend.pristine_name)
            )
            saved = workdir / name / "state.json"
            try:
                if options.reuse and saved.exists():
                    state = json.loads(saved.read_text())
                    print(f"  reusing the database prepared in {workdir / name}", flush=True)
                else:
                    data = pipeline.DataSet(items=options.items, as_of=options.as_of)
                    started = time.perf_counter()
                    timings = backend.prepare(data)
                    print(
                        f"  generated in {time.perf_counter() - started:,.1f} s: {timings}",
                        flush=True,
                    )
                    state = prepare_state(url, options.as_of)
                    print(
                        f"  assigned and worked in {state['prepare seconds']:,.1f} s: "
                        f"{state['states']}",
                        flush=True,
                    )
                    saved.write_text(json.dumps(state))
                phases = load_test(url, workdir / name, state, options)
            finally:
                if not options.keep:
                    backend.cleanup()
                    saved.unlink(missing_ok=True)
            for label, figures in phases.items():
                checks = _checks(figures)
                failed |= any("MISS" in line for line in checks)
                _print(f"{name}, {label}", figures, checks)
            everything[name] = phases
    finally:
        if options.json_out:
            Path(options.json_out).write_text(json.dumps(everything, indent=2, default=str))
        if temporary is not None:
            temporary.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
