"""No taxpayer data (SIREN, amount, label) in what Prefect keeps of Relais's runs.

Two small nights run for real under the Prefect test harness, good paths and bad ones mixed:
valid rows, rows rejected for a bad SIREN, a missing amount or a conflicting value, a JSONL line
that is not JSON, an unknown SIE folder; on the second night an SIE whose ``processed/``
folder cannot be created (its intake fails and the night ends failed). Then a scan months
later (breaches, artifacts, events) and the month's convention report. Every flow-run log,
artifact, event, run name, parameter and state message of those runs, plus everything printed
or logged in this process and the files written (errors files, reports) outside the SIE's own
exports, is searched for the SIRENs, amounts (as written, in cents, in decimal) and labels.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from relais.settings import get_settings
from tests.builders import siren_for
from tests.reliability import scenarios

NIGHT = date(2026, 11, 2)
SCAN_DAY = date(2027, 6, 1)
BLOCKED_SIE = "SIE-75-17"

SIRENS = [siren_for(740_000 + number) for number in range(12)]
AMOUNTS = ["7 391 846,25", "6 284 913,57", "5 173 829,46", "4 862 517,39"]
LABELS = ["Établissements Zéphyrine Quatremains", "SARL Ornithorynque Bleu", "Vélocipèdes Azuréens"]
BAD_SIREN = SIRENS[0][:-1] + str((int(SIRENS[0][-1]) + 5) % 10)


def _amount_forms(amount: str) -> list[str]:
    """How an amount may show up once parsed: as written, in cents, in decimal forms."""
    digits = amount.replace(" ", "").replace(",", ".")
    euros, cents = digits.split(".")
    return [amount, digits, digits.replace(".", ","), euros + cents, f"{int(euros):,}"]


def _secrets() -> list[str]:
    secrets = [*SIRENS, BAD_SIREN, *LABELS]
    secrets += [f"{s[:3]} {s[3:6]} {s[6:]}" for s in SIRENS]
    for amount in AMOUNTS:
        secrets += _amount_forms(amount)
    return secrets


def _queue_files(root: Path) -> None:
    lines = ["reference;process;siren;received_on;amount;label"]
    for number, siren in enumerate(SIRENS):
        amount = AMOUNTS[number % len(AMOUNTS)]
        label = LABELS[number % len(LABELS)]
        lines.append(
            f"TP-{number:03d};tva_refund;{siren};2026-09-0{1 + number % 9};{amount};{label}"
        )
    lines.append(f"TP-BAD;tva_refund;{BAD_SIREN};2026-09-01;{AMOUNTS[0]};{LABELS[0]}")
    lines.append(f"TP-NOAMOUNT;tva_refund;{SIRENS[1]};2026-09-01;;{LABELS[1]}")
    lines.append(f"TP-000;tva_refund;{SIRENS[2]};2026-09-01;{AMOUNTS[3]};{LABELS[2]}")  # conflict
    for sie in scenarios.QUEUE_SIES:
        incoming = root / sie / "incoming"
        incoming.mkdir(parents=True)
        (incoming / "export.csv").write_text("\n".join(lines) + "\n", encoding="cp1252")
        jsonl = [
            json.dumps(
                {
                    "reference": f"TJ-{number}",
                    "process": "cfe_ifer_dispute",
                    "siren": siren,
                    "received_on": "2026-09-15",
                    "amount": AMOUNTS[number % len(AMOUNTS)],
                    "label": LABELS[number % len(LABELS)],
                },
                ensure_ascii=False,
            )
            for number, siren in enumerate(SIRENS[:4])
        ]
        jsonl.append(f'{{"reference": "TJ-X", "siren": "{SIRENS[5]}", "label": "{LABELS[0]}"')
        (incoming / "export.jsonl").write_text("\n".join(jsonl) + "\n", encoding="utf-8")
    (root / "SIE-99-INCONNU" / "incoming").mkdir(parents=True)


def _block_the_next_night(root: Path) -> None:
    """A new export for one SIE whose processed/ folder can no longer be created."""
    folder = root / BLOCKED_SIE
    (folder / "processed").rename(folder / "processed-earlier")
    (folder / "processed").write_text("not a folder")
    lines = ["reference;process;siren;received_on;amount;label"]
    lines.append(f"TP-900;tva_refund;{SIRENS[9]};2026-10-01;{AMOUNTS[1]};{LABELS[1]}")
    lines.append(f"TP-901;tva_refund;{BAD_SIREN};2026-10-01;{AMOUNTS[2]};{LABELS[2]}")
    (folder / "incoming" / "export-2.csv").write_text("\n".join(lines) + "\n", "utf-8")


def _everything_prefect_kept(run_ids: list[Any]) -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    chunks: list[str] = []
    with get_client(sync_client=True) as client:
        ids = list(run_ids)
        frontier = list(run_ids)
        while frontier:  # the subflows of the night, and theirs
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)
                )
            )
            frontier = [child.id for child in children if child.id not in ids]
            ids += frontier
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        assert len(runs) >= 8
        chunks += [run.model_dump_json() for run in runs]
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids))
        )
        assert tasks
        chunks += [task.model_dump_json() for task in tasks]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        assert len(logs) >= 5
        chunks += [log.model_dump_json() for log in logs]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        assert {artifact.key for artifact in artifacts} >= {
            "nightly-cycle",
            "intake-sie-queues",
            "scan-slas",
            "convention-report",
        }
        chunks += [artifact.model_dump_json() for artifact in artifacts]
        # Events are stored a moment after they are emitted.
        deadline = time.monotonic() + 30
        events: list[Any] = []
        while time.monotonic() < deadline:
            page = client.read_events(limit=50)
            events = list(page.events)
            while page.next_page is not None and len(events) < 5000:
                page = client.read_events_page(str(page.next_page))
                events += page.events
            if any(event.event == "relais.sla.breached" for event in events):
                break
            time.sleep(0.5)
        assert any(event.event == "relais.sla.breached" for event in events)
        chunks += [event.model_dump_json() for event in events]
    return "\n".join(chunks)


def _leaks(text_: str) -> list[str]:
    flat = re.sub(r"[\s\u00a0\u202f]", "", text_)
    found = []
    for secret in _secrets():
        if secret in text_ or re.sub(r"[\s\u00a0\u202f]", "", secret) in flat:
            found.append(secret)
    # JSON escapes non-ASCII letters: look for the labels that way too.
    escaped = json.dumps(LABELS)[1:-1]
    for label in escaped.split('", "'):
        if label.strip('"') in text_:
            found.append(label)
    return found


@pytest.mark.flow
@pytest.mark.slow
def test_no_taxpayer_data_in_logs_artifacts_events_or_errors(
    prefect_harness: None,
    sqlite_engine: Engine,
    relais_home: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flows.nightly import nightly_cycle
    from flows.report import convention_report
    from flows.scan import scan_slas

    caplog.set_level(logging.DEBUG)
    scenarios.build_world(sqlite_engine, relais_home)
    root = get_settings().queue_root
    _queue_files(root)

    night = nightly_cycle(as_of=NIGHT, return_state=True)
    assert night.is_completed()
    assert night.result()["intake"]["rejected"] > 0
    _block_the_next_night(root)
    failed_night = nightly_cycle(as_of=date(2026, 11, 3), return_state=True)
    assert failed_night.is_failed(), "the blocked SIE must make the night fail"
    summary_of_failure = str(failed_night.message or "")
    scan = scan_slas(as_of=SCAN_DAY, return_state=True)
    assert scan.is_completed()
    assert scan.result()["new_breaches"]["legal"] > 0
    report = convention_report(month="2026-11", convention="CONV-75-VIERZON", return_state=True)
    assert report.is_completed()

    run_ids = [state.state_details.flow_run_id for state in (night, failed_night, scan, report)]
    kept = _everything_prefect_kept(run_ids)
    assert BLOCKED_SIE in kept, "the failure must be reported (naming the SIE)"
    assert "relais.sla.breached" in kept and "accepted" in kept
    # The search itself finds each kind of secret in each form it may take.
    for planted in (SIRENS[3], "732 8", "739184625", "7391846.25", "SARL Ornithorynque Bleu"):
        probe = (
            planted if planted != "732 8" else f"{SIRENS[4][:3]} {SIRENS[4][3:6]} {SIRENS[4][6:]}"
        )
        assert _leaks(f"x {probe} y") != [], planted
    assert _leaks(json.dumps({"label": LABELS[0]})) != []
    assert _leaks(kept) == []
    assert _leaks(summary_of_failure) == []

    printed = capfd.readouterr()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    logged += "\n".join(str(record.exc_info[1]) for record in caplog.records if record.exc_info)
    assert _leaks(printed.out + printed.err) == []
    assert _leaks(logged) == []

    # Files Relais wrote: errors files and reports (the SIE's own exports excluded).
    written = [
        path
        for path in relais_home.rglob("*")
        if path.is_file() and (path.name.endswith(".errors.csv") or "reports" in path.parts)
    ]
    assert any(path.name == "export.csv.errors.csv" for path in written)
    assert any(path.suffix == ".html" for path in written)
    for path in written:
        assert _leaks(path.read_text("utf-8-sig")) == [], path
