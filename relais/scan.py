"""The SLA scan: record each breach once, when first seen, and say what is new (SPEC §7).

A breach is an (item, kind, deadline): ``sla`` when an open item passes its due date,
``legal`` when it passes its legal deadline. A due date that moves (a resume, a reassignment)
makes a new deadline, so passing it again is a new breach; the same one is never recorded
twice across scans. Recording is one ``INSERT … SELECT … WHERE NOT EXISTS`` per kind, over the
same as-of snapshot the supervisors' queries use. The summary and the events carry counts and
codes only (holder, process, SIE, reference): no SIREN, amount or label.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    MetaData,
    String,
    Table,
    exists,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from models.tables import SlaBreach, WorkItem
from models.types import UTCDateTime
from relais.queries import Scope, count_breaches, legal_breached, sla_breaches, snapshot

_breaches = SlaBreach.__table__  # type: ignore[attr-defined]
_items = WorkItem.__table__  # type: ignore[attr-defined]

#: Breaches found by a scan before they are recorded (a temporary table, per connection).
_new_breaches = Table(
    "scan_new_breach",
    MetaData(),
    Column("item_id", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("deadline", Date, nullable=False),
    Column("holder", String(32)),
    prefixes=["TEMPORARY"],
)

#: Event published per holder with new breaches (an automation can notify on it).
BREACH_EVENT: Final = "relais.sla.breached"
SLA: Final = "sla"
LEGAL: Final = "legal"


@dataclass(slots=True)
class HolderBreaches:
    """New breaches of one holder in one scan, per kind and process."""

    holder: str
    sla: int = 0
    legal: int = 0
    by_process: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (counts only)."""
        return {
            "holder": self.holder,
            "sla": self.sla,
            "legal": self.legal,
            "by_process": self.by_process,
        }


