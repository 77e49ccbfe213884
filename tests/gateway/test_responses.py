"""`gateway.responses.JSONResponse`: Starlette's headers exactly, from kept bytes."""

from __future__ import annotations

import random
from typing import Any

import orjson
from starlette.responses import Response

from gateway.responses import JSONResponse

NAMES = ["X-Cache", "x-gateway-provider", "x-gateway-model", "Retry-After", "Content-Type",
         "content-length", "Cache-Control", "x-request-id"]
VALUES = ["MISS", "HIT", "openai", "gpt-4o-mini", "7", "text/plain", "12", "no-store",
          "caf\u00e9", ""]


def _starlettes(content: object, status: int, headers: dict[str, str] | None,
                media_type: str | None = None) -> list[tuple[bytes, bytes]]:
    """What Starlette's own Response gives for the same answer."""
    return Response(orjson.dumps(content), status_code=status, headers=headers,
                    media_type=media_type or "application/json").raw_headers


def test_raw_headers_are_starlettes_for_any_headers_and_status() -> None:
    rng = random.Random(12)
    for _ in range(400):
        headers = {rng.choice(NAMES): rng.choice(VALUES) for _ in range(rng.randint(0, 5))}
        status = rng.choice([200, 201, 204, 304, 400, 429, 500, 101])
        content = {"n": rng.random()}
        given = headers if headers or rng.random() < 0.5 else None
        for _ in range(2):  # the second time from the kept pairs
            answer = JSONResponse(content, status_code=status, headers=given)
            assert answer.raw_headers == _starlettes(content, status, given)
            assert answer.body == orjson.dumps(content)


def test_another_media_type_is_starlettes_too() -> None:
    answer = JSONResponse({"a": 1}, headers={"X-Cache": "MISS"}, media_type="text/plain")
    assert answer.raw_headers == _starlettes({"a": 1}, 200, {"X-Cache": "MISS"}, "text/plain")
    assert (b"content-type", b"text/plain; charset=utf-8") in answer.raw_headers


def test_an_event_streams_headers_are_starlettes() -> None:
    from gateway.routes.streaming import EventStreamResponse

    class Encoder:
        def encode(self, event: object) -> bytes:
            return b""

        def finish(self) -> bytes:
            return b""

    async def nothing() -> Any:
        yield []

    for headers in (None, {"X-Cache": "MISS", "x-gateway-model": "m"},
                    {"Cache-Control": "no-store", "Content-Type": "text/plain"}):
        batches = nothing()
        answer = EventStreamResponse(batches, Encoder(), headers=headers)
        starlettes = Response.__new__(Response)  # a response with no body at all
        starlettes.status_code = 200
        starlettes.media_type = "text/event-stream"
        starlettes.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no",
                                 **(headers or {})})
        assert answer.raw_headers == starlettes.raw_headers
        assert answer.media_type == "text/event-stream"
