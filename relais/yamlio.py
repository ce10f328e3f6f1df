"""Safe YAML reading for the files people write (reference data, conventions).

Only the safe loader is used (no Python objects), files are capped in size, and every value
remembers the line it came from so that an error can say where to look.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from relais.domain.reference import Problem, format_location
from relais.errors import ValidationError

#: Reference and convention files are a few kilobytes; anything near this is a mistake.
MAX_YAML_BYTES = 5 * 1024 * 1024
#: Bound on values visited once aliases are expanded ("billion laughs" documents).
MAX_YAML_NODES = 200_000
#: Reference and convention files nest a few levels; deeper documents are refused before
#: their values are built (building them recurses once per level).
MAX_YAML_DEPTH = 32

Location = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed YAML file: its data, how to name it in messages, and where each value is."""

    source: str
    data: Any
    lines: Mapping[Location, int] = field(default_factory=dict)

    def line_of(self, location: Sequence[str | int]) -> int | None:
        """The 1-based line of the value at ``location``, or of its nearest parent."""
        path = tuple(location)
        while True:
            line = self.lines.get(path)
            if line is not None:
                return line
            if not path:
                return None
            path = path[:-1]


def load_yaml_file(path: str | Path, *, source: str | None = None) -> YamlDocument:
    """Read and parse the YAML file at ``path``.

    ``source`` is how messages name the file (default: the path as given). Raises
    ``ValidationError`` whose problems say what is wrong and, where known, on which line.
    """
    path = Path(path)
    label = source if source is not None else str(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise _problem(label, f"file too large ({size} bytes, at most {MAX_YAML_BYTES})")
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise _problem(label, "file not found") from None
    except IsADirectoryError:
        raise _problem(label, "is a directory, not a file") from None
    except OSError as error:
        raise _problem(label, f"cannot read the file ({error.strerror or error})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise _problem(label, f"file too large (more than {MAX_YAML_BYTES} bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise _problem(label, f"line {line}: not UTF-8 text (save the file as UTF-8)") from None
    return load_yaml_text(text, source=label)


def load_yaml_text(text: str, *, source: str) -> YamlDocument:
    """Parse YAML ``text`` (one document) with the safe loader, keeping line numbers."""
    if len(text) > MAX_YAML_BYTES:
        raise _problem(source, f"document too large (more than {MAX_YAML_BYTES} characters)")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _depth_exceeds(node, MAX_YAML_DEPTH):
            raise _problem(source, f"values nested more than {MAX_YAML_DEPTH} levels deep")
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        raise _problem(source, _describe_yaml_error(error)) from None
    except yaml.YAMLError as error:
        raise _problem(source, f"YAML syntax error: {error}") from None
    finally:
        loader.dispose()
    if node is None:
        return YamlDocument(source=source, data=None, lines={})
    lines: dict[Location, int] = {}
    problems: list[str] = []
    _index(node, (), lines, problems, [0])
    if problems:
        raise ValidationError(
            f"{source}: not a valid YAML document", problems=problems_of(source, problems)
        )
    return YamlDocument(source=source, data=data, lines=lines)


def problems_of(source: str, messages: Sequence[str]) -> list[str]:
    """Prefix each message with the file name, the form every validation line takes."""
    return [f"{source}: {message}" for message in messages]


def _problem(source: str, message: str) -> ValidationError:
    return ValidationError(f"{source}: cannot be read", problems=[f"{source}: {message}"])


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = error.problem or error.context or "invalid YAML"
    context = f" ({error.context})" if error.context and error.problem else ""
    # Constructor errors are well-formed YAML asking for something unsafe or unknown.
    kind = (
        "YAML error"
        if isinstance(error, yaml.constructor.ConstructorError)
        else "YAML syntax error"
    )
    return f"{where}{kind}: {what}{context}"


def _depth_exceeds(root: yaml.Node, limit: int) -> bool:
    """Whether any value sits more than ``limit`` levels deep (iterative: no recursion)."""
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    # Aliases share nodes: visit a node again only when reached deeper than before (a
    # self-referencing document is then, rightly, too deep).
    deepest: dict[int, int] = {}
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if deepest.get(id(node), -1) >= depth:
            continue
        deepest[id(node)] = depth
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack.append((key_node, depth + 1))
                stack.append((value_node, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
    return False


def _index(
    node: yaml.Node,
    path: Location,
    lines: dict[Location, int],
    problems: list[str],
    visited: list[int],
) -> None:
    """Record the line of every value; report duplicate keys, which PyYAML silently merges."""
    visited[0] += 1
    if visited[0] > MAX_YAML_NODES:
        if not problems or not problems[-1].startswith("too many values"):
            problems.append(
                f"too many values (more than {MAX_YAML_NODES} once aliases are expanded)"
            )
        return
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key: str | int = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                problems.append(
                    f"line {line}: {format_location((*path, key))}: duplicate key "
                    f"(first given on line {seen[key]})"
                )
            seen.setdefault(key, line)
            # The key's line: where the reader looks for the field, even for a block value.
            lines.setdefault((*path, key), line)
            _index(value_node, (*path, key), lines, problems, visited)
            if visited[0] > MAX_YAML_NODES:
                return
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _index(item, (*path, position), lines, problems, visited)
            if visited[0] > MAX_YAML_NODES:
                return


def parse_model(document: YamlDocument, model: type[ModelT]) -> tuple[ModelT | None, list[Problem]]:
    """Validate the YAML data against a schema; problems carry field paths and the file name.

    Every schema problem is returned, not only the first. When the only thing wrong is
    unknown keys, the model read without them is returned too, so that the caller can go
    on checking the rest and name all problems at once; the file is invalid all the same.
    """
    if document.data is None:
        return None, [Problem((), "the file is empty", source=document.source)]
    if not isinstance(document.data, dict):
        return None, [
            Problem((), "must be a mapping of fields (key: value)", source=document.source)
        ]
    try:
        return model.model_validate(document.data), []
    except PydanticValidationError as error:
        details = error.errors(include_url=False)
    problems = [
        Problem(tuple(detail["loc"]), _schema_message(model, detail), source=document.source)
        for detail in details
    ]
    if all(detail["type"] == "extra_forbidden" for detail in details):
        stripped = _without(document.data, [tuple(detail["loc"]) for detail in details])
        try:
            return model.model_validate(stripped), problems
        except PydanticValidationError:
            pass
    return None, problems


def _without(data: Any, locations: Sequence[Location]) -> Any:
    """A deep copy of ``data`` without the keys at ``locations``."""
    if isinstance(data, dict):
        here = {location[0] for location in locations if len(location) == 1}
        return {
            key: _without(value, [loc[1:] for loc in locations if len(loc) > 1 and loc[0] == key])
            for key, value in data.items()
            if key not in here
        }
    if isinstance(data, list):
        return [
            _without(item, [loc[1:] for loc in locations if len(loc) > 1 and loc[0] == index])
            for index, item in enumerate(data)
        ]
    return data


def render_problems(
    problems: Sequence[Problem], documents: Mapping[str, YamlDocument]
) -> list[str]:
    """``FILE: field: problem (line N)`` for each problem, lines looked up in its document."""
    rendered = []
    for problem in problems:
        document = documents.get(problem.source)
        line = document.line_of(problem.location) if document is not None else None
        rendered.append(problem.render(line))
    return rendered


def _schema_message(model: type[BaseModel], detail: Any) -> str:
    kind = detail["type"]
    location = tuple(detail["loc"])
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, location[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown field{hint}"
    if kind == "missing":
        return "required field missing"
    if kind in {"model_type", "dict_type"}:
        return "must be a mapping of fields (key: value)"
    if kind == "list_type":
        return "must be a list"
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        return f"must be a whole number, got {_describe(detail.get('input'))}"
    if kind in {"string_type"}:
        return f"must be text, got {_describe(detail.get('input'))}"
    if kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}, got {_describe(detail.get('input'))}"
    return str(detail["msg"])


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _allowed_fields(model: type[BaseModel], location: Sequence[str | int]) -> list[str]:
    """The field names of the (nested) model at ``location``, for 'unknown field' hints."""
    current: Any = model
    for part in location:
        if isinstance(part, int):
            continue  # list items: the element model is already what _model_in found
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The model class inside ``X``, ``X | None``, ``list[X]`` or ``Annotated[...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None
