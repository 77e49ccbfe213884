"""Redis mode against a real redis-server: replicas share cooldowns, budgets and the cache."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.library import Gateway
from gateway.routing import NoModelAvailable
from gateway.routing.backends import HealthRecord
from gateway.routing.redis_backend import RedisBackend
from gateway.routing.status import routing_status
from tests.routing.conftest import FakeClock, calls, chat, env_for, open_gateway
from tests.routing.test_fallback import HOPS

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


def shared_env(simulators: Any, routing_file: Any, redis_server: str, prefix: str,
               budgets: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    routing = routing_file({**HOPS, "budgets": budgets or {}})
    return env_for(simulators, "openai", "groq", "anthropic", ROUTING_FILE=routing,
                   REDIS_URL=redis_server, REDIS_KEY_PREFIX=prefix, **extra)


@contextlib.asynccontextmanager
async def replicas(env: dict[str, str], clock: FakeClock) -> AsyncIterator[tuple[Gateway,
                                                                                 Gateway]]:
    """Two gateways with their own clients and Redis connections, sharing one Redis."""
    async with open_gateway(env, clock=clock) as a, open_gateway(env, clock=clock) as b:
        assert a.router.backend is not b.router.backend
        assert a.router.backend.kind == b.router.backend.kind == "redis"
        yield a, b


async def served(gateway: Gateway, text: str, model: str = "hop-model") -> str:
    return (await gateway.router.complete(chat(text), requested_model=model)).provider_id


async def test_replicas_share_cooldowns(simulators, routing_file, redis_server, redis_prefix,
                                        clock) -> None:
    simulators["openai"].fail_next(429, headers={"retry-after": "30"})
    env = shared_env(simulators, routing_file, redis_server, redis_prefix)
    async with replicas(env, clock) as (a, b):
        assert await served(a, "1") == "groq"
        assert await served(b, "2") == "groq"  # b skips openai on a's cooldown
        status = await routing_status(b.router)
        clock.advance(31)
        assert await served(b, "3") == "openai"
    assert calls(simulators["openai"]) == 2
    openai = next(p for p in status["providers"] if p["id"] == "openai")
    cooling = {m["model"]: m for m in openai["models"]}["gpt-4o-mini"]
    assert cooling["cooling_down_until"] == pytest.approx(clock() - 1)


async def test_replicas_share_budgets(simulators, routing_file, redis_server, redis_prefix,
                                      clock) -> None:
    env = shared_env(simulators, routing_file, redis_server, redis_prefix,
                     budgets={"openai": {"rpm": 3}}, CACHE_ENABLED="false")
    async with replicas(env, clock) as (a, b):
        assert [await served(a, "1"), await served(b, "2")] == ["openai", "openai"]
        # Concurrent requests on both replicas: exactly one more fits in the minute.
        results = await asyncio.gather(*(served(gw, f"c{n}") for n in range(8)
                                         for gw in (a, b)))
        states = await a.router.budgets.states("openai")
    assert results.count("openai") == 1
    assert calls(simulators["openai"]) == 3
    assert states["rpm"].used == 3 and states["rpm"].left == 0


async def test_replicas_share_the_cache(simulators, routing_file, redis_server, redis_prefix,
                                        clock) -> None:
    env = shared_env(simulators, routing_file, redis_server, redis_prefix,
                     CACHE_MAX_ENTRIES="2", CACHE_TTL="60s")
    async with replicas(env, clock) as (a, b):
        first = await a.router.complete(chat("q"), requested_model="hop-model")
        second = await b.router.complete(chat("q"), requested_model="hop-model")
        streamed = await b.router.stream(chat("q"), requested_model="hop-model")
        replay = [e async for e in streamed.events]
        assert (first.cache_hit, second.cache_hit, streamed.cache_hit) == (False, True, True)
        assert second.answer.text == first.answer.text and replay
        stats = await b.router.cache.stats()
        assert (stats["backend"], stats["entries"], stats["hits"], stats["misses"]) == (
            "redis", 1, 2, 1)
        # Least recently used goes first, across replicas.
        await a.router.complete(chat("r"), requested_model="hop-model")
        await b.router.complete(chat("q"), requested_model="hop-model")  # q is now recent
        await a.router.complete(chat("s"), requested_model="hop-model")  # evicts r
        assert (await b.router.complete(chat("q"), requested_model="hop-model")).cache_hit
        assert not (await b.router.complete(chat("r"), requested_model="hop-model")).cache_hit
        clock.advance(61)  # the TTL runs on the router's clock
        assert not (await a.router.complete(chat("q"), requested_model="hop-model")).cache_hit
        assert await b.router.cache.clear() == 2
        assert (await a.router.cache.stats())["entries"] == 0


async def test_two_processes_share_cooldowns_budgets_and_cache(
        simulators, routing_file, redis_server, redis_prefix) -> None:
    simulators["openai"].fail_next(429, headers={"retry-after": "120"})
    env = shared_env(simulators, routing_file, redis_server, redis_prefix,
                     budgets={"anthropic": {"rpd": 2}})
    peer_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env}
    peer = subprocess.run([sys.executable, "-m", "tests.routing.redis_peer"], cwd=REPO,
                          env=peer_env, capture_output=True, text=True, timeout=60, check=False)
    assert peer.returncode == 0, peer.stderr
    assert json.loads(peer.stdout) == [{"provider": "groq", "cache_hit": False}] * 2 + [
        {"provider": "anthropic", "cache_hit": False}]
    async with open_gateway(env) as here:  # the real clock, as the peer's
        assert await served(here, "mine") == "groq"  # the peer's cooldown holds
        shared = await here.router.complete(chat("shared"),
                                            requested_model="groq/llama-3.3-70b-versatile")
        assert shared.cache_hit  # the peer's answer
        await served(here, "second", "anthropic/claude-sonnet-4-20250514")
        with pytest.raises(NoModelAvailable):  # the peer spent one of the two
            await served(here, "third", "anthropic/claude-sonnet-4-20250514")
    assert calls(simulators["openai"]) == 1
    assert calls(simulators["groq"]) == 3
    assert calls(simulators["anthropic"]) == 2


async def test_backend_operations_are_atomic(redis_server, redis_prefix, clock) -> None:
    backend = RedisBackend(redis_server, prefix=redis_prefix)
    try:
        values = await asyncio.gather(*(backend.add("n", 1, 60) for _ in range(50)))
        assert sorted(values) == list(range(1, 51))
        assert await backend.counts(["n", "missing"]) == [50, 0]
        now = clock()
        assert [await backend.strike("k", now + i, heal_after=10, ttl=100)
                for i in range(3)] == [1, 2, 3]
        assert await backend.strike("k", now + 30, heal_after=10, ttl=100) == 1  # healed
        await backend.block("k", now + 50, ttl=100)
        await backend.block("k", now + 20, ttl=100)  # a shorter block never shortens it
        assert await backend.health(["k", "none"]) == [HealthRecord(now + 50, 1),
                                                       HealthRecord()]
        assert await backend.health_keys() == ["k"]
        await backend.clear("k")
        assert await backend.health_keys() == []
    finally:
        await backend.aclose()


async def test_unreachable_redis_degrades_to_unshared(simulators, clock) -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = env_for(simulators, "openai", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    async with open_gateway(env, clock=clock) as gateway:
        routed = await gateway.router.complete(chat(), requested_model="gpt-4o-mini")
        stats = await gateway.router.cache.stats()
    assert routed.provider_id == "openai" and not routed.cache_hit
    assert stats["backend"] == "redis" and stats["entries"] == 0
