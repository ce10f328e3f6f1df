"""Prefect settings that make flows work out of the box on a fresh machine.

Call :func:`configure_prefect` before importing ``prefect``: settings are read at import.
Values already present in the environment always win.
"""

from __future__ import annotations

import os

DEFAULTS: dict[str, str] = {
    # No telemetry: the machines have no web access and it costs 0.5 s per import.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # A fresh PREFECT_HOME needs ~18 s to create the temporary server's database here;
    # Prefect's default 20 s startup timeout fails the first flow call.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Keep the temporary-server banner out of the way, keep flow-run logs.
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
    # The temporary server records task runs one at a time by default: after a night's
    # intake (a task per SIE) the next API call waited ~2.5 s for it. Batches keep up.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "500",
}


def configure_prefect() -> None:
    """Fill in Relais's Prefect defaults without overriding the user's own settings."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
