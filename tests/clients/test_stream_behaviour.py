"""How streams behave on the wire: no buffering, errors after the first byte, disconnects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.clients import sdk
from tests.clients.expected import gateway_model, stream_answer, transcript
from tests.simulators import ProviderSimulator
from tests.support.server import RunningServer

CHUNK_DELAY = 0.25
QUESTION = "Say hello"

@pytest.fixture
def gateway(fresh_gateway: RunningServer) -> RunningServer:
    """Failures injected here cool providers down: each test gets a gateway of its own."""
    return fresh_gateway



def _openai_texts(gateway: RunningServer, provider: str) -> Iterator[str]:
    """The text pieces of a streamed OpenAI-API answer, as the SDK yields them."""
    with sdk.openai_sync(gateway) as client:
        stream = client.chat.completions.create(
            model=gateway_model(provider), stream=True,
            messages=[{"role": "user", "content": QUESTION}])
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


def _anthropic_texts(gateway: RunningServer, provider: str) -> Iterator[str]:
    """The text pieces of a streamed Anthropic-API answer, as the SDK yields them."""
    with sdk.anthropic_sync(gateway) as client, client.messages.stream(
            model=gateway_model(provider), max_tokens=256,
            messages=[{"role": "user", "content": QUESTION}]) as stream:
        yield from stream.text_stream


# --- no buffering ----------------------------------------------------------------------------


@pytest.mark.parametrize(("api", "provider"), [
    ("openai", "ollama"), ("openai", "anthropic"), ("anthropic", "groq")])
def test_each_chunk_is_passed_on_as_it_arrives(api: str, provider: str, gateway: RunningServer,
                                               simulators: dict[str, ProviderSimulator]) -> None:
    sim = simulators[provider]
    sim.chunk_delay = CHUNK_DELAY
    texts = _openai_texts if api == "openai" else _anthropic_texts
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    for piece in texts(gateway, provider):
        arrivals.append((time.monotonic() - started, piece))
    total = time.monotonic() - started
    assert "".join(p for _, p in arrivals) == stream_answer(provider).text
    # The upstream pauses before each of its frames; a buffering gateway would hold the first
    # text until the last pause is over, so it must arrive at least two pauses before the end.
    assert total >= 2 * CHUNK_DELAY
    first = arrivals[0][0]
    assert first < total - 2 * CHUNK_DELAY, (first, total)


def test_stream_headers_forbid_buffering(gateway: RunningServer,
                                         openai_sim: ProviderSimulator) -> None:
    body = {"model": gateway_model("openai"), "stream": True,
            "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body,
                      timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        raw = response.read().decode()
    assert raw.rstrip().endswith("data: [DONE]")
    assert '"usage"' not in raw.replace('"usage":null', ""), "usage only when asked for"


# --- an upstream error after the first byte --------------------------------------------------


def _last_error_message(provider: str, file_name: str) -> str:
    """The message of the error that ends a failing contract transcript."""
    error = transcript(provider, file_name)[-1]["error"]
    return str(error["message"] if isinstance(error, dict) else error)


MIDSTREAM = [
    # provider, events before the error, the error message the client must see (None: any)
    ("anthropic", 4, _last_error_message("anthropic", "stream-error-midstream.txt")),
    ("ollama", 2, _last_error_message("ollama", "stream-error.ndjson.txt")),
    ("openai", 3, None),  # OpenAI's stream is just cut short
]


@pytest.mark.parametrize(("provider", "after", "message"), MIDSTREAM)
def test_midstream_error_reaches_the_openai_sdk(provider: str, after: int, message: str | None,
                                                gateway: RunningServer,
                                                simulators: dict[str, ProviderSimulator]) -> None:
    simulators[provider].stream_error_after(after)
    received: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        received.extend(_openai_texts(gateway, provider))
    assert received, "the error must come after some text, not instead of the stream"
    assert stream_answer(provider).text.startswith("".join(received))
    assert not isinstance(raised.value, openai.APIConnectionError)
    if message is not None:
        assert message in raised.value.message


@pytest.mark.parametrize(("provider", "after", "message"), MIDSTREAM)
def test_midstream_error_reaches_the_anthropic_sdk(provider: str, after: int,
                                                   message: str | None, gateway: RunningServer,
                                                   simulators: dict[str, ProviderSimulator]
                                                   ) -> None:
    simulators[provider].stream_error_after(after)
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        received.extend(_anthropic_texts(gateway, provider))
    assert received, "the error must come after some text, not instead of the stream"
    assert stream_answer(provider).text.startswith("".join(received))
    if message is not None:
        assert message in str(raised.value)


def test_midstream_error_is_never_a_clean_end(gateway: RunningServer,
                                              anthropic_sim: ProviderSimulator) -> None:
    anthropic_sim.stream_error_after(4)
    body = {"model": gateway_model("anthropic"), "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": QUESTION}]}
    raw = httpx.post(f"{gateway.url}/v1/messages", json=body, timeout=10).text
    events = [line.removeprefix("event: ") for line in raw.splitlines()
              if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error"
    assert "message_stop" not in events
    last = json.loads(raw.strip().splitlines()[-1].removeprefix("data: "))
    assert last["type"] == "error" and last["error"]["type"] == "overloaded_error"


# --- the client goes away --------------------------------------------------------------------


def _wait_for_cancel(sim: ProviderSimulator, deadline: float = 5.0) -> None:
    """Poll (bounded) until the simulator saw its stream abandoned."""
    end = time.monotonic() + deadline
    while sim.streams_cancelled == 0 and time.monotonic() < end:
        time.sleep(0.02)
    assert sim.streams_cancelled == 1, "the gateway did not cancel its upstream request"


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_openai_client_disconnect_cancels_the_upstream(provider: str, gateway: RunningServer,
                                                       simulators: dict[str, ProviderSimulator]
                                                       ) -> None:
    sim = simulators[provider]
    sim.chunk_delay = 1.0  # long enough that the upstream is still sending when the client quits
    started = time.monotonic()
    with sdk.openai_sync(gateway) as client:
        stream = client.chat.completions.create(
            model=gateway_model(provider), stream=True,
            messages=[{"role": "user", "content": QUESTION}])
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        stream.close()
    _wait_for_cancel(sim)
    assert time.monotonic() - started < 3.0, "the upstream ran to its end"


def test_anthropic_client_disconnect_cancels_the_upstream(gateway: RunningServer,
                                                          anthropic_sim: ProviderSimulator
                                                          ) -> None:
    anthropic_sim.chunk_delay = 1.0
    with sdk.anthropic_sync(gateway) as client:
        stream = client.messages.create(model=gateway_model("anthropic"), max_tokens=64,
                                        stream=True,
                                        messages=[{"role": "user", "content": QUESTION}])
        assert next(iter(stream)).type == "message_start"
        stream.close()
    _wait_for_cancel(anthropic_sim)
