"""Names and tags of Relais flow runs, given the same way by every flow and deployment.

A run is named after what it works on, so the Prefect UI lists ``nightly-2026-11-26`` or
``report-CONV-75-VIERZON-2026-10`` instead of a random pair of words: use
``@flow(flow_run_name=run_name("nightly", "as_of"))``. Every run carries the ``relais`` tag
plus one tag for its step, so a filter on ``relais`` shows the product's runs on a shared server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

#: The tag every Relais flow run and deployment carries.
RELAIS_TAG = "relais"

#: Parameters whose ``None`` means "today" in the offices' timezone.
DATE_PARAMETERS = frozenset({"as_of"})


def local_today() -> date:
    """Today in the offices' timezone (``RELAIS_TIMEZONE``): the date of a default as-of."""
    from relais.settings import get_settings

    return datetime.now(get_settings().timezone).date()


def _part(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    # Deployment runs hand parameters over as JSON text: "2026-11-26".
    return str(value).strip()


def format_run_name(
    prefix: str,
    parameters: Mapping[str, Any],
    names: Sequence[str],
    *,
    today: date,
) -> str:
    """``prefix`` then each named parameter's value, joined by ``-``.

    A missing or ``None`` date parameter stands for ``today``; other missing values are
    left out, so a name never reads ``None``.
    """
    parts = [prefix]
    for name in names:
        value = parameters.get(name)
        if value is None or value == "":
            if name in DATE_PARAMETERS:
                parts.append(today.isoformat())
            continue
        parts.append(_part(value))
    return "-".join(parts)


def run_name(prefix: str, *names: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable naming the run from its parameters ``names``."""

    def name_of_run() -> str:
        from prefect.runtime import flow_run

        return format_run_name(prefix, flow_run.parameters or {}, names, today=local_today())

    name_of_run.__name__ = f"{prefix}_run_name"
    return name_of_run


def run_tags(*step: str) -> list[str]:
    """The tags of a run or deployment: ``relais`` and the step's own tags."""
    return [RELAIS_TAG, *step]
