"""Loading reference data: idempotent upsert, all or nothing, read back as in the YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from models.tables import Closure, Directorate, RemoteService, Sie
from relais.errors import ValidationError
from relais.reference import list_reference, load_reference

SHIPPED = Path(__file__).resolve().parents[1] / "relais" / "data" / "reference.yaml"


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            table.__tablename__: session.exec(select(func.count()).select_from(table)).one()
            for table in (Directorate, Sie, RemoteService, Closure)
        }


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loading_the_shipped_file_twice_changes_nothing_the_second_time(engine: Engine) -> None:
    first = load_reference(SHIPPED, engine=engine)
    assert first.counts["directorates"].created == 30
    assert first.counts["services"].created == 10
    before = counts(engine)
    second = load_reference(SHIPPED, engine=engine)
    assert not second.changed
    assert all(kind.unchanged == kind.total for kind in second.counts.values())
    assert counts(engine) == before


def test_list_gives_the_fields_of_the_yaml_file(engine: Engine) -> None:
    load_reference(SHIPPED, engine=engine)
    with Session(engine) as session:
        listed = list_reference(session)
    assert set(listed) == {"directorates", "sies", "services", "closures"}
    assert {"code": "DDFIP02", "name": "DDFiP de l'Aisne", "department": "02"} in listed[
        "directorates"
    ]
    sie = next(entry for entry in listed["sies"] if entry["code"] == "SIE-75-08")
    assert sie == {
        "code": "SIE-75-08",
        "name": "SIE Paris 8e",
        "directorate": "DRFIP75",
        "department": "75",
    }
    vierzon = next(entry for entry in listed["services"] if entry["code"] == "ANT-18-VIERZON")
    assert vierzon == {
        "code": "ANT-18-VIERZON",
        "name": "Antenne de Vierzon",
        "town": "Vierzon",
        "department": "18",
        "host_directorate": "DDFIP18",
        "agents": 50,
    }
    assert set(listed["closures"][0]) == {"office", "date", "reason"}


def test_a_changed_entry_is_updated_in_place(engine: Engine, tmp_path: Path) -> None:
    base = "directorates:\n  - {code: DDFIP18, name: %s, department: '18'}\n"
    load_reference(write(tmp_path, "a.yaml", base % "Cher"), engine=engine)
    result = load_reference(write(tmp_path, "b.yaml", base % "'DDFiP du Cher'"), engine=engine)
    assert (result.counts["directorates"].updated, result.counts["directorates"].created) == (1, 0)
    with Session(engine) as session:
        assert session.get(Directorate, "DDFIP18").name == "DDFiP du Cher"  # type: ignore[union-attr]


def test_a_later_file_may_refer_to_stored_entries(engine: Engine, tmp_path: Path) -> None:
    load_reference(
        write(
            tmp_path,
            "a.yaml",
            "directorates:\n  - {code: DRFIP75, name: Paris, department: '75'}\n",
        ),
        engine=engine,
    )
    load_reference(
        write(
            tmp_path,
            "b.yaml",
            "sies:\n  - {code: SIE-75-08, name: Paris 8e, directorate: DRFIP75}\n",
        ),
        engine=engine,
    )
    with Session(engine) as session:
        assert session.get(Sie, "SIE-75-08").department == "75"  # type: ignore[union-attr]


def test_a_file_with_any_error_writes_nothing_and_names_every_problem(
    engine: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        "directorates:\n"
        "  - {code: DRFIP75, name: Paris, department: '75'}\n"
        "sies:\n"
        "  - {code: SIE-75-08, name: Paris 8e, directorate: DRFIP75}\n"
        "  - {code: SIE-13-01, name: Marseille, directorate: DRFIP13}\n"
        "closures:\n"
        "  - {office: ANT-00-NONE, date: 2026-12-24}\n",
    )
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=engine)
    assert caught.value.problems == [
        f"{path}: sies[1].directorate: unknown directorate DRFIP13 (line 5)",
        f"{path}: closures[0].office: unknown office ANT-00-NONE "
        "(expected an SIE or a remote service) (line 7)",
    ]
    assert counts(engine) == {"directorate": 0, "sie": 0, "remote_service": 0, "closure": 0}


def test_unknown_keys_are_reported_with_the_other_problems(engine: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        "directorates:\n"
        "  - {code: DRFIP75, name: Paris, department: '75', region: IDF}\n"
        "sies:\n"
        "  - {code: SIE-13-01, name: Marseille, directorate: DRFIP13}\n",
    )
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=engine)
    fields = [problem.split(": ")[1] for problem in caught.value.problems]
    assert fields == ["directorates[0].region", "sies[0].directorate"]
    assert counts(engine)["directorate"] == 0


def test_a_yaml_syntax_error_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "directorates:\n  - {code: X, name: [\n")
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=engine)
    assert "YAML syntax error" in caught.value.problems[0]
    assert counts(engine)["directorate"] == 0
