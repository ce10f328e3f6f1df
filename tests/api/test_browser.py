"""The dashboard in a real browser: ``relais api`` serving, headless Chromium rendering.

Skipped when Debian's Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_fixtures import World

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[str]:
    """``relais api`` on a free loopback port, on the world's database."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from relais.cli.main import main; main()",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def _chromium(tmp_path: Path, name: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / name}", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_the_dashboard_renders_with_its_charts(server: str, world: World, tmp_path: Path) -> None:
    url = f"{server}/dashboard?as_of=2026-11-30&token={world.tokens['sup-75']}"
    screenshot = tmp_path / "dashboard.png"
    _chromium(tmp_path, "shot", f"--screenshot={screenshot}", "--window-size=1280,1600", url)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank or error page compresses to a few kilobytes; tables and charts do not.
    assert screenshot.stat().st_size > 40_000

    dom = _chromium(tmp_path, "dom", "--dump-dom", url).stdout
    # Server-rendered figures, reached through the sign-in redirect and its cookie.
    assert 'id="total-open">6<' in dom
    # Figures that only the page's script writes: each chart, drawn, describes its bars.
    assert dom.count('data-drawn="true"') == 3
    assert (
        "ANT-18-VIERZON : 1 en dépassement, 1 à risque, 1 dans les délais, 1 suspendus, "
        "0 en attente" in dom
    )
    assert "SIE-75-17 : 1 en dépassement, 0 à risque, 1 délai légal dépassé" in dom
    assert "16–30 j : 2 dossiers ouverts" in dom
