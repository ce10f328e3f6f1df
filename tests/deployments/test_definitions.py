"""Every flow and deployment definition loads, offline, and both ways of deploying agree."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import Flow, load_flow_from_entrypoint

import flows
from deployments.build import DEPLOYMENTS, WORK_POOL, build_deployments
from deployments.schedules import BUSINESS_HOURS_SCAN, MONTHLY_REPORT, NIGHTLY
from flows.naming import RELAIS_TAG, format_run_name

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"
SPEC_FLOWS = {
    "intake-sie-queues",
    "route-work-items",
    "scan-slas",
    "convention-report",
    "nightly-cycle",
}
EXPECTED = {
    "nightly-cycle/nightly": (NIGHTLY, ConcurrencyLimitStrategy.ENQUEUE),
    "scan-slas/business-hours": (BUSINESS_HOURS_SCAN, ConcurrencyLimitStrategy.CANCEL_NEW),
    "convention-report/monthly": (MONTHLY_REPORT, ConcurrencyLimitStrategy.ENQUEUE),
}


def all_flows() -> dict[str, Flow[..., Any]]:
    """Every flow object defined in the ``flows`` package, by flow name."""
    found: dict[str, Flow[..., Any]] = {}
    for module_info in pkgutil.iter_modules(flows.__path__):
        module = importlib.import_module(f"flows.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, Flow) and value.__module__ == module.__name__:
                found[value.name] = value
    return found


def test_every_flow_of_the_spec_is_defined() -> None:
    assert set(all_flows()) == SPEC_FLOWS


def test_build_deployments_gives_the_three_scheduled_deployments() -> None:
    deployments = build_deployments()
    by_name = {f"{d.flow_name}/{d.name}": d for d in deployments}
    assert set(by_name) == set(EXPECTED)
    for full_name, (schedule, collision) in EXPECTED.items():
        deployment = by_name[full_name]
        assert deployment.schedules is not None
        assert len(deployment.schedules) == 1
        cron = deployment.schedules[0].schedule
        assert isinstance(cron, CronSchedule)
        assert (cron.cron, cron.timezone) == (schedule.cron, "Europe/Paris")
        assert deployment.schedules[0].active
        assert RELAIS_TAG in deployment.tags
        # One run at a time per deployment; the nightly one waits, the hourly scan skips.
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options is not None
        assert deployment.concurrency_options.collision_strategy is collision
        assert not deployment.paused
        # Loaded by module path, so any process with Relais installed can run it.
        flow: Flow[..., Any] = load_flow_from_entrypoint(deployment.entrypoint or "")
        assert flow.name == deployment.flow_name


def _yaml_deployments() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    assert document["pull"] == []  # workers run the installed package: nothing to fetch
    result = {}
    for entry in document["deployments"]:
        flow: Flow[..., Any] = load_flow_from_entrypoint(entry["entrypoint"])
        result[f"{flow.name}/{entry['name']}"] = entry
    return result


def test_prefect_yaml_describes_the_same_deployments_as_serve() -> None:
    described = _yaml_deployments()
    assert set(described) == set(EXPECTED)
    for spec in DEPLOYMENTS:
        entry = described[spec.full_name]
        assert entry["work_pool"]["name"] == WORK_POOL
        assert entry["tags"] == list(spec.tags)
        assert entry["description"] == spec.description
        [schedule] = entry["schedules"]
        assert (schedule["cron"], schedule["timezone"]) == (
            spec.schedule.cron,
            spec.schedule.timezone,
        )
        assert entry["concurrency_limit"] == {
            "limit": 1,
            "collision_strategy": spec.collision.value,
        }
        assert load_flow_from_entrypoint(entry["entrypoint"]) is spec.flow


@pytest.mark.parametrize(
    "parameters, names, expected",
    [
        ({"as_of": date(2026, 11, 26)}, ("as_of",), "nightly-2026-11-26"),
        ({"as_of": "2026-11-26"}, ("as_of",), "nightly-2026-11-26"),  # from a deployment
        ({"as_of": None}, ("as_of",), "nightly-2026-12-01"),
        ({}, ("as_of",), "nightly-2026-12-01"),
        (
            {"convention": "CONV-75-VIERZON", "month": "2026-10"},
            ("convention", "month"),
            "nightly-CONV-75-VIERZON-2026-10",
        ),
        ({"convention": None, "month": "2026-10"}, ("convention", "month"), "nightly-2026-10"),
    ],
)
def test_run_names_say_what_the_run_works_on(
    parameters: dict[str, Any], names: tuple[str, ...], expected: str
) -> None:
    assert format_run_name("nightly", parameters, names, today=date(2026, 12, 1)) == expected


def test_the_nightly_flow_names_its_runs_after_the_night() -> None:
    nightly = all_flows()["nightly-cycle"]
    assert callable(nightly.flow_run_name)
    assert nightly.flow_run_name.__name__ == "nightly_run_name"
