"""``prefect deploy --all`` of deployments/prefect.yaml against a real local Prefect server.

The server runs in its own PREFECT_HOME with its own SQLite database on a free loopback port,
and is stopped with SIGTERM (a server started in the background ignores SIGINT).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prefect_env(home: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PREFECT_") and name != "RELAIS_DATABASE_URL"
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        DO_NOT_TRACK="1",
        RELAIS_HOME=str(home.parent / "relais-home"),
    )
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    for _ in range(2):  # some Prefect processes need a second SIGTERM
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A ``prefect server start`` of our own; yields its API URL and a client environment."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    env = _prefect_env(home)
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail("prefect server exited:\n" + (tmp_path / "server.log").read_text())
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prefect server did not answer /api/health in time")
            time.sleep(0.5)
        yield api_url, {**env, "PREFECT_API_URL": api_url}
    finally:
        _stop(server)
        log.close()


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_prefect_deploy_all_creates_the_three_deployments(
    prefect_server: tuple[str, dict[str, str]],
) -> None:
    api_url, env = prefect_server
    pool = _run([PREFECT, "work-pool", "create", "relais-pool", "--type", "process"], env)
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deploy = _run(
        [
            PREFECT,
            "--no-prompt",
            "deploy",
            "--prefect-file",
            str(ROOT / "deployments" / "prefect.yaml"),
            "--all",
        ],
        env,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr

    found = httpx.post(f"{api_url}/deployments/filter", json={}, timeout=10).json()
    flows = httpx.post(f"{api_url}/flows/filter", json={}, timeout=10).json()
    flow_names = {flow["id"]: flow["name"] for flow in flows}
    deployed = {f"{flow_names[d['flow_id']]}/{d['name']}": d for d in found}
    assert set(deployed) == {
        "nightly-cycle/nightly",
        "scan-slas/business-hours",
        "convention-report/monthly",
    }
    nightly = deployed["nightly-cycle/nightly"]
    assert nightly["work_pool_name"] == "relais-pool"
    assert nightly["pull_steps"] == []
    # A deployment's limit is stored as a global limit of its own.
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    scan = deployed["scan-slas/business-hours"]
    assert scan["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    [schedule] = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "30 1 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Paris"
    assert "relais" in nightly["tags"]


def test_relais_serve_serves_the_three_deployments_until_sigterm(
    prefect_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    api_url, env = prefect_server
    output = (tmp_path / "serve.log").open("w+b")
    serve = subprocess.Popen(
        [str(Path(sys.executable).with_name("relais")), "serve"],
        env=env,
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        deployed: dict[str, dict[str, object]] = {}
        # Registered is not yet served: the runner marks a deployment READY when it polls
        # for its runs, and only then does SIGTERM reach the runner's own graceful stop.
        while len(deployed) < 3 or any(d.get("status") != "READY" for d in deployed.values()):
            if serve.poll() is not None:
                pytest.fail("relais serve exited:\n" + (tmp_path / "serve.log").read_text())
            if time.monotonic() > deadline:
                pytest.fail(f"relais serve registered only {sorted(deployed)} in time")
            time.sleep(1)
            found = httpx.post(f"{api_url}/deployments/filter", json={}, timeout=10).json()
            flows = httpx.post(f"{api_url}/flows/filter", json={}, timeout=10).json()
            names = {flow["id"]: flow["name"] for flow in flows}
            deployed = {f"{names.get(d['flow_id'])}/{d['name']}": d for d in found}
        assert set(deployed) == {
            "nightly-cycle/nightly",
            "scan-slas/business-hours",
            "convention-report/monthly",
        }
        crons = {
            name: (d["schedules"][0]["schedule"]["cron"], d["schedules"][0]["schedule"]["timezone"])  # type: ignore[index]
            for name, d in deployed.items()
        }
        assert crons == {
            "nightly-cycle/nightly": ("30 1 * * *", "Europe/Paris"),
            "scan-slas/business-hours": ("0 8-18 * * 1-5", "Europe/Paris"),
            "convention-report/monthly": ("0 6 1 * *", "Europe/Paris"),
        }
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
    finally:
        _stop(serve)
        output.close()
    log = (tmp_path / "serve.log").read_text()
    assert "Serving nightly-cycle/nightly" in log
    assert "Stopped serving." in log
