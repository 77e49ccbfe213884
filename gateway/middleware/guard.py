"""The per-request limits in one ASGI layer: in-flight requests per client, client read and
write timeouts, and the request body's size.

- In flight: at most `limit` requests per client (the authenticated subject, else the
  address); more get 429 with Retry-After. Probes are exempt.
- Read timeout: a body that trickles in slower than `read_timeout` per read gets 408; after
  the body is complete, `receive` only reports the disconnect and is not timed.
- Write timeout: a client that stops reading for `write_timeout` is cut off. Each wait is
  bounded apart, so a long, healthy stream is never cut by a total cap.
- Body size: Content-Length is checked up front and chunked bodies are counted as they
  arrive, so an upload without a length cannot get around the 413. Nothing is buffered.

One layer rather than three: every layer costs a call and a wrapped `receive` and `send` per
request, and these limits always run together. Served by the gateway's own protocol
(`gateway.http11`), the timeouts and the byte count are handed to it
(`scope["extensions"]["gateway.cycle"]`) and enforced inside its `receive` and `send`, so
no wrapper is needed at all; under any other server, `receive` and `send` are wrapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import (
    GatewayError,
    PayloadTooLarge,
    RequestAborted,
    RequestTimeout,
    TooManyRequests,
)
from gateway.middleware.error_shapes import error_response_for
from gateway.timing import Limited


def client_of(scope: Scope) -> str:
    """Who a request counts against: `sub:<subject>` when authenticated, else `addr:<ip>`."""
    principal = (scope.get("state") or {}).get("auth")
    subject = getattr(principal, "subject", None)
    if isinstance(subject, str) and subject:
        return f"sub:{subject}"
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


class _SlowClient(RequestAborted):
    """Raised inside the app's receive when the body stalls."""


class _StalledReader(RequestAborted):
    """Raised inside the app's send when the client stops reading."""


class _TooLarge(RequestAborted):
    """Raised inside the app's receive when the body passes the limit."""


_ABORTS = (_StalledReader, _SlowClient, _TooLarge)

# How long a refused upload may pause before the refusal goes out (see `_drain`).
DRAIN_IDLE_SECONDS = 0.05


async def _drain(receive: Receive, allowance: int) -> None:
    """Read and drop what a refused client is still sending, up to `allowance` bytes.

    The refusal closes the connection, and closing it with unread bytes makes the kernel
    reset it: the client, still busy sending, may then never see the 413. This reads on
    (bounded in bytes, and in time by the first pause) so the close is an orderly one.
    """
    dropped = 0
    while dropped <= allowance:
        try:
            async with asyncio.timeout(DRAIN_IDLE_SECONDS):
                message = await receive()
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


class RequestGuardMiddleware:
    """Plain ASGI middleware enforcing all three limits (a `limit` of 0: no in-flight limit)."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt_paths: Iterable[str] = (),
                 max_bytes: int, read_timeout: float, write_timeout: float,
                 retry_after: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt_paths)
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.retry_after = retry_after
        # What the gateway's protocol enforces itself (`Cycle.limit`), the same for every
        # request (read, write, body).
        self._limits = ((read_timeout, _SlowClient), (write_timeout, _StalledReader),
                        (max_bytes, _TooLarge))
        # One event loop runs every request, so plain counters need no lock.
        self.in_flight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.limit <= 0 or scope["path"] in self.exempt:
            await self._guarded(scope, receive, send)
            return
        client = client_of(scope)
        count = self.in_flight.get(client, 0)
        if count >= self.limit:
            error = TooManyRequests(f"too many requests in flight: at most {self.limit} at once "
                                    "per client")
            response = error_response_for(scope["path"], error,
                                          {"retry-after": str(self.retry_after)})
            await response(scope, receive, send)
            return
        self.in_flight[client] = count + 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            left = self.in_flight[client] - 1
            if left:
                self.in_flight[client] = left
            else:
                del self.in_flight[client]

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app with timed, counted `receive` and timed `send`."""
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send, PayloadTooLarge(
                        f"the request body is larger than the limit of {limit} bytes"))
                    return
        read_timeout, write_timeout = self.read_timeout, self.write_timeout
        cycle = scope.get("extensions", {}).get("gateway.cycle")
        if cycle is not None:
            cycle.limit(*self._limits)
            try:
                await self.app(scope, receive, send)
            except _ABORTS as exc:
                await self._aborted(exc, scope, receive, send, bool(cycle.response_started))
            return
        received = 0
        body_done = False
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # only the disconnect is left to report: not timed
                return await receive()
            message = await Limited(receive(), read_timeout, _SlowClient)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    body_done = True
                    raise _TooLarge
            else:
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await Limited(send(message), write_timeout, _StalledReader)

        await self._limited(scope, receive, send, guarded_receive, guarded_send,
                            lambda: started)

    async def _limited(self, scope: Scope, receive: Receive, send: Send,
                       app_receive: Receive, app_send: Send,
                       started: Callable[[], bool]) -> None:
        """The app with `receive` and `send` that raise the guard's errors."""
        try:
            await self.app(scope, app_receive, app_send)
        except _ABORTS as exc:
            await self._aborted(exc, scope, receive, send, started())

    async def _aborted(self, exc: RequestAborted, scope: Scope, receive: Receive, send: Send,
                       started: bool) -> None:
        """A guard's error raised inside the app: its answer, when no response has started
        (a client that stopped reading gets none: the server closes the connection)."""
        if started or isinstance(exc, _StalledReader):
            return
        if isinstance(exc, _SlowClient):
            await self._refuse(scope, receive, send, RequestTimeout(
                f"the request body did not arrive within {self.read_timeout:g}s"))
        else:
            await _drain(receive, self.max_bytes)
            await self._refuse(scope, receive, send, PayloadTooLarge(
                f"the request body is larger than the limit of {self.max_bytes} bytes"))

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: GatewayError) -> None:
        """Answer `error` and close the connection: the rest of the body is never read."""
        response = error_response_for(scope["path"], error)
        response.headers["connection"] = "close"
        await response(scope, receive, send)
