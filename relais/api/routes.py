"""The JSON endpoints of the API (SPEC §9): items, SLA queries, worklists, conventions, reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from sqlalchemy import select
from sqlmodel import Session, col

from models.tables import WorkItem
from relais import queries
from relais.api.deps import AsOfDep, PrincipalDep, SessionDep, check_day, now, today
from relais.api.scope import Scope
from relais.conventions import list_conventions as list_versions
from relais.conventions import show_convention as show_version
from relais.conventions import stored_versions
from relais.domain.catalogue import Process
from relais.domain.lifecycle import parse_at
from relais.errors import ForbiddenError, NotFoundError
from relais.items import apply_event, item_detail
from relais.reports import build_report, render
from relais.settings import get_settings
from relais.tokens import Principal, Role

router = APIRouter()

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked token"},
    404: {"description": "Unknown, or outside the token's scope"},
}

SiePath = Annotated[str, Path(max_length=32, description="SIE code.")]
ReferencePath = Annotated[str, Path(max_length=100, description="Item reference in its SIE.")]


class Health(BaseModel):
    """Liveness answer."""

    status: str = "ok"


class EventRequest(BaseModel):
    """A lifecycle event posted on an item (same rules and messages as ``relais items event``)."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(
        max_length=40, description="start, suspend, resume, complete or cancel.", examples=["start"]
    )
    at: str | None = Field(
        default=None,
        max_length=40,
        description="YYYY-MM-DD (00:00 local) or an ISO 8601 date-time; default: now.",
        examples=["2026-11-20T14:30:00+01:00"],
    )
    reason: str | None = Field(
        default=None,
        max_length=4000,
        description="Reason of a suspension or cancellation, outcome of a completion.",
    )


class ReportFormat(StrEnum):
    """Formats of a convention report."""

    json = "json"
    csv = "csv"
    html = "html"


def _unknown_item(sie: str, reference: str) -> NotFoundError:
    # The very message of an item that does not exist: scope must not reveal what exists.
    return NotFoundError(f"unknown item {sie}/{reference}")


def _readable_item(session: Session, scope: Scope, sie: str, reference: str) -> None:
    """404 unless the item exists and the caller may read it."""
    row = (
        session.connection()
        .execute(
            select(col(WorkItem.assignee)).where(
                col(WorkItem.sie_code) == sie, col(WorkItem.reference) == reference
            )
        )
        .first()
    )
    if row is None or not scope.allows_item(sie, row.assignee):
        raise _unknown_item(sie, reference)


@router.get("/health", tags=["health"])
def health() -> Health:
    """Liveness check (no token needed)."""
    return Health()


