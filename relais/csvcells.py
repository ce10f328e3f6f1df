"""CSV cells that spreadsheets show as text and never run as formulas (CSV injection)."""

from __future__ import annotations

from typing import Final

# What Excel and LibreOffice take as the start of a formula (or of a hidden one).
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` for a CSV writer: text that could run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
