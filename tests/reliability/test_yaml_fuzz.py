"""Hostile reference and convention YAML: every file ends in a clear error or a clean load.

Never a traceback, never a partial write, never code run from the file. The fuzzed documents
are random bytes, or a valid document with values replaced by wrong types, out-of-range
numbers, odd text, deletions and unknown keys.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from relais.cli.main import app
from relais.conventions import apply_files, validate_files
from relais.db import session_scope
from relais.errors import ConflictError, ValidationError
from relais.reference import list_reference, load_reference
from relais.yamlio import MAX_YAML_BYTES
from tests.reliability.conftest import SHIPPED_CONVENTIONS
from tests.reliability.helpers import FUZZ

runner = CliRunner()

BASE_REFERENCE: dict[str, Any] = {
    "directorates": [
        {"code": "DRFIP75", "name": "DRFiP Île-de-France et Paris", "department": "75"},
        {"code": "DDFIP18", "name": "DDFiP du Cher", "department": "18"},
    ],
    "sies": [{"code": "SIE-75-08", "name": "SIE Paris 8e", "directorate": "DRFIP75"}],
    "services": [
        {
            "code": "ANT-18-VIERZON",
            "name": "Antenne de Vierzon",
            "town": "Vierzon",
            "department": "18",
            "host_directorate": "DDFIP18",
            "agents": 50,
        }
    ],
    "closures": [{"office": "ANT-18-VIERZON", "date": "2026-12-24", "reason": "Fermeture"}],
}
BASE_CONVENTION: dict[str, Any] = yaml.safe_load(
    (SHIPPED_CONVENTIONS / "conv-75-vierzon-v1.yaml").read_text("utf-8")
)

#: Values nobody should write in these files, but somebody will.
NASTY_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 250, 251, 2**31, 2**63, 2**64 + 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.text(min_size=190, max_size=400),
    st.sampled_from(
        [
            "",
            " ",
            "all",
            "DRFIP75",
            "SIE-75-08",
            "02",
            "2026-02-30",
            "2026-12-24T10:00:00",
            '=HYPERLINK("http://x","y")',
            "x'); DROP TABLE work_item;--",
            "\x00",
            "ANT-18-VIERZON\n",
        ]
    ),
    st.dates(),
    st.datetimes(),
    st.lists(st.one_of(st.integers(), st.text(max_size=8)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """``base`` with one to three values replaced, removed or added somewhere inside it."""
    document: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        node: Any = document
        while True:
            keys: list[Any] = sorted(node, key=str) if isinstance(node, dict) else []
            if isinstance(node, list):
                keys = list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, dict | list) and child and draw(st.booleans()):
                node = child
                continue
            action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if action == "replace":
                node[key] = draw(NASTY_VALUES)
            elif action == "delete":
                del node[key]
            elif isinstance(node, dict):
                node[draw(st.text(min_size=1, max_size=12))] = draw(NASTY_VALUES)
            else:
                node.append(draw(NASTY_VALUES))
            break
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        document = draw(NASTY_VALUES)  # the whole file is something else
    return document


def _write(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def _reference_state(engine: Engine) -> str:
    with session_scope(engine) as session:
        return json.dumps(list_reference(session), default=str, sort_keys=True)


_CONVENTION_STATE_SQL = {
    "convention_version": "SELECT convention_id, version, fingerprint FROM convention_version",
    "perimeter_line": "SELECT convention_id, version, position, process, all_sies, "
    "target_business_days, daily_capacity FROM perimeter_line",
    "perimeter_sie": "SELECT line_id, sie_code FROM perimeter_sie",
}


def _convention_state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            table: sorted(tuple(map(str, row)) for row in connection.execute(text(sql)))
            for table, sql in _CONVENTION_STATE_SQL.items()
        }


def _assert_problems_name_the_file(error: ValidationError | ConflictError, path: Path) -> None:
    assert error.message.strip()
    for line in error.problems:
        assert line.startswith(str(path)), line
    assert "Traceback" not in error.message


# --- random bytes ----------------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=2048))
def test_random_bytes_as_reference_file(sqlite_engine: Engine, tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "reference.yaml"
    path.write_bytes(raw)
    before = _reference_state(sqlite_engine)
    try:
        load_reference(path, engine=sqlite_engine)
    except ValidationError as error:
        _assert_problems_name_the_file(error, path)
        assert _reference_state(sqlite_engine) == before
        return
    # Only an empty mapping or empty sections can load from noise: nothing to write then.
    assert _reference_state(sqlite_engine) == before


@FUZZ
@given(raw=st.binary(max_size=2048))
def test_random_bytes_as_convention_file(sqlite_engine: Engine, tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "convention.yaml"
    path.write_bytes(raw)
    before = _convention_state(sqlite_engine)
    with pytest.raises(ValidationError) as caught:
        apply_files([path], engine=sqlite_engine)
    _assert_problems_name_the_file(caught.value, path)
    assert _convention_state(sqlite_engine) == before


# --- structured mutations --------------------------------------------------------------------


@FUZZ
@given(document=mutated(BASE_REFERENCE))
def test_mutated_reference_loads_cleanly_or_writes_nothing(
    engine: Engine, tmp_path: Path, document: Any
) -> None:
    path = _write(tmp_path / "reference.yaml", document)
    before = _reference_state(engine)
    try:
        load_reference(path, engine=engine)
    except (ValidationError, ConflictError) as error:
        _assert_problems_name_the_file(error, path)
        assert _reference_state(engine) == before
        return
    # Whatever was accepted is stored as given: loading it again changes nothing.
    after = _reference_state(engine)
    assert not load_reference(path, engine=engine).changed
    assert _reference_state(engine) == after


@FUZZ
@given(document=mutated(BASE_CONVENTION))
def test_mutated_convention_applies_cleanly_or_writes_nothing(
    reference_engine: Engine, tmp_path: Path, document: Any
) -> None:
    path = _write(tmp_path / "convention.yaml", document)
    before = _convention_state(reference_engine)
    try:
        validate_files([path], engine=reference_engine)
        apply_files([path], engine=reference_engine)
    except (ValidationError, ConflictError) as error:
        _assert_problems_name_the_file(error, path)
        assert _convention_state(reference_engine) == before
        return
    after = _convention_state(reference_engine)
    check = apply_files([path], engine=reference_engine)
    assert [outcome[3] for outcome in check.outcomes] == ["unchanged"]
    assert _convention_state(reference_engine) == after


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("version", 2**40),
        ("version", 2**70),
        ("daily_capacity", 2**40),
        ("daily_capacity", 2**70),
        ("target_business_days", 2**70),
    ],
)
def test_out_of_range_numbers_are_validation_errors_on_every_database(
    reference_engine: Engine, tmp_path: Path, where: str, value: int
) -> None:
    document = copy.deepcopy(BASE_CONVENTION)
    if where == "version":
        document["version"] = value
    else:
        document["perimeter"][0][where] = value
    path = _write(tmp_path / "convention.yaml", document)
    before = _convention_state(reference_engine)
    with pytest.raises(ValidationError) as caught:
        apply_files([path], engine=reference_engine)
    assert where in caught.value.message
    assert _convention_state(reference_engine) == before


# --- code in YAML tags -----------------------------------------------------------------------

UNSAFE_TAGS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/new:os.system ["touch {marker}"]',
    "!!python/object/apply:subprocess.check_call [[touch, {marker}]]",
    "!!python/object:pathlib.Path {{}}",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object/apply:builtins.exec [\"open('{marker}', 'w').close()\"]",
]


def _unsafe_documents(payload: str) -> list[str]:
    """The payload as the whole file, as a field value, and as a list item."""
    return [
        f"{payload}\n",
        f"directorates:\n  - {{code: DRFIP75, name: {payload}, department: '75'}}\n",
        f"id: CONV-X\nversion: 1\nperimeter:\n  - {payload}\n",
    ]


@pytest.mark.parametrize("template", UNSAFE_TAGS)
@pytest.mark.parametrize(
    "command",
    [["reference", "load"], ["conventions", "validate"], ["conventions", "apply"]],
    ids=["reference-load", "conventions-validate", "conventions-apply"],
)
def test_yaml_tags_never_run_code(
    reference_engine: Engine, tmp_path: Path, template: str, command: list[str]
) -> None:
    marker = tmp_path / "pwned"
    payload = template.format(marker=marker)
    before = (_reference_state(reference_engine), _convention_state(reference_engine))
    for index, body in enumerate(_unsafe_documents(payload)):
        path = tmp_path / f"unsafe-{index}.yaml"
        path.write_text(body, "utf-8")
        result = runner.invoke(app, [*command, str(path)])
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert "YAML error" in result.stderr and "python/" in result.stderr, result.stderr
        assert not marker.exists()
    assert (_reference_state(reference_engine), _convention_state(reference_engine)) == before


# --- size and shape limits -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [50, 500, 990, 5000])
@pytest.mark.parametrize("shape", ["flow-list", "flow-map", "block-map"])
def test_deep_nesting_is_a_clear_error(
    sqlite_engine: Engine, tmp_path: Path, depth: int, shape: str
) -> None:
    if shape == "flow-list":
        body = "directorates: " + "[" * depth + "]" * depth + "\n"
    elif shape == "flow-map":
        body = "directorates: " + "{a: " * depth + "1" + "}" * depth + "\n"
    else:
        body = "".join(" " * level + "a:\n" for level in range(depth)) + " " * depth + "b\n"
    path = tmp_path / "deep.yaml"
    path.write_text(body, "utf-8")
    result = runner.invoke(app, ["reference", "load", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.stderr.startswith("Error: ")
    assert str(path) in result.stderr


def test_a_file_over_the_size_limit_is_refused_before_parsing(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("directorates:\n")
        line = "  - {code: DRFIP75, name: " + "x" * 150 + ", department: '75'}\n"
        while handle.tell() <= MAX_YAML_BYTES:
            handle.write(line)
    started = time.monotonic()
    result = runner.invoke(app, ["reference", "load", str(path)])
    assert result.exit_code == 1
    assert "file too large" in result.stderr
    assert time.monotonic() - started < 2


def test_many_problems_stay_bounded_in_time(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A 3 MB file of 20,000 wrong entries: a complete list of problems, quickly."""
    entries = [
        {"code": f"SIE-{number:05d}", "name": "SIE", "directorate": "NOPE"}
        for number in range(20_000)
    ]
    path = _write(tmp_path / "many.yaml", {"sies": entries})
    started = time.monotonic()
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=sqlite_engine)
    assert len(caught.value.problems) == 20_000
    assert time.monotonic() - started < 20


def test_alias_bombs_are_refused(sqlite_engine: Engine, tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    started = time.monotonic()
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=sqlite_engine)
    assert "too many values" in caught.value.message
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "raw",
    [
        "directorates:\n  - {code: DRFIP75, name: \"Île\", department: '75'}\n".encode("cp1252"),
        "\ufeffdirectorates: []\n".encode("utf-16"),
        b"\xff\xfe\x00\x00",
        b"directorates: [\x00]\n",
        b"directorates:\n\t- {code: A}\n",
    ],
    ids=["cp1252", "utf-16", "utf-32-bom", "nul", "tab-indent"],
)
def test_wrong_encodings_are_clear_errors(
    sqlite_engine: Engine, tmp_path: Path, raw: bytes
) -> None:
    path = tmp_path / "encoded.yaml"
    path.write_bytes(raw)
    before = _reference_state(sqlite_engine)
    with pytest.raises(ValidationError) as caught:
        load_reference(path, engine=sqlite_engine)
    _assert_problems_name_the_file(caught.value, path)
    assert _reference_state(sqlite_engine) == before
