"""``relais api``: serve the HTTP API and the supervisors' dashboard."""

from __future__ import annotations

import copy
import logging
import re
from typing import Annotated, Any

import typer

from relais.cli.output import info

_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")


class RedactTokens(logging.Filter):
    """Blank ``?token=`` values in access-log lines (the dashboard's sign-in link carries one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with tokens blanked in access lines (in every worker process)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    config["handlers"]["access"]["filters"] = ["redact_tokens"]
    return config


def api_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=64, help="Server processes (more for many clients)."),
    ] = 1,
) -> None:
    """Serve the HTTP API and the dashboard (Ctrl-C to stop)."""
    import uvicorn

    from relais.db import get_engine

    get_engine()  # migrate and fail now, not on the first request, if the database is unusable
    info(
        f"Relais API on http://{host}:{port} (dashboard: /dashboard?token=<token>), "
        f"{workers} worker(s)"
    )
    uvicorn.run(
        "relais.api:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        log_config=_log_config(),
    )
