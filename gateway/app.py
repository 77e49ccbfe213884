"""`create_app(settings)`: routes, the middleware list and the lifespan, declared in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError
from gateway.middleware.body_limit import BodyLimitMiddleware
from gateway.providers import resolve_all
from gateway.responses import JSONResponse, error_response
from gateway.routes import health, llms
from gateway.state import GatewayState
from gateway.upstream import Upstream
from generated.settings import Settings

log = logging.getLogger("gateway")


def http_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None
                ) -> httpx.AsyncClient:
    """The one upstream client: pooled connections and the configured timeouts."""
    timeout = httpx.Timeout(connect=settings.client_connect_timeout,
                            read=settings.client_read_timeout,
                            write=settings.client_read_timeout,
                            pool=settings.client_connect_timeout)
    limits = httpx.Limits(max_connections=settings.client_max_connections,
                          max_keepalive_connections=settings.client_max_connections)
    return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport,
                             follow_redirects=False)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse({"error": exc.detail, "code": code}, status_code=exc.status_code,
                        headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Only the type is logged: messages of unexpected errors may carry upstream data.
    log.error("unhandled error while serving %s: %s", request.url.path, type(exc).__name__)
    return JSONResponse({"error": "internal error", "code": "internal_error"}, status_code=500)


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
               ) -> Starlette:
    """Build the gateway for `settings`; `transport` lets tests swap the HTTP transport."""
    state = GatewayState(settings=settings, providers=resolve_all(settings))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with http_client(settings, transport) as client:
            state.upstream = Upstream(client)
            yield

    routes = [
        Route("/health", health.health, methods=["GET"]),
        Route("/llms", llms.list_all, methods=["GET"]),
        Route("/llms/{provider}", llms.list_provider, methods=["GET"]),
        Route("/llms/{provider}/generate", llms.generate, methods=["POST"]),
    ]
    middleware = [
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body_bytes),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.gateway = state
    return app
