"""Loading reference data: idempotent upsert, all or nothing, read back as in the YAML."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func
from sqlmodel import Session, select

from models.tables import Closure, Directorate, RemoteService, Sie
from relais.conventions import apply_files
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


# --- Reloads against stored conventions -----------------------------------------------

BASE = """\
directorates:
  - {code: DRFIP75, name: Paris, department: '75'}
  - {code: DRFIP92, name: Hauts-de-Seine, department: '92'}
  - {code: DDFIP18, name: Cher, department: '18'}
  - {code: DDFIP36, name: Indre, department: '36'}
sies:
  - {code: SIE-75-08, name: Paris 8e, directorate: DRFIP75}
  - {code: SIE-75-17, name: Paris 17e, directorate: DRFIP75}
services:
  - {code: ANT-18-VIERZON, name: Vierzon, town: Vierzon, department: '18',
     host_directorate: DDFIP18, agents: 50}
  - {code: ANT-75-PARIS, name: Paris, town: Paris, department: '75',
     host_directorate: DRFIP75, agents: 50}
"""

VIERZON = """\
id: CONV-75-VIERZON
version: {version}
exporting_directorate: DRFIP75
host_directorate: DDFIP18
service: ANT-18-VIERZON
effective_from: {effective_from}
effective_to: {effective_to}
perimeter:
  - process: tva_refund
    sies: {sies}
"""

PARIS = """\
id: CONV-75-PARIS
version: 1
exporting_directorate: DRFIP75
host_directorate: DRFIP75
service: ANT-75-PARIS
scope: infra_departmental
effective_from: 2023-09-01
perimeter:
  - process: cfe_ifer_dispute
    sies: [SIE-75-17]
