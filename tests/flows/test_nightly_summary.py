"""The nightly cycle's summary and artifact, as plain functions (no Prefect run needed)."""

from __future__ import annotations

from datetime import date

from flows.nightly import nightly_markdown, summarise_night

INTAKE = {
    "files": [{"sie": "SIE-75-08", "file": "a.csv", "accepted": 3, "duplicates": 1, "rejected": 1}],
    "accepted": 3,
    "duplicates": 1,
    "rejected": 1,
    "unknown_sies": ["SIE-99-XX"],
    "unreadable": [],
}
ROUTING = {
    "as_of": "2026-11-26",
    "dry_run": False,
    "assigned": {"ANT-18-VIERZON": 2, "SIE-75-08": 1},
    "reassigned": 0,
    "waiting_capacity": 4,
    "unchanged": 7,
}
SCAN = {"new_breaches": {"sla": 2, "legal": 1}, "open_breaches": {"sla": 5, "legal": 1}}


def test_the_summary_combines_the_three_steps() -> None:
    summary = summarise_night(date(2026, 11, 26), INTAKE, ROUTING, SCAN, [])
    assert summary == {
        "as_of": "2026-11-26",
        "failed_steps": [],
        "intake": {
            "files": 1,
            "accepted": 3,
            "duplicates": 1,
            "rejected": 1,
            "unreadable": 0,
            "unknown_sies": ["SIE-99-XX"],
        },
        "routing": {
            "assigned": {"ANT-18-VIERZON": 2, "SIE-75-08": 1},
            "assigned_total": 3,
            "reassigned": 0,
            "waiting_capacity": 4,
            "unchanged": 7,
        },
        "scan": {"new_sla": 2, "new_legal": 1, "open_sla": 5, "open_legal": 1},
    }
    markdown = nightly_markdown(summary)
    assert "Toutes les étapes ont réussi." in markdown
    assert "| ANT-18-VIERZON | 2 |" in markdown
    assert "SIE-99-XX" in markdown


def test_a_failed_step_counts_zero_and_is_named() -> None:
    summary = summarise_night(date(2026, 11, 26), INTAKE, None, SCAN, ["routing"])
    assert summary["routing"]["assigned_total"] == 0
    assert summary["intake"]["accepted"] == 3
    markdown = nightly_markdown(summary)
    assert "Étapes en échec : routing" in markdown
    assert "Affectations de la nuit" not in markdown
