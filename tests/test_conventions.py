"""Conventions in the database: apply all or nothing, immutable versions, read back, coverage."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from models.documents import ConventionDocument
from models.tables import ConventionVersion, PerimeterLine, PerimeterSie
from relais.conventions import (
    apply_files,
    coverage_on,
    list_conventions,
    show_convention,
    stored_versions,
    validate_files,
)
from relais.errors import NotFoundError, ValidationError
from relais.reference import load_reference

DATA = Path(__file__).resolve().parents[1] / "relais" / "data"
SHIPPED = sorted((DATA / "conventions").glob("*.yaml"))

VIERZON_V1 = """\
id: CONV-75-VIERZON
version: 1
exporting_directorate: DRFIP75
host_directorate: DDFIP18
service: ANT-18-VIERZON
effective_from: 2023-09-01
perimeter:
  - process: tva_refund
    sies: [SIE-75-02, SIE-75-08, SIE-75-17]
    daily_capacity: 300
  - process: auvisir
    sies: all
"""


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    """A database with the shipped reference data."""
    load_reference(DATA / "reference.yaml", engine=engine)
    return engine


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def table_counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(table)).one()
            for table in (ConventionVersion, PerimeterLine, PerimeterSie)
        )


def test_the_shipped_conventions_validate_together(loaded: Engine) -> None:
    check = validate_files(SHIPPED, engine=loaded)
    assert check.errors == []
    # The small antennas (about 20 agents at opening) are expected warnings.
    assert len(check.warnings) == 4
    assert all("fewer than the standard 25" in line for line in check.warnings)
    assert table_counts(loaded) == (0, 0, 0)


def test_the_shipped_conventions_are_labelled_illustrative_unless_confirmed() -> None:
    for path in SHIPPED:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("#"), path.name
        title = ConventionDocument.model_validate(yaml.safe_load(text)).title or ""
        assert "illustratif" in title.lower(), path.name


def test_apply_then_apply_again_is_a_no_op(loaded: Engine) -> None:
    first = apply_files(SHIPPED, engine=loaded)
    assert {status for *_, status in first.outcomes} == {"new"}
    after_first = table_counts(loaded)
    assert after_first[0] == len(SHIPPED)
    second = apply_files(SHIPPED, engine=loaded)
    assert {status for *_, status in second.outcomes} == {"unchanged"}
    assert table_counts(loaded) == after_first


def test_a_different_document_under_an_applied_version_is_refused(
    loaded: Engine, tmp_path: Path
) -> None:
    apply_files([write(tmp_path, "v1.yaml", VIERZON_V1)], engine=loaded)
    before = table_counts(loaded)
    changed = write(tmp_path, "v1-bis.yaml", VIERZON_V1.replace("300", "400"))
    with pytest.raises(ValidationError) as caught:
        apply_files([changed], engine=loaded)
    (line,) = caught.value.problems
    assert line.startswith(f"{changed}: version: CONV-75-VIERZON version 1 is already applied")
    assert table_counts(loaded) == before


def test_apply_is_all_or_nothing(loaded: Engine, tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", VIERZON_V1)
    bad = write(
        tmp_path,
        "bad.yaml",
        VIERZON_V1.replace("CONV-75-VIERZON", "CONV-75-OTHER").replace(
            "daily_capacity: 300", "daily_capacity: 0"
        ),
    )
    with pytest.raises(ValidationError) as caught:
        apply_files([good, bad], engine=loaded)
    problems = caught.value.problems
    assert f"{bad}: perimeter[0].daily_capacity: must be at least 1 (got 0)" in problems[0]
    # The two files also overlap each other (same SIEs, same processes, same period).
    assert any("CONV-75-OTHER version 1 and CONV-75-VIERZON version 1" in p for p in problems)
    assert table_counts(loaded) == (0, 0, 0)


def test_an_overlap_with_a_stored_convention_is_refused(loaded: Engine, tmp_path: Path) -> None:
    apply_files([write(tmp_path, "v1.yaml", VIERZON_V1)], engine=loaded)
    other = write(
        tmp_path,
        "other.yaml",
        "id: CONV-75-PONT-AUDEMER\nversion: 1\nexporting_directorate: DRFIP75\n"
        "host_directorate: DDFIP27\nservice: ANT-27-PONT-AUDEMER\neffective_from: 2024-02-01\n"
        "perimeter:\n  - {process: auvisir, sies: [SIE-75-10]}\n",
    )
    with pytest.raises(ValidationError) as caught:
        apply_files([other], engine=loaded)
    (line,) = caught.value.problems
    assert line == (
        f"{other}: perimeter[0].sies: CONV-75-PONT-AUDEMER version 1 and CONV-75-VIERZON "
        "version 1 both cover SIE SIE-75-10 for process auvisir on overlapping periods "
        "(first overlapping day 2024-02-01) (line 8)"
    )


def test_ending_a_convention_lets_another_take_over(loaded: Engine, tmp_path: Path) -> None:
    apply_files([write(tmp_path, "v1.yaml", VIERZON_V1)], engine=loaded)
    ending = write(
        tmp_path,
        "v2.yaml",
        VIERZON_V1.replace("version: 1", "version: 2").replace(
            "effective_from: 2023-09-01", "effective_from: 2024-01-01\neffective_to: 2025-01-01"
        ),
    )
    successor = write(
        tmp_path,
        "successor.yaml",
        "id: CONV-75-PONT-AUDEMER\nversion: 1\nexporting_directorate: DRFIP75\n"
        "host_directorate: DDFIP27\nservice: ANT-27-PONT-AUDEMER\neffective_from: 2025-01-01\n"
        "perimeter:\n  - {process: auvisir, sies: all}\n",
    )
    assert validate_files([successor], engine=loaded).errors != []
    check = apply_files([ending, successor], engine=loaded)
    assert check.errors == []
    with Session(loaded) as session:
        on_2024 = {
            entry["id"]: entry["version"]
            for entry in list_conventions(session, as_of=date(2024, 6, 1))
        }
        on_2025 = {
            entry["id"]: entry["version"]
            for entry in list_conventions(session, as_of=date(2025, 1, 1))
        }
        assert on_2024 == {"CONV-75-VIERZON": 2}
        assert on_2025 == {"CONV-75-PONT-AUDEMER": 1}
        assert list_conventions(session, as_of=date(2023, 8, 31)) == []
        assert len(list_conventions(session)) == 3


def test_show_gives_the_document_stored_fields_and_period_in_force(loaded: Engine) -> None:
    apply_files(SHIPPED, engine=loaded)
    with Session(loaded) as session:
        latest = show_convention(session, "CONV-75-VIERZON")
        first = show_convention(session, "CONV-75-VIERZON", version=1)
        with pytest.raises(NotFoundError):
            show_convention(session, "CONV-75-VIERZON", version=9)
        with pytest.raises(NotFoundError):
            show_convention(session, "CONV-00-NONE")
    assert latest["version"] == 2
    assert (latest["in_force_from"], latest["in_force_to"]) == (date(2025, 1, 1), None)
    assert (first["in_force_from"], first["in_force_to"]) == (date(2023, 9, 1), date(2025, 1, 1))
    assert first["effective_to"] is None
    assert first["scope"] == "extra_departmental"
    assert first["perimeter"][0]["sies"] == ["SIE-75-02", "SIE-75-08", "SIE-75-17"]
    assert first["perimeter"][0]["daily_capacity"] == 300
    assert isinstance(first["perimeter"][0]["line_id"], int)
    assert len(first["fingerprint"]) == 64 and first["applied_at"].tzinfo is not None


def test_stored_versions_round_trip_the_perimeter(loaded: Engine, tmp_path: Path) -> None:
    apply_files([write(tmp_path, "v1.yaml", VIERZON_V1)], engine=loaded)
    with Session(loaded) as session:
        (spec,) = stored_versions(session)
    tva, auvisir = spec.lines
    assert tva.sies == {"SIE-75-02", "SIE-75-08", "SIE-75-17"} and tva.daily_capacity == 300
    assert auvisir.sies is None and auvisir.covers_all
    assert tva.line_id is not None and auvisir.line_id is not None


def test_coverage_on_resolves_all_from_current_sies(loaded: Engine, tmp_path: Path) -> None:
    apply_files([write(tmp_path, "v1.yaml", VIERZON_V1)], engine=loaded)
    with Session(loaded) as session:
        covered = coverage_on(session, date(2026, 3, 2))
        assert coverage_on(session, date(2023, 8, 31)) == {}
        line_ids = dict(
            session.exec(select(PerimeterLine.process, PerimeterLine.id)).all()  # type: ignore[arg-type]
        )
    paris = {f"SIE-75-{n}" for n in ("02", "08", "09", "10", "11", "15", "16", "17", "20")}
    assert {sie for sie, process in covered if process == "auvisir"} == paris
    tva = covered[("SIE-75-08", "tva_refund")]
    assert (tva.service, tva.daily_capacity, tva.target_business_days) == (
        "ANT-18-VIERZON",
        300,
        20,
    )
    assert tva.line_id == line_ids["tva_refund"]
    assert covered[("SIE-75-20", "auvisir")].line_id == line_ids["auvisir"]
    assert ("SIE-75-20", "tva_refund") not in covered


def test_coverage_with_a_draft_evaluates_it_as_if_applied(loaded: Engine) -> None:
    draft = ConventionDocument.model_validate(
        {
            "id": "CONV-59-LAON",
            "version": 1,
            "exporting_directorate": "DRFIP59",
            "host_directorate": "DDFIP02",
            "service": "ANT-02-LAON",
            "effective_from": date(2026, 1, 1),
            "perimeter": [{"process": "medoc_web", "sies": ["SIE-59-LILLE"]}],
        }
    )
    with Session(loaded) as session:
        covered = coverage_on(session, date(2026, 3, 2), drafts=[draft])
    assert covered[("SIE-59-LILLE", "medoc_web")].service == "ANT-02-LAON"
    assert table_counts(loaded) == (0, 0, 0)


def test_concurrent_applies_of_overlapping_conventions_let_one_through(
    loaded: Engine, tmp_path: Path
) -> None:
    # Each file alone is valid; together they overlap. Validation and write are serialised,
    # so the second writer validates against the first one's committed version.
    first = write(tmp_path, "a.yaml", VIERZON_V1)
    second = write(
        tmp_path,
        "b.yaml",
        VIERZON_V1.replace("CONV-75-VIERZON", "CONV-75-PONT-AUDEMER")
        .replace("DDFIP18", "DDFIP27")
        .replace("ANT-18-VIERZON", "ANT-27-PONT-AUDEMER"),
    )
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def apply(path: Path) -> None:
        barrier.wait()
        try:
            apply_files([path], engine=loaded)
            outcomes[path.name] = "applied"
        except ValidationError:
            outcomes[path.name] = "refused"

    threads = [threading.Thread(target=apply, args=(path,)) for path in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["applied", "refused"]
    assert table_counts(loaded)[0] == 1
