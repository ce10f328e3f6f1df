"""Rules of reference data (directorates, SIEs, remote services, closures), pure.

Plain values in, problems out: the caller reads the file and the stored data, this module
says what is wrong and what a load would write. No database, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from models.documents import ReferenceDocument

Severity = Literal["error", "warning"]
Location = tuple[str | int, ...]


def format_location(location: Sequence[str | int]) -> str:
    """``("perimeter", 0, "sies")`` → ``perimeter[0].sies``; the whole document → ``(document)``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or worth a warning) in a file, at a field of it."""

    location: Location
    message: str
    severity: Severity = "error"
    source: str = ""

    @property
    def field(self) -> str:
        """The field path as people read it, e.g. ``perimeter[1].sies``."""
        return format_location(self.location)

    @property
    def is_error(self) -> bool:
        """Whether the problem blocks the load or apply (warnings do not)."""
        return self.severity == "error"

    def render(self, line: int | None = None) -> str:
        """``FILE: field: problem`` (warnings say so; the line is appended when known)."""
        prefix = f"{self.source}: " if self.source else ""
        kind = "warning: " if self.severity == "warning" else ""
        suffix = f" (line {line})" if line is not None else ""
        return f"{prefix}{self.field}: {kind}{self.message}{suffix}"


@dataclass(frozen=True, slots=True)
class DirectorateRef:
    """A stored directorate."""

    code: str
    name: str
    department: str


@dataclass(frozen=True, slots=True)
class SieRef:
    """A stored SIE (department already resolved)."""

    code: str
    name: str
    directorate: str
    department: str


@dataclass(frozen=True, slots=True)
class ServiceRef:
    """A stored remote service."""

    code: str
    name: str
    town: str
    department: str
    host_directorate: str
    agents: int


@dataclass(frozen=True, slots=True)
class ClosureRef:
    """A stored closure day of an office."""

    office: str
    day: date
    reason: str | None


@dataclass(frozen=True, slots=True)
class ReferenceSnapshot:
    """Reference data as plain values, keyed by code."""

    directorates: Mapping[str, DirectorateRef] = field(default_factory=dict)
    sies: Mapping[str, SieRef] = field(default_factory=dict)
    services: Mapping[str, ServiceRef] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        directorates: Iterable[DirectorateRef] = (),
        sies: Iterable[SieRef] = (),
        services: Iterable[ServiceRef] = (),
    ) -> ReferenceSnapshot:
        """Build a snapshot from lists of entries."""
        return cls(
            directorates={entry.code: entry for entry in directorates},
            sies={entry.code: entry for entry in sies},
            services={entry.code: entry for entry in services},
        )

    def sies_of(self, directorate: str) -> tuple[str, ...]:
        """Codes of the SIEs of ``directorate``, sorted."""
        return tuple(
            sorted(code for code, sie in self.sies.items() if sie.directorate == directorate)
        )

    def sie_directorates(self) -> dict[str, str]:
        """SIE code → directorate code (what routing needs to resolve ``all``)."""
        return {code: sie.directorate for code, sie in self.sies.items()}


@dataclass(frozen=True, slots=True)
class ReferencePlan:
    """What loading a reference file would write, once its problems are known."""

    problems: tuple[Problem, ...]
    directorates: tuple[DirectorateRef, ...]
    sies: tuple[SieRef, ...]
    services: tuple[ServiceRef, ...]
    closures: tuple[ClosureRef, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems that forbid writing anything."""
        return tuple(problem for problem in self.problems if problem.is_error)


