"""Schemas of the YAML files people write: reference data and conventions (SPEC §3).

The schemas check shape and types only (unknown keys, wrong types, code formats); the rules
that need other data (does this SIE exist, do two conventions overlap) live in
``relais.domain.reference`` and ``relais.domain.conventions``. Models are strict: a quoted
number is not an integer and an unquoted ``75`` is not a department code, because YAML reads
``02`` as the integer 2 and a silent coercion would load the wrong department.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

#: Codes name folders of the SIE queues, so they stay filesystem- and URL-safe.
CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
CONVENTION_ID_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,63}$")
#: Metropolitan departments 01–95 (no 20), Corsica 2A/2B, overseas 971–976.
DEPARTMENT_RE = re.compile(r"^(0[1-9]|1\d|[3-8]\d|9[0-5]|2[1-9]|2A|2B|97[1-6])$")

ALL_SIES = "all"
Scope = Literal["extra_departmental", "infra_departmental"]


def _code_validator(pattern: re.Pattern[str], max_length: int) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError(
                "code_type", "must be a code (text), got {kind}", {"kind": _kind(value)}
            )
        if not pattern.fullmatch(value):
            raise PydanticCustomError(
                "code_format",
                "'{value}' is not a valid code: upper-case letters, digits, '-' or '_', "
                "at most {max_length} characters",
                {"value": value[:80], "max_length": max_length},
            )
        return value

    return BeforeValidator(check)


def _department(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise PydanticCustomError(
            "department_type",
            'department codes are text: write it in quotes, e.g. "02" (got the number {value})',
            {"value": value},
        )
    if not isinstance(value, str):
        raise PydanticCustomError(
            "department_type",
            "must be a department code in quotes, got {kind}",
            {"kind": _kind(value)},
        )
    if not DEPARTMENT_RE.fullmatch(value):
        raise PydanticCustomError(
            "department_format", "'{value}' is not a French department code", {"value": value[:10]}
        )
    return value


def _date(value: Any) -> Any:
    # YAML already turns unquoted 2024-09-01 into a date; quoted ISO dates are accepted too.
    if isinstance(value, datetime):
        raise PydanticCustomError("date_type", "must be a date YYYY-MM-DD without a time", {})
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "date_value", "'{value}' is not a valid date", {"value": value}
            ) from None
    raise PydanticCustomError(
        "date_type", "must be a date YYYY-MM-DD, got {kind}", {"kind": _kind(value)}
    )


def _none_as_empty_list(value: Any) -> Any:
    # `closures:` with nothing under it is YAML null: read it as an empty section.
    return [] if value is None else value


def _sies(value: Any) -> Any:
    if isinstance(value, str):
        if value == ALL_SIES:
            return value
        raise PydanticCustomError(
            "sies_format",
            "must be a list of SIE codes or the word all, got the text '{value}'",
            {"value": value[:80]},
        )
    if not isinstance(value, list):
        raise PydanticCustomError(
            "sies_type",
            "must be a list of SIE codes or the word all, got {kind}",
            {"kind": _kind(value)},
        )
    if not value:
        raise PydanticCustomError(
            "sies_empty", "must name at least one SIE (or be the word all)", {}
        )
    for index, code in enumerate(value):
        if not isinstance(code, str) or not CODE_RE.fullmatch(code):
            raise PydanticCustomError(
                "sies_item",
                "item {index} is not a valid SIE code (got {kind})",
                {"index": index, "kind": _kind(code) if not isinstance(code, str) else repr(code)},
            )
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


Code = Annotated[str, _code_validator(CODE_RE, 32)]
ConventionId = Annotated[str, _code_validator(CONVENTION_ID_RE, 64)]
Department = Annotated[str, BeforeValidator(_department)]
YamlDate = Annotated[date, BeforeValidator(_date)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
SiesSpec = Annotated[list[str] | Literal["all"], BeforeValidator(_sies)]


class _Strict(BaseModel):
    """Unknown keys and loose types are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- Reference data ---------------------------------------------------------------------


class DirectorateEntry(_Strict):
    """A directorate line of the reference file."""

    code: Code
    name: Name
    department: Department


class SieEntry(_Strict):
    """An SIE line; ``department`` defaults to its directorate's."""

    code: Code
    name: Name
    directorate: Code
    department: Department | None = None


class ServiceEntry(_Strict):
    """A remote service line."""

    code: Code
    name: Name
    town: Annotated[str, Field(min_length=1, max_length=100)]
    department: Department
    host_directorate: Code
    agents: Annotated[int, Field(ge=1, le=10_000)]


class ClosureEntry(_Strict):
    """A day an office (SIE or remote service) is closed besides public holidays."""

    office: Code
    date: YamlDate
    reason: Annotated[str, Field(max_length=200)] | None = None


class ReferenceDocument(_Strict):
    """The whole reference file; every section is optional (a load never deletes)."""

    directorates: Annotated[list[DirectorateEntry], BeforeValidator(_none_as_empty_list)] = []
    sies: Annotated[list[SieEntry], BeforeValidator(_none_as_empty_list)] = []
    services: Annotated[list[ServiceEntry], BeforeValidator(_none_as_empty_list)] = []
    closures: Annotated[list[ClosureEntry], BeforeValidator(_none_as_empty_list)] = []


# --- Conventions ------------------------------------------------------------------------


class PerimeterLineDocument(_Strict):
    """One perimeter line: a process for some SIEs (or ``all`` of the exporting directorate).

    Ranges of ``target_business_days`` and ``daily_capacity`` are checked by the domain
    rules, which word the message for the person who wrote the file.
    """

    process: Annotated[str, Field(min_length=1, max_length=32)]
    sies: SiesSpec
    target_business_days: int | None = None
    daily_capacity: int | None = None

    @property
    def covers_all(self) -> bool:
        """Whether the line covers every SIE of the exporting directorate."""
        return self.sies == ALL_SIES


class ReportingDocument(_Strict):
    """How the convention's monthly report is produced and to whom it goes."""

    frequency: Literal["monthly", "quarterly"] = "monthly"
    recipients: list[Annotated[str, Field(min_length=1, max_length=200)]] = []


class ProjectLeadsDocument(_Strict):
    """The project leads on each side."""

    exporting: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    host: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class ConventionDocument(_Strict):
    """One version of a convention, as written in its YAML file."""

    id: ConventionId
    version: int
    title: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    exporting_directorate: Code
    host_directorate: Code
    service: Code
    scope: Scope = "extra_departmental"
    signed_on: YamlDate | None = None
    effective_from: YamlDate
    effective_to: YamlDate | None = None
    perimeter: Annotated[list[PerimeterLineDocument], Field(min_length=1)]
    reporting: ReportingDocument | None = None
    project_leads: ProjectLeadsDocument | None = None

    def canonical(self) -> dict[str, Any]:
        """The document as plain JSON values, defaults filled in (what is stored)."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """SHA-256 of the canonical form: the same content hashes the same, whatever the
        key order, comments or quoting of the file."""
        payload = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
