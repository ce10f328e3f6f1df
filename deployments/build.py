"""The Relais deployments, built without a server so that a test can check them.

``relais serve`` serves them in one process; ``deployments/prefect.yaml`` describes the same
three for ``prefect deploy`` and a pool of process workers (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.flows import Flow
from prefect.schedules import Schedule

from deployments.schedules import BUSINESS_HOURS_SCAN, MONTHLY_REPORT, NIGHTLY
from flows.naming import run_tags
from flows.nightly import nightly_cycle
from flows.report import convention_report
from flows.scan import scan_slas

#: The process work pool that workers of ``prefect.yaml`` deployments poll.
WORK_POOL: Final = "relais-pool"


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """What one deployment is: its flow, name, schedule, tags and overlap rule."""

    flow: Flow[..., Any]
    name: str
    schedule: Schedule
    tags: tuple[str, ...]
    #: What happens when the next run is due while the previous one still runs.
    collision: ConcurrencyLimitStrategy
    description: str

    @property
    def full_name(self) -> str:
        """``<flow name>/<deployment name>``, as Prefect names deployments."""
        return f"{self.flow.name}/{self.name}"


DEPLOYMENTS: Final[tuple[DeploymentSpec, ...]] = (
    DeploymentSpec(
        flow=nightly_cycle,
        name="nightly",
        schedule=NIGHTLY,
        tags=tuple(run_tags("nightly")),
        # A night that overruns delays the next one rather than racing it.
        collision=ConcurrencyLimitStrategy.ENQUEUE,
        description="Réception, routage et scan des délais, chaque nuit à 01:30 (Europe/Paris).",
    ),
    DeploymentSpec(
        flow=scan_slas,
        name="business-hours",
        schedule=BUSINESS_HOURS_SCAN,
        tags=tuple(run_tags("scan")),
        # An hourly scan still running makes the next one pointless: skip it.
        collision=ConcurrencyLimitStrategy.CANCEL_NEW,
        description="Scan des délais toutes les heures de 08:00 à 18:00, du lundi au vendredi.",
    ),
    DeploymentSpec(
        flow=convention_report,
        name="monthly",
        schedule=MONTHLY_REPORT,
        tags=tuple(run_tags("report")),
        collision=ConcurrencyLimitStrategy.ENQUEUE,
        description="Rapports des conventions du mois précédent, le 1er à 06:00.",
    ),
)


def build_deployments() -> list[RunnerDeployment]:
    """The three deployments, one run at a time each, flows loaded by module path.

    A module-path entrypoint (``flows.nightly:nightly_cycle``) lets any process with Relais
    installed run them, whatever its working directory.
    """
    deployments = []
    for spec in DEPLOYMENTS:
        deployment = spec.flow.to_deployment(
            name=spec.name,
            schedule=spec.schedule,
            tags=list(spec.tags),
            description=spec.description,
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=spec.collision),
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        # ``to_deployment`` is sync-compatible: called outside an event loop it returns the
        # deployment itself, never a coroutine.
        assert isinstance(deployment, RunnerDeployment)
        deployments.append(deployment)
    return deployments