@dataclass(slots=True)
class ScanResult:
    """What one scan found: new breaches per holder, and every open breach on the day."""

    as_of: date
    holders: list[HolderBreaches]
    open_breaches: dict[str, int]

    @property
    def new_sla(self) -> int:
        """SLA breaches recorded by this scan."""
        return sum(holder.sla for holder in self.holders)

    @property
    def new_legal(self) -> int:
        """Legal breaches recorded by this scan."""
        return sum(holder.legal for holder in self.holders)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``relais sla scan`` and returned by the flow."""
        return {
            "as_of": self.as_of,
            "new_breaches": {SLA: self.new_sla, LEGAL: self.new_legal},
            "open_breaches": self.open_breaches,
            "holders": [holder.as_dict() for holder in self.holders],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ScanResult:
        """Rebuild a result from ``as_dict`` (results cross task boundaries as plain values)."""
        as_of = document["as_of"]
        return cls(
            as_of=as_of if isinstance(as_of, date) else date.fromisoformat(as_of),
            holders=[
                HolderBreaches(
                    holder=entry["holder"],
                    sla=entry["sla"],
                    legal=entry["legal"],
                    by_process=entry["by_process"],
                )
                for entry in document["holders"]
            ],
            open_breaches=dict(document["open_breaches"]),
        )


def _connection(session: Session | Connection) -> Connection:
    return session if isinstance(session, Connection) else session.connection()


def _insert(connection: Connection) -> Any:
    # ON CONFLICT DO NOTHING covers two scans racing: the loser skips, it does not fail.
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(_breaches)


def record_new_breaches(
    session: Session | Connection,
    *,
    as_of: date,
    flow_run_id: str | None,
    now: datetime,
) -> ScanResult:
    """Record every breach open on ``as_of`` not recorded before; count the new ones.

    Runs in the caller's transaction (the caller commits). ``now`` stamps the new rows and
    tells them from those of other scans.
    """
    connection = _connection(session)
    if connection.dialect.name == "postgresql":
        # Plans for this day's values, even once psycopg has prepared the statements (a
        # long-running worker scans every hour); see relais.queries._run_listing.
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    scope = Scope()
    before = connection.execute(select(func.coalesce(func.max(_breaches.c.id), 0))).scalar_one()
    kinds = (
        (
            SLA,
            lambda c: (c["state"].in_(("assigned", "in_progress"))) & (c["due_on"] < as_of),
            "due_on",
        ),
        (
            LEGAL,
            legal_breached(as_of),
            "legal_due_on",
        ),
    )
    # First the new breaches into a scratch table, then into sla_breach: the anti-join must
    # not read the table it is filling (PostgreSQL would rescan the pages it adds, per row).
    _new_breaches.drop(connection, checkfirst=True)
    _new_breaches.create(connection)
    for kind, condition, deadline in kinds:
        snap = snapshot(connection, as_of, scope, condition)
        seen = exists().where(
            _breaches.c.item_id == snap.c.item_id,
            _breaches.c.kind == kind,
            _breaches.c.deadline == snap.c[deadline],
        )
        # An item waiting for routing is still in its SIE's queue: the SIE holds it.
        holder = func.coalesce(snap.c.assignee, snap.c.sie_code)
        connection.execute(
            insert(_new_breaches).from_select(
                ["item_id", "kind", "deadline", "holder"],
                select(snap.c.item_id, literal(kind, String(8)), snap.c[deadline], holder).where(
                    ~seen
                ),
            )
        )
    new = _new_breaches.c
    connection.execute(
        _insert(connection)
        .from_select(
            [
                "item_id",
                "kind",
                "deadline",
                "holder",
                "first_seen_on",
                "flow_run_id",
                "recorded_at",
            ],
            select(
                new.item_id,
                new.kind,
                new.deadline,
                new.holder,
                literal(as_of, Date()),
                literal(flow_run_id, String(64)),
                literal(now, UTCDateTime()),
            ).where(true()),  # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT
        )
        .on_conflict_do_nothing()
    )
    _new_breaches.drop(connection)
    counts = connection.execute(
        select(_breaches.c.holder, _breaches.c.kind, _items.c.process, func.count())
        .select_from(_breaches.join(_items, _items.c.id == _breaches.c.item_id))
        .where(_breaches.c.id > before, _breaches.c.recorded_at == literal(now, UTCDateTime()))
        .group_by(_breaches.c.holder, _breaches.c.kind, _items.c.process)
    ).all()
    holders: dict[str, HolderBreaches] = {}
    by_process: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for holder_code, kind, process, count in counts:
        entry = holders.setdefault(holder_code, HolderBreaches(holder=holder_code))
        if kind == SLA:
            entry.sla += count
        else:
            entry.legal += count
        by_process[holder_code][process][kind] = count
    for code, entry in holders.items():
        entry.by_process = {
            process: dict(sorted(k.items())) for process, k in sorted(by_process[code].items())
        }
    return ScanResult(
        as_of=as_of,
        holders=sorted(holders.values(), key=lambda h: (-(h.sla + h.legal), h.holder)),
        open_breaches=count_breaches(connection, as_of=as_of),
    )


def worst_breaches(
    session: Session | Connection, *, as_of: date, limit: int = 10
) -> list[dict[str, Any]]:
    """The most overdue open SLA breaches on ``as_of``: codes, dates and counts only."""
    rows = sla_breaches(session, as_of=as_of, limit=limit)
    keep = ("sie", "reference", "process", "assignee", "due_on", "business_days_overdue")
    return [{key: row[key] for key in keep} for row in rows]


def _cell(value: Any) -> str:
    # Codes never contain a pipe, but a table cell must not be broken by one.
    return ("" if value is None else str(value)).replace("|", "/")


def summary_markdown(result: ScanResult, worst: list[dict[str, Any]]) -> str:
    """The run's artifact: new breaches per holder and process, open totals, worst cases."""
    lines = [
        f"# Scan des délais du {result.as_of.isoformat()}",
        "",
        f"- Nouveaux dépassements du délai cible : **{result.new_sla}**",
        f"- Nouveaux dépassements du délai légal : **{result.new_legal}**",
        f"- Dépassements en cours (délai cible / délai légal) : "
        f"{result.open_breaches.get(SLA, 0)} / {result.open_breaches.get(LEGAL, 0)}",
        "",
    ]
    if result.holders:
        lines += [
            "## Nouveaux dépassements par service et par processus",
            "",
            "| Service | Processus | Délai cible | Délai légal |",
            "|---|---|---:|---:|",
        ]
        for holder in result.holders:
            for process, counts in holder.by_process.items():
                lines.append(
                    f"| {_cell(holder.holder)} | {_cell(process)} | "
                    f"{counts.get(SLA, 0)} | {counts.get(LEGAL, 0)} |"
                )
        lines.append("")
    else:
        lines += ["Aucun nouveau dépassement.", ""]
    if worst:
        lines += [
            "## Les plus en retard",
            "",
            "| SIE | Référence | Processus | Service | Échéance | Jours ouvrés de retard |",
            "|---|---|---|---|---|---:|",
        ]
        for row in worst:
            lines.append(
                "| "
                + " | ".join(
                    _cell(row[key])
                    for key in (
                        "sie",
                        "reference",
                        "process",
                        "assignee",
                        "due_on",
                        "business_days_overdue",
                    )
                )
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def breach_events(result: ScanResult) -> list[dict[str, Any]]:
    """One event per holder with new breaches: name, resource and a payload of counts."""
    return [
        {
            "event": BREACH_EVENT,
            "resource": {
                "prefect.resource.id": f"relais.service.{holder.holder}",
                "prefect.resource.name": holder.holder,
            },
            "payload": {
                "as_of": result.as_of.isoformat(),
                "new_sla_breaches": holder.sla,
                "new_legal_breaches": holder.legal,
                "by_process": holder.by_process,
            },
        }
        for holder in result.holders
    ]
