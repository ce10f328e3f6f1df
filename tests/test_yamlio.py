"""Safe YAML reading: syntax errors with lines, limits, no Python objects, field lines."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from models.documents import ConventionDocument, ReferenceDocument
from relais import yamlio
from relais.errors import ValidationError
from relais.yamlio import load_yaml_file, load_yaml_text, parse_model, render_problems


def problems_of(text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_yaml_text(text, source="f.yaml")
    return caught.value.problems


def test_dates_are_parsed_and_lines_recorded() -> None:
    document = load_yaml_text(
        "id: X\nperimeter:\n  - process: tva_refund\n    sies: all\neffective_from: 2024-09-01\n",
        source="f.yaml",
    )
    assert document.data["effective_from"] == date(2024, 9, 1)
    assert document.line_of(("perimeter",)) == 2
    assert document.line_of(("perimeter", 0, "sies")) == 4
    assert document.line_of(("effective_from",)) == 5
    # A missing field points at its nearest parent.
    assert document.line_of(("perimeter", 0, "daily_capacity")) == 3


def test_a_syntax_error_names_the_file_and_line() -> None:
    (problem,) = problems_of("id: X\nperimeter: [a, b\nversion: 1\n")
    assert problem.startswith("f.yaml: line 3")
    assert "YAML syntax error" in problem


def test_duplicate_keys_are_errors() -> None:
    (problem,) = problems_of("id: X\nversion: 1\nid: Y\n")
    assert "line 3" in problem and "duplicate key" in problem and "line 1" in problem


def test_python_objects_are_refused_not_built() -> None:
    (problem,) = problems_of("x: !!python/object/apply:os.system ['echo unsafe']\n")
    assert problem.startswith("f.yaml: line 1")
    assert "could not determine a constructor" in problem


def test_alias_bombs_are_bounded() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for level in range(1, 8):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    (problem,) = problems_of("\n".join(lines) + "\n")
    assert "too many values" in problem


def test_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as caught:
        load_yaml_file(tmp_path / "absent.yaml")
    assert caught.value.problems == [f"{tmp_path / 'absent.yaml'}: file not found"]

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("id: X\nname: Cr\xe9teil\n".encode("latin-1"))
    with pytest.raises(ValidationError) as caught:
        load_yaml_file(latin1)
    assert "line 2" in caught.value.problems[0] and "UTF-8" in caught.value.problems[0]

    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * 100, encoding="utf-8")
    monkeypatch.setattr(yamlio, "MAX_YAML_BYTES", 100)
    with pytest.raises(ValidationError) as caught:
        load_yaml_file(big)
    assert "too large" in caught.value.problems[0]


def test_a_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffdirectorates: []\n".encode())
    assert load_yaml_file(path).data == {"directorates": []}


def test_schema_problems_carry_field_paths_and_lines() -> None:
    document = load_yaml_text(
        "directorates:\n"
        "  - {code: DRFIP75, name: Paris, department: 75}\n"
        "services:\n"
        "  - code: ANT-18-VIERZON\n"
        "    name: Antenne\n"
        "    town: Vierzon\n"
        "    department: '18'\n"
        "    host_directorate: DDFIP18\n"
        "    agents: fifty\n",
        source="ref.yaml",
    )
    model, problems = parse_model(document, ReferenceDocument)
    assert model is None
    assert render_problems(problems, {"ref.yaml": document}) == [
        "ref.yaml: directorates[0].department: department codes are text: write it in quotes, "
        'e.g. "02" (got the number 75) (line 2)',
        "ref.yaml: services[0].agents: must be a whole number, got the text 'fifty' (line 9)",
    ]


def test_unknown_keys_alone_still_give_a_model_to_check_further() -> None:
    document = load_yaml_text(
        "id: C\nversion: 1\nexporting_directorate: A\nhost_directorate: B\nservice: S\n"
        "effective_from: 2024-01-01\ncolor: blue\nperimeter:\n  - {process: auvisir, sies: all}\n",
        source="c.yaml",
    )
    model, problems = parse_model(document, ConventionDocument)
    assert model is not None and model.id == "C"
    (line,) = render_problems(problems, {"c.yaml": document})
    assert line.startswith("c.yaml: color: unknown field (allowed: id, version,")
    assert line.endswith("(line 7)")


@pytest.mark.parametrize(("text", "message"), [("", "empty"), ("- a\n- b\n", "mapping")])
def test_the_document_must_be_a_mapping(text: str, message: str) -> None:
    model, problems = parse_model(load_yaml_text(text, source="x.yaml"), ReferenceDocument)
    assert model is None
    assert message in problems[0].message
