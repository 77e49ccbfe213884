"""Bound how long a client may take to send its body and to accept the response.

A client that trickles its request body gets 408 once a read waits longer than
SERVER_READ_TIMEOUT; one that stops reading the response is cut off once a write waits
longer than SERVER_WRITE_TIMEOUT. Each wait is bounded separately, so a long, healthy stream
is never cut by a total cap. After the body is complete, `receive` only reports the
disconnect, and is not timed.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.middleware.error_shapes import error_response_for


class RequestTimeout(GatewayError):
    """The client took too long to send its request body."""

    status = 408
    code = "request_timeout"


class _SlowClient(Exception):
    """Raised inside the app's receive when the body stalls."""


class _StalledReader(Exception):
    """Raised inside the app's send when the client stops reading."""


class ClientTimeoutsMiddleware:
    """Plain ASGI middleware with per-read and per-write timeouts."""

    def __init__(self, app: ASGIApp, *, read_timeout: float, write_timeout: float) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(self.read_timeout):
                    message = await receive()
            except TimeoutError:
                raise _SlowClient from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def timed_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            try:
                async with asyncio.timeout(self.write_timeout):
                    await send(message)
            except TimeoutError:
                raise _StalledReader from None

        try:
            await self.app(scope, timed_receive, timed_send)
        except _StalledReader:
            return  # the server closes a connection whose response did not complete
        except _SlowClient:
            if not started:
                response = error_response_for(scope["path"], RequestTimeout(
                    f"the request body did not arrive within {self.read_timeout:g}s"))
                response.headers["connection"] = "close"
                await response(scope, receive, send)
