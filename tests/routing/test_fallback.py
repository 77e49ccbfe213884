"""Fallback, retries, cooldowns and refused keys, against the simulators over real HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.routing import NoModelAvailable
from gateway.routing.backends import MemoryBackend
from gateway.routing.health import Cooldowns
from tests.routing.conftest import (
    FakeClock,
    RecordingSleep,
    calls,
    chat,
    env_for,
    open_router,
    settle,
)

pytestmark = pytest.mark.anyio

# openai is listed last but is the model's first party: it goes first, then groq and
# anthropic in the catalog's order.
HOPS = {"models": {"hop-model": {"first_party": "openai", "providers": {
    "groq": "llama-3.3-70b-versatile", "anthropic": "claude-sonnet-4-20250514",
    "openai": "gpt-4o-mini"}}}}
QUOTA = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                   "param": None, "code": "insufficient_quota"}}


def hop_env(simulators: Any, routing_file: Any, **extra: str) -> dict[str, str]:
    return env_for(simulators, "openai", "groq", "anthropic",
                   ROUTING_FILE=routing_file(HOPS), **extra)


def hops(routed: Any) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome) for a in routed.attempts]


async def test_first_party_serves_when_healthy(simulators, routing_file, clock) -> None:
    async with open_router(hop_env(simulators, routing_file), clock=clock) as router:
        routed = await router.complete(chat(), requested_model="hop-model")
    assert (routed.provider_id, routed.model) == ("openai", "gpt-4o-mini")
    assert hops(routed) == [("openai", "ok")]
    assert routed.answer.text
    assert calls(simulators["groq"]) == calls(simulators["anthropic"]) == 0
    assert simulators["openai"].last_request.body["model"] == "gpt-4o-mini"


def _fault(name: str, sim: Any) -> None:
    if name == "hang":
        sim.hang(times=1)
    elif name == "malformed":
        sim.malformed_json()
    elif name == "persistent-500":
        sim.fail_next(500, times=5)
    elif name == "persistent-529":
        sim.fail_next(529, times=5)
    else:
        sim.fail_next(int(name), headers={"retry-after": "0"} if name == "429" else None)


@pytest.mark.parametrize(("fault", "openai_calls", "served_by"), [
    ("429", 1, "groq"),             # rate limited: straight to the next candidate
    ("402", 1, "groq"),             # payment required
    ("404", 1, "groq"),             # the model is not at this provider
    ("500", 2, "openai"),           # transient: one retry on the same model succeeds
    ("529", 2, "openai"),
    ("persistent-500", 2, "groq"),  # the retry fails too: next candidate
    ("persistent-529", 2, "groq"),
    ("hang", 1, "groq"),            # a hang past the read timeout is not retried
    ("malformed", 1, "groq"),       # an unreadable answer
])
async def test_hops(simulators, routing_file, clock, sleeps, fault, openai_calls,
                    served_by) -> None:
    _fault(fault, simulators["openai"])
    env = hop_env(simulators, routing_file)
    async with open_router(env, clock=clock, sleep=sleeps) as router:
        routed = await router.complete(chat(), requested_model="hop-model")
    assert routed.provider_id == served_by
    assert calls(simulators["openai"]) == openai_calls
    assert calls(simulators["groq"]) == (1 if served_by == "groq" else 0)
    assert calls(simulators["anthropic"]) == 0
    assert [a.provider for a in routed.attempts] == ["openai"] * openai_calls + (
        ["groq"] if served_by == "groq" else [])
    assert len(sleeps.delays) == (1 if openai_calls == 2 else 0)
    if fault == "hang":
        await settle(simulators["openai"])


async def test_connection_reset_is_retried(simulators, routing_file, clock, sleeps) -> None:
    simulators["openai"].reset_midstream(1)
    async with open_router(hop_env(simulators, routing_file), clock=clock,
                           sleep=sleeps) as router:
        routed = await router.complete(chat(), requested_model="hop-model")
    assert routed.provider_id == "openai"
    assert [(a.provider, a.outcome, a.code) for a in routed.attempts] == [
        ("openai", "error", "upstream_unavailable"), ("openai", "ok", None)]


async def test_bad_request_is_answered_at_once(simulators, routing_file, clock) -> None:
    simulators["openai"].fail_next(400)
    async with open_router(hop_env(simulators, routing_file), clock=clock) as router:
        with pytest.raises(UpstreamError) as caught:
            await router.complete(chat(), requested_model="hop-model")
    assert caught.value.status == 400 and caught.value.upstream_status == 400
    assert calls(simulators["openai"]) == 1
    assert calls(simulators["groq"]) == calls(simulators["anthropic"]) == 0


async def test_refused_key_skips_the_provider_afterwards(simulators, routing_file,
                                                          clock) -> None:
    simulators["openai"].fail_next(401)
    async with open_router(hop_env(simulators, routing_file), clock=clock) as router:
        first = await router.complete(chat("one"), requested_model="hop-model")
        clock.advance(3600)  # a refused key does not heal with time
        second = await router.complete(chat("two"), requested_model="hop-model")
        assert router.keys.is_bad(router.catalog.providers["openai"])
    assert first.provider_id == second.provider_id == "groq"
    assert calls(simulators["openai"]) == 1
    assert [(a.provider, a.outcome, a.code) for a in second.attempts] == [
        ("openai", "skipped", "key_bad"), ("groq", "ok", None)]


async def test_when_every_key_was_refused(simulators, routing_file, clock) -> None:
    for pid in ("openai", "groq", "anthropic"):
        simulators[pid].fail_next(403)
    async with open_router(hop_env(simulators, routing_file), clock=clock) as router:
        with pytest.raises(UpstreamError) as first:
            await router.complete(chat(), requested_model="hop-model")
        with pytest.raises(UpstreamError) as later:
            await router.complete(chat(), requested_model="hop-model")
    assert first.value.upstream_status == 403
    assert later.value.code == "upstream_key_refused" and later.value.status == 502
    assert [calls(simulators[p]) for p in ("openai", "groq", "anthropic")] == [1, 1, 1]


async def test_insufficient_quota_is_not_retried_and_cools_the_whole_provider(
        simulators, routing_file, clock, sleeps) -> None:
    simulators["openai"].fail_next(429, body=QUOTA)
    async with open_router(hop_env(simulators, routing_file), clock=clock,
                           sleep=sleeps) as router:
        routed = await router.complete(chat(), requested_model="hop-model")
        assert routed.provider_id == "groq"
        assert calls(simulators["openai"]) == 1 and sleeps.delays == []
        # Quota is the account's: another OpenAI model is skipped without a call.
        with pytest.raises(NoModelAvailable) as caught:
            await router.complete(chat(), requested_model="openai/gpt-4o")
    assert calls(simulators["openai"]) == 1
    assert caught.value.status == 429 and caught.value.retry_after is not None


async def test_standings_count_each_models_and_its_providers_cooldowns() -> None:
    """Pairs of several providers, in any order, each get their model's record and their
    provider's account-wide cooldown; the same pairs asked again read the same."""
    clock = FakeClock()
    cooldowns = Cooldowns(MemoryBackend(clock), clock, base=1.0, cap=60.0)
    pairs = [("groq", "a"), ("openai", "x"), ("groq", "b"), ("openai", "y"), ("groq", "c")]
    assert [s.cooling(clock()) for s in await cooldowns.standings(pairs)] == [False] * 5
    model_until = await cooldowns.fail("openai", "y", retry_after=30.0)
    account_until = await cooldowns.fail("groq", "b", retry_after=5.0, whole_provider=True)
    for asked in (pairs, tuple(pairs), pairs[::-1][::-1]):
        standings = await cooldowns.standings(asked)
        assert [s.until for s in standings] == [account_until, 0.0, account_until, model_until,
                                                account_until]
        assert [s.strikes for s in standings] == [0, 0, 0, 1, 0]
        assert cooldowns.standings_now(asked) == standings  # in memory: read without waiting
    assert [s.until for s in await cooldowns.standings([("openai", "x"), ("openai", "y")])] \
        == [0.0, model_until]


