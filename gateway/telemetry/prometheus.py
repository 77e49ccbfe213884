"""The Prometheus scrape endpoint, as a plain ASGI app over one collector registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.types import Scope


class PrometheusEndpoint:
    """Serves the registry in the text format the scraper's Accept header asks for.

    A class rather than a function so Starlette's `Route` treats it as an ASGI app.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain; charset=utf-8",
                           extra=[(b"allow", b"GET, HEAD")])
            return
        accept = ""
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        body = encoder(self._registry)
        await _respond(send, 200, b"" if method == "HEAD" else body, content_type,
                       length=len(body))


async def _respond(send: Any, status: int, body: bytes, content_type: str, *,
                   length: int | None = None,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode("latin-1")),
               (b"content-length", str(len(body) if length is None else length).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
