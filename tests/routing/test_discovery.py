"""Local discovery: model servers on loopback become providers when LOCAL_DISCOVERY is on."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.errors import NotFound
from tests.routing.conftest import calls, chat, open_gateway
from tests.routing.echo import EchoUpstream
from tests.support.server import RunningServer, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lmstudio() -> Iterator[RunningServer]:
    """An OpenAI-compatible server standing in for LM Studio."""
    with serve(EchoUpstream().app) as server:
        yield server


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_env(routing_file: Any, lmstudio: RunningServer, ollama_url: str | None,
              **extra: str) -> dict[str, str]:
    dead = f"http://127.0.0.1:{closed_port()}"
    servers: dict[str, Any] = {"lmstudio": {"url": lmstudio.url}, "llamacpp": {"url": dead},
                               "vllm": {"url": dead}}
    env = {"ROUTING_FILE": routing_file({"local_servers": servers}), "LOCAL_DISCOVERY": "true",
           "LOCAL_DISCOVERY_TIMEOUT": "300ms", **extra}
    # Ollama is probed at OLLAMA_API_URL; point it somewhere harmless when not under test.
    env["OLLAMA_API_URL"] = ollama_url or dead
    return env


async def test_discovered_servers_serve_requests(simulators, routing_file, lmstudio) -> None:
    ollama = simulators["ollama"]
    env = local_env(routing_file, lmstudio, ollama.url)
    started = time.monotonic()
    async with open_gateway(env) as gateway:
        elapsed = time.monotonic() - started
        router = gateway.router
        assert router.catalog.discovered["lmstudio"] == ("echo-1",)
        assert "llama3.2:latest" in router.catalog.discovered["ollama"]
        assert not {"llamacpp", "vllm"} & set(router.catalog.discovered)
        answer = await gateway.ask("hi", model="lmstudio/echo-1")
        plan = router.plan("auto")
        served = await router.complete(chat(), requested_model="llama-3.2-3b")
    assert '"model": "echo-1"' in answer
    assert elapsed < 2  # dead ports fail fast and the probes run concurrently
    # With no cloud key, auto is served by local models, the discovered list last.
    # (Ollama has llama3.2 pulled, so llama-3.3-70b, higher in the list, is not offered.)
    assert plan.candidates[0].label == "ollama/llama3.2"
    assert plan.candidates[-1].label == "lmstudio/echo-1"
    assert served.provider_id == "ollama" and calls(ollama) == 1


async def test_discovery_is_off_by_default(routing_file, lmstudio) -> None:
    env = local_env(routing_file, lmstudio, None, LOCAL_DISCOVERY="false")
    async with open_gateway(env) as gateway:
        assert gateway.router.catalog.discovered == {}
        with pytest.raises(NotFound):
            gateway.router.plan("lmstudio/echo-1")


async def test_the_gateway_never_discovers_itself(routing_file, lmstudio) -> None:
    env = local_env(routing_file, lmstudio, None, SERVER_PORT=str(lmstudio.port))
    async with open_gateway(env) as gateway:
        assert "lmstudio" not in gateway.router.catalog.discovered