async def test_never_more_calls_than_retries_times_candidates(simulators, routing_file,
                                                               clock, sleeps) -> None:
    for pid in ("openai", "groq", "anthropic"):
        simulators[pid].fail_next(503, times=20)
    env = hop_env(simulators, routing_file, ROUTING_RETRIES="2")
    async with open_router(env, clock=clock, sleep=sleeps) as router:
        with pytest.raises(UpstreamError) as caught:
            await router.complete(chat(), requested_model="hop-model")
    assert [calls(simulators[p]) for p in ("openai", "groq", "anthropic")] == [3, 3, 3]
    assert caught.value.upstream_status == 503
    # Two jittered, growing backoffs per candidate, within ROUTING_BACKOFF_MAX.
    assert len(sleeps.delays) == 6
    assert all(0 < d <= 2.0 for d in sleeps.delays)
    assert sleeps.delays[1] > sleeps.delays[0] / 2


async def test_retry_waits_for_a_short_retry_after(simulators, routing_file, clock,
                                                   sleeps) -> None:
    simulators["openai"].fail_next(503, headers={"retry-after": "1.5"})
    async with open_router(hop_env(simulators, routing_file), clock=clock,
                           sleep=sleeps) as router:
        routed = await router.complete(chat(), requested_model="hop-model")
    assert routed.provider_id == "openai" and calls(simulators["openai"]) == 2
    assert sleeps.delays and sleeps.delays[0] >= 1.5


