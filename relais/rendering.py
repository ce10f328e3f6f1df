"""HTML rendering shared by the dashboard and the reports: one Jinja2 environment."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

_MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def french_date(value: date | datetime | str | None) -> str:
    """``2026-11-20`` as ``20/11/2026`` (empty for None), the way French offices write dates.

    Date-times (objects or ISO 8601 text) keep their own offset and show ``HH:MM``.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M")
    return value.strftime("%d/%m/%Y")


def french_month(value: date) -> str:
    """``2026-11-01`` as ``novembre 2026``."""
    return f"{_MONTHS_FR[value.month - 1]} {value.year}"


def french_number(value: float | int | None, digits: int = 0) -> str:
    """A number with a comma decimal mark and a narrow no-break space between thousands."""
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\u202f").replace(".", ",")


def percent(value: float | None) -> str:
    """A share (0–1) as a French percentage, e.g. ``87,5 %``."""
    if value is None:
        return "–"
    return f"{french_number(value * 100, 1)}\u00a0%"


def path_segment(value: str) -> str:
    """``value`` quoted as one URL path segment (a ``/`` in a reference stays inside it)."""
    return quote(value, safe="")


@cache
def environment() -> Environment:
    """The Jinja2 environment of Relais's templates (autoescaped, strict about missing names)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fr_date"] = french_date
    env.filters["fr_month"] = french_month
    env.filters["fr_number"] = french_number
    env.filters["percent"] = percent
    env.filters["path_segment"] = path_segment
    return env
