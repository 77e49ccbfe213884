"""The response cache: exact matches only, TTL and LRU bounds, streams, and no errors kept."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from gateway import ir
from gateway.errors import UpstreamError
from gateway.routing.cache import cache_key, cache_policy
from tests.routing.conftest import calls, chat, env_for, open_router
from tests.routing.echo import EchoUpstream
from tests.support.server import serve

pytestmark = pytest.mark.anyio

ECHO_ROUTING = {"models": {
    "echo-a": {"providers": {"openai": "echo-1"}},
    "echo-b": {"providers": {"openai": "echo-2"}},
}}


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoUpstream]:
    """The echo upstream, served for the module."""
    upstream = EchoUpstream()
    with serve(upstream.app) as server:
        upstream.url = server.url  # type: ignore[attr-defined]
        yield upstream


def echo_env(echo: EchoUpstream, routing_file: Any, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_URL": echo.url, "OPENAI_API_KEY": "sk-echo",  # type: ignore[attr-defined]
            "ROUTING_FILE": routing_file(ECHO_ROUTING), "CACHE_ENABLED": "true", **extra}


def variant(rng: random.Random, n: int) -> ir.ChatRequest:
    """A request that differs from every other variant `n` in something that matters."""
    text = f"question {n // 7}"
    request = chat(text)
    choice = n % 7
    if choice == 1:
        request.temperature = round(rng.uniform(0, 2), 3)
    elif choice == 2:
        request.max_tokens = rng.randint(1, 4000)
    elif choice == 3:
        request.stop = [f"stop-{rng.randint(0, 99)}"]
    elif choice == 4:
        request.tools = [ir.Tool(name=f"tool_{rng.randint(0, 99)}", description="d")]
    elif choice == 5:
        request.response_format = {"type": "json_object"}
        request.top_p = round(rng.uniform(0, 1), 3)
    elif choice == 6:
        request.messages.insert(0, ir.Message("system", [ir.TextPart(f"be {n}")]))
    return request


def sent_for(model: str, request: ir.ChatRequest) -> dict[str, Any]:
    """What the answer to `request` must echo (the parts the upstream saw)."""
    return {"model": "echo-2" if model == "echo-b" else "echo-1",
            "messages": [m.text() for m in request.messages], "max_tokens": request.max_tokens,
            "temperature": request.temperature, "top_p": request.top_p,
            "stop": request.stop or None, "tools": [t.name for t in request.tools] or None,
            "response_format": request.response_format}


def echoed(answer: ir.ChatResponse) -> dict[str, Any]:
    body = json.loads(answer.text)
    return {"model": body["model"], "messages": [m["content"] for m in body["messages"]],
            "max_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
            "temperature": body.get("temperature"), "top_p": body.get("top_p"),
            "stop": body.get("stop"),
            "tools": [t["function"]["name"] for t in body["tools"]] if "tools" in body else None,
            "response_format": body.get("response_format")}


async def test_never_serves_one_requests_answer_to_another(echo, routing_file, clock) -> None:
    rng = random.Random(20240501)
    # Each variant is asked of two models that differ only in the model name.
    requests = [(model, copy.deepcopy(request)) for request in (variant(rng, n)
                for n in range(42)) for model in ("echo-a", "echo-b")]
    keys = {cache_key(r, m) for m, r in requests}
    assert len(keys) == len(requests)  # the generator really made distinct requests
    echo.calls = 0
    async with open_router(echo_env(echo, routing_file), clock=clock) as router:
        for round_ in range(3):
            order = list(range(len(requests)))
            rng.shuffle(order)
            for i in order:
                model, request = requests[i]
                if rng.random() < 0.3:
                    streamed = await router.stream(request, requested_model=model)
                    text = "".join([e.text async for e in streamed.events
                                    if isinstance(e, ir.TextDelta)])
                    answer, hit = ir.ChatResponse(id="", model="", text=text), streamed.cache_hit
                else:
                    routed = await router.complete(request, requested_model=model)
                    answer, hit = routed.answer, routed.cache_hit
                assert echoed(answer) == sent_for(model, request), (round_, i)
                assert hit == (round_ > 0)
        stats = await router.cache.stats()
    assert echo.calls == len(requests)  # every repeat was a hit
    assert stats["entries"] == len(requests)
    assert stats["misses"] == len(requests) and stats["hits"] == 2 * len(requests)


async def test_fields_that_do_not_change_the_answer_share_an_entry(echo, routing_file,
                                                                    clock) -> None:
    echo.calls = 0
    async with open_router(echo_env(echo, routing_file), clock=clock) as router:
        first = await router.complete(chat("same", extra={"user": "alice"}),
                                      requested_model="echo-a")
        second = await router.complete(chat("same", extra={"user": "bob", "metadata": {"x": 1}},
                                            stream=True), requested_model="echo-a")
        other = await router.complete(chat("same", extra={"seed": 3}), requested_model="echo-a")
    assert (first.cache_hit, second.cache_hit, other.cache_hit) == (False, True, False)
    assert second.answer.text == first.answer.text
    assert echo.calls == 2


def test_key_covers_what_changes_the_answer() -> None:
    base = chat("hello")
    same = [chat("hello", extra={"user": "u"}), chat("hello", stream=True),
            chat("hello", extra={"stream_options": {"include_usage": True}})]
    different = [chat("hello!"), chat("hello", temperature=0.5), chat("hello", max_tokens=9),
                 chat("hello", top_p=0.9), chat("hello", stop=["x"]),
                 chat("hello", tools=[ir.Tool("t")]), chat("hello", tool_choice="none"),
                 chat("hello", response_format={"type": "json_object"}),
                 chat("hello", extra={"seed": 1}, extra_dialect="openai")]
    key = cache_key(base, "m")
    assert all(cache_key(r, "m") == key for r in same)
    assert len({cache_key(r, "m") for r in different} | {key}) == len(different) + 1
    assert cache_key(base, "other-model") != key


@pytest.mark.parametrize(("header", "policy"), [
    (None, (True, True)), ("no-cache", (False, True)), ("max-age=0", (False, True)),
    ("no-store", (False, False)), ("private, no-store", (False, False)),
    ("max-age=60", (True, True)),
])
def test_cache_control(header: str | None, policy: tuple[bool, bool]) -> None:
    assert cache_policy(header) == policy


async def test_hit_miss_and_cache_control(simulators, routing_file, clock) -> None:
    openai = simulators["openai"]
    async with open_router(env_for(simulators, "openai"), clock=clock) as router:
        miss = await router.complete(chat(), requested_model="gpt-4o-mini")
        hit = await router.complete(chat(), requested_model="gpt-4o-mini")
        assert (miss.cache_hit, hit.cache_hit, calls(openai)) == (False, True, 1)
        assert hit.answer.text == miss.answer.text and hit.provider_id == "openai"
        refreshed = await router.complete(chat(), requested_model="gpt-4o-mini",
                                          cache_control="no-cache")
        assert not refreshed.cache_hit and calls(openai) == 2
        await router.complete(chat("private"), requested_model="gpt-4o-mini",
                              cache_control="no-store")
        again = await router.complete(chat("private"), requested_model="gpt-4o-mini")
        assert not again.cache_hit and calls(openai) == 4


async def test_ttl_on_the_clock(simulators, clock) -> None:
    async with open_router(env_for(simulators, "openai", CACHE_TTL="60s"), clock=clock) as r:
        await r.complete(chat(), requested_model="gpt-4o-mini")
        clock.advance(59)
        assert (await r.complete(chat(), requested_model="gpt-4o-mini")).cache_hit
        clock.advance(2)
        assert not (await r.complete(chat(), requested_model="gpt-4o-mini")).cache_hit
    assert calls(simulators["openai"]) == 2


async def test_least_recently_used_goes_first(simulators, clock) -> None:
    async with open_router(env_for(simulators, "openai", CACHE_MAX_ENTRIES="2"),
                           clock=clock) as router:
        async def hit(text: str) -> bool:
            return (await router.complete(chat(text), requested_model="gpt-4o-mini")).cache_hit

        assert [await hit("1"), await hit("2"), await hit("1"), await hit("3")] == [
            False, False, True, False]
        assert await hit("1") and not await hit("2")  # "2" was the least recently used
        assert (await router.cache.stats())["entries"] == 2


async def test_errors_and_broken_streams_are_not_cached(simulators, clock) -> None:
    openai = simulators["openai"]
    async with open_router(env_for(simulators, "openai"), clock=clock) as router:
        openai.fail_next(400)
        with pytest.raises(UpstreamError):
            await router.complete(chat(), requested_model="gpt-4o-mini")
        assert not (await router.complete(chat(), requested_model="gpt-4o-mini")).cache_hit
        openai.stream_error_after(2)
        broken = await router.stream(chat("s"), requested_model="gpt-4o-mini")
        events = [e async for e in broken.events]
        assert isinstance(events[-1], ir.StreamError)
        clock.advance(3600)  # past the cooldown the broken stream caused
        fresh = await router.stream(chat("s"), requested_model="gpt-4o-mini")
        assert not fresh.cache_hit
        whole = [e async for e in fresh.events]
    assert calls(openai) == 4
    assert not any(isinstance(e, ir.StreamError) for e in whole)


async def test_streamed_answer_is_replayed_as_a_stream(simulators, clock) -> None:
    async with open_router(env_for(simulators, "groq"), clock=clock) as router:
        first = await router.stream(chat(), requested_model="groq/llama-3.3-70b-versatile")
        original = [e async for e in first.events]
        replayed_stream = await router.stream(chat(),
                                              requested_model="groq/llama-3.3-70b-versatile")
        replayed = [e async for e in replayed_stream.events]
        plain = await router.complete(chat(), requested_model="groq/llama-3.3-70b-versatile")

    def text(events: list[ir.StreamEvent]) -> str:
        return "".join(e.text for e in events if isinstance(e, ir.TextDelta))

    assert replayed_stream.cache_hit and plain.cache_hit
    assert text(replayed) == text(original) == plain.answer.text
    assert isinstance(replayed[0], ir.MessageStart)
    assert [type(e) for e in replayed[-2:]] == [ir.Finish, ir.UsageReport]
    assert calls(simulators["groq"]) == 1


async def test_cache_can_be_switched_off(simulators, clock) -> None:
    async with open_router(env_for(simulators, "openai", CACHE_ENABLED="false"),
                           clock=clock) as router:
        for _ in range(2):
            assert not (await router.complete(chat(), requested_model="gpt-4o-mini")).cache_hit
    assert calls(simulators["openai"]) == 2
