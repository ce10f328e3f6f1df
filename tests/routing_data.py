"""Data for routing tests: reference data, convention files and work items written directly.

Items are inserted as intake leaves them (state ``received`` and a ``received`` event at 00:00
local of the intake day), without going through intake, so routing is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import Engine, insert, select

from models.tables import ItemEvent, WorkItem
from relais.conventions import apply_files
from relais.domain.sla import legal_due_on
from relais.reference import load_reference

PARIS = ZoneInfo("Europe/Paris")

REFERENCE = {
    "directorates": [
        {"code": "DRFIP75", "name": "DRFiP Île-de-France et Paris", "department": "75"},
        {"code": "DDFIP18", "name": "DDFiP du Cher", "department": "18"},
        {"code": "DDFIP57", "name": "DDFiP de la Moselle", "department": "57"},
        {"code": "DDFIP27", "name": "DDFiP de l'Eure", "department": "27"},
    ],
    "sies": [
        {"code": "SIE-75-02", "name": "SIE Paris 2e", "directorate": "DRFIP75"},
        {"code": "SIE-75-08", "name": "SIE Paris 8e", "directorate": "DRFIP75"},
        {"code": "SIE-75-17", "name": "SIE Paris 17e", "directorate": "DRFIP75"},
        {"code": "SIE-57-METZ", "name": "SIE de Metz", "directorate": "DDFIP57"},
    ],
    "services": [
        {
            "code": "ANT-18-VIERZON",
            "name": "Antenne de Vierzon",
            "town": "Vierzon",
            "department": "18",
            "host_directorate": "DDFIP18",
            "agents": 50,
        },
        {
            "code": "ANT-57-FORBACH",
            "name": "Antenne de Forbach",
            "town": "Forbach",
            "department": "57",
            "host_directorate": "DDFIP57",
            "agents": 25,
        },
        {
            "code": "ANT-27-PONT-AUDEMER",
            "name": "Antenne de Pont-Audemer",
            "town": "Pont-Audemer",
            "department": "27",
            "host_directorate": "DDFIP27",
            "agents": 25,
        },
    ],
    "closures": [
        {"office": "ANT-18-VIERZON", "date": date(2026, 12, 24), "reason": "Fermeture"},
    ],
}


def load_reference_data(tmp_path: Path, engine: Engine) -> None:
    """Load the test reference data through the product's own loader."""
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(REFERENCE, allow_unicode=True), encoding="utf-8")
    load_reference(path, engine=engine)


def convention_document(
    convention_id: str,
    version: int,
    *,
    perimeter: Sequence[dict[str, Any]],
    service: str = "ANT-18-VIERZON",
    exporting: str = "DRFIP75",
    host: str = "DDFIP18",
    effective_from: date = date(2026, 1, 1),
    effective_to: date | None = None,
    scope: str = "extra_departmental",
) -> dict[str, Any]:
    """A convention version as its YAML file holds it."""
    document: dict[str, Any] = {
        "id": convention_id,
        "version": version,
        "exporting_directorate": exporting,
        "host_directorate": host,
        "service": service,
        "scope": scope,
        "effective_from": effective_from,
        "perimeter": list(perimeter),
    }
    if effective_to is not None:
        document["effective_to"] = effective_to
    return document


def write_convention(directory: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as a YAML file named after its id and version."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{document['id'].lower()}-v{document['version']}.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def apply_convention(directory: Path, engine: Engine, document: dict[str, Any]) -> Path:
    """Write and apply one convention version."""
    path = write_convention(directory, document)
    apply_files([path], engine=engine)
    return path


@dataclass(frozen=True, slots=True)
class NewItem:
    """A work item as intake would have accepted it."""

    sie: str
    reference: str
    process: str
    received_on: date
    intake_on: date | None = None


def add_items(engine: Engine, items: Iterable[NewItem]) -> list[int]:
    """Insert received items and their ``received`` events; return their ids in order."""
    now = datetime.now(UTC)
    ids: list[int] = []
    with engine.begin() as connection:
        for item in items:
            intake_on = item.intake_on or item.received_on
            at = datetime.combine(intake_on, time(0), tzinfo=PARIS)
            key = connection.execute(
                insert(WorkItem.__table__).values(  # type: ignore[attr-defined]
                    sie_code=item.sie,
                    reference=item.reference,
                    process=item.process,
                    siren="732829320",
                    received_on=item.received_on,
                    legal_due_on=legal_due_on(item.process, item.received_on),
                    state="received",
                    last_event_at=at,
                    created_at=now,
                )
            ).inserted_primary_key
            assert key is not None
            item_id = key[0]
            connection.execute(
                insert(ItemEvent.__table__).values(  # type: ignore[attr-defined]
                    item_id=item_id,
                    event="received",
                    at=at,
                    by="cli",
                    to_state="received",
                    as_of=intake_on,
                    recorded_at=now,
                )
            )
            ids.append(item_id)
    return ids


def item_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every item as a dict, keyed ``SIE/reference``."""
    table = WorkItem.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(select(table)).mappings().all()
    return {f"{row['sie_code']}/{row['reference']}": dict(row) for row in rows}


def events_of(engine: Engine, event: str = "assigned") -> list[dict[str, Any]]:
    """Every history row of kind ``event``, oldest first."""
    table = ItemEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(
            select(table).where(table.c.event == event).order_by(table.c.id)
        ).mappings()
        return [dict(row) for row in rows]
