"""`GET /cache/stats` and `DELETE /cache`: the response cache, shared by replicas on Redis."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.responses import JSONResponse
from gateway.routes.status import router_of


async def cache_stats(request: Request) -> Response:
    """Entries, hits and misses."""
    return JSONResponse(await router_of(request).cache.stats())


async def clear_cache(request: Request) -> Response:
    """Drop every cached answer."""
    return JSONResponse({"cleared": await router_of(request).cache.clear()})
