"""What the streamed and client-API routes share: the SSE response, the event pump, errors.

A streamed answer is written as it is produced: every IR event is encoded and handed to the
server at once, so a client sees each upstream chunk as soon as the gateway has read it. The
upstream stream is always closed when the response ends, however it ends (finished, failed,
or abandoned by a client that went away), which cancels the upstream request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from gateway import ir
from gateway.errors import GatewayError, InvalidRequest, RequestAborted, UpstreamError
from gateway.responses import JSONResponse

log = logging.getLogger("gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
INTERNAL_ERROR = "internal error"


class StreamEncoder(Protocol):
    """Renders one answer's IR stream events in a client API's framing."""

    def encode(self, event: ir.StreamEvent) -> bytes:
        """The bytes for one event (possibly none)."""
        ...

    def finish(self) -> bytes:
        """The bytes that end a stream that did not fail."""
        ...


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response whose body generator is closed however it ends."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncGenerator[bytes, None],
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(body, headers={**SSE_HEADERS, **(headers or {})})
        self._body = body

    async def stream_response(self, send: Send) -> None:
        """Write the body; a client that goes away cancels this, and the close still runs."""
        async with aclosing(self._body):
            await super().stream_response(send)


async def encoded(events: AsyncGenerator[ir.StreamEvent, None],
                  encoder: StreamEncoder) -> AsyncGenerator[bytes, None]:
    """Each event's bytes as soon as the event arrives; an error ends the stream as an error.

    After the first byte an HTTP status can no longer change, so any failure becomes the
    client API's own error event instead of a clean end.
    """
    async with aclosing(events):
        try:
            async for event in events:
                data = encoder.encode(event)
                if data:
                    yield data
                if isinstance(event, ir.StreamError):
                    return
        except Exception as exc:  # the headers are out: report it in the stream, not as a 500
            log.error("stream failed after the first byte: %s", type(exc).__name__)
            yield encoder.encode(ir.StreamError(INTERNAL_ERROR, type="internal_error"))
            return
    yield encoder.finish()


ErrorBody = Callable[[GatewayError], dict[str, Any]]


def client_error(exc: GatewayError, render: ErrorBody) -> Response:
    """A gateway error answered in a client API's own error shape, keeping status and hints."""
    headers: dict[str, str] = {}
    if isinstance(exc, UpstreamError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(0, round(exc.retry_after)))
    return JSONResponse(render(exc), status_code=exc.status, headers=headers)


Endpoint = Callable[[Request], Awaitable[Response]]


def client_api(render: ErrorBody) -> Callable[[Endpoint], Endpoint]:
    """Answer every failure of a client-API endpoint in that API's own error shape.

    SDKs pick their exception class from the status and read the message from their own
    body shape, so the gateway's native `Error` shape must not reach them.
    """

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except GatewayError as exc:
                return client_error(exc, render)
            except RequestAborted:
                raise  # the request guard answers these (408, 413) in this API's shape
            except Exception as exc:  # still the client's shape; only the type is logged
                log.error("unhandled error while serving %s: %s", request.url.path,
                          type(exc).__name__)
                return client_error(GatewayError(INTERNAL_ERROR), render)

        return run

    return wrap


def field_of(exc: GatewayError) -> str | None:
    """The offending field of a validation error, if any."""
    return exc.field if isinstance(exc, InvalidRequest) else None

