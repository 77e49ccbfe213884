"""Both client APIs, every provider, whole and streamed, through the official SDKs.

Half of the matrix runs on the sync clients and half on the async ones: OpenAI whole answers
and Anthropic streams are sync, the other two are async.
"""

from __future__ import annotations

import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.clients import sdk
from tests.clients.expected import PROVIDERS, gateway_model, stream_answer, text_answer
from tests.simulators import ProviderSimulator
from tests.support.server import RunningServer

OPENAI_MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello"},
]
ANTHROPIC_MESSAGES: list[MessageParam] = [{"role": "user", "content": "Say hello"}]


def _sent_prompt(sim: ProviderSimulator) -> None:
    """Exactly one upstream request, carrying the caller's prompt."""
    assert len(sim.requests) == 1
    assert "Say hello" in sim.requests[0].raw_body.decode()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_whole(provider: str, gateway: RunningServer,
                      simulators: dict[str, ProviderSimulator]) -> None:
    expected = text_answer(provider)
    with sdk.openai_sync(gateway) as client:
        completion = client.chat.completions.create(model=gateway_model(provider),
                                                    messages=OPENAI_MESSAGES)
    assert completion.model == gateway_model(provider)
    choice = completion.choices[0]
    assert choice.message.content == expected.text
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == expected.input_tokens
    assert completion.usage.completion_tokens == expected.output_tokens
    assert completion.usage.total_tokens == expected.input_tokens + expected.output_tokens
    _sent_prompt(simulators[provider])


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_openai_streamed(provider: str, gateway: RunningServer,
                               simulators: dict[str, ProviderSimulator]) -> None:
    expected = stream_answer(provider)
    async with sdk.openai_async(gateway) as client:
        stream = await client.chat.completions.create(
            model=gateway_model(provider), messages=OPENAI_MESSAGES, stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert {c.model for c in chunks} == {gateway_model(provider)}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected.text
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and
               c.choices[0].finish_reason]
    assert reasons == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens) == (expected.input_tokens,
                                                              expected.output_tokens)
    assert all(c.usage is None for c in chunks[:-1])
    _sent_prompt(simulators[provider])


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_anthropic_whole(provider: str, gateway: RunningServer,
                               simulators: dict[str, ProviderSimulator]) -> None:
    expected = text_answer(provider)
    async with sdk.anthropic_async(gateway) as client:
        message = await client.messages.create(model=gateway_model(provider), max_tokens=256,
                                               system="Be brief.", messages=ANTHROPIC_MESSAGES)
    assert message.model == gateway_model(provider)
    assert message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text" and message.content[0].text == expected.text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == expected.input_tokens
    assert message.usage.output_tokens == expected.output_tokens
    _sent_prompt(simulators[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_streamed(provider: str, gateway: RunningServer,
                            simulators: dict[str, ProviderSimulator]) -> None:
    expected = stream_answer(provider)
    with sdk.anthropic_sync(gateway) as client:
        events = list(client.messages.create(model=gateway_model(provider), max_tokens=256,
                                             system="Be brief.", messages=ANTHROPIC_MESSAGES,
                                             stream=True))
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 1
    text = "".join(e.delta.text for e in events
                   if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == expected.text
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.input_tokens == expected.input_tokens
    assert delta.usage.output_tokens == expected.output_tokens
    assert events[0].type == "message_start"
    assert events[0].message.model == gateway_model(provider)
    _sent_prompt(simulators[provider])
