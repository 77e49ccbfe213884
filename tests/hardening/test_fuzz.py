"""Fuzzing every operation of `openapi.yaml` against the gateway, over real HTTP.

schemathesis generates valid and invalid requests from the spec; every provider is one of the
simulators, so generated requests are answered. For each response: no 5xx, a documented
status and content type, a body and headers that match the spec (each server-sent event too).

The client APIs name models `provider/model`, which random text almost never is; a hook
makes about half the bodies name a model a simulator serves, so success paths and streams
are fuzzed as well as the refusals.

`make fuzz` runs the same test with many more examples (FUZZ_MAX_EXAMPLES).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gateway.test_llms import CASES
from tests.simulators import SIMULATORS
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
MODELS = [f"{case.provider}/{case.model}" for case in CASES]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def gateway_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The gateway in front of all seven simulators."""
    sims = {pid: request.getfixturevalue(f"{pid}_sim_server") for pid in SIMULATORS}
    with run_gateway(gateway_env(sims)) as gateway:
        yield gateway.url


@pytest.fixture(scope="module")
def spec(gateway_url: str) -> schemathesis.BaseSchema:
    """The product's spec, aimed at the running gateway."""
    schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
    schema.config.update(base_url=gateway_url)
    schema.hook(flatmap_body)
    return schema


def flatmap_body(context: HookContext, body: object) -> st.SearchStrategy[object]:
    """Half the client-API bodies with a string `model` get one a simulator serves."""
    operation = context.operation
    if (operation is None or not operation.path.startswith("/v1/")
            or not isinstance(body, dict) or not isinstance(body.get("model"), str)):
        return st.just(body)
    return st.sampled_from([None, *MODELS]).map(
        lambda model: body if model is None else {**body, "model": model})


schema = schemathesis.pytest.from_fixture("spec")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_specified(case: Case[Any], gateway_url: str) -> None:
    case.call_and_validate(base_url=gateway_url, checks=CHECKS, timeout=30)


# Found by the fuzzer: an integer beyond 64 bits passed validation, and writing the upstream
# request then failed with a 500.
HUGE = 123131942825241324606717952
HI = [{"role": "user", "content": "hi"}]
HUGE_BODIES = [
    ("/llms/anthropic/generate",
     {"model": "claude-sonnet-4-20250514", "max_tokens": HUGE, "messages": HI}, 400),
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "max_tokens": HUGE, "messages": HI},
     400),
    ("/v1/messages",
     {"model": "anthropic/claude-sonnet-4-20250514", "max_tokens": HUGE, "messages": HI}, 400),
    # Passed on untranslated (JSON parsing reads it as a float), and the provider refuses it.
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "seed": HUGE, "messages": HI}, 400),
]


@pytest.mark.parametrize(("path", "body", "status"), HUGE_BODIES)
def test_integers_beyond_64_bits_are_refused_not_a_500(
        path: str, body: dict[str, object], status: int, gateway_url: str) -> None:
    r = httpx.post(gateway_url + path, content=json.dumps(body),
                   headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == status, r.text
