from __future__ import annotations
from collections.abc import Iterator
from pathlib import Path
import pytest, schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance, status_code_conformance)
from tests.simulators import SIMULATORS
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway

ROOT = Path(__file__).resolve().parents[2]

@pytest.fixture(scope="module")
def gateway_url(request: pytest.FixtureRequest) -> Iterator[str]:
    sims = {pid: request.getfixturevalue(f"{pid}_sim_server") for pid in SIMULATORS}
    with run_gateway(gateway_env(sims)) as gw:
        yield gw.url

@pytest.fixture(scope="module")
def spec(gateway_url: str):
    s = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
    s.config.update(base_url=gateway_url)
    return s

schema = schemathesis.pytest.from_fixture("spec")

@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz(case, gateway_url) -> None:
    case.call_and_validate(base_url=gateway_url, checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance], timeout=30)