"""


def vierzon(
    tmp_path: Path,
    *,
    version: int = 1,
    effective_from: str = "2023-09-01",
    effective_to: str = "null",
    sies: str = "[SIE-75-08, SIE-75-17]",
) -> Path:
    text = VIERZON.format(
        version=version, effective_from=effective_from, effective_to=effective_to, sies=sies
    )
    return write(tmp_path, f"vierzon-v{version}.yaml", text)


@pytest.fixture
def with_conventions(engine: Engine, tmp_path: Path) -> Engine:
    """The small reference data above, Vierzon for two SIEs of Paris and one Paris antenna."""
    load_reference(write(tmp_path, "base.yaml", BASE), engine=engine)
    apply_files([vierzon(tmp_path), write(tmp_path, "paris.yaml", PARIS)], engine=engine)
    return engine


def reload_refused(engine: Engine, path: Path) -> list[str]:
    """Load ``path`` expecting a refusal; check nothing was written; return the problems.

    A refusal that breaks a stored convention ends with the hint saying how to change it.
    """
    with Session(engine) as session:
        before = list_reference(session)
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=engine, today=date(2026, 6, 1))
    *problems, last = caught.value.problems
    if any("breaks convention" in problem for problem in problems):
        assert last.startswith("hint: a convention keeps the reference data it was applied with")
        assert "apply a new version with effective_to, exclusive, on the day of the change" in last
    else:
        problems.append(last)
    assert str(caught.value) == f"{path}: reference data not loaded " + (
        f"({len(problems)} problem(s))"
    )
    with Session(engine) as session:
        assert list_reference(session) == before
    return problems


def test_moving_a_listed_sie_to_another_directorate_is_refused(
    with_conventions: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "moved.yaml",
        "directorates:\n"
        "  - {code: DRFIP75, name: DRFiP de Paris, department: '75'}\n"
        "sies:\n"
        "  - {code: SIE-75-17, name: Paris 17e, directorate: DRFIP75}\n"
        "  - {code: SIE-75-08, name: Paris 8e, directorate: DRFIP92}\n",
    )
    assert reload_refused(with_conventions, path) == [
        f"{path}: sies[1].directorate: breaks convention CONV-75-VIERZON version 1 at "
        "perimeter[0].sies[0]: SIE SIE-75-08 belongs to DRFIP92, not to the exporting "
        "directorate DRFIP75 (line 5)"
    ]


def test_changing_the_host_directorate_of_a_service_is_refused(
    with_conventions: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "rehosted.yaml",
        "services:\n"
        "  - {code: ANT-18-VIERZON, name: Vierzon, town: Vierzon, department: '36',\n"
        "     host_directorate: DDFIP36, agents: 50}\n",
    )
    assert reload_refused(with_conventions, path) == [
        f"{path}: services[0].host_directorate: breaks convention CONV-75-VIERZON version 1 "
        "at host_directorate: the remote service ANT-18-VIERZON is hosted by DDFIP36, not "
        "DDFIP18 (line 3)"
    ]


def test_department_changes_that_break_a_scope_are_refused(
    with_conventions: Engine, tmp_path: Path
) -> None:
    # Paris 75 → 18: Vierzon (extra_departmental) would be in the exporting department.
    # The Paris antenna → 92: CONV-75-PARIS (infra_departmental) would leave it.
    path = write(
        tmp_path,
        "departments.yaml",
        "directorates:\n"
        "  - {code: DRFIP75, name: Paris, department: '18'}\n"
        "services:\n"
        "  - {code: ANT-75-PARIS, name: Paris, town: Paris, department: '92',\n"
        "     host_directorate: DRFIP75, agents: 50}\n",
    )
    assert reload_refused(with_conventions, path) == [
        f"{path}: services[0].department: breaks convention CONV-75-PARIS version 1 at scope: "
        "infra_departmental requires the remote service to be in department 18 of DRFIP75, "
        "but ANT-75-PARIS is in department 92 (line 4)",
        f"{path}: directorates[0].department: breaks convention CONV-75-VIERZON version 1 at "
        "scope: extra_departmental, but the remote service ANT-18-VIERZON is in department "
        "18, the department of DRFIP75 (write scope: infra_departmental if that is intended) "
        "(line 2)",
    ]


def test_every_problem_of_the_file_is_named_together(
    with_conventions: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "both.yaml",
        "sies:\n"
        "  - {code: SIE-75-08, name: Paris 8e, directorate: DRFIP92}\n"
        "  - {code: SIE-13-01, name: Marseille, directorate: DRFIP13}\n",
    )
    problems = reload_refused(with_conventions, path)
    assert [problem.split(": ")[1] for problem in problems] == [
        "sies[1].directorate",
        "sies[0].directorate",
    ]
    assert "unknown directorate DRFIP13" in problems[0]
    assert "breaks convention CONV-75-VIERZON version 1" in problems[1]


def test_an_ended_or_superseded_version_does_not_block_a_reload(
    engine: Engine, tmp_path: Path
) -> None:
    load_reference(write(tmp_path, "base.yaml", BASE), engine=engine)
    # Version 1 listed SIE-75-08 until version 2 (without it) superseded it on 2025-01-01;
    # version 2 ended on 2026-01-01.
    apply_files(
        [
            vierzon(tmp_path),
            vierzon(
                tmp_path,
                version=2,
                effective_from="2025-01-01",
                effective_to="2026-01-01",
                sies="[SIE-75-17]",
            ),
        ],
        engine=engine,
    )
    moved = write(
        tmp_path,
        "moved.yaml",
        "sies:\n  - {code: SIE-75-08, name: Paris 8e, directorate: DRFIP92}\n"
        "services:\n"
        "  - {code: ANT-18-VIERZON, name: Vierzon, town: Vierzon, department: '36',\n"
        "     host_directorate: DDFIP36, agents: 50}\n",
    )
    result = load_reference(moved, engine=engine, today=date(2026, 1, 1))
    assert (result.counts["sies"].updated, result.counts["services"].updated) == (1, 1)
    with Session(engine) as session:
        assert session.get(Sie, "SIE-75-08").directorate_code == "DRFIP92"  # type: ignore[union-attr]


def test_ending_a_version_lets_the_reload_through_then_its_successor_applies(
    with_conventions: Engine, tmp_path: Path
) -> None:
    today = date(2026, 6, 1)
    apply_files(
        [vierzon(tmp_path, version=2, effective_to=today.isoformat())], engine=with_conventions
    )
    rehosted = write(
        tmp_path,
        "rehosted.yaml",
        "services:\n"
        "  - {code: ANT-18-VIERZON, name: Vierzon, town: Vierzon, department: '36',\n"
        "     host_directorate: DDFIP36, agents: 50}\n",
    )
    load_reference(rehosted, engine=with_conventions, today=today)
    successor = vierzon(tmp_path, version=3, effective_from=today.isoformat())
    successor.write_text(
        successor.read_text(encoding="utf-8").replace("DDFIP18", "DDFIP36"), encoding="utf-8"
    )
    assert apply_files([successor], engine=with_conventions).ok


def test_a_version_still_to_come_blocks_a_reload(engine: Engine, tmp_path: Path) -> None:
    load_reference(write(tmp_path, "base.yaml", BASE), engine=engine)
    apply_files(
        [
            vierzon(tmp_path, effective_to="2026-01-01", sies="[SIE-75-17]"),
            vierzon(tmp_path, version=2, effective_from="2027-01-01"),
        ],
        engine=engine,
    )
    path = write(
        tmp_path,
        "moved.yaml",
        "sies:\n  - {code: SIE-75-08, name: Paris 8e, directorate: DRFIP92}\n",
    )
    assert reload_refused(engine, path) == [
        f"{path}: sies[0].directorate: breaks convention CONV-75-VIERZON version 2 at "
        "perimeter[0].sies[0]: SIE SIE-75-08 belongs to DRFIP92, not to the exporting "
        "directorate DRFIP75 (line 2)"
    ]


def test_reloads_that_keep_conventions_valid_still_load(
    with_conventions: Engine, tmp_path: Path
) -> None:
    again = load_reference(tmp_path / "base.yaml", engine=with_conventions)
    assert not again.changed
    # New names, a new SIE, agents and a closure: nothing a convention depends on.
    changed = (
        BASE.replace("name: Paris 8e", "name: SIE Paris 8e").replace("agents: 50}", "agents: 60}")
        + "  - {code: ANT-92-X, name: X, town: X, department: '92', host_directorate: DRFIP92,"
        " agents: 30}\n"
        "closures:\n  - {office: ANT-18-VIERZON, date: 2026-12-24}\n"
    )
    result = load_reference(write(tmp_path, "changed.yaml", changed), engine=with_conventions)
    assert result.counts["sies"].updated == 1
    assert result.counts["services"].updated == 2
    assert result.counts["services"].created == 1


def test_an_inconsistency_stored_earlier_does_not_block_other_loads(
    with_conventions: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "new-sie.yaml",
        "sies:\n  - {code: SIE-75-01, name: Paris 1er, directorate: DRFIP75}\n",
    )
    load_reference(path, engine=with_conventions)
    # Written behind the loader's back, as data loaded before conventions were re-checked.
    with Session(with_conventions) as session:
        sie = session.get(Sie, "SIE-75-08")
        assert sie is not None
        sie.directorate_code = "DRFIP92"
        session.add(sie)
        session.commit()
    # Moving an SIE no convention lists re-checks the conventions: the old problem stays out.
    path.write_text(
        "sies:\n  - {code: SIE-75-01, name: Paris 1er, directorate: DRFIP92}\n", encoding="utf-8"
    )
    assert load_reference(path, engine=with_conventions).counts["sies"].updated == 1


def test_a_load_that_changes_no_convention_fact_reads_no_convention(
    with_conventions: Engine, tmp_path: Path
) -> None:
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(with_conventions, "before_cursor_execute", record)
    try:
        renamed = BASE.replace("name: Paris 8e", "name: SIE Paris 8e")
        load_reference(write(tmp_path, "renamed.yaml", renamed), engine=with_conventions)
    finally:
        event.remove(with_conventions, "before_cursor_execute", record)
    assert statements
    assert not [statement for statement in statements if "convention_version" in statement]
