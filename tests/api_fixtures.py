"""A small world for API, dashboard and report tests: two conventions, a dozen items, tokens.

Timeline (2026, Vierzon in the Cher: 11 November is a holiday):

=====  ==========  ================  ==========================================================
item   SIE         holder            story
=====  ==========  ================  ==========================================================
R-E    SIE-75-17   ANT-18-VIERZON    received 15/05, assigned 01/09, started 02/09: breached,
                                     legal deadline 15/11 passed
R-C    SIE-75-08   ANT-18-VIERZON    assigned 01/10, completed 10/11 (late: 28 business days)
R-F    SIE-75-17   ANT-18-VIERZON    assigned 05/10, started 06/10, suspended 20/10
R-A    SIE-75-08   ANT-18-VIERZON    assigned 20/10, completed 05/11 (12 business days, met)
R-B    SIE-75-08   ANT-18-VIERZON    assigned 02/11, completed 30/11 (19 business days, met)
R-H    SIE-75-08   ANT-18-VIERZON    assigned 03/11 (due 02/12), completed 02/12
R-D    SIE-75-17   ANT-18-VIERZON    assigned 16/11, started 17/11 (due 14/12)
R-G    SIE-75-08   ANT-18-VIERZON    filing reminder assigned 20/11, cancelled 25/11
R-I    SIE-75-02   SIE-75-02         local item assigned 10/11 (due 09/12, Paris calendar)
R-W    SIE-75-08   (none)            received 27/11, waiting for routing
R-M    SIE-57-01   ANT-57-FORBACH    assigned 01/09, started 02/09: breached
=====  ==========  ================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TypedDict
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from relais.db import session_scope
from relais.tokens import create_token, revoke_token
from tests.builders import add_item, add_reference, post
from tests.routing_data import apply_convention, convention_document

PARIS = ZoneInfo("Europe/Paris")
CONV_75 = "CONV-75-VIERZON"
CONV_57 = "CONV-57-FORBACH"
VIERZON = "ANT-18-VIERZON"
FORBACH = "ANT-57-FORBACH"

#: Token name -> (role, directorate, service).
TOKEN_SPECS = {
    "admin": ("admin", None, None),
    "sup-75": ("supervisor", "DRFIP75", None),
    "sup-18": ("supervisor", "DDFIP18", None),
    "sup-57": ("supervisor", "DDFIP57", None),
    "svc-vierzon": ("service", None, VIERZON),
    "svc-forbach": ("service", None, FORBACH),
    "revoked": ("admin", None, None),
}


class _Remote(TypedDict):
    """The ``add_item`` arguments of an item held under the Vierzon convention."""

    assignee: str
    convention: str
    version: int


@dataclass(frozen=True, slots=True)
class World:
    """Raw tokens by name (the revoked one included)."""

    tokens: dict[str, str]

    def headers(self, name: str) -> dict[str, str]:
        """The Authorization header of token ``name``."""
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def at(day: str, hour: int = 10) -> datetime:
    """``YYYY-MM-DD`` at ``hour``:00, Paris time."""
    return datetime.combine(date.fromisoformat(day), time(hour), tzinfo=PARIS)


def build_world(engine: Engine, tmp_path: Path) -> World:
    """Reference data, the two conventions, the items above and one token per role."""
    with session_scope(engine) as session:
        add_reference(session)
    apply_convention(
        tmp_path / "conventions",
        engine,
        convention_document(
            CONV_75,
            1,
            perimeter=[
                {
                    "process": "tva_refund",
                    "sies": ["SIE-75-08", "SIE-75-17"],
                    "target_business_days": 20,
                },
                {"process": "filing_reminder", "sies": ["SIE-75-08"], "target_business_days": 10},
            ],
        ),
    )
    apply_convention(
        tmp_path / "conventions",
        engine,
        convention_document(
            CONV_57,
            1,
            perimeter=[{"process": "tva_refund", "sies": ["SIE-57-01"]}],
            service=FORBACH,
            exporting="DDFIP57",
            host="DDFIP57",
            scope="infra_departmental",
        ),
    )
    d = date.fromisoformat
    remote: _Remote = {"assignee": VIERZON, "convention": CONV_75, "version": 1}
    with session_scope(engine) as session:
        e = add_item(
            session,
            sie="SIE-75-17",
            reference="R-E",
            received_on=d("2026-05-15"),
            assigned_on=d("2026-09-01"),
            target=20,
            **remote,
        )
        c = add_item(
            session,
            sie="SIE-75-08",
            reference="R-C",
            received_on=d("2026-10-01"),
            assigned_on=d("2026-10-01"),
            target=20,
            **remote,
        )
        f = add_item(
            session,
            sie="SIE-75-17",
            reference="R-F",
            received_on=d("2026-10-01"),
            assigned_on=d("2026-10-05"),
            target=20,
            **remote,
        )
        a = add_item(
            session,
            sie="SIE-75-08",
            reference="R-A",
            received_on=d("2026-10-20"),
            assigned_on=d("2026-10-20"),
            target=20,
            **remote,
        )
        b = add_item(
            session,
            sie="SIE-75-08",
            reference="R-B",
            received_on=d("2026-11-02"),
            assigned_on=d("2026-11-02"),
            target=20,
            **remote,
        )
        h = add_item(
            session,
            sie="SIE-75-08",
            reference="R-H",
            received_on=d("2026-11-03"),
            assigned_on=d("2026-11-03"),
            target=20,
            **remote,
        )
        i = add_item(
            session,
            sie="SIE-75-02",
            reference="R-I",
            received_on=d("2026-11-10"),
            assigned_on=d("2026-11-10"),
        )
        dd = add_item(
            session,
            sie="SIE-75-17",
            reference="R-D",
            received_on=d("2026-11-16"),
            assigned_on=d("2026-11-16"),
            target=20,
            **remote,
        )
        g = add_item(
            session,
            sie="SIE-75-08",
            reference="R-G",
            process="filing_reminder",
            received_on=d("2026-11-20"),
            assigned_on=d("2026-11-20"),
            target=10,
            **remote,
        )
        add_item(session, sie="SIE-75-08", reference="R-W", received_on=d("2026-11-27"))
        m = add_item(
            session,
            sie="SIE-57-01",
            reference="R-M",
            received_on=d("2026-09-01"),
            assigned_on=d("2026-09-01"),
            assignee=FORBACH,
            convention=CONV_57,
            version=1,
        )
        assert (h.due_on, dd.due_on, i.due_on) == (
            d("2026-12-02"),
            d("2026-12-14"),
            d("2026-12-09"),
        )
        for item, event, when in (
            (e, "start", "2026-09-02"),
            (m, "start", "2026-09-02"),
            (c, "start", "2026-10-02"),
            (f, "start", "2026-10-06"),
            (f, "suspend", "2026-10-20"),
            (a, "start", "2026-10-21"),
            (b, "start", "2026-11-03"),
            (a, "complete", "2026-11-05"),
            (c, "complete", "2026-11-10"),
            (dd, "start", "2026-11-17"),
            (g, "cancel", "2026-11-25"),
            (b, "complete", "2026-11-30"),
            (h, "complete", "2026-12-02"),
        ):
            post(session, item, event, at(when))
        assert i.sie == "SIE-75-02"
    tokens: dict[str, str] = {}
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        for name, (role, directorate, service) in TOKEN_SPECS.items():
            tokens[name] = create_token(
                session, name=name, role=role, directorate=directorate, service=service, now=now
            )
        revoke_token(session, name="revoked", now=now)
    return World(tokens=tokens)
