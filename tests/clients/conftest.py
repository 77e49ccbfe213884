"""One gateway for the whole session, pointed at every simulator, and SDK clients aimed at it.

Tests take the per-test simulator fixtures (`simulators`, `openai_sim`, ...) to get a clean
slate; the gateway itself keeps no state between requests, so it is started only once.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.clients import sdk
from tests.simulators import SIMULATORS, ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer


@pytest.fixture(scope="session")
def gateway(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The gateway serving the client APIs, in front of all seven simulators."""
    sims: dict[str, ProviderSimulator] = {
        pid: request.getfixturevalue(f"{pid}_sim_server") for pid in SIMULATORS}
    with run_gateway(gateway_env(sims) | {"CLIENT_LIST_TIMEOUT": "2s"}) as server:
        yield server


@pytest.fixture
def openai_client(gateway: RunningServer) -> Iterator[openai.OpenAI]:
    """The sync OpenAI SDK aimed at the gateway."""
    with sdk.openai_sync(gateway) as client:
        yield client


@pytest.fixture
def anthropic_client(gateway: RunningServer) -> Iterator[anthropic.Anthropic]:
    """The sync Anthropic SDK aimed at the gateway."""
    with sdk.anthropic_sync(gateway) as client:
        yield client


@pytest.fixture
def fresh_gateway(simulators: dict[str, ProviderSimulator]) -> Iterator[RunningServer]:
    """A gateway of the test's own: routing state (cooldowns after injected failures) dies
    with it instead of leaking into later tests."""
    with run_gateway(gateway_env(simulators) | {"CLIENT_LIST_TIMEOUT": "2s"}) as server:
        yield server
