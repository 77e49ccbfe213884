"""A per-client limit on requests in flight, answered with 429 and Retry-After past it.

One client cannot take every worker slot and upstream connection by opening many slow
requests or streams at once. The client is the authenticated subject when auth is on (the
auth middleware puts its `Principal` in the scope state before this runs), else the remote
address. A stream counts until its last byte is written. Probes (/health, /ready, metrics)
are never limited, so a busy client cannot make the gateway look dead.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.middleware.error_shapes import error_response_for


class TooManyRequests(GatewayError):
    """The client already has the most requests in flight it may have."""

    status = 429
    code = "too_many_requests"


def client_of(scope: Scope) -> str:
    """Who a request counts against: `sub:<subject>` when authenticated, else `addr:<ip>`."""
    principal = (scope.get("state") or {}).get("auth")
    subject = getattr(principal, "subject", None)
    if isinstance(subject, str) and subject:
        return f"sub:{subject}"
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


class ConcurrencyLimitMiddleware:
    """Plain ASGI middleware allowing `limit` requests in flight per client (0: no limit)."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt_paths: Iterable[str] = (),
                 retry_after: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt_paths)
        self.retry_after = retry_after
        # One event loop runs every request, so plain counters need no lock.
        self.in_flight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
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
            await self.app(scope, receive, send)
        finally:
            left = self.in_flight[client] - 1
            if left:
                self.in_flight[client] = left
            else:
                del self.in_flight[client]
