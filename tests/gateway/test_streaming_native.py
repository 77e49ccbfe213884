"""`POST /llms/{provider}/generate` with `stream: true`: the spec's own SSE format, over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.expected import MODELS, PROVIDERS, stream_answer, transcript
from tests.simulators import SIMULATORS, ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def gateway(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One gateway for this module, in front of all seven simulators."""
    sims = {pid: request.getfixturevalue(f"{pid}_sim_server") for pid in SIMULATORS}
    with run_gateway(gateway_env(sims)) as server:
        yield server


def _generate(gateway: RunningServer, provider: str, **extra: Any) -> httpx.Response:
    body = {"model": MODELS[provider], "messages": HELLO, "stream": True, **extra}
    return httpx.post(f"{gateway.url}/llms/{provider}/generate", json=body, timeout=10)


def _data(response: httpx.Response) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    assert response.headers["content-type"].startswith("text/event-stream")
    return [line.removeprefix("data: ") for line in response.text.splitlines()
            if line.startswith("data: ")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_frames_usage_and_done(provider: str, gateway: RunningServer,
                                      simulators: dict[str, ProviderSimulator]) -> None:
    expected = stream_answer(provider)
    response = _generate(gateway, provider)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    data = _data(response)
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    *deltas, last = events
    assert deltas, "text arrives as several events before the last one"
    for event in deltas:
        assert event["provider"] == provider and set(event) == {"provider", "response"}
        assert event["response"]["role"] == "assistant" and event["response"]["model"]
    assert "".join(e["response"]["content"] for e in deltas) == expected.text
    assert last["provider"] == provider and last["response"]["content"] == ""
    assert last["finish_reason"] == "stop"
    assert last["usage"] == {"prompt_tokens": expected.input_tokens,
                             "completion_tokens": expected.output_tokens,
                             "total_tokens": expected.input_tokens + expected.output_tokens}
    assert simulators[provider].last_request.json.get("stream", True) is not False


def test_stream_events_leave_as_they_arrive(gateway: RunningServer,
                                            ollama_sim: ProviderSimulator) -> None:
    ollama_sim.chunk_delay = 0.25
    body = {"model": MODELS["ollama"], "messages": HELLO, "stream": True}
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{gateway.url}/llms/ollama/generate", json=body,
                      timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic() - started)
    total = time.monotonic() - started
    lines = transcript("ollama", "stream-chat.ndjson.txt")
    assert len(arrivals) == len([x for x in lines if x["message"]["content"]]) + 1
    assert arrivals[0] < total - 4 * 0.25, (arrivals[0], total)


@pytest.mark.parametrize(("provider", "after", "file_name"), [
    ("anthropic", 4, "stream-error-midstream.txt"),
    ("ollama", 2, "stream-error.ndjson.txt"),
])
def test_error_after_the_first_byte_is_an_error_event(provider: str, after: int,
                                                      file_name: str, gateway: RunningServer,
                                                      simulators: dict[str, ProviderSimulator]
                                                      ) -> None:
    simulators[provider].stream_error_after(after)
    response = _generate(gateway, provider)
    assert response.status_code == 200
    data = _data(response)
    assert "[DONE]" not in data, "a failed stream must not end cleanly"
    events = [json.loads(d) for d in data]
    assert events[0]["response"]["content"], "text came before the error"
    error = events[-1]
    assert set(error) == {"error", "code", "provider"} and error["provider"] == provider
    contract_error = transcript(provider, file_name)[-1]["error"]
    message = contract_error["message"] if isinstance(contract_error, dict) else contract_error
    assert message in error["error"]


def test_cut_stream_is_an_error_event(gateway: RunningServer,
                                      openai_sim: ProviderSimulator) -> None:
    openai_sim.stream_error_after(3)  # OpenAI's stream is just cut short
    data = _data(_generate(gateway, "openai"))
    assert data[-1] != "[DONE]"
    assert json.loads(data[-1])["code"]


def test_errors_before_the_first_byte_keep_their_status(gateway: RunningServer,
                                                        google_sim: ProviderSimulator) -> None:
    google_sim.fail_next(429)
    response = _generate(gateway, "google")
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.json()["upstream_status"] == 429
    response = _generate(gateway, "google", stream="maybe")
    assert response.status_code == 400 and response.json()["field"] == "stream"
    assert len(google_sim.requests) == 1


def test_stream_false_is_still_one_json_answer(gateway: RunningServer,
                                               cohere_sim: ProviderSimulator) -> None:
    response = _generate(gateway, "cohere", stream=False)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["finish_reason"] == "stop"
    assert cohere_sim.last_request.json.get("stream") is not True
