"""Property-based requests generated from the OpenAPI document: no input makes a server error.

Kept small (a few examples per operation) so the suite stays quick; raise ``max_examples``
locally to search harder.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from relais.api import create_app
from tests.api_fixtures import World

# The application reads its database per request, so one instance serves every test's world.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_a_server_error(case: schemathesis.Case, world: World) -> None:
    case.call_and_validate(headers=world.headers("admin"), checks=[not_a_server_error])
