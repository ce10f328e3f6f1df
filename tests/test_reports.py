"""Monthly convention reports: figures checked by hand, reproducible, rendered three ways."""

from __future__ import annotations

import csv
import io
import json
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from relais.cli.main import app
from relais.db import session_scope
from relais.errors import NotFoundError, ValidationError
from relais.reports import (
    REPORT_DIR_MODE,
    REPORT_FILE_MODE,
    ConventionReport,
    build_report,
    conventions_in_force,
    parse_month,
    percentile,
    previous_month,
    render_csv,
    render_html,
    render_json,
    summary_markdown,
    write_report_files,
)
from relais.settings import get_settings
from tests.api_fixtures import CONV_57, CONV_75, at, build_world
from tests.builders import post
from tests.routing_data import apply_convention, convention_document


def _report(convention: str = CONV_75, month: str = "2026-11") -> ConventionReport:
    with session_scope() as session:
        return build_report(
            session, convention_id=convention, month=month, zone=get_settings().timezone
        )


def _rows(report: ConventionReport) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row.sie, row.process): row.as_dict() for row in report.rows}


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Engine:
    """The world of ``tests.api_fixtures`` (see its timeline), on SQLite and PostgreSQL."""
    build_world(engine, tmp_path)
    return engine


def test_november_figures_checked_by_hand(world: Engine) -> None:
    rows = _rows(_report())
    # SIE Paris 8e, VAT refunds: R-B (2/11) and R-H (3/11) assigned in November. Completed in
    # November: R-A on 5/11, 12 business days after 20/10 (21-23/10, 26-30/10, 2-5/11); R-C on
    # 10/11, 28 after 1/10 (2/10, four full weeks, 2-6/11, 9-10/11); R-B on 30/11, 19 after 2/11
    # (3-6, 9-13 less the 11th, 16-20, 23-27, 30). Durations [12, 19, 28]: median 19, 90th
    # percentile 19 + 0.8 × (28 − 19) = 26.2. R-A (due 18/11) and R-B (due 1/12) on time, R-C
    # (due 29/10) late: 2/3. Left open on 30/11: R-H (completed 2/12 only), due 2/12: no breach.
    assert rows[("SIE-75-08", "tva_refund")] == {
        "sie": "SIE-75-08",
        "process": "tva_refund",
        "process_label": "Remboursement de crédit de TVA",
        "target_business_days": 20,
        "assigned": 2,
        "completed": 3,
        "backlog": 1,
        "median_business_days": 19.0,
        "p90_business_days": 26.2,
        "share_met": 0.667,
        "open_breaches": 0,
        "legal_breaches": 0,
    }
    # SIE Paris 17e: R-D assigned 16/11; backlog R-D, R-E and R-F; R-E breached (due 29/09) and
    # past its legal deadline (15/11); R-F suspended, so not counted as a breach.
    seventeenth = rows[("SIE-75-17", "tva_refund")]
    assert (seventeenth["assigned"], seventeenth["completed"], seventeenth["backlog"]) == (1, 0, 3)
    assert (seventeenth["open_breaches"], seventeenth["legal_breaches"]) == (1, 1)
    assert seventeenth["median_business_days"] is None and seventeenth["share_met"] is None
    # Filing reminders of Paris 8e: R-G assigned 20/11, cancelled 25/11: no backlog.
    reminders = rows[("SIE-75-08", "filing_reminder")]
    assert (reminders["assigned"], reminders["completed"], reminders["backlog"]) == (1, 0, 0)
    # The local item of Paris 2e and Forbach's item are not this convention's.
    assert set(rows) == {
        ("SIE-75-08", "filing_reminder"),
        ("SIE-75-08", "tva_refund"),
        ("SIE-75-17", "tva_refund"),
    }


