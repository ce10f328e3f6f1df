"""Reference data in the database: load a YAML file (idempotent upsert), read it back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, col, select

from models.documents import ConventionDocument, ReferenceDocument
from models.tables import Closure, ConventionVersion, Directorate, RemoteService, RunLock, Sie
from relais.db import session_scope
from relais.domain.conventions import document_problems, in_force_periods
from relais.domain.reference import (
    DirectorateRef,
    Location,
    Problem,
    ReferenceSnapshot,
    ServiceRef,
    SieRef,
    plan_reference_load,
    snapshot_after,
)
from relais.errors import ConflictError, ValidationError
from relais.settings import get_settings
from relais.yamlio import load_yaml_file, parse_model, render_problems

_Ref = TypeVar("_Ref")

#: Name of the ``run_lock`` row that serialises writers of reference data and conventions.
REFERENCE_LOCK = "reference-data"


@dataclass(slots=True)
class KindCounts:
    """What a load did to one kind of entry."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Entries of this kind in the file."""
        return self.created + self.updated + self.unchanged


@dataclass(slots=True)
class ReferenceLoadResult:
    """Counts per kind and the warnings of a successful load."""

    source: str
    counts: dict[str, KindCounts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return any(counts.created or counts.updated for counts in self.counts.values())


def read_snapshot(session: Session) -> ReferenceSnapshot:
    """All stored directorates, SIEs and services as plain values."""
    return ReferenceSnapshot.of(
        directorates=(
            DirectorateRef(row.code, row.name, row.department)
            for row in session.exec(select(Directorate))
        ),
        sies=(
            SieRef(row.code, row.name, row.directorate_code, row.department)
            for row in session.exec(select(Sie))
        ),
        services=(
            ServiceRef(
                row.code, row.name, row.town, row.department, row.host_directorate_code, row.agents
            )
            for row in session.exec(select(RemoteService))
        ),
    )


def serialise_writers(session: Session, name: str = REFERENCE_LOCK) -> None:
    """Make this transaction the only writer of reference data and conventions until it ends.

    Validation reads stored data and then writes: two concurrent loads or applies must not
    both validate against the state before the other's write. The ``run_lock`` row is
    written first thing: PostgreSQL locks the row, SQLite takes its database write lock.
    """
    now = datetime.now(UTC)
    updated = session.exec(update(RunLock).where(col(RunLock.name) == name).values(acquired_at=now))
    if getattr(updated, "rowcount", 0) == 0:
        try:
            with session.begin_nested():
                session.add(RunLock(name=name, holder="relais", acquired_at=now))
        except IntegrityError:
            # Another writer created the row first: wait for its lock like any later writer.
            session.exec(update(RunLock).where(col(RunLock.name) == name).values(acquired_at=now))


def load_reference(
    path: str | Path, *, engine: Engine | None = None, today: date | None = None
) -> ReferenceLoadResult:
    """Load the reference file at ``path``: all of it in one transaction, or nothing.

    Raises ``ValidationError`` naming every problem (file, field, line) when the file has
    any error, including a change that stored conventions still in force or to come would
    no longer satisfy (see ``broken_conventions``; ``today`` defaults to the current day in
    ``RELAIS_TIMEZONE``). Warnings are returned with the counts.
    """
    document = load_yaml_file(path)
    parsed, schema_problems = parse_model(document, ReferenceDocument)
    if parsed is None:
        lines = render_problems(schema_problems, {document.source: document})
        raise ValidationError(
            f"{document.source}: reference data not loaded ({len(lines)} problem(s))",
            problems=lines,
        )
    # With unknown keys only, the rest is still checked so every problem is named at once.
    result = ReferenceLoadResult(source=document.source)
    try:
        with session_scope(engine) as session:
            serialise_writers(session)
            existing = read_snapshot(session)
            plan = plan_reference_load(parsed, existing)
            day = today or get_settings().today()
            broken = broken_conventions(
                session, parsed, existing, snapshot_after(plan, existing), day
            )
            problems = [
                *schema_problems,
                *(
                    replace(problem, source=document.source)
                    for problem in (*plan.problems, *broken)
                ),
            ]
            rendered = render_problems(problems, {document.source: document})
            errors = [
                line for line, problem in zip(rendered, problems, strict=True) if problem.is_error
            ]
            if errors:
                hint = [_BROKEN_CONVENTION_HINT] if any(p.is_error for p in broken) else []
                raise ValidationError(
                    f"{document.source}: reference data not loaded ({len(errors)} problem(s))",
                    problems=[*errors, *hint],
                )
            result.warnings = [
                line
                for line, problem in zip(rendered, problems, strict=True)
                if not problem.is_error
            ]
            result.counts["directorates"] = _upsert(
                session,
                Directorate,
                [
                    {"code": entry.code, "name": entry.name, "department": entry.department}
                    for entry in plan.directorates
                ],
                ("code",),
            )
            result.counts["sies"] = _upsert(
                session,
                Sie,
                [
                    {
                        "code": entry.code,
                        "name": entry.name,
                        "directorate_code": entry.directorate,
                        "department": entry.department,
                    }
                    for entry in plan.sies
                ],
                ("code",),
            )
            result.counts["services"] = _upsert(
                session,
                RemoteService,
                [
                    {
                        "code": entry.code,
                        "name": entry.name,
                        "town": entry.town,
                        "department": entry.department,
                        "host_directorate_code": entry.host_directorate,
                        "agents": entry.agents,
                    }
                    for entry in plan.services
                ],
                ("code",),
            )
            result.counts["closures"] = _upsert(
                session,
                Closure,
                [
                    {"office": entry.office, "day": entry.day, "reason": entry.reason}
                    for entry in plan.closures
                ],
                ("office", "day"),
            )
    except OperationalError as error:
        raise ConflictError(
            "reference data not loaded: the database is busy with another writer; try again"
        ) from error
    except IntegrityError as error:
        raise ConflictError(
            "reference data not loaded: another load changed the same entries; try again"
        ) from error
    return result


def _changed(
    before: Mapping[str, _Ref], after: Mapping[str, _Ref], facts: Callable[[_Ref], object]
) -> set[str]:
    """Codes present before and after whose ``facts`` differ."""
    return {
        code for code, ref in after.items() if code in before and facts(before[code]) != facts(ref)
    }


#: What to do when a load would break a convention in force or to come.
_BROKEN_CONVENTION_HINT = (
    "hint: a convention keeps the reference data it was applied with. To change it, end the "
    "version (apply a new version with effective_to, exclusive, on the day of the change), "
    "load the reference data on that day, then apply a new version starting that day"
)


def broken_conventions(
    session: Session,
    document: ReferenceDocument,
    before: ReferenceSnapshot,
    after: ReferenceSnapshot,
    today: date,
) -> list[Problem]:
    """What loading ``document`` (``before`` → ``after``) would break in stored conventions.

    Reference data is not dated: what is loaded holds for today and every later day. So the
    versions checked are those whose period in force, supersession applied (as ``relais
    conventions list`` shows it), still has a day on or after ``today``: the version in force
    today and versions that start later. A version whose period ended on or before
    ``today`` (it was ended, or a later version superseded it) or that was superseded
    before it began is history and never blocks a load.

    Each version checked is validated again with the rules of ``relais conventions
    validate``, against ``after``: listed SIEs belong to the exporting directorate, the
    service's host directorate is ``host_directorate``, the departments agree with
    ``scope``. Only what the load breaks is reported, each problem at the entry of the file
    that breaks it; a rule that already failed before the load is not blamed on this file.
    Overlaps between conventions need no second look: a listed SIE can only come under an
    ``all`` line of another convention by leaving its own exporting directorate, which the
    first rule reports. A load that changes no SIE's directorate, no service's host
    directorate or department and no directorate's department reads no convention at all.
    """
    moved_sies = _changed(before.sies, after.sies, lambda sie: sie.directorate)
    services = _changed(
        before.services,
        after.services,
        lambda service: (service.host_directorate, service.department),
    )
    directorates = _changed(
        before.directorates, after.directorates, lambda directorate: directorate.department
    )
    if not (moved_sies or services or directorates):
        return []

    rows = session.exec(
        select(ConventionVersion).order_by(
            col(ConventionVersion.convention_id), col(ConventionVersion.version)
        )
    ).all()
    from relais.conventions import period_specs  # it imports this module

    periods = in_force_periods(period_specs(rows))
    # Where each code is given in the file (the last entry wins, as when it is written).
    given: dict[str, dict[str, int]] = {
        "directorates": {entry.code: index for index, entry in enumerate(document.directorates)},
        "sies": {entry.code: index for index, entry in enumerate(document.sies)},
        "services": {entry.code: index for index, entry in enumerate(document.services)},
    }

    def entry(section: str, code: str, field: str) -> Location:
        index = given[section].get(code)
        return () if index is None else (section, index, field)

    problems: list[Problem] = []
    for row in rows:
        period = periods[(row.convention_id, row.version)]
        if period.is_empty or (period.end is not None and period.end <= today):
            continue
        if (
            not moved_sies
            and row.service_code not in services
            and row.exporting_directorate not in directorates
        ):
            continue
        convention = ConventionDocument.model_validate(row.document)
        held = {
            (problem.location, problem.message)
            for problem in document_problems(convention, before)
            if problem.is_error
        }
        for problem in document_problems(convention, after):
            if not problem.is_error or (problem.location, problem.message) in held:
                continue
            location: Location = ()
            match problem.location:
                case ("perimeter", int(line), "sies", int(item)):
                    location = entry("sies", convention.perimeter[line].sies[item], "directorate")
                case ("host_directorate",):
                    location = entry("services", convention.service, "host_directorate")
                case ("scope",) if convention.service in services and (
                    before.services[convention.service].department
                    != after.services[convention.service].department
                ):
                    location = entry("services", convention.service, "department")
                case ("scope",):
                    location = entry("directorates", convention.exporting_directorate, "department")
            problems.append(
                Problem(
                    location,
                    f"breaks convention {row.convention_id} version {row.version} at "
                    f"{problem.field}: {problem.message}",
                )
            )
    return problems


def _upsert(
    session: Session, table: type[SQLModel], rows: list[dict[str, Any]], key: tuple[str, ...]
) -> KindCounts:
    """Insert missing rows, update changed ones, count the rest; flushed before returning."""
    counts = KindCounts()
    if not rows:
        return counts
    # One query for the stored rows rather than one per entry (a few hundred at most).
    stored = {tuple(getattr(row, name) for name in key): row for row in session.exec(select(table))}
    for values in rows:
        existing = stored.get(tuple(values[name] for name in key))
        if existing is None:
            session.add(table(**values))
            counts.created += 1
            continue
        changed = False
        for name, value in values.items():
            if getattr(existing, name) != value:
                setattr(existing, name, value)
                changed = True
        if changed:
            counts.updated += 1
        else:
            counts.unchanged += 1
    # Parents before children: SIEs and services reference the directorates just added.
    session.flush()
    return counts


def list_reference(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Everything loaded, each entry with the fields of the YAML file."""
    return {
        "directorates": [
            {"code": row.code, "name": row.name, "department": row.department}
            for row in session.exec(select(Directorate).order_by(col(Directorate.code)))
        ],
        "sies": [
            {
                "code": row.code,
                "name": row.name,
                "directorate": row.directorate_code,
                "department": row.department,
            }
            for row in session.exec(select(Sie).order_by(col(Sie.code)))
        ],
        "services": [
            {
                "code": row.code,
                "name": row.name,
                "town": row.town,
                "department": row.department,
                "host_directorate": row.host_directorate_code,
                "agents": row.agents,
            }
            for row in session.exec(select(RemoteService).order_by(col(RemoteService.code)))
        ],
        "closures": [
            {"office": row.office, "date": row.day, "reason": row.reason}
            for row in session.exec(select(Closure).order_by(col(Closure.office), col(Closure.day)))
        ],
    }
