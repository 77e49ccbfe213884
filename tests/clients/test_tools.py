"""Tool calls through both client APIs to every provider with a tool scenario, and back.

The tool name and parsed arguments must equal the contract's; a follow-up turn carrying the
tool's result must reach each provider in its own shape (Gemini: a functionResponse named
after the function; Anthropic: a tool_result block; OpenAI-style: a `tool` message).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from anthropic.types import MessageParam, ToolParam
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.clients import sdk
from tests.clients.expected import (
    PROVIDERS,
    ToolCall,
    gateway_model,
    stream_tool_call,
    text_answer,
    tool_call,
)
from tests.simulators import ProviderSimulator
from tests.support.server import RunningServer

PARAMETERS = {"type": "object", "properties": {"location": {"type": "string"}},
              "required": ["location"]}
OPENAI_TOOLS: list[ChatCompletionToolParam] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather", "parameters": PARAMETERS}}]
ANTHROPIC_TOOLS: list[ToolParam] = [
    {"name": "get_weather", "description": "Current weather", "input_schema": PARAMETERS}]
QUESTION = "What is the weather in Paris?"
RESULT = "22 degrees and sunny"
CALL_ID = "call_weather_1"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_tool_call(provider: str, stream: bool, gateway: RunningServer,
                          simulators: dict[str, ProviderSimulator]) -> None:
    expected = stream_tool_call(provider) if stream else tool_call(provider)
    with sdk.openai_sync(gateway) as client:
        if not stream:
            completion = client.chat.completions.create(
                model=gateway_model(provider), tools=OPENAI_TOOLS,
                messages=[{"role": "user", "content": QUESTION}])
            choice = completion.choices[0]
            calls = choice.message.tool_calls or []
            assert calls and calls[0].type == "function" and calls[0].id
            name, arguments = calls[0].function.name, calls[0].function.arguments
            finish = choice.finish_reason
        else:
            chunks = list(client.chat.completions.create(
                model=gateway_model(provider), tools=OPENAI_TOOLS, stream=True,
                messages=[{"role": "user", "content": QUESTION}]))
            fragments = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []
                         if t.index == 0]
            assert fragments and fragments[0].id and fragments[0].function
            name = fragments[0].function.name or ""
            arguments = "".join(f.function.arguments or "" for f in fragments if f.function)
            finish = next(c.choices[0].finish_reason for c in chunks
                          if c.choices and c.choices[0].finish_reason)
    assert ToolCall(name, json.loads(arguments)) == expected
    assert finish == "tool_calls"
    assert "get_weather" in simulators[provider].requests[0].raw_body.decode()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_tool_call(provider: str, stream: bool, gateway: RunningServer,
                             simulators: dict[str, ProviderSimulator]) -> None:
    expected = stream_tool_call(provider) if stream else tool_call(provider)
    messages: list[MessageParam] = [{"role": "user", "content": QUESTION}]
    with sdk.anthropic_sync(gateway) as client:
        if stream:
            with client.messages.stream(model=gateway_model(provider), max_tokens=256,
                                        tools=ANTHROPIC_TOOLS, messages=messages) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(model=gateway_model(provider), max_tokens=256,
                                             tools=ANTHROPIC_TOOLS, messages=messages)
    uses = [b for b in message.content if b.type == "tool_use"]
    assert uses and uses[0].id
    assert ToolCall(uses[0].name, dict(uses[0].input)) == expected
    assert message.stop_reason == "tool_use"
    assert "get_weather" in simulators[provider].requests[0].raw_body.decode()


# --- the follow-up turn: what each provider receives -----------------------------------------


def _openai_style(body: dict[str, Any], name: str) -> None:
    """OpenAI, Groq and Cohere: the assistant's call, then a `tool` message answering it."""
    calls = [m for m in body["messages"] if m.get("tool_calls")]
    assert calls[0]["tool_calls"][0]["function"]["name"] == name
    result = next(m for m in body["messages"] if m["role"] == "tool")
    assert result["tool_call_id"] == calls[0]["tool_calls"][0]["id"]
    assert RESULT in json.dumps(result["content"])


def _anthropic(body: dict[str, Any], name: str) -> None:
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    use = next(b for b in blocks if b["type"] == "tool_use")
    result = next(b for b in blocks if b["type"] == "tool_result")
    assert use["name"] == name and result["tool_use_id"] == use["id"]
    assert RESULT in json.dumps(result["content"])
    assert body["messages"][-1]["role"] == "user"


def _gemini(body: dict[str, Any], name: str) -> None:
    parts = [p for c in body["contents"] for p in c["parts"]]
    assert next(p for p in parts if "functionCall" in p)["functionCall"]["name"] == name
    response = next(p for p in parts if "functionResponse" in p)["functionResponse"]
    assert response["name"] == name
    assert RESULT in json.dumps(response["response"])


def _ollama(body: dict[str, Any], name: str) -> None:
    result = next(m for m in body["messages"] if m["role"] == "tool")
    assert result["content"] == RESULT and result["tool_name"] == name
    call = next(m for m in body["messages"] if m.get("tool_calls"))["tool_calls"][0]
    assert call["function"]["name"] == name and isinstance(call["function"]["arguments"], dict)


def _cloudflare(body: dict[str, Any], name: str) -> None:
    """Workers AI messages carry text only: the call is written out, the result is text."""
    assert name in next(m for m in body["messages"] if m["role"] == "assistant")["content"]
    assert next(m for m in body["messages"] if m["role"] == "tool")["content"] == RESULT


RECEIVED: dict[str, Callable[[dict[str, Any], str], None]] = {
    "openai": _openai_style, "groq": _openai_style, "cohere": _openai_style,
    "anthropic": _anthropic, "google": _gemini, "ollama": _ollama, "cloudflare": _cloudflare,
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_tool_result_follow_up(provider: str, gateway: RunningServer,
                                      simulators: dict[str, ProviderSimulator]) -> None:
    call = tool_call(provider)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": CALL_ID, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}]},
        {"role": "tool", "tool_call_id": CALL_ID, "content": RESULT},
    ]
    with sdk.openai_sync(gateway) as client:
        completion = client.chat.completions.create(model=gateway_model(provider),
                                                    tools=OPENAI_TOOLS, messages=messages)
    assert completion.choices[0].message.content == text_answer(provider).text
    RECEIVED[provider](simulators[provider].last_request.json, call.name)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_anthropic_tool_result_follow_up(provider: str, gateway: RunningServer,
                                               simulators: dict[str, ProviderSimulator]) -> None:
    call = tool_call(provider)
    messages: list[MessageParam] = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": CALL_ID, "name": call.name, "input": call.arguments}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": CALL_ID, "content": RESULT}]},
    ]
    async with sdk.anthropic_async(gateway) as client:
        message = await client.messages.create(model=gateway_model(provider), max_tokens=256,
                                               tools=ANTHROPIC_TOOLS, messages=messages)
    assert message.content[0].type == "text"
    assert message.content[0].text == text_answer(provider).text
    RECEIVED[provider](simulators[provider].last_request.json, call.name)
