"""Pytest fixtures that run every provider simulator on 127.0.0.1.

Register with `pytest_plugins = ["tests.simulators.fixtures"]` in the root conftest.py.
Each simulator's server lives for the whole session; the per-test fixtures (`openai_sim`,
`anthropic_sim`, ..., `simulators`) reset recordings and faults before and after each test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.simulators import SIMULATORS, ProviderSimulator
from tests.simulators.cloudflare import CloudflareSimulator
from tests.support.server import serve


def gateway_env(simulators: Mapping[str, ProviderSimulator]) -> dict[str, str]:
    """Environment variables pointing the gateway at these simulators.

    `{ID}_API_URL` is the simulator's base URL (Cloudflare's already names the account), and
    `{ID}_API_KEY` its expected key (none for Ollama, which takes no credentials).
    """
    env: dict[str, str] = {}
    for provider_id, sim in simulators.items():
        prefix = provider_id.upper()
        env[f"{prefix}_API_URL"] = sim.url
        if sim.api_key:
            env[f"{prefix}_API_KEY"] = sim.api_key
        if isinstance(sim, CloudflareSimulator):
            env["CLOUDFLARE_ACCOUNT_ID"] = sim.account_id
    return env


def _server_fixture(provider_id: str) -> Any:
    """A session-scoped fixture serving one simulator."""

    @pytest.fixture(scope="session", name=f"{provider_id}_sim_server")
    def running() -> Iterator[ProviderSimulator]:
        """Start the simulator on an ephemeral loopback port for the session."""
        sim = SIMULATORS[provider_id]()
        # The providers name their own server (Gemini does), so uvicorn must not add itself.
        with serve(sim.app, server_header=False) as server:
            sim.origin = server.url
            try:
                yield sim
            finally:
                sim.reset()  # releases hung requests so the server can stop

    return running


def _sim_fixture(provider_id: str) -> Any:
    """A per-test fixture handing out the running simulator with a clean slate."""

    @pytest.fixture(name=f"{provider_id}_sim")
    def fresh(request: pytest.FixtureRequest) -> Iterator[ProviderSimulator]:
        """The running simulator, reset before and after the test."""
        sim: ProviderSimulator = request.getfixturevalue(f"{provider_id}_sim_server")
        sim.reset()
        try:
            yield sim
        finally:
            sim.reset()

    return fresh


ollama_sim_server = _server_fixture("ollama")
groq_sim_server = _server_fixture("groq")
openai_sim_server = _server_fixture("openai")
google_sim_server = _server_fixture("google")
cloudflare_sim_server = _server_fixture("cloudflare")
cohere_sim_server = _server_fixture("cohere")
anthropic_sim_server = _server_fixture("anthropic")

ollama_sim = _sim_fixture("ollama")
groq_sim = _sim_fixture("groq")
openai_sim = _sim_fixture("openai")
google_sim = _sim_fixture("google")
cloudflare_sim = _sim_fixture("cloudflare")
cohere_sim = _sim_fixture("cohere")
anthropic_sim = _sim_fixture("anthropic")


@pytest.fixture
def simulators(request: pytest.FixtureRequest) -> dict[str, ProviderSimulator]:
    """All seven simulators, reset, keyed by gateway provider id."""
    return {pid: request.getfixturevalue(f"{pid}_sim") for pid in SIMULATORS}


@pytest.fixture
def simulator_env(simulators: Mapping[str, ProviderSimulator]) -> dict[str, str]:
    """`gateway_env` for all seven simulators."""
    return gateway_env(simulators)

