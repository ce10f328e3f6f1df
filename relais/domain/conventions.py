"""Rules of conventions, pure: validation, periods in force, and coverage for routing.

Plain values in, plain values out: parsed documents, a ``ReferenceSnapshot`` and the
versions already stored. Periods are half-open: ``effective_to`` is the first day a version
is no longer in force. Version n is superseded by any later version of the same convention
from that version's ``effective_from``, so it is in force on
``[from_n, min(to_n, from_m for every m > n))`` (possibly empty). Taking the minimum over all
later versions, not only n+1, keeps one version in force at a time even when a later version
starts before an intermediate one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from models.documents import ConventionDocument
from relais.domain.catalogue import CATALOGUE
from relais.domain.reference import Location, Problem, ReferenceSnapshot

#: Below this staffing a remote service is smaller than the programme's standard antenna.
STANDARD_AGENTS = 25
MIN_TARGET_BUSINESS_DAYS = 1
MAX_TARGET_BUSINESS_DAYS = 250
MIN_DAILY_CAPACITY = 1
#: Upper bounds that keep numbers inside the database's integer columns (a typo guard too).
MAX_VERSION = 1_000_000
MAX_DAILY_CAPACITY = 1_000_000


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval of days ``[start, end)``; ``end`` None means open-ended."""

    start: date
    end: date | None

    @property
    def is_empty(self) -> bool:
        """Whether no day is in the period."""
        return self.end is not None and self.end <= self.start

    def contains(self, day: date) -> bool:
        """Whether ``day`` is in the period."""
        return self.start <= day and (self.end is None or day < self.end)

    def first_common_day(self, other: Period) -> date | None:
        """The first day in both periods, or None when they do not overlap."""
        if self.is_empty or other.is_empty:
            return None
        start = max(self.start, other.start)
        ends = [end for end in (self.end, other.end) if end is not None]
        if ends and start >= min(ends):
            return None
        return start


