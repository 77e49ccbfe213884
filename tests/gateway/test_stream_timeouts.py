"""Stream timeouts: time to first byte and the gap between chunks are limited separately,
and a healthy stream longer than either is never cut."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer, serve

REQUEST = {"model": "openai/gpt-4o-mini", "stream": True,
           "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateway(simulators: dict[str, ProviderSimulator]) -> Iterator[RunningServer]:
    """Short stream timeouts; no retries, so each fault shows as it is."""
    env = gateway_env(simulators) | {"CLIENT_FIRST_BYTE_TIMEOUT": "1s",
                                     "CLIENT_STREAM_IDLE_TIMEOUT": "0.5s",
                                     "ROUTING_RETRIES": "0"}
    with run_gateway(env) as server:
        yield server


def _stream(gateway: RunningServer) -> tuple[int, bytes, float]:
    started = time.monotonic()
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=REQUEST,
                      timeout=30) as r:
        body = b"".join(r.iter_bytes())
        return r.status_code, body, time.monotonic() - started


def test_a_slow_first_byte_is_a_504_before_the_stream_starts(
        gateway: RunningServer, openai_sim: ProviderSimulator) -> None:
    openai_sim.delay = 3.0
    status, body, elapsed = _stream(gateway)
    assert status == 504, body
    assert b"upstream_timeout" in body
    assert elapsed < 2.5


def _stalling_upstream() -> Starlette:
    """An OpenAI-style stream that sends some content, then goes quiet for too long."""

    async def chat(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for text in ("Hel", "lo"):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
                         "model": "m", "choices": [{"index": 0, "delta": {"content": text},
                                                    "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            await anyio.sleep(3)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_an_idle_gap_mid_stream_ends_in_an_error_event(
        simulators: dict[str, ProviderSimulator]) -> None:
    with serve(_stalling_upstream()) as upstream:
        env = gateway_env(simulators) | {"OPENAI_API_URL": upstream.url,
                                         "CLIENT_STREAM_IDLE_TIMEOUT": "0.5s",
                                         "ROUTING_RETRIES": "0"}
        with run_gateway(env) as gateway:
            status, body, elapsed = _stream(gateway)
    assert status == 200, body
    assert b"Hel" in body and b"lo" in body
    assert b'"error"' in body and b"upstream_timeout" in body
    assert b"[DONE]" not in body
    assert elapsed < 2.5


def test_a_healthy_stream_longer_than_both_limits_is_never_cut(
        gateway: RunningServer, openai_sim: ProviderSimulator) -> None:
    openai_sim.chunk_delay = 0.3  # 8 events: ~2.4 s in all, more than either limit
    status, body, elapsed = _stream(gateway)
    assert status == 200
    assert body.rstrip().endswith(b"data: [DONE]")
    assert b'"error"' not in body
    assert elapsed > 1.5
