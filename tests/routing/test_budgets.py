"""Budgets: a provider whose budget is spent is skipped before it is called."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.routing import NoModelAvailable
from tests.routing.conftest import calls, chat, env_for, open_router
from tests.routing.test_fallback import HOPS

pytestmark = pytest.mark.anyio
CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"


def openai_usage() -> int:
    """The total tokens of the OpenAI contract's plain chat answer."""
    examples = json.loads((CONTRACTS / "openai" / "responses.json").read_text())["examples"]
    body = next(e["body"] for e in examples if e["name"] == "chat_basic")
    return int(body["usage"]["total_tokens"])


def env(simulators: Any, routing_file: Any, budgets: dict[str, Any], **extra: str
        ) -> dict[str, str]:
    return env_for(simulators, "openai", "groq", "anthropic", CACHE_ENABLED="false",
                   ROUTING_FILE=routing_file({**HOPS, "budgets": budgets}), **extra)


async def test_requests_per_minute(simulators, routing_file, clock) -> None:
    clock.now = 1_700_000_020.0  # 40 s into a minute
    async with open_router(env(simulators, routing_file, {"openai": {"rpm": 2}}),
                           clock=clock) as router:
        served = [(await router.complete(chat(str(n)), requested_model="hop-model"))
                  for n in range(3)]
        assert [r.provider_id for r in served] == ["openai", "openai", "groq"]
        assert [(a.provider, a.outcome, a.code) for a in served[2].attempts] == [
            ("openai", "skipped", "budget_spent"), ("groq", "ok", None)]
        clock.advance(21)  # the next minute
        assert (await router.complete(chat("3"), requested_model="hop-model")).provider_id \
            == "openai"
    assert calls(simulators["openai"]) == 3


async def test_tokens_are_counted_from_real_usage(simulators, routing_file, clock) -> None:
    used = openai_usage()
    budgets = {"openai": {"tpm": used + 1, "tpd": 10 * used}}
    async with open_router(env(simulators, routing_file, budgets), clock=clock) as router:
        first = await router.complete(chat("a"), requested_model="hop-model")
        states = await router.budgets.states("openai")
        second = await router.complete(chat("b"), requested_model="hop-model")
        after_second = await router.budgets.states("openai")
        third = await router.complete(chat("c"), requested_model="hop-model")
    assert first.answer.usage is not None and first.answer.usage.total_tokens == used
    assert states["tpm"].used == used and states["tpm"].left == 1
    assert states["tpd"].used == used
    assert after_second["tpm"].left == 0
    assert [first.provider_id, second.provider_id, third.provider_id] == [
        "openai", "openai", "groq"]
    assert calls(simulators["openai"]) == 2


async def test_every_budget_spent_answers_429_without_a_call(simulators, routing_file,
                                                             clock) -> None:
    clock.now = 1_700_006_400.0 - 15  # 15 s before a minute (and a day) ends
    budgets = {pid: {"rpm": 1} for pid in ("openai", "groq", "anthropic")}
    async with open_router(env(simulators, routing_file, budgets), clock=clock) as router:
        for n in range(3):
            await router.complete(chat(str(n)), requested_model="hop-model")
        with pytest.raises(NoModelAvailable) as caught:
            await router.complete(chat("over"), requested_model="hop-model")
    assert caught.value.status == 429
    assert caught.value.retry_after == pytest.approx(15)
    assert [calls(simulators[p]) for p in ("openai", "groq", "anthropic")] == [1, 1, 1]


async def test_daily_budget_turns_at_midnight(simulators, routing_file, clock) -> None:
    clock.now = 1_700_006_400.0 - 30  # 30 s before midnight UTC
    async with open_router(env(simulators, routing_file, {"openai": {"rpd": 1}}),
                           clock=clock) as router:
        assert (await router.complete(chat("1"), requested_model="hop-model")).provider_id \
            == "openai"
        assert (await router.complete(chat("2"), requested_model="hop-model")).provider_id \
            == "groq"
        clock.advance(31)
        assert (await router.complete(chat("3"), requested_model="hop-model")).provider_id \
            == "openai"


async def test_concurrent_requests_never_overshoot(simulators, routing_file, clock) -> None:
    simulators["openai"].delay = 0.05
    async with open_router(env(simulators, routing_file, {"openai": {"rpm": 3}}),
                           clock=clock) as router:
        served = await asyncio.gather(*(
            router.complete(chat(str(n)), requested_model="hop-model") for n in range(10)))
    assert sum(r.provider_id == "openai" for r in served) == 3
    assert calls(simulators["openai"]) == 3