@router.get("/api/items/{sie}/{reference:path}", tags=["items"], responses=ERRORS)
def get_item(
    sie: SiePath, reference: ReferencePath, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The item's state, holder, SLA, legal deadline and history (``relais items show``)."""
    _readable_item(session, Scope.load(session, principal), sie, reference)
    return item_detail(session, sie=sie, reference=reference, as_of=today())


@router.post(
    "/api/items/{sie}/{reference:path}/events",
    tags=["items"],
    status_code=status.HTTP_201_CREATED,
    responses={
        **ERRORS,
        403: {"description": "The token may read the item but not post events"},
        409: {"description": "The event does not fit the item's state or time"},
        422: {"description": "Unknown event or malformed time"},
    },
)
def post_event(
    sie: SiePath,
    reference: ReferencePath,
    body: EventRequest,
    session: SessionDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Apply a lifecycle event; answers the item as ``GET`` shows it after the event.

    A service token posts on the items its service holds; an admin on any item; a
    supervisor reads but does not post. The author recorded is the token's name.
    """
    scope = Scope.load(session, principal)
    _readable_item(session, scope, sie, reference)
    if principal.role is Role.SUPERVISOR:
        raise ForbiddenError("supervisor tokens read items; events are posted by services")
    moment = now()
    at = moment if body.at is None else parse_at(body.at, get_settings().timezone)
    check_day(at.date(), "at")
    apply_event(
        session,
        sie=sie,
        reference=reference,
        event=body.event,
        at=at,
        reason=body.reason,
        by=principal.name,
        now=moment,
    )
    # Checked again under the item's lock, held until the commit: routing may have given
    # the item to another holder between the first check and the lock (rolled back then).
    _readable_item(session, scope, sie, reference)
    session.commit()
    return item_detail(session, sie=sie, reference=reference, as_of=today())


#: What the listing endpoints answer (and document): the CLI's JSON rows.
Rows = list[dict[str, Any]]


def _json_rows(rows: Rows) -> Response:
    """The rows of a listing as JSON: the bytes FastAPI would send for them, without first
    validating every row against the response model (thousands for a directorate)."""
    return Response(to_json(rows), media_type="application/json")


def _scoped_rows(
    session: Session,
    principal: Principal,
    run: Callable[..., list[dict[str, Any]]],
    *,
    directorate: str | None,
    service: str | None,
    **filters: Any,
) -> Response:
    """Run a shared query narrowed to the caller's scope, then keep only rows in scope."""
    scope = Scope.load(session, principal)
    directorate, service = scope.query_filters(directorate=directorate, service=service)
    rows = run(session, directorate=directorate, service=service, **filters)
    return _json_rows(scope.filter_items(rows))


DirectorateQuery = Annotated[
    str | None,
    Query(max_length=32, description="The item's SIE's directorate or its holder's host."),
]
ServiceQuery = Annotated[str | None, Query(max_length=32, description="Holding service.")]
SieQuery = Annotated[str | None, Query(max_length=32, description="SIE of the items.")]
ProcessQuery = Annotated[Process | None, Query(description="Catalogue process code.")]
IncludeCompletedQuery = Annotated[bool, Query(description="Also list completed items (missed).")]
LegalQuery = Annotated[bool, Query(description="Legal deadlines instead of SLA targets.")]


@router.get("/api/sla/breaches", tags=["sla"], responses=ERRORS, response_model=Rows)
def sla_breaches(
    session: SessionDep,
    principal: PrincipalDep,
    as_of: AsOfDep,
    directorate: DirectorateQuery = None,
    service: ServiceQuery = None,
    sie: SieQuery = None,
    process: ProcessQuery = None,
    include_completed: IncludeCompletedQuery = False,
    legal: LegalQuery = False,
) -> Response:
    """Open items past their due date, most overdue first (``relais sla breaches``)."""
    return _scoped_rows(
        session,
        principal,
        queries.sla_breaches,
        as_of=as_of,
        directorate=directorate,
        service=service,
        sie=sie,
        process=process.value if process else None,
        include_completed=include_completed,
        legal=legal,
    )


@router.get("/api/sla/at-risk", tags=["sla"], responses=ERRORS, response_model=Rows)
def sla_at_risk(
    session: SessionDep,
    principal: PrincipalDep,
    as_of: AsOfDep,
    directorate: DirectorateQuery = None,
    service: ServiceQuery = None,
    sie: SieQuery = None,
    process: ProcessQuery = None,
) -> Response:
    """Open items close to their due date, fewest business days left first."""
    return _scoped_rows(
        session,
        principal,
        queries.sla_at_risk,
        as_of=as_of,
        directorate=directorate,
        service=service,
        sie=sie,
        process=process.value if process else None,
    )


@router.get(
    "/api/services/{code}/worklist", tags=["services"], responses=ERRORS, response_model=Rows
)
def worklist(
    code: Annotated[
        str, Path(max_length=32, description="Remote service code (or an SIE: its local items).")
    ],
    session: SessionDep,
    principal: PrincipalDep,
    as_of: AsOfDep,
) -> Response:
    """A service's open items by due date, with their SLA status (``relais worklist``)."""
    scope = Scope.load(session, principal)
    if not scope.allows_service(session, code):
        raise NotFoundError(f"unknown service {code}")  # the message of an unknown code
    rows = queries.worklist(session, service=code, as_of=as_of)
    return _json_rows(scope.filter_items(rows))


@router.get("/api/conventions", tags=["conventions"], responses=ERRORS)
def list_conventions(
    session: SessionDep,
    principal: PrincipalDep,
    as_of: Annotated[date | None, Query(description="Only the versions in force that day.")] = None,
) -> list[dict[str, Any]]:
    """Stored convention versions (``relais conventions list``), within the token's scope."""
    scope = Scope.load(session, principal)
    if as_of is not None:
        check_day(as_of, "as_of")
    rows = list_versions(session, as_of=as_of)
    return [row for row in rows if scope.allows_convention_row(row)]


def _readable_convention(session: Session, principal: Principal, convention_id: str) -> None:
    versions = stored_versions(session, convention_id=convention_id)
    if not versions or not Scope.load(session, principal).allows_convention(versions):
        # The very message of an unknown convention (``show_convention``'s).
        raise NotFoundError(f"no convention {convention_id}")


@router.get("/api/conventions/{convention_id}", tags=["conventions"], responses=ERRORS)
def show_convention(
    convention_id: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    principal: PrincipalDep,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> dict[str, Any]:
    """One convention version, the latest by default (``relais conventions show``)."""
    _readable_convention(session, principal, convention_id)
    return show_version(session, convention_id, version=version)


@router.get(
    "/api/reports/{convention_id}/{month}",
    tags=["reports"],
    responses={
        **ERRORS,
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                "text/html": {},
            },
            "description": "The report (JSON by default)",
        },
    },
)
def convention_report(
    convention_id: Annotated[str, Path(max_length=64)],
    month: Annotated[str, Path(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")],
    session: SessionDep,
    principal: PrincipalDep,
    output_format: Annotated[
        ReportFormat, Query(alias="format", description="json, csv or html")
    ] = ReportFormat.json,
) -> Response:
    """A convention's monthly report, per SIE × process (``relais report``)."""
    _readable_convention(session, principal, convention_id)
    report = build_report(
        session, convention_id=convention_id, month=month, zone=get_settings().timezone
    )
    media_types = {
        ReportFormat.json: "application/json",
        ReportFormat.csv: "text/csv; charset=utf-8",
        ReportFormat.html: "text/html; charset=utf-8",
    }
    headers = {}
    if output_format is not ReportFormat.json:
        headers["Content-Disposition"] = (
            f'attachment; filename="{convention_id}-{report.month}.{output_format.value}"'
        )
    return Response(
        render(report, output_format.value),
        media_type=media_types[output_format],
        headers=headers,
    )
