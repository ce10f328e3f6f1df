"""Request dependencies: database session, caller identity, common query parameters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from relais.db import session_scope
from relais.errors import ValidationError
from relais.settings import get_settings
from relais.tokens import Principal, authenticate

#: Business calendars cover 1900–2199 and due dates run past the as-of date: stay inside.
FIRST_YEAR = 1901
LAST_YEAR = 2190


def get_session() -> Iterator[Session]:
    """One session per request, committed when the handler returns without error."""
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token made by `relais tokens create` (admin, supervisor or service).",
)


class Unauthorized(HTTPException):
    """401 with the header that tells clients to send a bearer token."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=detail,
            headers={"WWW-Authenticate": "Bearer"},
        )


def principal_from_token(session: Session, raw_token: str | None) -> Principal:
    """The caller of a request carrying ``raw_token``; 401 when missing, unknown or revoked."""
    if not raw_token:
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
    principal = authenticate(session, raw_token)
    if principal is None:
        raise Unauthorized("unknown or revoked token")
    return principal


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller, from the ``Authorization: Bearer`` header."""
    return principal_from_token(session, credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def now() -> datetime:
    """The current instant (the API's only clock reading)."""
    return datetime.now(UTC)


def today() -> date:
    """Today in the offices' time zone."""
    return get_settings().today()


def check_day(day: date, name: str) -> date:
    """Refuse dates outside the years the business calendars cover."""
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValidationError(f"{name} must be between {FIRST_YEAR} and {LAST_YEAR}")
    return day


def as_of_param(
    as_of: Annotated[
        date | None, Query(description="Reference date YYYY-MM-DD (default: today, Paris time).")
    ] = None,
) -> date:
    """The ``as_of`` query parameter, defaulting to today."""
    return today() if as_of is None else check_day(as_of, "as_of")


AsOfDep = Annotated[date, Depends(as_of_param)]


def client_is_https(request: Request) -> bool:
    """Whether the request came over HTTPS (cookies are then marked Secure)."""
    return request.url.scheme == "https"
