"""API tokens: creation, listing, revocation and authentication (SPEC §9).

A token is shown once, when it is created; only its SHA-256 hash is stored, so a copy of the
database does not give access to the API. Tokens carry a recognisable prefix so that a leaked
one is easy to spot in a log or a repository.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session, select

from models.tables import ApiToken, Directorate, RemoteService
from relais.errors import ConflictError, NotFoundError, ValidationError

#: Every token starts with this, followed by 43 URL-safe characters (256 random bits).
TOKEN_PREFIX = "rls_"
#: Names are shown in histories as the author of events: short, printable, no spaces.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class Role(StrEnum):
    """What a token may do."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    """The holder of a valid token, as the API sees it."""

    name: str
    role: Role
    directorate: str | None = None
    service: str | None = None

    @property
    def scope_label(self) -> str:
        """A short French description of what the holder sees."""
        if self.role is Role.SUPERVISOR:
            return f"direction {self.directorate}"
        if self.role is Role.SERVICE:
            return f"service {self.service}"
        return "toutes les directions"


def hash_token(raw_token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(raw_token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    """A new random token with the Relais prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _check_scope(
    session: Session, *, role: Role, directorate: str | None, service: str | None
) -> None:
    """Each role names exactly what it needs: a directorate, a service, or nothing."""
    if role is Role.SUPERVISOR:
        if not directorate:
            raise ValidationError("a supervisor token needs --directorate")
        if service:
            raise ValidationError("a supervisor token takes --directorate, not --service")
        if session.get(Directorate, directorate) is None:
            raise ValidationError(f"unknown directorate: {directorate}")
    elif role is Role.SERVICE:
        if not service:
            raise ValidationError("a service token needs --service")
        if directorate:
            raise ValidationError("a service token takes --service, not --directorate")
        if session.get(RemoteService, service) is None:
            raise ValidationError(f"unknown remote service: {service}")
    elif directorate or service:
        raise ValidationError("an admin token sees everything: give no --directorate or --service")


def create_token(
    session: Session,
    *,
    name: str,
    role: Role | str,
    now: datetime,
    directorate: str | None = None,
    service: str | None = None,
) -> str:
    """Store a new token and return it in clear (the only time it is known).

    Raises ``ValidationError`` for a bad name, role or scope and ``ConflictError`` when the
    name is taken (revoked tokens keep their name: histories refer to it).
    """
    if not NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid token name {name[:100]!r}: letters, digits, '.', '_', '@' or '-', "
            "at most 100 characters, starting with a letter or digit"
        )
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(
            f"unknown role {role!r}: expected one of {', '.join(r.value for r in Role)}"
        ) from None
    _check_scope(session, role=role, directorate=directorate, service=service)
    if session.exec(select(ApiToken.id).where(ApiToken.name == name)).first() is not None:
        raise ConflictError(f"a token named {name} already exists")
    raw_token = generate_token()
    session.add(
        ApiToken(
            name=name,
            role=role.value,
            directorate=directorate,
            service=service,
            token_hash=hash_token(raw_token),
            created_at=now,
        )
    )
    session.flush()
    return raw_token


def list_tokens(session: Session) -> list[dict[str, Any]]:
    """Every token, by name, without hashes: name, role, scope, creation and revocation."""
    rows = session.exec(select(ApiToken).order_by(ApiToken.name)).all()
    return [
        {
            "name": row.name,
            "role": row.role,
            "directorate": row.directorate,
            "service": row.service,
            "created_at": row.created_at,
            "revoked_at": row.revoked_at,
            "active": row.revoked_at is None,
        }
        for row in rows
    ]


def revoke_token(session: Session, *, name: str, now: datetime) -> datetime:
    """Revoke the token ``name`` from now on; return when it was revoked.

    Revoking twice keeps the first revocation time. Raises ``NotFoundError`` for an unknown name.
    """
    token = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if token is None:
        raise NotFoundError(f"no token named {name}")
    if token.revoked_at is None:
        token.revoked_at = now
        session.add(token)
        session.flush()
    return token.revoked_at


def authenticate(session: Session, raw_token: str) -> Principal | None:
    """The principal of a valid, unrevoked token; None for anything else."""
    if not raw_token.startswith(TOKEN_PREFIX) or len(raw_token) > 200:
        return None
    digest = hash_token(raw_token)
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    # The index finds the row; the constant-time comparison keeps the check itself timing-safe.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None:
        return None
    return Principal(
        name=token.name,
        role=Role(token.role),
        directorate=token.directorate,
        service=token.service,
    )
