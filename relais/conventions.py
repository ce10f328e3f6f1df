"""Conventions in the database: validate and apply files, read versions back, coverage.

Validation is the pure ``relais.domain.conventions``; this module feeds it what is stored
and writes what it accepts. Versions are immutable: an identical document is a no-op, a
different one under an existing (id, version) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from models.documents import ConventionDocument
from models.tables import ConventionVersion, PerimeterLine, PerimeterSie, Sie
from relais.db import session_scope
from relais.domain.conventions import (
    Candidate,
    Coverage,
    LineSpec,
    Period,
    VersionSpec,
    in_force_periods,
    validate_conventions,
)
from relais.domain.conventions import coverage_on as coverage_of_versions
from relais.errors import ConflictError, NotFoundError, ValidationError
from relais.reference import read_snapshot, serialise_writers
from relais.yamlio import YamlDocument, load_yaml_file, parse_model, render_problems

#: ``new``: would be written; ``unchanged``: identical to a stored version (a no-op);
#: ``duplicate``: the same version as an earlier file of the same command.
Status = Literal["new", "unchanged", "duplicate"]


@dataclass(slots=True)
class ConventionCheck:
    """The outcome of validating convention files: rendered problems and what would apply."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    #: ``(source, id, version, status)`` for each file that parsed, in the order given.
    outcomes: list[tuple[str, str, int, Status]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether there is no error (warnings allowed)."""
        return not self.errors

    def raise_for_errors(self, action: str) -> None:
        """Raise ``ValidationError`` listing every error line, if any."""
        if self.errors:
            raise ValidationError(
                f"{action}: {len(self.errors)} problem(s) in the convention files",
                problems=self.errors,
            )


# --- Reading stored versions -----------------------------------------------------------


def stored_versions(session: Session, *, convention_id: str | None = None) -> list[VersionSpec]:
    """Stored versions as plain specs (line ids and SIEs included), by id and version."""
    query = select(ConventionVersion)
    lines_query = select(PerimeterLine)
    if convention_id is not None:
        query = query.where(col(ConventionVersion.convention_id) == convention_id)
        lines_query = lines_query.where(col(PerimeterLine.convention_id) == convention_id)
    rows = session.exec(
        query.order_by(col(ConventionVersion.convention_id), col(ConventionVersion.version))
    ).all()
    line_rows = session.exec(lines_query.order_by(col(PerimeterLine.position))).all()
    line_ids = [line.id for line in line_rows]
    sies_by_line: dict[int, set[str]] = {}
    if line_ids:
        sie_query = select(PerimeterSie)
        if convention_id is not None:
            sie_query = sie_query.where(col(PerimeterSie.line_id).in_(line_ids))
        for named in session.exec(sie_query):
            sies_by_line.setdefault(named.line_id, set()).add(named.sie_code)
    lines_by_version: dict[tuple[str, int], list[LineSpec]] = {}
    for line in line_rows:
        assert line.id is not None
        lines_by_version.setdefault((line.convention_id, line.version), []).append(
            LineSpec(
                position=line.position,
                process=line.process,
                sies=None if line.all_sies else frozenset(sies_by_line.get(line.id, set())),
                target_business_days=line.target_business_days,
                daily_capacity=line.daily_capacity,
                line_id=line.id,
            )
        )
    return [
        _spec(row, tuple(lines_by_version.get((row.convention_id, row.version), [])))
        for row in rows
    ]


def _spec(row: ConventionVersion, lines: tuple[LineSpec, ...] = ()) -> VersionSpec:
    """The pure view of a stored version (without lines where only periods matter)."""
    return VersionSpec(
        convention_id=row.convention_id,
        version=row.version,
        exporting_directorate=row.exporting_directorate,
        host_directorate=row.host_directorate,
        service=row.service_code,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
        lines=lines,
        fingerprint=row.fingerprint,
    )


def sie_directorates(session: Session) -> dict[str, str]:
    """SIE code → directorate code, to resolve ``all`` lines."""
    return {
        code: directorate
        for code, directorate in session.exec(select(Sie.code, Sie.directorate_code)).all()
    }


def coverage_on(
    session: Session, as_of: date, *, drafts: Sequence[ConventionDocument] = ()
) -> dict[tuple[str, str], Coverage]:
    """(SIE, process) → the convention line that covers it on ``as_of``.

    ``drafts`` are evaluated as if applied (what-if routing): their lines have no line id.
    A draft with the (id, version) of a stored version replaces it for this evaluation only.
    """
    versions = {spec.key: spec for spec in stored_versions(session)}
    for document in drafts:
        spec = VersionSpec.from_document(document)
        versions[spec.key] = spec
    return coverage_of_versions(versions.values(), sie_directorates(session), as_of)


# --- Validate and apply -------------------------------------------------------------------


def check_files(session: Session, paths: Sequence[str | Path]) -> ConventionCheck:
    """Validate the files against stored reference data, stored conventions and each other.

    Problems come out grouped by file, in the order the files were given.
    """
    check = ConventionCheck()
    documents: dict[str, YamlDocument] = {}
    order: dict[str, int] = {}
    errors: list[tuple[int, str]] = []
    warnings: list[tuple[int, str]] = []
    for index, path in enumerate(paths):
        try:
            document = load_yaml_file(path)
        except ValidationError as error:
            errors.extend((index, line) for line in error.problems or [error.message])
            continue
        documents[document.source] = document
        order.setdefault(document.source, index)
        parsed, problems = parse_model(document, ConventionDocument)
        errors.extend((index, line) for line in render_problems(problems, documents))
        if parsed is not None:
            check.candidates.append(Candidate(document.source, parsed))

    stored = stored_versions(session)
    problems = validate_conventions(check.candidates, read_snapshot(session), stored)
    for problem, line in zip(problems, render_problems(problems, documents), strict=True):
        (errors if problem.is_error else warnings).append((order[problem.source], line))
    check.errors = [line for _, line in sorted(errors, key=lambda entry: entry[0])]
    check.warnings = [line for _, line in sorted(warnings, key=lambda entry: entry[0])]

    fingerprints = {spec.key: spec.fingerprint for spec in stored}
    seen: set[tuple[str, int]] = set()
    for candidate in check.candidates:
        key = (candidate.document.id, candidate.document.version)
        status: Status = "new"
        if fingerprints.get(key) == candidate.document.fingerprint():
            status = "unchanged"
        elif key in seen:
            status = "duplicate"
        seen.add(key)
        check.outcomes.append((candidate.source, key[0], key[1], status))
    return check


def validate_files(paths: Sequence[str | Path], *, engine: Engine | None = None) -> ConventionCheck:
    """Validate without writing; the caller decides how to report errors and warnings."""
    with session_scope(engine) as session:
        return check_files(session, paths)


def apply_files(
    paths: Sequence[str | Path], *, engine: Engine | None = None, now: datetime | None = None
) -> ConventionCheck:
    """Validate every file, then write the new versions in one transaction (all or nothing).

    Raises ``ValidationError`` with every problem when any file has an error; files identical
    to a stored version are no-ops (status ``unchanged``).
    """
    applied_at = now or datetime.now(UTC)
    try:
        with session_scope(engine) as session:
            serialise_writers(session)
            check = check_files(session, paths)
            check.raise_for_errors("nothing applied")
            written: set[tuple[str, int]] = set()
            for candidate, (_, convention_id, version, status) in zip(
                check.candidates, check.outcomes, strict=True
            ):
                if status != "new" or (convention_id, version) in written:
                    continue
                _write_version(session, candidate, applied_at)
                written.add((convention_id, version))
    except IntegrityError as error:
        raise ConflictError(
            "nothing applied: another apply wrote the same convention version; try again"
        ) from error
    except OperationalError as error:
        raise ConflictError(
            "nothing applied: the database is busy with another writer; try again"
        ) from error
    return check


def _write_version(session: Session, candidate: Candidate, applied_at: datetime) -> None:
    document = candidate.document
    canonical = document.canonical()
    session.add(
        ConventionVersion(
            convention_id=document.id,
            version=document.version,
            title=document.title,
            exporting_directorate=document.exporting_directorate,
            host_directorate=document.host_directorate,
            service_code=document.service,
            scope=document.scope,
            signed_on=document.signed_on,
            effective_from=document.effective_from,
            effective_to=document.effective_to,
            reporting=canonical["reporting"],
            project_leads=canonical["project_leads"],
            document=canonical,
            fingerprint=document.fingerprint(),
            source_file=candidate.source[:500],
            applied_at=applied_at,
        )
    )
    for position, line in enumerate(document.perimeter):
        row = PerimeterLine(
            convention_id=document.id,
            version=document.version,
            position=position,
            process=line.process,
            all_sies=line.covers_all,
            target_business_days=line.target_business_days,
            daily_capacity=line.daily_capacity,
        )
        session.add(row)
        session.flush()  # the line id is needed for its SIEs
        assert row.id is not None
        if not line.covers_all:
            for sie_code in dict.fromkeys(line.sies):
                session.add(PerimeterSie(line_id=row.id, sie_code=sie_code))
    session.flush()


# --- Reading back -----------------------------------------------------------------------


def list_conventions(session: Session, *, as_of: date | None = None) -> list[dict[str, Any]]:
    """Every stored version (or, with ``as_of``, those in force that day), by id and version."""
    rows = session.exec(
        select(ConventionVersion).order_by(
            col(ConventionVersion.convention_id), col(ConventionVersion.version)
        )
    ).all()
    periods = in_force_periods(period_specs(rows))
    line_counts: dict[tuple[str, int], int] = {}
    for convention_id, version in session.exec(
        select(PerimeterLine.convention_id, PerimeterLine.version)
    ).all():
        line_counts[(convention_id, version)] = line_counts.get((convention_id, version), 0) + 1
    listed = []
    for row in rows:
        period = periods[(row.convention_id, row.version)]
        if as_of is not None and not period.contains(as_of):
            continue
        listed.append(
            {
                "id": row.convention_id,
                "version": row.version,
                "title": row.title,
                "exporting_directorate": row.exporting_directorate,
                "host_directorate": row.host_directorate,
                "service": row.service_code,
                "scope": row.scope,
                "effective_from": row.effective_from,
                "effective_to": row.effective_to,
                **_in_force(period),
                "lines": line_counts.get((row.convention_id, row.version), 0),
                "applied_at": row.applied_at,
            }
        )
    return listed


def show_convention(
    session: Session, convention_id: str, *, version: int | None = None
) -> dict[str, Any]:
    """One version (the latest by default): its document, stored fields and period in force."""
    rows = session.exec(
        select(ConventionVersion)
        .where(col(ConventionVersion.convention_id) == convention_id)
        .order_by(col(ConventionVersion.version))
    ).all()
    if not rows:
        raise NotFoundError(f"no convention {convention_id}")
    if version is None:
        row = rows[-1]
    else:
        matching = [row for row in rows if row.version == version]
        if not matching:
            known = ", ".join(str(row.version) for row in rows)
            raise NotFoundError(f"{convention_id} has no version {version} (versions: {known})")
        row = matching[0]
    period = in_force_periods(period_specs(rows))[(row.convention_id, row.version)]
    lines = session.exec(
        select(PerimeterLine)
        .where(
            col(PerimeterLine.convention_id) == row.convention_id,
            col(PerimeterLine.version) == row.version,
        )
        .order_by(col(PerimeterLine.position))
    ).all()
    line_ids = {line.position: line.id for line in lines}
    document = dict(row.document)
    document["perimeter"] = [
        {**entry, "line_id": line_ids.get(position)}
        for position, entry in enumerate(document.get("perimeter", []))
    ]
    return {
        **document,
        "versions": [other.version for other in rows],
        "fingerprint": row.fingerprint,
        "source_file": row.source_file,
        "applied_at": row.applied_at,
        **_in_force(period),
    }


def period_specs(rows: Iterable[ConventionVersion]) -> list[VersionSpec]:
    """Specs with only what periods need (no lines)."""
    return [_spec(row) for row in rows]


def _in_force(period: Period) -> dict[str, date | None]:
    """``in_force_from``/``in_force_to`` (both null for a version superseded before it began)."""
    if period.is_empty:
        return {"in_force_from": None, "in_force_to": None}
    return {"in_force_from": period.start, "in_force_to": period.end}