def test_totals_and_header(world: Engine) -> None:
    report = _report()
    document = report.as_dict()
    assert document["totals"] == {
        "assigned": 4,
        "completed": 3,
        "backlog": 4,
        "median_business_days": 19.0,
        "p90_business_days": 26.2,
        "share_met": 0.667,
        "open_breaches": 1,
        "legal_breaches": 1,
    }
    assert (document["service"], document["versions"]) == ("ANT-18-VIERZON", [1])
    assert (document["first_day"], document["last_day"]) == ("2026-11-01", "2026-11-30")


def test_october_is_its_own_month(world: Engine) -> None:
    rows = _rows(_report(month="2026-10"))
    # Assigned in October: R-C (1/10), R-A (20/10) for Paris 8e; R-F (5/10) for Paris 17e.
    assert rows[("SIE-75-08", "tva_refund")]["assigned"] == 2
    assert rows[("SIE-75-17", "tva_refund")]["assigned"] == 1
    # Open on 31/10: R-C and R-A (8e), R-E and R-F (17e); R-C was due 29/10.
    assert rows[("SIE-75-08", "tva_refund")]["backlog"] == 2
    assert rows[("SIE-75-08", "tva_refund")]["open_breaches"] == 1
    assert rows[("SIE-75-17", "tva_refund")]["backlog"] == 2
    # R-E's legal deadline (15/11) had not passed yet.
    assert rows[("SIE-75-17", "tva_refund")]["legal_breaches"] == 0


def test_a_month_gives_the_same_report_after_later_events(world: Engine) -> None:
    before = render_json(_report())
    december_before = render_json(_report(month="2026-12"))
    with session_scope() as session:
        post(session, ("SIE-75-17", "R-D"), "complete", at("2026-12-03"))
        post(session, ("SIE-75-17", "R-F"), "resume", at("2026-12-04"))
        post(session, ("SIE-75-17", "R-F"), "cancel", at("2026-12-07"), reason="doublon")
        post(session, ("SIE-75-17", "R-E"), "complete", at("2026-12-08"))
    assert render_json(_report()) == before
    december = _rows(_report(month="2026-12"))
    assert render_json(_report(month="2026-12")) != december_before
    # December sees them: R-H (2/12), R-D and R-E completed; nothing left at Paris 17e.
    assert december[("SIE-75-17", "tva_refund")]["completed"] == 2
    assert december[("SIE-75-17", "tva_refund")]["backlog"] == 0
    assert december[("SIE-75-08", "tva_refund")]["completed"] == 1


def test_a_new_version_replaces_the_perimeter_from_its_start(world: Engine, tmp_path: Path) -> None:
    apply_convention(
        tmp_path / "v2",
        world,
        convention_document(
            CONV_75,
            2,
            effective_from=date(2027, 1, 1),
            perimeter=[
                {"process": "tva_refund", "sies": ["SIE-75-08"], "target_business_days": 15}
            ],
        ),
    )
    december, january = _report(month="2026-12"), _report(month="2027-01")
    assert december.versions == [1]
    assert january.versions == [2]
    # Version 1 is open-ended but superseded: its lines no longer make rows of their own.
    assert _rows(january)[("SIE-75-08", "tva_refund")]["target_business_days"] == 15
    assert ("SIE-75-08", "filing_reminder") not in _rows(january)
    with session_scope() as session:
        assert conventions_in_force(session, month="2027-01") == [CONV_57, CONV_75]


def test_unknown_convention(world: Engine) -> None:
    with pytest.raises(NotFoundError, match="no convention CONV-NOPE"):
        _report("CONV-NOPE")


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026/11", "11-2026", "", "1899-12"])
def test_malformed_months(month: str) -> None:
    with pytest.raises(ValidationError):
        parse_month(month)


def test_run_summary_has_counts_only() -> None:
    results = [
        {
            "convention": CONV_75,
            "rows": 3,
            "assigned": 4,
            "completed": 3,
            "backlog": 4,
            "open_breaches": 1,
            "legal_breaches": 1,
            "files": ["/somewhere/2026-11.html"],
        }
    ]
    markdown = summary_markdown("2026-11", results)
    assert f"| {CONV_75} | 3 | 4 | 3 | 4 | 1 | 1 |" in markdown
    assert "somewhere" not in markdown
    assert "aucune convention" in summary_markdown("2026-11", [])


