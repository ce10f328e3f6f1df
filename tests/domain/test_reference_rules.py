"""Reference data rules, pure: references, duplicates, SIE department default, schema."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from models.documents import ReferenceDocument
from relais.domain.reference import (
    DirectorateRef,
    ReferenceSnapshot,
    plan_reference_load,
    snapshot_after,
)

STORED = ReferenceSnapshot.of(directorates=[DirectorateRef("DDFIP18", "DDFiP du Cher", "18")])


def reference(**sections: Any) -> ReferenceDocument:
    return ReferenceDocument.model_validate(sections)


def errors(
    document: ReferenceDocument, existing: ReferenceSnapshot = STORED
) -> list[tuple[str, str]]:
    plan = plan_reference_load(document, existing)
    return [(problem.field, problem.message) for problem in plan.errors]


PARIS = {"code": "DRFIP75", "name": "DRFiP Île-de-France et Paris", "department": "75"}
VIERZON = {
    "code": "ANT-18-VIERZON",
    "name": "Antenne de Vierzon",
    "town": "Vierzon",
    "department": "18",
    "host_directorate": "DDFIP18",
    "agents": 50,
}


def test_sie_department_defaults_to_its_directorates() -> None:
    document = reference(
        directorates=[PARIS],
        sies=[
            {"code": "SIE-75-08", "name": "SIE Paris 8e", "directorate": "DRFIP75"},
            {"code": "SIE-75-X", "name": "SIE X", "directorate": "DRFIP75", "department": "92"},
        ],
    )
    plan = plan_reference_load(document, STORED)
    assert plan.problems == ()
    assert {sie.code: sie.department for sie in plan.sies} == {"SIE-75-08": "75", "SIE-75-X": "92"}


def test_references_may_point_at_stored_entries() -> None:
    document = reference(
        services=[VIERZON],
        closures=[{"office": "ANT-18-VIERZON", "date": date(2026, 12, 24), "reason": "Fermeture"}],
    )
    plan = plan_reference_load(document, STORED)
    assert plan.problems == ()
    assert snapshot_after(plan, STORED).services["ANT-18-VIERZON"].agents == 50


def test_every_problem_is_reported() -> None:
    document = reference(
        directorates=[PARIS, {**PARIS, "name": "Doublon"}],
        sies=[{"code": "SIE-13-X", "name": "SIE X", "directorate": "DRFIP13"}],
        services=[{**VIERZON, "host_directorate": "DDFIP99"}],
        closures=[
            {"office": "NOWHERE", "date": date(2026, 1, 2)},
            {"office": "NOWHERE", "date": date(2026, 1, 2)},
        ],
    )
    assert errors(document) == [
        ("directorates[1].code", "duplicate code DRFIP75 (already given at directorates[0])"),
        ("sies[0].directorate", "unknown directorate DRFIP13"),
        ("services[0].host_directorate", "unknown directorate DDFIP99"),
        ("closures[0].office", "unknown office NOWHERE (expected an SIE or a remote service)"),
        ("closures[1]", "NOWHERE on 2026-01-02 is already given at closures[0]"),
    ]


def test_an_sie_and_a_service_cannot_share_a_code() -> None:
    document = reference(
        sies=[{"code": "ANT-18-VIERZON", "name": "SIE ?", "directorate": "DDFIP18"}],
        services=[VIERZON],
    )
    found = dict(errors(document))
    assert "sies[0].code" in found and "services[0].code" in found


def test_a_service_outside_its_hosts_department_is_a_warning() -> None:
    plan = plan_reference_load(reference(services=[{**VIERZON, "department": "36"}]), STORED)
    assert plan.errors == ()
    assert [(p.field, p.severity) for p in plan.problems] == [("services[0].department", "warning")]


def schema_error_locations(data: dict[str, Any]) -> set[tuple[Any, ...]]:
    with pytest.raises(PydanticValidationError) as caught:
        ReferenceDocument.model_validate(data)
    return {tuple(error["loc"]) for error in caught.value.errors()}


def test_department_codes_must_be_quoted_text() -> None:
    # YAML reads an unquoted 02 as the integer 2: refuse it rather than store "2".
    assert schema_error_locations({"directorates": [{**PARIS, "department": 2}]}) == {
        ("directorates", 0, "department")
    }
    assert schema_error_locations({"directorates": [{**PARIS, "department": "20"}]}) == {
        ("directorates", 0, "department")
    }
    assert (
        reference(directorates=[{**PARIS, "department": "2A"}]).directorates[0].department == "2A"
    )


def test_reference_schema_is_strict() -> None:
    found = schema_error_locations(
        {
            "directorates": [{**PARIS, "region": "IDF"}],
            "services": [{**VIERZON, "agents": "50"}, {**VIERZON, "agents": 0}],
            "sies": [{"code": "sie 75", "name": "x", "directorate": "DRFIP75"}],
            "offices": [],
        }
    )
    assert found == {
        ("directorates", 0, "region"),
        ("services", 0, "agents"),
        ("services", 1, "agents"),
        ("sies", 0, "code"),
        ("offices",),
    }


def test_empty_sections_are_allowed() -> None:
    document = reference(directorates=[PARIS], closures=None)
    assert document.closures == [] and document.sies == []
