"""Streams whose upstream sends a whole answer in one piece, or goes silent, over real HTTP.

The gateway hands on in one write what it read in one go; these check that every event still
arrives framed on its own, that a cached answer replays as a whole stream, and that a client
who leaves a stream whose upstream has gone quiet frees that upstream at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway import chat, ir
from gateway.chat import LastBatch
from gateway.dialects.openai import DIALECT
from gateway.routes.streaming import EventStreamResponse
from gateway.streaming import Frame, SSEParser
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer, serve
from tests.support.streams import TextLines

TOKENS = [f"[t{i:02d}] " for i in range(20)]
STALL_SECONDS = 30.0  # bounded: the upstream gives up on its own even if nobody leaves


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


WHOLE = b"".join([
    _sse(_chunk({"role": "assistant", "content": ""})),
    *(_sse(_chunk({"content": token})) for token in TOKENS),
    _sse(_chunk({}, "stop")),
    _sse({**_chunk({}), "choices": [],
          "usage": {"prompt_tokens": 3, "completion_tokens": 20, "total_tokens": 23}}),
    b"data: [DONE]\n\n",
])


class Stall(Response):
    """The first event, then silence until the client (the gateway) goes away."""

    def __init__(self, upstream: QuietUpstream) -> None:
        self.upstream = upstream
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "more_body": True,
                    "body": _sse(_chunk({"role": "assistant", "content": "first"}))})
        with anyio.move_on_after(STALL_SECONDS):
            while (await receive())["type"] != "http.disconnect":
                pass
            with self.upstream.lock:
                self.upstream.left += 1


class QuietUpstream:
    """An OpenAI upstream that sends its whole stream in one write, or stalls after one event."""

    def __init__(self) -> None:
        self.stall = False
        self.lock = threading.Lock()
        self.calls = 0
        self.left = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat,
                                           methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        await request.body()
        with self.lock:
            self.calls += 1
        if self.stall:
            return Stall(self)
        return Response(WHOLE, media_type="text/event-stream")


@pytest.fixture
def upstream() -> Iterator[tuple[QuietUpstream, RunningServer]]:
    quiet = QuietUpstream()
    with serve(quiet.app) as server:
        yield quiet, server


@pytest.fixture
def gateway(upstream: tuple[QuietUpstream, RunningServer]) -> Iterator[RunningServer]:
    env = {"OPENAI_API_URL": upstream[1].url, "OPENAI_API_KEY": "sk-quiet",
           "CACHE_ENABLED": "true"}
    with run_gateway(env) as server:
        yield server


def _events(raw: str) -> list[str]:
    """The `data:` payload of every SSE event, in order; an event is never two payloads."""
    events = [block for block in raw.replace("\r\n", "\n").split("\n\n") if block.strip()]
    data = []
    for event in events:
        lines = [line for line in event.split("\n") if line.startswith("data: ")]
        assert len(lines) == 1, event
        data.append(lines[0].removeprefix("data: "))
    return data


ROUTES = [
    ("/v1/chat/completions", "openai/gpt-4o-mini"),
    ("/llms/openai/generate", "gpt-4o-mini"),
]


def _text(path: str, payload: dict[str, Any]) -> str:
    if path == "/llms/openai/generate":
        return str(payload["response"]["content"])
    choices = payload.get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


@pytest.mark.parametrize(("path", "model"), ROUTES)
def test_an_answer_read_at_once_keeps_one_event_per_chunk(path: str, model: str,
                                                          gateway: RunningServer) -> None:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    response = httpx.post(gateway.url + path, json=body, timeout=10)
    assert response.status_code == 200
    data = _events(response.text)
    assert data[-1] == "[DONE]"
    payloads = [json.loads(d) for d in data[:-1]]
    texts = [text for text in (_text(path, p) for p in payloads) if text]
    assert texts == TOKENS
    if path == "/llms/openai/generate":
        assert payloads[-1]["finish_reason"] == "stop"
        assert payloads[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 20,
                                         "total_tokens": 23}
    else:
        assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
        assert payloads[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("path", "model"), ROUTES)
def test_a_cached_answer_replays_as_the_same_stream(path: str, model: str,
                                                     gateway: RunningServer,
                                                     upstream: tuple[QuietUpstream,
                                                                     RunningServer]) -> None:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": path}]}
    first = httpx.post(gateway.url + path, json=body, timeout=10)
    again = httpx.post(gateway.url + path, json=body, timeout=10)
    assert [r.headers["x-cache"] for r in (first, again)] == ["MISS", "HIT"]
    assert upstream[0].calls == 1
    # The cache keeps the whole answer, so its replay may carry the text in fewer events.
    texts = ["".join(_text(path, json.loads(d)) for d in _events(r.text)[:-1])
             for r in (first, again)]
    assert texts == ["".join(TOKENS)] * 2
    assert _events(again.text)[-1] == "[DONE]"


def test_a_client_leaving_a_silent_stream_frees_the_upstream(
        gateway: RunningServer, upstream: tuple[QuietUpstream, RunningServer]) -> None:
    quiet = upstream[0]
    quiet.stall = True
    body = {"model": "openai/gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                      timeout=10) as response:
        for line in response.iter_lines():
            if '"first"' in line:
                break
    # The upstream sends nothing more: only noticing the client's departure ends this.
    deadline = time.monotonic() + 5
    while quiet.left == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert quiet.left == 1, "the gateway kept a stream open that nobody reads"


class _OneRead:
    """An upstream stream whose whole answer arrives in one read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = False
        self.closed = False

    async def chunks(self) -> Any:
        self.read = True
        yield self.data

    def at_eof(self) -> bool:
        return self.read

    async def aclose(self) -> None:
        self.closed = True


