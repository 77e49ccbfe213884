"""Every fault control works on every simulator."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.simulators import SIMULATORS, ProviderSimulator
from tests.simulators.contracts import Contract
from tests.simulators_selftest.loopback import (
    LISTS,
    STREAMS,
    client,
    error_shape,
    read_stream,
    stream_frames,
)

PROVIDERS = sorted(SIMULATORS)
CONTRACT_ERRORS = [
    (pid, status)
    for pid, cls in sorted(SIMULATORS.items())
    for status in sorted({e.status for e in Contract(cls.contract_dir).responses.values()
                          if e.name.startswith("error") and e.status >= 400})
]


@pytest.mark.parametrize(("provider", "status"), CONTRACT_ERRORS)
def test_fail_next_uses_contract_errors(simulators: dict[str, ProviderSimulator],
                                        provider: str, status: int) -> None:
    """fail_next(status) answers with the contract's first error body for that status."""
    sim = simulators[provider]
    sim.fail_next(status)
    with client(sim) as http:
        response = http.get(LISTS[provider])
    expected = sim.contract.errors(status)[0]
    assert (response.status_code, response.json()) == (status, expected.body)
    for name, value in expected.headers.items():
        assert response.headers[name] == value


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fail_next_other_status_keeps_shape(simulators: dict[str, ProviderSimulator],
                                            provider: str) -> None:
    """A status the contract has no example for still uses the provider's error shape."""
    sim = simulators[provider]
    sim.fail_next(402)
    with client(sim) as http:
        response = http.get(LISTS[provider])
    assert response.status_code == 402
    assert error_shape(provider, LISTS[provider], response.json())


