"""Settings read from the environment, lazily (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from relais.errors import ConfigurationError

#: Values of ``RELAIS_INTAKE_READER``.
INTAKE_READERS = ("auto", "process", "inline")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where Relais keeps its state and which clock it reads."""

    home: Path
    database_url: str
    queue_root: Path
    timezone_name: str
    #: How intake reads queue files: ``auto`` (on SQLite, large files in a reader process when
    #: a second core is there), ``process`` (always in a reader process) or ``inline`` (never).
    intake_reader: str = "auto"

    @property
    def timezone(self) -> ZoneInfo:
        """The zone of the offices' working days (Europe/Paris by default)."""
        return ZoneInfo(self.timezone_name)

    def today(self) -> date:
        """Today in the offices' time zone (the default day of every command)."""
        return datetime.now(self.timezone).date()

    @property
    def reports_dir(self) -> Path:
        """Where monthly convention reports are written."""
        return self.home / "reports"

    @property
    def is_sqlite(self) -> bool:
        """Whether the configured database is the embedded SQLite one."""
        return self.database_url.startswith("sqlite")


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("RELAIS_HOME") or Path.home() / ".relais").expanduser()
    database_url = env.get("RELAIS_DATABASE_URL") or f"sqlite:///{home / 'relais.db'}"
    queue_root = Path(env.get("RELAIS_QUEUE_ROOT") or home / "queues").expanduser()
    timezone_name = env.get("RELAIS_TIMEZONE") or "Europe/Paris"
    try:
        ZoneInfo(timezone_name)  # fail early on a misspelt zone
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"RELAIS_TIMEZONE: no time zone named {timezone_name!r} (e.g. Europe/Paris)"
        ) from None
    intake_reader = (env.get("RELAIS_INTAKE_READER") or "auto").strip().lower()
    if intake_reader not in INTAKE_READERS:
        raise ConfigurationError(
            f"RELAIS_INTAKE_READER: {intake_reader!r} is not one of {', '.join(INTAKE_READERS)}"
        )
    return Settings(
        home=home,
        database_url=database_url,
        queue_root=queue_root,
        timezone_name=timezone_name,
        intake_reader=intake_reader,
    )


@cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
