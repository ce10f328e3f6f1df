"""The tables of Relais, as SQLModel classes (one schema for SQLite and PostgreSQL).

Conventions: codes are the natural keys of reference data; work items have a surrogate
integer key and the natural key (SIE, reference); every timestamp is timezone-aware
(``UTCDateTime``); business dates are plain ``date`` values; amounts are integer cents.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def _big_id() -> Any:
    return Column(BIG_ID, primary_key=True, autoincrement=True)


def _utc() -> Any:
    return Column(UTCDateTime(), nullable=False)


def _utc_nullable() -> Any:
    return Column(UTCDateTime(), nullable=True)


# --- Reference data ---------------------------------------------------------------------


class Directorate(SQLModel, table=True):
    """A DRFiP/DDFiP: exports work (métropole departments) or hosts remote services."""

    __tablename__ = "directorate"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    department: str = Field(max_length=3)


class Sie(SQLModel, table=True):
    """A business-tax office (service des impôts des entreprises)."""

    __tablename__ = "sie"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    directorate_code: str = Field(foreign_key="directorate.code", index=True, max_length=32)
    department: str = Field(max_length=3)


class RemoteService(SQLModel, table=True):
    """A remote service ("antenne"): a team of agents working for SIEs under a convention."""

    __tablename__ = "remote_service"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    town: str = Field(max_length=100)
    department: str = Field(max_length=3)
    host_directorate_code: str = Field(foreign_key="directorate.code", index=True, max_length=32)
    agents: int


class Closure(SQLModel, table=True):
    """A day an office (SIE or remote service) is closed besides public holidays."""

    __tablename__ = "closure"

    office: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)
    reason: str | None = Field(default=None, max_length=200)


# --- Conventions ------------------------------------------------------------------------


class ConventionVersion(SQLModel, table=True):
    """One immutable version of a convention between two directorates."""

    __tablename__ = "convention_version"

    convention_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    title: str | None = Field(default=None, max_length=300)
    exporting_directorate: str = Field(foreign_key="directorate.code", max_length=32)
    host_directorate: str = Field(foreign_key="directorate.code", max_length=32)
    service_code: str = Field(foreign_key="remote_service.code", index=True, max_length=32)
    scope: str = Field(max_length=32)
    signed_on: date | None = None
    effective_from: date
    effective_to: date | None = None
    reporting: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    project_leads: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    fingerprint: str = Field(max_length=64)
    source_file: str | None = Field(default=None, max_length=500)
    applied_at: datetime = Field(sa_column=_utc())


class PerimeterLine(SQLModel, table=True):
    """One (process, SIEs) line of a convention version's perimeter."""

    __tablename__ = "perimeter_line"
    __table_args__ = (Index("ix_perimeter_line_version", "convention_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    convention_id: str = Field(max_length=64)
    version: int
    position: int
    process: str = Field(max_length=32)
    all_sies: bool = False
    target_business_days: int | None = None
    daily_capacity: int | None = None


class PerimeterSie(SQLModel, table=True):
    """An SIE named in a perimeter line (lines with ``all_sies`` have none)."""

    __tablename__ = "perimeter_sie"

    line_id: int = Field(foreign_key="perimeter_line.id", primary_key=True)
    sie_code: str = Field(primary_key=True, max_length=32)


# --- Calendars (materialised for set-based SQL) -----------------------------------------


class CalendarDay(SQLModel, table=True):
    """Every day of an office's calendar with its business-day ordinal.

    ``ordinal`` counts business days from a fixed epoch up to and including ``day``, so
    the n-th business day after D is the business day whose ordinal is ordinal(D) + n.
    """

    __tablename__ = "calendar_day"
    __table_args__ = (Index("ix_calendar_day_office_ordinal", "office", "ordinal"),)

    office: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)
    ordinal: int
    is_business: bool


class CalendarSpan(SQLModel, table=True):
    """Which range of days is materialised for an office, and from what inputs."""

    __tablename__ = "calendar_span"

    office: str = Field(primary_key=True, max_length=32)
    department: str = Field(max_length=3)
    first_day: date
    last_day: date
    fingerprint: str = Field(max_length=64)


# --- Work items -------------------------------------------------------------------------


class WorkItem(SQLModel, table=True):
    """A unit of work exported by an SIE, with its current state and SLA clock.

    The current assignment and clock are denormalised here for set-based queries; the
    full story is in ``ItemEvent``.
    """

    __tablename__ = "work_item"
    __table_args__ = (
        UniqueConstraint("sie_code", "reference", name="uq_work_item_sie_reference"),
        # Partial indexes: an item enters an index only once the indexed value exists, so the
        # nightly assignment of a million items inserts one entry per index instead of
        # moving one (and received items cost nothing in the SLA indexes). Queries use them
        # through their own terms: `state = 'received'`, `assignee = …`, `due_on < …` and
        # `legal_due_on < …` each imply the index's condition.
        # Received items, for routing. One key value: entries go in id order, so intake
        # appends them and routing removes runs of them (routing sorts FIFO itself).
        Index(
            "ix_work_item_received",
            "state",
            sqlite_where=text("state = 'received'"),
            postgresql_where=text("state = 'received'"),
        ),
        Index(
            "ix_work_item_holder",
            "assignee",
            "state",
            "due_on",
            sqlite_where=text("assignee IS NOT NULL"),
            postgresql_where=text("assignee IS NOT NULL"),
        ),
        # Legal deadlines of routed items: received ones are few and found through
        # ix_work_item_received, and leaving them out spares intake an insert among every
        # open item's deadline and routing a move (see relais.queries.legal_breached).
        Index(
            "ix_work_item_state_legal",
            "state",
            "legal_due_on",
            sqlite_where=text("legal_due_on IS NOT NULL AND state <> 'received'"),
            postgresql_where=text("legal_due_on IS NOT NULL AND state <> 'received'"),
        ),
        # Supervisors' queries by SIE (the exporting side of --directorate, --sie).
        Index(
            "ix_work_item_sie_state_due",
            "sie_code",
            "state",
            "due_on",
            sqlite_where=text("due_on IS NOT NULL"),
            postgresql_where=text("due_on IS NOT NULL"),
        ),
        # As-of queries in the past replay only the items that changed since that day.
        Index("ix_work_item_last_event", "last_event_at"),
    )

    id: int | None = Field(default=None, sa_column=_big_id())
    sie_code: str = Field(max_length=32)
    reference: str = Field(max_length=100)
    process: str = Field(max_length=32)
    siren: str = Field(max_length=9)
    received_on: date
    amount_cents: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    label: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    legal_due_on: date | None = None
    # Whether the row gave its legal deadline (else computed from process and reception day):
    # what tells a duplicate row from a conflicting one, with the values above.
    legal_due_given: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    state: str = Field(default="received", max_length=16)
    assignee: str | None = Field(default=None, max_length=32)
    assignment_kind: str | None = Field(default=None, max_length=8)
    convention_id: str | None = Field(default=None, max_length=64)
    convention_version: int | None = None
    perimeter_line_id: int | None = None
    assigned_on: date | None = None
    target_business_days: int | None = None
    due_on: date | None = None
    suspended_on: date | None = None
    completed_on: date | None = None
    intake_file_id: int | None = None
    last_event_at: datetime = Field(sa_column=_utc())
    created_at: datetime = Field(sa_column=_utc())


class ItemEvent(SQLModel, table=True):
    """One entry of an item's history: intake, assignment or lifecycle event."""

    __tablename__ = "item_event"
    __table_args__ = (
        Index("ix_item_event_item", "item_id", "id"),
        # Routing's daily capacity: assignments under a perimeter line on a day. Events of
        # local items and every other event have no line and stay out of it.
        Index(
            "ix_item_event_capacity",
            "perimeter_line_id",
            "as_of",
            "event",
            sqlite_where=text("perimeter_line_id IS NOT NULL"),
            postgresql_where=text("perimeter_line_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=_big_id())
    item_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    event: str = Field(max_length=16)
    at: datetime = Field(sa_column=_utc())
    by: str = Field(max_length=100)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str = Field(max_length=16)
    assignee: str | None = Field(default=None, max_length=32)
    assignment_kind: str | None = Field(default=None, max_length=8)
    convention_id: str | None = Field(default=None, max_length=64)
    convention_version: int | None = None
    perimeter_line_id: int | None = None
    as_of: date | None = None
    due_on: date | None = None
    flow_run_id: str | None = Field(default=None, max_length=64)
    recorded_at: datetime = Field(sa_column=_utc())


# --- Intake bookkeeping -----------------------------------------------------------------


class IntakeFile(SQLModel, table=True):
    """A queue file fully ingested: recorded in the same transaction as its rows.

    A rerun after a crash between commit and move finds the file here and only finishes
    the move, so counts and rows equal those of one clean run.
    """

    __tablename__ = "intake_file"
    __table_args__ = (UniqueConstraint("sie_code", "file_name", "sha256", name="uq_intake_file"),)

    id: int | None = Field(default=None, primary_key=True)
    sie_code: str = Field(max_length=32)
    file_name: str = Field(max_length=255)
    sha256: str = Field(max_length=64)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unreadable_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    as_of: date
    flow_run_id: str | None = Field(default=None, max_length=64)
    ingested_at: datetime = Field(sa_column=_utc())


class IntakeRejection(SQLModel, table=True):
    """A rejected row of an intake file (what the errors file says, kept in the database)."""

    __tablename__ = "intake_rejection"

    id: int | None = Field(default=None, primary_key=True)
    intake_file_id: int = Field(foreign_key="intake_file.id", index=True)
    line: int
    reference: str | None = Field(default=None, max_length=100)
    reason: str = Field(sa_column=Column(Text, nullable=False))


# --- Event import bookkeeping -----------------------------------------------------------


class EventImportRow(SQLModel, table=True):
    """A row of an event file already dealt with, by the SHA-256 of the file's bytes.

    An applied row is recorded in the same transaction as its event, a refused one right
    after its refusal. Importing the same bytes again (a rerun after a crash, or the same file
    twice) reports these rows as recorded instead of applying them again, so the end state,
    the per-row results and the errors file equal those of one clean import.
    """

    __tablename__ = "event_import_row"

    sha256: str = Field(primary_key=True, max_length=64)
    line: int = Field(primary_key=True)
    result: str = Field(max_length=8)  # "applied" or "refused"
    # Applied: the item's state after the event, and the history entry that records it.
    state: str | None = Field(default=None, max_length=16)
    item_event_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # Refused: why (the errors file's reason).
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    recorded_at: datetime = Field(sa_column=_utc())


# --- SLA scan ---------------------------------------------------------------------------


class SlaBreach(SQLModel, table=True):
    """A breach recorded once, when a scan first sees it."""

    __tablename__ = "sla_breach"
    __table_args__ = (
        UniqueConstraint("item_id", "kind", "deadline", name="uq_sla_breach"),
        Index("ix_sla_breach_seen", "first_seen_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=8)  # "sla" or "legal"
    deadline: date
    holder: str | None = Field(default=None, max_length=32)
    first_seen_on: date
    flow_run_id: str | None = Field(default=None, max_length=64)
    recorded_at: datetime = Field(sa_column=_utc())


# --- Access -----------------------------------------------------------------------------


class ApiToken(SQLModel, table=True):
    """An API token: only its SHA-256 hash is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    role: str = Field(max_length=16)
    directorate: str | None = Field(default=None, max_length=32)
    service: str | None = Field(default=None, max_length=32)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(sa_column=_utc())
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_nullable())


# --- Locks ------------------------------------------------------------------------------


class RunLock(SQLModel, table=True):
    """A row per exclusive job (e.g. routing), locked for the length of a run."""

    __tablename__ = "run_lock"

    name: str = Field(primary_key=True, max_length=64)
    holder: str | None = Field(default=None, max_length=100)
    acquired_at: datetime | None = Field(default=None, sa_column=_utc_nullable())