def test_the_first_words_of_a_read_go_on_ahead_of_the_rest_of_it() -> None:
    """A read holding a whole answer: its first text is handed on as a batch of its own
    (written before the rest is decoded), the rest follows as the stream's last batch."""
    upstream = _OneRead(WHOLE)

    async def batches() -> list[list[ir.StreamEvent]]:
        stream = chat._events(None, upstream,  # type: ignore[arg-type]
                              SSEParser(), DIALECT.stream_decoder(model="gpt-4o-mini"))
        return [batch async for batch in stream]

    first, rest = asyncio.run(batches())
    assert upstream.closed  # the stream's end closes the upstream response
    assert type(first) is list and type(rest) is LastBatch
    assert [type(event) for event in first] == [ir.MessageStart, ir.TextDelta]
    assert first[-1] == ir.TextDelta(TOKENS[0])
    assert [e.text for e in rest if isinstance(e, ir.TextDelta)] == TOKENS[1:]
    assert any(isinstance(e, ir.Finish) for e in rest)
    assert any(isinstance(e, ir.UsageReport) for e in rest)


class _RecordingParser(SSEParser):
    """An SSE parser that notes what it is given."""

    __slots__ = ("fed",)

    def __init__(self) -> None:
        super().__init__()
        self.fed: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Frame]:
        self.fed.append(chunk)
        return super().feed(chunk)


def test_the_rest_of_a_read_is_not_even_parsed_before_the_first_words_go_on() -> None:
    parser = _RecordingParser()
    opening = _sse(_chunk({"role": "assistant", "content": ""})) + _sse(
        _chunk({"content": TOKENS[0]}))
    assert WHOLE.startswith(opening)

    async def run() -> tuple[list[bytes], list[list[ir.StreamEvent]]]:
        stream = chat._events(None, _OneRead(WHOLE),  # type: ignore[arg-type]
                              parser, DIALECT.stream_decoder(model="gpt-4o-mini"))
        first = await stream.__anext__()
        fed_before = list(parser.fed)
        return fed_before, [first] + [batch async for batch in stream]

    fed_before, batches = asyncio.run(run())
    assert b"".join(fed_before) == opening
    assert b"".join(parser.fed) == WHOLE
    assert [e.text for b in batches for e in b if isinstance(e, ir.TextDelta)] == TOKENS


def test_a_read_with_crlf_events_is_decoded_whole_with_its_first_words_first() -> None:
    whole = WHOLE.replace(b"\n", b"\r\n")

    async def batches() -> list[list[ir.StreamEvent]]:
        stream = chat._events(None, _OneRead(whole),  # type: ignore[arg-type]
                              SSEParser(), DIALECT.stream_decoder(model="gpt-4o-mini"))
        return [batch async for batch in stream]

    first, rest = asyncio.run(batches())
    assert first[-1] == ir.TextDelta(TOKENS[0])
    assert [e.text for e in rest if isinstance(e, ir.TextDelta)] == TOKENS[1:]


@pytest.mark.parametrize("server", ["gateway", "httptools"])
def test_a_stream_stops_when_its_client_leaves_under_either_server(server: str) -> None:
    """The gateway's own server tells the response of the disconnect; under another server
    a task waits for it on `receive`. Either way the stream's batches are closed."""
    closed = threading.Event()

    async def batches() -> Any:
        try:
            yield [ir.TextDelta("first")]
            await asyncio.sleep(STALL_SECONDS)
            yield [ir.TextDelta("never")]
        finally:
            closed.set()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await receive()
            await EventStreamResponse(batches(), TextLines())(scope, receive, send)

    options = {} if server == "gateway" else {"http": "httptools"}
    with serve(app, **options) as running:
        with httpx.stream("GET", running.url, timeout=10) as response:
            for line in response.iter_lines():
                if line == "data: first":
                    break
        assert closed.wait(5), "the stream went on after its client left"
