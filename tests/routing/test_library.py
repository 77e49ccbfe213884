"""Library mode: the same router in-process, against the simulators."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway import ir
from gateway.errors import UpstreamError
from gateway.library import ask_sync
from gateway.routing import NoModelAvailable
from tests.routing.conftest import calls, env_for, open_gateway

pytestmark = pytest.mark.anyio
CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"


def contract_text(folder: str, name: str) -> str:
    examples = json.loads((CONTRACTS / folder / "responses.json").read_text())["examples"]
    body: dict[str, Any] = next(e["body"] for e in examples if e["name"] == name)
    if folder == "anthropic":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    return str(body["choices"][0]["message"]["content"])


async def test_providers_for_a_canonical_name(simulators, clock) -> None:
    env = env_for(simulators, "groq", "cloudflare", "openai")
    async with open_gateway(env, clock=clock) as gw:
        assert await gw.providers_for("llama-3.3-70b") == ["groq", "cloudflare"]
        assert await gw.providers_for("gpt-4o-mini") == ["openai"]
        assert await gw.providers_for("claude-sonnet-4") == []  # no Anthropic key
        assert await gw.providers_for("no-such-model") == []
    # Finding providers never calls one.
    assert calls(simulators["groq"]) == calls(simulators["openai"]) == 0


async def test_connect_picks_the_first_available_model(simulators, clock) -> None:
    async with open_gateway(env_for(simulators, "groq"), clock=clock) as gw:
        model = await gw.connect(["gpt-4o-mini", "llama-3.3-70b"])
        assert model.name == "llama-3.3-70b"
        answer = await model.complete([{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Hello"}])
        streamed = "".join([text async for text in model.stream("Hello again")])
        assert model.last is not None and model.last.provider_id == "groq"
        with pytest.raises(NoModelAvailable):
            await gw.connect(["gpt-4o", "claude-sonnet-4"])
    assert answer.text == contract_text("groq", "chat_basic")
    assert streamed
    body = simulators["groq"].requests[0].body
    assert body["model"] == "llama-3.3-70b-versatile"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


async def test_connect_best_and_ask(simulators, clock) -> None:
    async with open_gateway(env_for(simulators, "groq", "anthropic"), clock=clock) as gw:
        best = await gw.connect_best()
        text = await gw.ask("What is 2 + 2?")
    assert best.name == "claude-sonnet-4"  # first of the auto list with a provider
    assert text == contract_text("anthropic", "messages_basic")
    assert calls(simulators["anthropic"]) == 1 and calls(simulators["groq"]) == 0


async def test_ask_falls_back_like_the_server(simulators, clock) -> None:
    simulators["anthropic"].fail_next(529, times=2)
    async with open_gateway(env_for(simulators, "groq", "anthropic"), clock=clock) as gw:
        text = await gw.ask("Hello", model="smart", max_tokens=50)
    assert text == contract_text("groq", "chat_basic")
    assert calls(simulators["anthropic"]) == 2


async def test_cooling_provider_is_not_offered(simulators, clock) -> None:
    simulators["groq"].fail_next(429, headers={"retry-after": "60"})
    env = env_for(simulators, "groq", "cloudflare")
    async with open_gateway(env, clock=clock) as gw:
        await gw.ask("x", model="llama-3.3-70b")
        assert await gw.providers_for("llama-3.3-70b") == ["cloudflare"]
        clock.advance(61)
        assert await gw.providers_for("llama-3.3-70b") == ["groq", "cloudflare"]


async def test_stream_error_after_the_start_raises(simulators, clock) -> None:
    simulators["anthropic"].stream_error_after(4)  # after "Hello World"
    async with open_gateway(env_for(simulators, "anthropic"), clock=clock) as gw:
        model = await gw.connect("claude-sonnet-4")
        received: list[str] = []
        with pytest.raises(UpstreamError) as caught:
            async for text in model.stream("Hello"):
                received.append(text)
    assert received == ["Hello World"] and caught.value.provider == "anthropic"
    assert calls(simulators["anthropic"]) == 1  # no retry once text has arrived


def test_ask_sync_outside_an_event_loop(simulators) -> None:
    result: dict[str, Any] = {}

    def run() -> None:  # a fresh thread has no running loop, as in a script
        result["text"] = ask_sync("Hello", model="gpt-4o-mini",
                                  environ=env_for(simulators, "openai"))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert result["text"] == contract_text("openai", "chat_basic")


def test_messages_conversion() -> None:
    from gateway.library import to_messages

    converted = to_messages([{"role": "user", "content": "a"},
                             ir.Message("assistant", [ir.TextPart("b")])])
    assert [(m.role, m.text()) for m in converted] == [("user", "a"), ("assistant", "b")]
    assert [(m.role, m.text()) for m in to_messages("q")] == [("user", "q")]
