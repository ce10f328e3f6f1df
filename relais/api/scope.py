"""What each token may see (SPEC §9).

* admin: everything;
* supervisor of directorate D: items whose SIE belongs to D or whose holder is a remote service
  hosted by D (both sides of a convention, like ``--directorate``), conventions where D is the
  exporting or host directorate, and the services hosted by D or working for D's SIEs;
* service S: the items S holds, S's conventions and S's own worklist.

Anything outside the scope is reported as not found, with the message an unknown one gets, so
that a token cannot probe what exists elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlmodel import Session, col

from models.tables import ConventionVersion, RemoteService, Sie
from relais.domain.conventions import VersionSpec
from relais.tokens import Principal, Role

#: An item row of a listing (a mapping with at least ``sie`` and ``assignee``).
Row = TypeVar("Row", bound=Mapping[str, Any])


@dataclass(slots=True)
class Scope:
    """The visibility rules of one caller, with the reference data they need."""

    principal: Principal
    sie_directorates: Mapping[str, str] = field(default_factory=dict)
    service_hosts: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, principal: Principal) -> Scope:
        """The scope of ``principal`` (reads the SIE and service directories for supervisors)."""
        if principal.role is not Role.SUPERVISOR:
            return cls(principal)
        connection = session.connection()
        sies = {
            code: directorate
            for code, directorate in connection.execute(
                select(col(Sie.code), col(Sie.directorate_code))
            )
        }
        hosts = {
            code: host
            for code, host in connection.execute(
                select(col(RemoteService.code), col(RemoteService.host_directorate_code))
            )
        }
        return cls(principal, sies, hosts)

    @property
    def role(self) -> Role:
        """The caller's role."""
        return self.principal.role

    def allows_item(self, sie: str, holder: str | None) -> bool:
        """Whether the caller may read an item of ``sie`` held by ``holder``."""
        if self.role is Role.ADMIN:
            return True
        if self.role is Role.SERVICE:
            return holder is not None and holder == self.principal.service
        directorate = self.principal.directorate
        return self.sie_directorates.get(sie) == directorate or (
            holder is not None and self.service_hosts.get(holder) == directorate
        )

    def filter_items(self, rows: Iterable[Row]) -> list[Row]:
        """Keep the item rows (with ``sie`` and ``assignee``) the caller may read.

        The rule of ``allows_item``, with the caller's codes looked up once: a directorate's
        list runs to thousands of rows.
        """
        if self.role is Role.ADMIN:
            return list(rows)
        if self.role is Role.SERVICE:
            service = self.principal.service
            if service is None:
                return []
            return [row for row in rows if row.get("assignee") == service]
        directorate = self.principal.directorate
        if directorate is None:
            return [row for row in rows if self.allows_item(row["sie"], row.get("assignee"))]
        sies = {code for code, owner in self.sie_directorates.items() if owner == directorate}
        hosted = {code for code, host in self.service_hosts.items() if host == directorate}
        return [row for row in rows if row["sie"] in sies or row.get("assignee") in hosted]

    def allows_convention(self, versions: Iterable[VersionSpec]) -> bool:
        """Whether the caller may read a convention (any of its versions involves them)."""
        if self.role is Role.ADMIN:
            return True
        for version in versions:
            if self.role is Role.SERVICE and version.service == self.principal.service:
                return True
            if self.role is Role.SUPERVISOR and self.principal.directorate in (
                version.exporting_directorate,
                version.host_directorate,
            ):
                return True
        return False

    def allows_convention_row(self, row: Mapping[str, Any]) -> bool:
        """Whether the caller may read a row of ``list_conventions``."""
        if self.role is Role.ADMIN:
            return True
        if self.role is Role.SERVICE:
            return bool(row["service"] == self.principal.service)
        return self.principal.directorate in (row["exporting_directorate"], row["host_directorate"])

    def allows_service(self, session: Session, service: str) -> bool:
        """Whether the caller may read ``service``'s worklist (filtered by ``filter_items``).

        Supervisors see the services their directorate hosts, those working for it under a
        convention and its SIEs (their local items); a service sees only itself.
        """
        if self.role is Role.ADMIN:
            return True
        if self.role is Role.SERVICE:
            return service == self.principal.service
        directorate = self.principal.directorate
        # A service hosted by the directorate, or an SIE of it (its local items).
        if directorate in (self.service_hosts.get(service), self.sie_directorates.get(service)):
            return True
        partner = session.connection().execute(
            select(col(ConventionVersion.convention_id))
            .where(
                col(ConventionVersion.service_code) == service,
                or_(
                    col(ConventionVersion.exporting_directorate) == directorate,
                    col(ConventionVersion.host_directorate) == directorate,
                ),
            )
            .limit(1)
        )
        return partner.first() is not None

    def query_filters(
        self, *, directorate: str | None, service: str | None
    ) -> tuple[str | None, str | None]:
        """Narrow a breach query to the caller's scope before it runs (results are filtered
        again afterwards: a supervisor asking for another directorate sees the overlap)."""
        if self.role is Role.SUPERVISOR and directorate is None:
            return self.principal.directorate, service
        if self.role is Role.SERVICE and service is None:
            return directorate, self.principal.service
        return directorate, service