def test_previous_month() -> None:
    assert previous_month(date(2026, 12, 1)) == "2026-11"
    assert previous_month(date(2027, 1, 31)) == "2026-12"


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7], 0.9, 7.0),
        ([2, 4, 9, 10], 0.5, 6.5),
        ([2, 4, 9, 10], 0.9, 9.7),
        ([28, 12, 19], 0.9, 26.2),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9.1),
    ],
)
def test_percentiles_interpolate_between_ranks(
    values: list[int], fraction: float, expected: float | None
) -> None:
    assert percentile(values, fraction) == expected


def test_csv_is_utf8_with_bom_semicolons_one_line_per_row(world: Engine) -> None:
    text = render_csv(_report())
    assert text.startswith("\ufeffsie;process;target_business_days;assigned;completed;backlog;")
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert rows[1] == {
        "sie": "SIE-75-08",
        "process": "tva_refund",
        "target_business_days": "20",
        "assigned": "2",
        "completed": "3",
        "backlog": "1",
        "median_business_days": "19.0",
        "p90_business_days": "26.2",
        "share_met": "0.667",
        "open_breaches": "0",
        "legal_breaches": "0",
    }
    assert rows[0]["median_business_days"] == ""


def test_html_stands_alone_with_its_charts(world: Engine) -> None:
    html = render_html(_report())
    assert html.count("<svg") == 2
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html
    assert "66,7\u00a0%" in html  # share met, written the French way
    assert "Remboursement de crédit de TVA" in html


def test_report_files_are_private(world: Engine, tmp_path: Path) -> None:
    paths = write_report_files(_report(), tmp_path / "reports")
    assert [path.name for path in paths] == ["2026-11.html", "2026-11.json", "2026-11.csv"]
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == REPORT_FILE_MODE
    assert stat.S_IMODE(paths[0].parent.stat().st_mode) == REPORT_DIR_MODE
    assert json.loads(paths[1].read_text(encoding="utf-8"))["totals"]["backlog"] == 4
    # Writing again replaces the files and leaves no temporary file behind.
    write_report_files(_report(), tmp_path / "reports")
    assert sorted(p.name for p in paths[0].parent.iterdir()) == sorted(p.name for p in paths)


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_json_on_stdout(world: Engine) -> None:
    result = CliRunner().invoke(
        app, ["report", "--convention", CONV_75, "--month", "2026-11", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["completed"] == 3


def test_cli_out_file_takes_its_format_from_the_suffix(world: Engine, tmp_path: Path) -> None:
    out = tmp_path / "out" / "vierzon.csv"
    result = CliRunner().invoke(
        app, ["report", "--convention", CONV_75, "--month", "2026-11", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbfsie;process;")
    assert result.stdout == ""


def test_cli_errors(world: Engine) -> None:
    runner = CliRunner()
    bad_month = runner.invoke(app, ["report", "--convention", CONV_75, "--month", "2026-13"])
    assert bad_month.exit_code == 2
    unknown = runner.invoke(app, ["report", "--convention", "CONV-NOPE", "--month", "2026-11"])
    assert unknown.exit_code == 1
    assert "Error: no convention CONV-NOPE" in unknown.stderr


def test_report_tokens_and_api_commands_do_not_load_prefect(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from relais.cli.main import app\n"
        "runner = CliRunner()\n"
        "r = runner.invoke(app, ['report', '--convention', 'CONV-X', '--month', '2026-11'])\n"
        "assert r.exit_code == 1, r.output\n"
        "assert runner.invoke(app, ['tokens', 'list', '--format', 'json']).exit_code == 0\n"
        "assert runner.invoke(app, ['api', '--help']).exit_code == 0\n"
        "from relais.api import create_app\n"
        "create_app()\n"
        "print('prefect' in sys.modules)\n"
    )
    env = {"RELAIS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "False"
