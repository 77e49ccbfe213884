"""What the streamed and client-API routes share: the SSE response, the event pump, errors.

A streamed answer is written as it is produced: each batch of IR events (what one upstream
read brought) is encoded at once and handed to the server as one write, so a client sees each
upstream chunk as soon as the gateway has read it, every event still framed on its own. The
one exception is the answer's first words: when a read holds more than them (a provider that
sends a burst, or the whole answer at once), they are written on their own first, before the
rest of the read is decoded. The
upstream stream is always closed when the response ends, however it ends (finished, failed,
or abandoned by a client that went away), which cancels the upstream request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import ir
from gateway.chat import LastBatch
from gateway.errors import GatewayError, InvalidRequest, RequestAborted
from gateway.responses import error_response, raw_headers

log = logging.getLogger("gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_SSE_TYPE = (b"content-type", b"text/event-stream; charset=utf-8")
INTERNAL_ERROR = "internal error"


class StreamEncoder(Protocol):
    """Renders one answer's IR stream events in a client API's framing."""

    def encode(self, event: ir.StreamEvent) -> bytes:
        """The bytes for one event (possibly none)."""
        ...

    def finish(self) -> bytes:
        """The bytes that end a stream that did not fail."""
        ...


class _Watch:
    """Cancels a response's task when its client goes away, while the stream is running."""

    __slots__ = ("gone", "running", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.running = True
        self.gone = False

    def client_left(self) -> None:
        """The client is gone: stop the stream if it is still running."""
        if self.running:
            self.gone = True
            self.task.cancel()

    async def listen(self, receive: Receive) -> None:
        """Wait for the disconnect (the request body was read by the route)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.client_left()


class EventStreamResponse(Response):
    """A `text/event-stream` response of IR event batches, written as `encoder` frames them.

    One write per batch; the stream's end goes out with its last batch when that is known to
    be the last (`chat.LastBatch`). After the first byte an HTTP status can no longer change,
    so any failure becomes the client API's own error event instead of a clean end. A client
    that goes away cancels the response at once, even while the upstream is silent, and the
    batches are closed however the response ends.
    """

    media_type = "text/event-stream"

    def __init__(self, batches: AsyncGenerator[list[ir.StreamEvent], None],
                 encoder: StreamEncoder, headers: dict[str, str] | None = None) -> None:
        self.status_code = 200
        self.background = None
        # Starlette's headers for a body-less text/event-stream response, from kept bytes.
        self.raw_headers = raw_headers({**SSE_HEADERS, **(headers or {})}, _SSE_TYPE, None, 200)
        self._batches = batches
        self._encoder = encoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the body; a disconnect ends it quietly, as Starlette's own responses do."""
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(task)
        # The gateway's own server tells of the disconnect itself; under another server a
        # task waits for it (a plain task rather than a task group: it only cancels this one).
        cycle = scope.get("extensions", {}).get("gateway.cycle")
        listener = None
        if cycle is not None:
            cycle.on_disconnect(watch.client_left)
        else:
            listener = asyncio.get_running_loop().create_task(watch.listen(receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            last = await self._pump(send, cycle)
            watch.running = False
            await send({"type": "http.response.body", "body": last, "more_body": False})
            await self._settle()
        except asyncio.CancelledError:
            if watch.gone and task.uncancel() == 0:
                return
            raise
        finally:
            watch.running = False
            if listener is not None:
                listener.cancel()
            else:
                cycle.on_disconnect(None)
            await self._batches.aclose()

    async def _pump(self, send: Send, cycle: Any) -> bytes:
        """Write the batches as they come; return the stream's last bytes, for the last write.

        The server holds writes until the loop iteration ends. The answer's first words
        (which `chat.open_stream` hands on ahead of the rest of their read) must leave before
        the rest is decoded: the gateway's own server (`cycle`) writes them at once; under
        another, the pump lets the iteration end.
        """
        batches, encode = self._batches, self._encoder.encode
        first = True
        while True:
            try:
                batch = await batches.__anext__()
                data = b"".join([encode(event) for event in batch])
            except StopAsyncIteration:
                return self._encoder.finish()
            except Exception as exc:  # the headers are out: an error event, not a 500
                log.error("stream failed after the first byte: %s", type(exc).__name__)
                return encode(ir.StreamError(INTERNAL_ERROR, type="internal_error"))
            if batch and type(batch[-1]) is ir.StreamError:  # always a stream's last event
                return data
            if type(batch) is LastBatch:
                return data + self._encoder.finish()
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
                if first:
                    first = False
                    if cycle is not None:
                        cycle.flush()  # a loop iteration fewer than sleeping
                    else:
                        await asyncio.sleep(0)

    async def _settle(self) -> None:
        """Run the stream to its end once the client has all of it: what follows the last
        batch is bookkeeping (usage, the cache, cooldowns), and there is no one left to tell
        if that fails."""
        try:
            batches = self._batches
            while await anext(batches, None) is not None:  # see `Router._committed`
                pass
        except Exception as exc:
            log.error("stream bookkeeping failed after the answer: %s", type(exc).__name__)


ErrorBody = Callable[[GatewayError], dict[str, Any]]


Endpoint = Callable[[Request], Awaitable[Response]]


def client_api(render: ErrorBody) -> Callable[[Endpoint], Endpoint]:
    """Answer every failure of an endpoint in its API's own error shape (`render`).

    SDKs pick their exception class from the status and read the message from their own
    body shape, so the gateway's native `Error` shape must not reach them; the native API
    renders its own (`llms.error_body`).
    """

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except GatewayError as exc:
                return error_response(exc, render(exc))
            except RequestAborted:
                raise  # the request guard answers these (408, 413) in this API's shape
            except Exception as exc:  # still the client's shape; only the type is logged
                log.error("unhandled error while serving %s: %s", request.url.path,
                          type(exc).__name__)
                internal = GatewayError(INTERNAL_ERROR)
                return error_response(internal, render(internal))

        return run

    return wrap


def field_of(exc: GatewayError) -> str | None:
    """The offending field of a validation error, if any."""
    return exc.field if isinstance(exc, InvalidRequest) else None

