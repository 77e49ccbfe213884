"""Refuse oversized request bodies with 413 while they are read, not after.

Content-Length is checked up front; chunked bodies are counted as they arrive, so an upload
without a length cannot get around the limit. The body is never buffered here.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import PayloadTooLarge
from gateway.middleware.error_shapes import error_response_for


class BodyLimitMiddleware:
    """Plain ASGI middleware enforcing `max_bytes` on every HTTP request body."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        received = 0
        started = False

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response_for(scope["path"], PayloadTooLarge(
            f"the request body is larger than the limit of {self.max_bytes} bytes"))
        response.headers["connection"] = "close"
        await response(scope, receive, send)


class _TooLarge(Exception):
    """Raised inside the app's receive when the body passes the limit."""
