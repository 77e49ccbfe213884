"""Fixtures shared by the hardening tests: the misbehaving upstream and SSE reading."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.hardening.faulty_upstream import FaultyUpstream
from tests.support.server import RunningServer, serve


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[tuple[FaultyUpstream, RunningServer]]:
    """A FaultyUpstream on plain HTTP for the whole module."""
    faulty = FaultyUpstream(huge_bytes=200_000)
    with serve(faulty.app) as server:
        yield faulty, server


@pytest.fixture
def faulty(faulty_server: tuple[FaultyUpstream, RunningServer]) -> FaultyUpstream:
    """The module's FaultyUpstream, answering normally again."""
    upstream = faulty_server[0]
    upstream.mode = "ok"
    return upstream


def sse_payloads(text: str) -> list[Any]:
    """The JSON payloads of every `data:` line of an SSE body (`[DONE]` as the string)."""
    payloads: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            payloads.append(data if data == "[DONE]" else orjson.loads(data))
    return payloads


def generate(url: str, provider: str, model: str, *, stream: bool = False,
             timeout: float = 20) -> httpx.Response:
    """`POST /llms/{provider}/generate` with a one-line conversation."""
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}],
            "stream": stream}
    return httpx.post(f"{url}/llms/{provider}/generate", json=body, timeout=timeout)
