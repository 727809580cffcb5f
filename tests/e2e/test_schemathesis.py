"""schemathesis 4 against the whole served OpenAPI document: no 5xx, and every response matches the
status codes, content types and schemas the document declares for it.

Runs as an admin over a small store network (so stock endpoints also answer 2xx, not only 404).
Bounded: a few examples per operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.ledger import build_network, receive

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(app, client, runtime):
    with runtime.uow() as uow:
        net = build_network(uow)
        receive(uow, net, net.state_ilr, net.lot_late, 1000)
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, client):
    case.call_and_validate(
        headers={"Authorization": client.environ_base["HTTP_AUTHORIZATION"]}, checks=CHECKS
    )
