"""What every task shares: the flow-run author and the retry rule for transient errors."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

# Messages of errors that go away on their own: a busy SQLite file, a dropped or
# refused PostgreSQL connection, a serialisation failure under concurrency.
_TRANSIENT_MARKERS = (
    "database is locked",
    "database is busy",
    "could not serialize",
    "deadlock detected",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "connection is closed",
    "the database system is starting up",
    "the database system is shutting down",
)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database hiccup worth retrying (never a data error)."""
    if isinstance(error, OperationalError | DBAPIError):
        if getattr(error, "connection_invalidated", False):
            return True
        text = str(error).lower()
        return any(marker in text for marker in _TRANSIENT_MARKERS)
    return False


def retry_on_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for tasks: retry only transient database errors."""
    try:
        state.result()
    except Exception as error:  # the task's own exception, re-raised by result()
        return is_transient(error)
    return False


def flow_run_author() -> str:
    """The author of changes made inside a flow run: its id, or ``cli`` outside Prefect."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else "cli"