@dataclass(frozen=True, slots=True)
class LineSpec:
    """One perimeter line; ``sies`` None means every SIE of the exporting directorate."""

    position: int
    process: str
    sies: frozenset[str] | None
    target_business_days: int | None = None
    daily_capacity: int | None = None
    line_id: int | None = None

    @property
    def covers_all(self) -> bool:
        """Whether the line is an ``all`` line."""
        return self.sies is None


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """The parts of a convention version that the rules and routing look at."""

    convention_id: str
    version: int
    exporting_directorate: str
    host_directorate: str
    service: str
    effective_from: date
    effective_to: date | None
    lines: tuple[LineSpec, ...]
    fingerprint: str = ""

    @property
    def key(self) -> tuple[str, int]:
        """``(convention id, version)``: the identity of a version."""
        return (self.convention_id, self.version)

    @classmethod
    def from_document(cls, document: ConventionDocument) -> VersionSpec:
        """The spec of a parsed convention document (lines numbered from 0)."""
        return cls(
            convention_id=document.id,
            version=document.version,
            exporting_directorate=document.exporting_directorate,
            host_directorate=document.host_directorate,
            service=document.service,
            effective_from=document.effective_from,
            effective_to=document.effective_to,
            lines=tuple(
                LineSpec(
                    position=position,
                    process=line.process,
                    sies=None if line.covers_all else frozenset(line.sies),
                    target_business_days=line.target_business_days,
                    daily_capacity=line.daily_capacity,
                )
                for position, line in enumerate(document.perimeter)
            ),
            fingerprint=document.fingerprint(),
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A convention document to validate, with the name of its file for messages."""

    source: str
    document: ConventionDocument


@dataclass(frozen=True, slots=True)
class Coverage:
    """Who handles one (SIE, process) on a day, and under which perimeter line."""

    convention_id: str
    version: int
    line_id: int | None
    position: int
    service: str
    target_business_days: int
    daily_capacity: int | None


# --- Periods in force -------------------------------------------------------------------


def in_force_periods(versions: Iterable[VersionSpec]) -> dict[tuple[str, int], Period]:
    """The period each version is actually in force, supersession applied."""
    by_convention: dict[str, list[VersionSpec]] = {}
    for spec in versions:
        by_convention.setdefault(spec.convention_id, []).append(spec)
    periods: dict[tuple[str, int], Period] = {}
    for specs in by_convention.values():
        specs.sort(key=lambda spec: spec.version)
        later_start: date | None = None
        # Walk from the newest version down, carrying the earliest start of the later ones.
        for spec in reversed(specs):
            ends = [end for end in (spec.effective_to, later_start) if end is not None]
            periods[spec.key] = Period(spec.effective_from, min(ends) if ends else None)
            later_start = (
                spec.effective_from
                if later_start is None
                else min(later_start, spec.effective_from)
            )
    return periods


def versions_in_force(versions: Iterable[VersionSpec], on: date) -> dict[str, VersionSpec]:
    """Convention id → the version in force on ``on`` (conventions with none are left out)."""
    specs = list(versions)
    periods = in_force_periods(specs)
    return {spec.convention_id: spec for spec in specs if periods[spec.key].contains(on)}


def coverage_on(
    versions: Iterable[VersionSpec], sie_directorates: Mapping[str, str], on: date
) -> dict[tuple[str, str], Coverage]:
    """(SIE, process) → what covers it on ``on``, with ``all`` lines resolved.

    ``sie_directorates`` maps each known SIE to its directorate: an ``all`` line covers the
    SIEs of the exporting directorate as they are now. The target is the line's or, when the
    line has none, the catalogue default. Should stored data ever hold two covers for one
    pair (validation forbids it), the lowest convention id and line position wins, so the
    result never depends on row order.
    """
    sies_by_directorate: dict[str, list[str]] = {}
    for sie, directorate in sie_directorates.items():
        sies_by_directorate.setdefault(directorate, []).append(sie)
    result: dict[tuple[str, str], Coverage] = {}
    in_force = sorted(versions_in_force(versions, on).values(), key=lambda spec: spec.key)
    for spec in in_force:
        for line in sorted(spec.lines, key=lambda line: line.position):
            sies = (
                sies_by_directorate.get(spec.exporting_directorate, [])
                if line.sies is None
                else line.sies
            )
            info = CATALOGUE.get(line.process)
            target = line.target_business_days or (
                info.default_target_business_days if info is not None else None
            )
            if target is None:
                continue  # an unknown process cannot be routed; validation reports it
            cover = Coverage(
                convention_id=spec.convention_id,
                version=spec.version,
                line_id=line.line_id,
                position=line.position,
                service=spec.service,
                target_business_days=target,
                daily_capacity=line.daily_capacity,
            )
            for sie in sies:
                result.setdefault((sie, line.process), cover)
    return result


# --- Validation -------------------------------------------------------------------------


def validate_conventions(
    candidates: Sequence[Candidate],
    reference: ReferenceSnapshot,
    stored: Iterable[VersionSpec] = (),
) -> list[Problem]:
    """Every problem of ``candidates``, checked against reference data, the ``stored``
    versions and each other. Errors forbid applying; warnings do not.

    A candidate identical to a stored version (same fingerprint) is valid: applying it is a
    no-op. Problems carry the candidate's ``source`` and a field location.
    """
    stored_by_key = {spec.key: spec for spec in stored}
    problems: list[Problem] = []
    # Versions that take part in the overlap check, and which candidate brought each one.
    effective: dict[tuple[str, int], VersionSpec] = dict(stored_by_key)
    owner: dict[tuple[str, int], int] = {}
    specs: list[VersionSpec] = []

    for index, candidate in enumerate(candidates):
        spec = VersionSpec.from_document(candidate.document)
        specs.append(spec)
        problems.extend(
            replace(problem, source=candidate.source)
            for problem in document_problems(candidate.document, reference)
        )
        if spec.version < 1:
            continue
        previous = effective.get(spec.key)
        if previous is not None and previous.fingerprint != spec.fingerprint:
            where = (
                f"is also given in {candidates[owner[spec.key]].source}"
                if spec.key in owner
                else "is already applied"
            )
            problems.append(
                Problem(
                    ("version",),
                    f"{spec.convention_id} version {spec.version} {where} with different "
                    "content; versions are immutable: give the change a new version number",
                    source=candidate.source,
                )
            )
            continue
        if previous is None:
            effective[spec.key] = spec
            owner[spec.key] = index

    periods = in_force_periods(effective.values())
    for index, (candidate, spec) in enumerate(zip(candidates, specs, strict=True)):
        if owner.get(spec.key) != index:
            continue  # identical to a stored version or to an earlier file: checked there
        problems.extend(
            _overlap_problems(candidate.source, spec, effective, owner, index, periods, reference)
        )
    return problems


def document_problems(document: ConventionDocument, reference: ReferenceSnapshot) -> list[Problem]:
    """Rules that need only this document and the reference data.

    A reference load runs them again on stored versions (``relais.reference``).
    """
    problems: list[Problem] = []

    def error(location: Location, message: str) -> None:
        problems.append(Problem(location, message))

    if document.version < 1:
        error(("version",), f"must be 1 or more (got {document.version})")
    elif document.version > MAX_VERSION:
        error(("version",), f"must be at most {MAX_VERSION} (got {document.version})")

    exporting = reference.directorates.get(document.exporting_directorate)
    if exporting is None:
        error(("exporting_directorate",), f"unknown directorate {document.exporting_directorate}")
    if document.host_directorate not in reference.directorates:
        error(("host_directorate",), f"unknown directorate {document.host_directorate}")
    service = reference.services.get(document.service)
    if service is None:
        error(("service",), f"unknown remote service {document.service}")
    else:
        if service.host_directorate != document.host_directorate:
            error(
                ("host_directorate",),
                f"the remote service {service.code} is hosted by {service.host_directorate}, "
                f"not {document.host_directorate}",
            )
        if service.agents < STANDARD_AGENTS:
            problems.append(
                Problem(
                    ("service",),
                    f"the remote service {service.code} has {service.agents} agents, fewer than "
                    f"the standard {STANDARD_AGENTS}",
                    severity="warning",
                )
            )
    if service is not None and exporting is not None:
        same_department = service.department == exporting.department
        if document.scope == "extra_departmental" and same_department:
            error(
                ("scope",),
                f"extra_departmental, but the remote service {service.code} is in department "
                f"{service.department}, the department of {exporting.code} "
                "(write scope: infra_departmental if that is intended)",
            )
        elif document.scope == "infra_departmental" and not same_department:
            error(
                ("scope",),
                f"infra_departmental requires the remote service to be in department "
                f"{exporting.department} of {exporting.code}, but {service.code} is in "
                f"department {service.department}",
            )

    if document.effective_to is not None and document.effective_to <= document.effective_from:
        error(
            ("effective_to",),
            f"must be after effective_from ({document.effective_from.isoformat()}); "
            "effective_to is the first day no longer covered",
        )

    # (process, SIE) → position of the line that first covers it; "all" stands for every SIE.
    covered: dict[tuple[str, str], int] = {}
    for position, line in enumerate(document.perimeter):
        base: Location = ("perimeter", position)
        if line.process not in CATALOGUE:
            error(
                (*base, "process"),
                f"unknown process {line.process!r} (known: {', '.join(CATALOGUE)})",
            )
        if line.target_business_days is not None and not (
            MIN_TARGET_BUSINESS_DAYS <= line.target_business_days <= MAX_TARGET_BUSINESS_DAYS
        ):
            error(
                (*base, "target_business_days"),
                f"must be between {MIN_TARGET_BUSINESS_DAYS} and {MAX_TARGET_BUSINESS_DAYS} "
                f"business days (got {line.target_business_days})",
            )
        if line.daily_capacity is not None and line.daily_capacity < MIN_DAILY_CAPACITY:
            error(
                (*base, "daily_capacity"),
                f"must be at least {MIN_DAILY_CAPACITY} (got {line.daily_capacity}); "
                "leave it out for no cap",
            )
        elif line.daily_capacity is not None and line.daily_capacity > MAX_DAILY_CAPACITY:
            error(
                (*base, "daily_capacity"),
                f"must be at most {MAX_DAILY_CAPACITY} (got {line.daily_capacity}); "
                "leave it out for no cap",
            )
        if line.covers_all:
            earlier = [
                covered_at
                for (process, _), covered_at in covered.items()
                if process == line.process
            ]
            if earlier:
                error(
                    (*base, "sies"),
                    f"({line.process}, all) is covered twice: perimeter[{min(earlier)}] already "
                    f"covers {line.process} for some of these SIEs",
                )
            covered.setdefault((line.process, "all"), position)
            continue
        for item, sie_code in enumerate(line.sies):
            location: Location = (*base, "sies", item)
            sie = reference.sies.get(sie_code)
            if sie is None:
                error(location, f"unknown SIE {sie_code}")
            elif sie.directorate != document.exporting_directorate:
                error(
                    location,
                    f"SIE {sie_code} belongs to {sie.directorate}, not to the exporting "
                    f"directorate {document.exporting_directorate}",
                )
            twice_at = covered.get((line.process, sie_code), covered.get((line.process, "all")))
            if twice_at is not None:
                where = "this line" if twice_at == position else f"perimeter[{twice_at}]"
                error(
                    location,
                    f"({line.process}, {sie_code}) is covered twice: already by {where}",
                )
            else:
                covered[(line.process, sie_code)] = position
    return problems


def _overlap_problems(
    source: str,
    spec: VersionSpec,
    effective: Mapping[tuple[str, int], VersionSpec],
    owner: Mapping[tuple[str, int], int],
    index: int,
    periods: Mapping[tuple[str, int], Period],
    reference: ReferenceSnapshot,
) -> list[Problem]:
    """Overlaps of ``spec`` with versions of other conventions (each pair reported once)."""
    problems: list[Problem] = []
    period = periods[spec.key]
    for other in sorted(effective.values(), key=lambda other: other.key):
        if other.convention_id == spec.convention_id:
            continue
        # Between two files of the same run, the later file carries the message.
        if owner.get(other.key, -1) > index:
            continue
        first_day = period.first_common_day(periods[other.key])
        if first_day is None:
            continue
        for line in spec.lines:
            for other_line in other.lines:
                if other_line.process != line.process:
                    continue
                shared = _shared_sies(spec, line, other, other_line, reference)
                if not shared:
                    continue
                what = f"SIE {shared[0]}" if len(shared) == 1 else f"SIEs {', '.join(shared)}"
                problems.append(
                    Problem(
                        ("perimeter", line.position, "sies"),
                        f"{spec.convention_id} version {spec.version} and {other.convention_id} "
                        f"version {other.version} both cover {what} for process {line.process} "
                        f"on overlapping periods (first overlapping day {first_day.isoformat()})",
                        source=source,
                    )
                )
    return problems


def _shared_sies(
    spec: VersionSpec,
    line: LineSpec,
    other: VersionSpec,
    other_line: LineSpec,
    reference: ReferenceSnapshot,
) -> list[str]:
    """SIEs both lines cover; ``all`` is every SIE of the exporting directorate, now and later.

    Two ``all`` lines of one directorate always collide: they are named by the SIEs known
    today, or ``all`` when the directorate has none yet.
    """

    def directorate_of(sie: str, fallback: str) -> str:
        known = reference.sies.get(sie)
        return known.directorate if known is not None else fallback

    if line.sies is not None and other_line.sies is not None:
        return sorted(line.sies & other_line.sies)
    if line.sies is None and other_line.sies is None:
        if spec.exporting_directorate != other.exporting_directorate:
            return []
        return list(reference.sies_of(spec.exporting_directorate)) or ["all"]
    if line.sies is None:
        assert other_line.sies is not None
        return sorted(
            sie
            for sie in other_line.sies
            if directorate_of(sie, other.exporting_directorate) == spec.exporting_directorate
        )
    return sorted(
        sie
        for sie in line.sies
        if directorate_of(sie, spec.exporting_directorate) == other.exporting_directorate
    )