def test_anthropic_overloaded_and_gemini_retry_info(simulators: dict[str, ProviderSimulator],
                                                    ) -> None:
    """529 overloaded_error for Anthropic; RetryInfo in Gemini's 429."""
    anthropic, google = simulators["anthropic"], simulators["google"]
    anthropic.fail_next(529)
    google.fail_next(429)
    with client(anthropic) as http:
        assert http.get("/v1/models").json()["error"]["type"] == "overloaded_error"
    with client(google) as http:
        details = http.get("/v1beta/models").json()["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "43s"} in details


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fail_next_times_and_overrides(simulators: dict[str, ProviderSimulator],
                                       provider: str) -> None:
    """`times` failures in a row, custom body and headers, then normal answers again."""
    sim = simulators[provider]
    sim.fail_next(503, body={"custom": True}, headers={"retry-after": "0"}, times=2)
    with client(sim) as http:
        answers = [http.get(LISTS[provider]) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json() == {"custom": True}
    assert answers[1].headers["retry-after"] == "0"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_delay(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """`delay` holds the answer back."""
    sim = simulators[provider]
    sim.delay = 0.3
    start = time.monotonic()
    with client(sim) as http:
        assert http.get(LISTS[provider]).status_code == 200
    assert time.monotonic() - start >= 0.3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hang_until_reset(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """A hung request never answers; after reset() the simulator answers again."""
    sim = simulators[provider]
    sim.hang()
    with client(sim, timeout=httpx.Timeout(5.0, read=0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get(LISTS[provider])
        assert len(sim.requests) == 1  # accepted and recorded, just never answered
        sim.reset()
        assert http.get(LISTS[provider]).status_code == 200


def test_hang_times(openai_sim: ProviderSimulator) -> None:
    """hang(times=1) holds only the next request; later ones are answered meanwhile."""
    openai_sim.hang(times=1)
    with client(openai_sim, timeout=httpx.Timeout(5.0, read=0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get("/v1/models")
        assert http.get("/v1/models").status_code == 200


def test_hang_is_bounded(openai_sim: ProviderSimulator) -> None:
    """A hang ends by itself after hang_timeout and the request is then answered."""
    openai_sim.hang()
    openai_sim.hang_timeout = 0.3
    start = time.monotonic()
    with client(openai_sim) as http:
        assert http.get("/v1/models").status_code == 200
    assert time.monotonic() - start >= 0.3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_json(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """A 200 whose JSON is cut in half, once."""
    sim = simulators[provider]
    sim.malformed_json()
    with client(sim) as http:
        broken = http.get(LISTS[provider])
        whole = http.get(LISTS[provider])
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    assert whole.content.startswith(broken.content)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_stream(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """In a stream, the first payload is cut in half and the rest follows."""
    sim = simulators[provider]
    sim.malformed_json()
    chunks, error = read_stream(sim)
    frames = stream_frames(sim)
    body = b"".join(c for _, c in chunks)
    assert error is None
    assert body != b"".join(frames)
    assert body.endswith(b"".join(frames[1:]))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reset_midstream(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """The connection drops after n chunks: the client sees them, then a protocol error."""
    sim = simulators[provider]
    sim.reset_midstream(2)
    chunks, error = read_stream(sim)
    assert isinstance(error, httpx.RemoteProtocolError)
    assert b"".join(c for _, c in chunks) == b"".join(stream_frames(sim)[:2])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reset_during_json_body(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """A non-streamed body is cut off half way."""
    sim = simulators[provider]
    sim.reset_midstream(1)
    with client(sim) as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(LISTS[provider])


# The in-stream error each provider sends (None: the stream just stops, no terminator).
MIDSTREAM_ERRORS: dict[str, bytes | None] = {
    "anthropic": b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                 b'"message":"Overloaded"}}\n\n',
    "ollama": b'{"error":"an error was encountered while running the model"}\n',
    "openai": None, "groq": None, "cohere": None, "cloudflare": None,
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_error_after(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """n events, then the provider's mid-stream error form, then a clean end."""
    sim = simulators[provider]
    sim.stream_error_after(2)
    chunks, error = read_stream(sim)
    body = b"".join(c for _, c in chunks)
    head = b"".join(stream_frames(sim)[:2])
    assert error is None
    assert body.startswith(head)
    if provider == "google":
        tail = json.loads(body[len(head):].decode().removeprefix("data: "))
        assert tail["error"]["status"] == "INTERNAL"
        assert body.endswith(b"\r\n\r\n")
    else:
        assert body[len(head):] == (MIDSTREAM_ERRORS[provider] or b"")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_chunk_delay_trickles(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """Frames arrive one by one, `chunk_delay` apart, not in one burst at the end."""
    sim = simulators[provider]
    sim.chunk_delay = 0.1
    chunks, error = read_stream(sim)
    frames = stream_frames(sim)
    assert error is None
    assert b"".join(c for _, c in chunks) == b"".join(frames)
    assert chunks[-1][0] - chunks[0][0] >= 0.1 * (len(frames) - 1) * 0.9
    assert chunks[0][0] < chunks[-1][0] / 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_recording(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """Method, path, raw query, headers and parsed body of every request are kept."""
    sim = simulators[provider]
    path, body, _ = STREAMS[provider]
    with client(sim) as http:
        http.post(path, json=body, params={"trace": "a b"}, headers={"x-test": "1"})
        http.get(LISTS[provider])
    first, second = sim.requests
    assert (first.method, first.body, first.headers["x-test"]) == ("POST", body, "1")
    assert first.path == (sim.base_path() + path).split("?")[0]
    assert "trace=a+b" in first.query
    assert first.params["trace"] == "a b"
    assert (second.method, second.body) == ("GET", None)
    assert json.loads(first.raw_body) == body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reset_clears_everything(simulators: dict[str, ProviderSimulator],
                                 provider: str) -> None:
    """reset() forgets recordings and every armed fault."""
    sim = simulators[provider]
    with client(sim) as http:
        http.get(LISTS[provider])
        sim.fail_next(500)
        sim.malformed_json()
        sim.reset_midstream(0)
        sim.delay = 5.0
        sim.reset()
        assert sim.requests == []
        response = http.get(LISTS[provider])
    assert response.status_code == 200
    assert response.json()
