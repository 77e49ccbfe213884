"""The official SDKs talk to the simulators as they would to the real services."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.simulators import ProviderSimulator

OPENAI_HELLO: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say hello world."}]
ANTHROPIC_HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello world."}]
# A current model id: the SDK warns about deprecated ones, and warnings are errors here.
CLAUDE = "claude-sonnet-4-6"


def openai_client(sim: ProviderSimulator, prefix: str, key: str | None = None) -> openai.OpenAI:
    """An SDK client aimed at the simulator, without retries."""
    return openai.OpenAI(api_key=key or sim.api_key, base_url=sim.url + prefix, max_retries=0)


@pytest.mark.parametrize(("provider", "prefix"), [("openai", "/v1"), ("groq", "/openai/v1")])
def test_openai_sdk_chat(simulators: dict[str, ProviderSimulator], provider: str,
                         prefix: str) -> None:
    """create() and a streamed create() parse; both say what the contract says."""
    sim = simulators[provider]
    sdk = openai_client(sim, prefix)
    expected = sim.contract.response("chat_basic").body
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=OPENAI_HELLO)
    assert completion.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert completion.usage is not None
    assert completion.usage.total_tokens == expected["usage"]["total_tokens"]
    chunks = list(sdk.chat.completions.create(
        model="gpt-4o-mini", messages=OPENAI_HELLO, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected["choices"][0]["message"]["content"]
    assert chunks[-1].usage is not None
    assert sim.last_request.headers["authorization"] == f"Bearer {sim.api_key}"


def test_openai_sdk_models_and_errors(openai_sim: ProviderSimulator) -> None:
    """models.list() works; an injected 429 surfaces as RateLimitError with its code."""
    sdk = openai_client(openai_sim, "/v1")
    ids = [m.id for m in sdk.models.list()]
    assert ids == [m["id"] for m in openai_sim.contract.response("list_models").body["data"]]
    openai_sim.fail_next(429)
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.models.list()
    assert raised.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.AuthenticationError):
        openai_client(openai_sim, "/v1", key="wrong").models.list()


def test_openai_sdk_tool_calls(openai_sim: ProviderSimulator) -> None:
    """Tool-call answers parse; streamed argument pieces reassemble to the same JSON."""
    sdk = openai_client(openai_sim, "/v1")
    tools: Any = openai_sim.contract.request("chat_tools").body["tools"]
    message = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=OPENAI_HELLO, tools=tools).choices[0].message
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function"
    pieces = ""
    for chunk in sdk.chat.completions.create(model="gpt-4o-mini", messages=OPENAI_HELLO,
                                             tools=tools, stream=True):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            pieces += delta.function.arguments or "" if delta.function else ""
    assert call.function.arguments == pieces == '{"location":"Paris"}'


def anthropic_client(sim: ProviderSimulator, key: str | None = None) -> anthropic.Anthropic:
    """An SDK client aimed at the simulator, without retries."""
    return anthropic.Anthropic(api_key=key or sim.api_key, base_url=sim.url, max_retries=0)


def test_anthropic_sdk_messages(anthropic_sim: ProviderSimulator) -> None:
    """messages.create() and messages.stream() parse and agree with the contract."""
    sdk = anthropic_client(anthropic_sim)
    message = sdk.messages.create(model=CLAUDE, max_tokens=64, messages=ANTHROPIC_HELLO)
    block = message.content[0]
    assert block.type == "text"
    assert block.text == "Hello World"
    assert message.usage.output_tokens == 5
    with sdk.messages.stream(model=CLAUDE, max_tokens=64, messages=ANTHROPIC_HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello World"
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", 5)
    # SDK 2.x sends its own (newer) version date and the key as a Bearer token.
    assert anthropic_sim.last_request.headers["anthropic-version"]


def test_anthropic_sdk_tool_use_stream(anthropic_sim: ProviderSimulator) -> None:
    """The tool-use transcript assembles into a tool_use block with an object input."""
    sdk = anthropic_client(anthropic_sim)
    tools: Any = anthropic_sim.contract.request("messages_tools").body["tools"]
    with sdk.messages.stream(model=CLAUDE, max_tokens=256, messages=ANTHROPIC_HELLO,
                             tools=tools) as stream:
        final = stream.get_final_message()
    calls = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
    assert calls == [("get_weather", {"location": "Paris"})]
    assert final.stop_reason == "tool_use"


def test_anthropic_sdk_errors(anthropic_sim: ProviderSimulator) -> None:
    """529, a bad key and a mid-stream error event surface as the SDK's typed errors."""
    sdk = anthropic_client(anthropic_sim)
    anthropic_sim.fail_next(529)
    with pytest.raises(anthropic.APIStatusError) as raised:
        sdk.models.list()
    assert raised.value.status_code == 529
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(anthropic_sim, key="wrong").models.list()
    anthropic_sim.stream_error_after(3)
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"), sdk.messages.stream(
            model=CLAUDE, max_tokens=64, messages=ANTHROPIC_HELLO) as stream:
        stream.get_final_message()
