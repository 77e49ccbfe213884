"""Streams: the candidate is chosen before the first event; after it, no retry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway import ir
from gateway.errors import UpstreamError
from tests.routing.conftest import calls, chat, env_for, open_router, settle
from tests.routing.test_fallback import HOPS

pytestmark = pytest.mark.anyio


async def drain(routed: Any) -> list[ir.StreamEvent]:
    return [event async for event in routed.events]


def text_of(events: list[ir.StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ir.TextDelta))


def env(simulators: Any, routing_file: Any, **extra: str) -> dict[str, str]:
    return env_for(simulators, "openai", "groq", "anthropic",
                   ROUTING_FILE=routing_file(HOPS), **extra)


async def test_healthy_stream_is_passed_through(simulators, routing_file, clock) -> None:
    async with open_router(env(simulators, routing_file), clock=clock) as router:
        routed = await router.stream(chat(), requested_model="hop-model")
        events = await drain(routed)
    assert routed.provider_id == "openai" and not routed.cache_hit
    assert isinstance(events[0], ir.MessageStart)
    assert text_of(events) and any(isinstance(e, ir.Finish) for e in events)
    assert not any(isinstance(e, ir.StreamError) for e in events)
    assert simulators["openai"].last_request.body["stream"] is True


@pytest.mark.parametrize(("fault", "openai_calls"), [
    ("500", 2),         # an error status before the stream starts: retried, then next
    ("429", 1),
    ("reset-0", 1),     # 200, then the connection drops before any event
    ("malformed", 1),   # the first event cannot be read
    ("hang", 1),        # no answer within the read timeout
])
async def test_failure_before_the_first_event_falls_back(simulators, routing_file, clock,
                                                         sleeps, fault, openai_calls) -> None:
    openai = simulators["openai"]
    if fault == "500":
        openai.fail_next(500, times=2)
    elif fault == "429":
        openai.fail_next(429, headers={"retry-after": "0"})
    elif fault == "reset-0":
        openai.reset_midstream(0)
    elif fault == "malformed":
        openai.malformed_json()
    else:
        openai.hang(times=1)
    async with open_router(env(simulators, routing_file), clock=clock, sleep=sleeps) as router:
        routed = await router.stream(chat(), requested_model="hop-model")
        events = await drain(routed)
    assert routed.provider_id == "groq"
    assert text_of(events) and not any(isinstance(e, ir.StreamError) for e in events)
    assert calls(openai) == openai_calls and calls(simulators["groq"]) == 1
    await settle(openai)


@pytest.mark.parametrize("fault", ["stream-error", "reset"])
async def test_no_retry_after_the_first_event(simulators, routing_file, clock, sleeps,
                                              fault) -> None:
    openai = simulators["openai"]
    if fault == "stream-error":
        openai.stream_error_after(2)
    else:
        openai.reset_midstream(2)
    async with open_router(env(simulators, routing_file), clock=clock, sleep=sleeps) as router:
        routed = await router.stream(chat("first"), requested_model="hop-model")
        events = await drain(routed)
        assert routed.provider_id == "openai"
        assert isinstance(events[-1], ir.StreamError) or not any(
            isinstance(e, ir.Finish) for e in events)
        assert calls(openai) == 1 and calls(simulators["groq"]) == 0 and sleeps.delays == []
        # The broken stream cooled the model down: the next request starts at groq.
        again = await router.stream(chat("second"), requested_model="hop-model")
        await drain(again)
    assert again.provider_id == "groq"
    assert [(a.provider, a.outcome) for a in again.attempts] == [
        ("openai", "skipped"), ("groq", "ok")]


async def test_bad_request_raises_before_the_stream(simulators, routing_file, clock) -> None:
    simulators["openai"].fail_next(400)
    async with open_router(env(simulators, routing_file), clock=clock) as router:
        with pytest.raises(UpstreamError) as caught:
            await router.stream(chat(), requested_model="hop-model")
    assert caught.value.status == 400
    assert calls(simulators["groq"]) == 0


async def test_abandoned_stream_closes_the_upstream(simulators, routing_file, clock) -> None:
    openai = simulators["openai"]
    openai.chunk_delay = 0.05
    async with open_router(env(simulators, routing_file), clock=clock) as router:
        routed = await router.stream(chat(), requested_model="hop-model")
        async for event in routed.events:
            if isinstance(event, ir.TextDelta):
                break
        await routed.events.aclose()
        stats = await router.cache.stats()
        for _ in range(50):  # the simulator notices the disconnect on its own thread
            if openai.streams_cancelled:
                break
            await asyncio.sleep(0.02)
    assert openai.streams_cancelled == 1
    assert stats["entries"] == 0  # a partial stream is never cached
