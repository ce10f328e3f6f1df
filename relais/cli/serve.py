"""``relais serve``: run the scheduled deployments in this process against a Prefect server."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Annotated

import typer

from relais.cli.output import info, warn


def _stop_during_setup(_signum: int, _frame: FrameType | None) -> None:
    # Nothing runs yet: leave at once, the way the runner itself does before it starts.
    # SystemExit, unlike an ordinary exception, is not swallowed by import-time hooks.
    info("Stopped before serving.")
    raise SystemExit(0)


def serve_command(
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Most flow runs this process executes at once."),
    ] = None,
) -> None:
    """Serve the nightly cycle, business-hours scan and monthly report deployments.

    Runs until stopped with SIGTERM (or Ctrl-C in a terminal). Point PREFECT_API_URL at the
    Prefect server whose UI should show the runs; without it, runs go to a temporary server
    that lives as long as this process.
    """
    # Started in the background (nohup, &, a service manager) a process ignores SIGINT:
    # SIGTERM is the way to stop it. Once started, the runner replaces this handler with its
    # own graceful one (it stops polling, lets runs end and pauses the schedules).
    signal.signal(signal.SIGTERM, _stop_during_setup)
    from relais.prefect_env import configure_prefect

    configure_prefect()
    import prefect

    from deployments.build import DEPLOYMENTS, build_deployments
    from flows.nightly import ROUTING_LIMIT, ensure_routing_limit

    if not os.environ.get("PREFECT_API_URL"):
        warn(
            "PREFECT_API_URL is not set: runs go to a temporary Prefect server that stops "
            "with this process. Set it to a `prefect server start` address to keep them."
        )
    if ensure_routing_limit():
        info(f"Created the global concurrency limit {ROUTING_LIMIT!r} (1 slot).")
    deployments = build_deployments()
    for spec in DEPLOYMENTS:
        info(f"Serving {spec.full_name}: cron {spec.schedule.cron!r} ({spec.schedule.timezone})")
    prefect.serve(*deployments, limit=limit, print_starting_message=False)
    info("Stopped serving.")
