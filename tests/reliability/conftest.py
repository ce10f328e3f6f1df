"""Fixtures of the reliability tests (the API world is shared with tests/api)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from relais.reference import load_reference

# The API tests' world (two conventions, a dozen items, one token per role), reused as is.
from tests.api.conftest import client, world, world_template

__all__ = ["client", "reference_engine", "shipped_reference", "world", "world_template"]

SHIPPED_REFERENCE = Path(__file__).resolve().parents[2] / "relais" / "data" / "reference.yaml"
SHIPPED_CONVENTIONS = SHIPPED_REFERENCE.parent / "conventions"


@pytest.fixture
def shipped_reference() -> Path:
    """The reference file shipped with Relais."""
    return SHIPPED_REFERENCE


@pytest.fixture
def reference_engine(engine: Engine) -> Engine:
    """A fresh database (SQLite and PostgreSQL) holding the shipped reference data."""
    load_reference(SHIPPED_REFERENCE, engine=engine)
    return engine
