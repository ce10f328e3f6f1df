"""API fixtures: the world of ``tests.api_fixtures`` built once, copied for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relais import db
from relais.api import create_app
from relais.settings import reset_settings
from tests.api_fixtures import World, build_world


@pytest.fixture(scope="session")
def world_template(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> tuple[Path, World]:
    """A SQLite file holding the world (built once per test session)."""
    directory = tmp_path_factory.mktemp("world")
    path = directory / "relais.db"
    shutil.copyfile(sqlite_template, path)
    engine = db.make_engine(f"sqlite:///{path}")
    world = build_world(engine, directory)
    engine.dispose()
    return path, world


@pytest.fixture
def world(
    world_template: tuple[Path, World], relais_home: Path, monkeypatch: pytest.MonkeyPatch
) -> World:
    """A private copy of the world as the configured database."""
    template, built = world_template
    shutil.copyfile(template, relais_home / "relais.db")
    monkeypatch.setenv("RELAIS_DATABASE_URL", f"sqlite:///{relais_home / 'relais.db'}")
    reset_settings()
    db.reset_engines()
    return built


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    """An in-process client of a fresh application."""
    with TestClient(create_app()) as test_client:
        yield test_client
