"""Fixtures for the routing tests: a controllable clock, a recording sleep, routing files,
routers over the provider simulators, and a real redis-server on an ephemeral port."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import ir
from gateway.library import Gateway, Hooks
from gateway.routing import Router
from gateway.routing.backends import StateBackend
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env

# Timeouts short enough that a hung simulator costs a fraction of a second.
# The cache is off by default; these tests turn it on (and off where they test that).
FAST = {"CLIENT_READ_TIMEOUT": "0.6s", "CLIENT_CONNECT_TIMEOUT": "0.5s",
        "ROUTING_BACKOFF_BASE": "10ms", "ROUTING_BACKOFF_MAX": "2s", "CACHE_ENABLED": "true"}


class FakeClock:
    """The router's clock, moved by the test instead of by time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """A sleep that records each requested delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    """A fresh controllable clock."""
    return FakeClock()


@pytest.fixture
def sleeps() -> RecordingSleep:
    """A fresh recording sleep."""
    return RecordingSleep()


@pytest.fixture
def routing_file(tmp_path: Path) -> Any:
    """Write a user routing file (a mapping, merged over the built-in one); returns its path."""
    counter = iter(range(1000))

    def write(data: Mapping[str, Any]) -> str:
        path = tmp_path / f"routing-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
        return str(path)

    return write


def env_for(simulators: Mapping[str, ProviderSimulator], *ids: str,
            **extra: str) -> dict[str, str]:
    """Settings with only the simulators `ids` configured, the fast timeouts, and `extra`."""
    env = gateway_env({pid: simulators[pid] for pid in ids})
    env.update(FAST)
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def open_gateway(env: Mapping[str, str], *, clock: FakeClock | None = None,
                       sleep: RecordingSleep | None = None,
                       backend: StateBackend | None = None) -> AsyncIterator[Gateway]:
    """A library gateway (the same Router the server runs) over real HTTP."""
    hooks = Hooks(clock=clock, sleep=sleep, rng=random.Random(7), backend=backend)
    async with Gateway.from_env(dict(env), hooks=hooks) as gateway:
        yield gateway


@contextlib.asynccontextmanager
async def open_router(env: Mapping[str, str], *, clock: FakeClock | None = None,
                      sleep: RecordingSleep | None = None) -> AsyncIterator[Router]:
    """Just the router of `open_gateway`."""
    async with open_gateway(env, clock=clock, sleep=sleep) as gateway:
        yield gateway.router


def chat(text: str = "Say hello.", **fields: Any) -> ir.ChatRequest:
    """A one-message chat request (the model is set by the router)."""
    return ir.ChatRequest(model="", messages=[ir.Message("user", [ir.TextPart(text)])],
                          **fields)


async def settle(sim: ProviderSimulator) -> None:
    """Release requests a simulator still holds from `hang()`, and let them finish.

    A released request is answered normally, and would otherwise take a fault that the next
    test arms on the same (session-wide) simulator.
    """
    sim.reset()
    await asyncio.sleep(0.2)


def calls(sim: ProviderSimulator) -> int:
    """How many chat calls a simulator received (model lists excluded)."""
    return sum(1 for r in sim.requests if r.method == "POST")


# ----- redis ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on loopback (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (`make test` installs it)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test, so tests sharing the server never see each other."""
    return f"test-{request.node.name}-{random.Random().randrange(1 << 30)}"