async def test_a_long_retry_after_moves_on_and_cools_down(simulators, routing_file, clock,
                                                          sleeps) -> None:
    simulators["openai"].fail_next(503, headers={"retry-after": "30"})
    async with open_router(hop_env(simulators, routing_file), clock=clock,
                           sleep=sleeps) as router:
        routed = await router.complete(chat(), requested_model="hop-model")
        assert routed.provider_id == "groq" and sleeps.delays == []
        clock.advance(29)
        assert (await router.complete(chat("b"), requested_model="hop-model")).provider_id \
            == "groq"
        clock.advance(2)
        assert (await router.complete(chat("c"), requested_model="hop-model")).provider_id \
            == "openai"
    assert calls(simulators["openai"]) == 2


async def test_cooldown_follows_retry_after_on_the_clock(simulators, routing_file,
                                                         clock) -> None:
    simulators["openai"].fail_next(429, headers={"retry-after": "20"})
    async with open_router(hop_env(simulators, routing_file), clock=clock) as router:
        first = await router.complete(chat("1"), requested_model="hop-model")
        clock.advance(19.5)
        second = await router.complete(chat("2"), requested_model="hop-model")
        clock.advance(1)
        third = await router.complete(chat("3"), requested_model="hop-model")
    assert [first.provider_id, second.provider_id, third.provider_id] == [
        "groq", "groq", "openai"]
    assert hops(second) == [("openai", "skipped"), ("groq", "ok")]
    assert calls(simulators["openai"]) == 2


async def test_cooldown_grows_is_capped_and_heals(simulators, routing_file, clock) -> None:
    env = hop_env(simulators, routing_file, ROUTING_RETRIES="0", COOLDOWN_BASE="10s",
                  COOLDOWN_MAX="60s")
    openai = simulators["openai"]
    async with open_router(env, clock=clock) as router:

        async def served_by(text: str) -> str:
            return (await router.complete(chat(text), requested_model="hop-model")).provider_id

        seen: list[tuple[float, str]] = []
        # Each failure doubles the cooldown: 10 s, 20 s, 40 s, then the 60 s cap.
        for n, cooldown in enumerate((10, 20, 40, 60)):
            openai.fail_next(500)
            assert await served_by(f"fail {n}") == "groq"
            clock.advance(cooldown - 0.5)
            seen.append((cooldown, await served_by(f"skip {n}")))
            clock.advance(1)
        assert seen == [(10, "groq"), (20, "groq"), (40, "groq"), (60, "groq")]
        # The cooldown ran out and nothing is injected: it healed by itself.
        assert await served_by("healed") == "openai"
        # A success forgets the failures: the next cooldown starts from the base again.
        openai.fail_next(500)
        assert await served_by("fail again") == "groq"
        clock.advance(10.5)
        assert await served_by("after base") == "openai"
    assert calls(openai) == 4 + 1 + 1 + 1


async def test_everything_cooling_down_answers_429_without_calls(simulators, routing_file,
                                                                 clock) -> None:
    for pid, after in (("openai", "30"), ("groq", "12"), ("anthropic", "45")):
        simulators[pid].fail_next(429, headers={"retry-after": after})
    async with open_router(hop_env(simulators, routing_file), clock=clock) as router:
        with pytest.raises(UpstreamError) as first:
            await router.complete(chat(), requested_model="hop-model")
        assert first.value.upstream_status == 429  # the last provider's own answer
        clock.advance(2)
        with pytest.raises(NoModelAvailable) as caught:
            await router.complete(chat(), requested_model="hop-model")
    assert caught.value.status == 429
    assert caught.value.retry_after == pytest.approx(10)
    assert [calls(simulators[p]) for p in ("openai", "groq", "anthropic")] == [1, 1, 1]


async def test_deadline_bounds_the_whole_request(simulators, routing_file, clock) -> None:
    simulators["openai"].hang(times=1)
    env = hop_env(simulators, routing_file, ROUTING_DEADLINE="0.5s", CLIENT_READ_TIMEOUT="5s")
    async with open_router(env, clock=clock) as router:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await router.complete(chat(), requested_model="hop-model")
        elapsed = time.monotonic() - started
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the deadline's cancel is absorbed
    assert elapsed < 2.5
    assert calls(simulators["groq"]) == 0
    await settle(simulators["openai"])


async def test_explicit_provider_model_has_one_candidate(simulators, routing_file,
                                                         clock) -> None:
    simulators["groq"].fail_next(429, headers={"retry-after": "7"})
    async with open_router(hop_env(simulators, routing_file), clock=clock) as router:
        with pytest.raises(UpstreamError) as caught:
            await router.complete(chat(), requested_model="groq/llama-3.1-8b-instant")
    assert caught.value.status == 429 and caught.value.retry_after == 7
    assert calls(simulators["openai"]) == calls(simulators["anthropic"]) == 0


async def test_clock_fixture_is_independent(clock: FakeClock, sleeps: RecordingSleep) -> None:
    clock.advance(5)
    await sleeps(1.0)
    assert clock() == 1_700_000_005.0 and sleeps.delays == [1.0]
