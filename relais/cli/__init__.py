"""The ``relais`` command line."""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _flag_type_rich(self: TyperOption, ctx: Any) -> str | None:
    """No value column for a flag: Typer's rich help shows ``<bool>`` after ``--dry-run``.

    Its plain help already leaves flags bare; this makes the rich one agree, so that no flag
    reads as if it took a value.
    """
    if self.is_flag or self.count:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_type_rich  # type: ignore[method-assign]