def plan_reference_load(document: ReferenceDocument, existing: ReferenceSnapshot) -> ReferencePlan:
    """Check ``document`` against itself and the stored ``existing`` data.

    References may point at entries of the same file or at stored ones; an SIE without a
    department gets its directorate's. Every problem is returned, not just the first.
    """
    problems: list[Problem] = []

    def error(location: Location, message: str) -> None:
        problems.append(Problem(location, message))

    sections: tuple[tuple[str, list[str]], ...] = (
        ("directorates", [entry.code for entry in document.directorates]),
        ("sies", [entry.code for entry in document.sies]),
        ("services", [entry.code for entry in document.services]),
    )
    for section, codes in sections:
        first_seen: dict[str, int] = {}
        for index, code in enumerate(codes):
            if code in first_seen:
                error(
                    (section, index, "code"),
                    f"duplicate code {code} (already given at {section}[{first_seen[code]}])",
                )
            first_seen.setdefault(code, index)

    directorates = {**existing.directorates}
    for entry in document.directorates:
        directorates[entry.code] = DirectorateRef(entry.code, entry.name, entry.department)

    sie_codes = set(existing.sies) | {entry.code for entry in document.sies}
    service_codes = set(existing.services) | {entry.code for entry in document.services}
    # SIEs and services share one namespace: both are "offices" with a calendar and a queue.
    for index, sie_entry in enumerate(document.sies):
        if sie_entry.code in service_codes:
            error(
                ("sies", index, "code"), f"{sie_entry.code} is already the code of a remote service"
            )
    for index, service_entry in enumerate(document.services):
        if service_entry.code in sie_codes:
            error(
                ("services", index, "code"), f"{service_entry.code} is already the code of an SIE"
            )

    sies: list[SieRef] = []
    for index, sie_entry in enumerate(document.sies):
        directorate = directorates.get(sie_entry.directorate)
        if directorate is None:
            error(("sies", index, "directorate"), f"unknown directorate {sie_entry.directorate}")
            continue
        department = sie_entry.department or directorate.department
        sies.append(SieRef(sie_entry.code, sie_entry.name, sie_entry.directorate, department))

    services: list[ServiceRef] = []
    for index, service_entry in enumerate(document.services):
        host = directorates.get(service_entry.host_directorate)
        if host is None:
            error(
                ("services", index, "host_directorate"),
                f"unknown directorate {service_entry.host_directorate}",
            )
            continue
        if host.department != service_entry.department:
            problems.append(
                Problem(
                    ("services", index, "department"),
                    f"{service_entry.code} is in department {service_entry.department} but its "
                    f"host directorate {host.code} is that of department {host.department}",
                    severity="warning",
                )
            )
        services.append(
            ServiceRef(
                service_entry.code,
                service_entry.name,
                service_entry.town,
                service_entry.department,
                service_entry.host_directorate,
                service_entry.agents,
            )
        )

    offices = sie_codes | service_codes
    closures: list[ClosureRef] = []
    seen_closures: dict[tuple[str, date], int] = {}
    for index, closure_entry in enumerate(document.closures):
        key = (closure_entry.office, closure_entry.date)
        if key in seen_closures:
            error(
                ("closures", index),
                f"{closure_entry.office} on {closure_entry.date.isoformat()} is already given at "
                f"closures[{seen_closures[key]}]",
            )
            continue
        seen_closures[key] = index
        if closure_entry.office not in offices:
            error(
                ("closures", index, "office"),
                f"unknown office {closure_entry.office} (expected an SIE or a remote service)",
            )
            continue
        closures.append(ClosureRef(closure_entry.office, closure_entry.date, closure_entry.reason))

    return ReferencePlan(
        problems=tuple(problems),
        directorates=tuple(
            DirectorateRef(entry.code, entry.name, entry.department)
            for entry in document.directorates
        ),
        sies=tuple(sies),
        services=tuple(services),
        closures=tuple(closures),
    )


def snapshot_after(plan: ReferencePlan, existing: ReferenceSnapshot) -> ReferenceSnapshot:
    """The reference data as it would be once ``plan`` is written over ``existing``."""
    return ReferenceSnapshot(
        directorates={
            **existing.directorates,
            **{entry.code: entry for entry in plan.directorates},
        },
        sies={**existing.sies, **{entry.code: entry for entry in plan.sies}},
        services={**existing.services, **{entry.code: entry for entry in plan.services}},
    )
