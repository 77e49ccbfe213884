"""An OpenAI-dialect upstream that misbehaves on demand, for faults the simulators lack.

`mode` picks the answer to the next chat requests: an HTML page with status 200, a JSON body
larger than the gateway's cap (with or without Content-Length), a stream that never ends, a
stream that stalls after its first event, or answers that echo the caller's bearer token back
(in an error's message, code and headers, in a 200 body, in a stream's error event). It
counts the streams it started and the ones that ended, so a test can see the gateway let go
of the connection.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

MAX_FRAMES = 200_000  # an "endless" stream still ends, so no loop in a test is unbounded
STALL_SECONDS = 30.0


def chunk_frame(text: str) -> bytes:
    """One OpenAI `chat.completion.chunk` SSE event carrying `text`."""
    chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def completion(text: str) -> bytes:
    """A whole OpenAI `chat.completion` whose message is `text`."""
    body = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    return orjson.dumps(body)


class FaultyUpstream:
    """The app and its switches; thread-safe counters, since it runs in a server thread."""

    def __init__(self, huge_bytes: int = 1_000_000) -> None:
        self.mode = "ok"
        self.huge_bytes = huge_bytes
        self._lock = threading.Lock()
        self.streams_started = 0
        self.streams_ended = 0
        self.frames_sent = 0
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ])

    async def models(self, request: Request) -> Response:
        """A one-model list."""
        return Response(orjson.dumps({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "x"}]}),
            media_type="application/json")

    async def chat(self, request: Request) -> Response:
        """Answer per `mode`."""
        await request.body()
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.mode.startswith("echo"):
            return self._echo(token)
        if self.mode == "html":
            return Response(b"<html><body>Welcome to nginx!</body></html>", 200,
                            media_type="text/html")
        big = completion("x" * self.huge_bytes)
        if self.mode == "huge":
            return Response(big, media_type="application/json")
        if self.mode == "huge_chunked":
            return StreamingResponse(_pieces(big), media_type="application/json")
        if self.mode in ("endless", "stall"):
            return StreamingResponse(self._stream(stall=self.mode == "stall"),
                                     media_type="text/event-stream")
        return Response(completion("hello"), media_type="application/json")

    def _echo(self, token: str) -> Response:
        said = f"Incorrect API key provided: {token}. You can find your API key at ..."
        if self.mode == "echo_error":
            body = {"error": {"message": said, "type": "invalid_request_error", "code": token}}
            return Response(orjson.dumps(body), 401, {"x-echo": token},
                            media_type="application/json")
        if self.mode == "echo_body":
            return Response(completion(said), media_type="application/json")
        error = {"error": {"message": said, "type": "server_error", "code": token}}
        # The token split over two writes, as a real stream may do.
        frames = [chunk_frame("Hello"), b"data: " + orjson.dumps(error) + b"\n\n"]
        cut = frames[1].index(token.encode()) + len(token) // 2 if token else 0
        return StreamingResponse(_each([frames[0], frames[1][:cut], frames[1][cut:]]),
                                 media_type="text/event-stream")

    async def _stream(self, *, stall: bool) -> AsyncIterator[bytes]:
        with self._lock:
            self.streams_started += 1
        try:
            for n in range(MAX_FRAMES):
                yield chunk_frame(f"word{n} ")
                with self._lock:
                    self.frames_sent += 1
                if stall:
                    await anyio.sleep(STALL_SECONDS)
                elif n % 50 == 0:
                    await anyio.sleep(0)
        finally:
            with self._lock:
                self.streams_ended += 1


async def _pieces(body: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    """`body` in chunks, so the answer goes out without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """Each chunk as its own write."""
    for chunk in chunks:
        yield chunk
        await anyio.sleep(0.01)
