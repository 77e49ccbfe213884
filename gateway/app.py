"""`create_app(settings)`: routes, the middleware list and the lifespan, declared in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from gateway.auth.config import AuthConfig
from gateway.client import Client
from gateway.direct import DirectRoutes
from gateway.errors import GatewayError
from gateway.lifecycle import LIFECYCLE, Lifecycle, readiness
from gateway.middleware.error_shapes import error_response_for
from gateway.middleware.guard import RequestGuardMiddleware
from gateway.providers import resolve_all
from gateway.responses import error_response
from gateway.routes import anthropic, cache, health, llms, openai, status
from gateway.routing.startup import routing_config, start_router
from gateway.state import GatewayState
from gateway.telemetry import TelemetryConfig, TelemetryMiddleware, create_telemetry
from gateway.upstream import Upstream, open_session
from generated.settings import Settings

log = logging.getLogger("gateway")


@dataclass(frozen=True, slots=True)
class AppHooks:
    """What tests may swap: the telemetry exporters."""

    span_exporter: SpanExporter | None = None
    metric_readers: tuple[MetricReader, ...] = ()


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every secret value in the settings, for redaction."""
    values = []
    for _name, value in settings:
        secret = getattr(value, "get_secret_value", None)
        if secret is not None and secret():
            values.append(secret())
    return tuple(values)


def http_client(settings: Settings) -> Client:
    """The one upstream client: pooled connections and the configured timeouts.

    Call it with an event loop running (in the lifespan): the session belongs to that loop.
    """
    return open_session(max_connections=settings.client_max_connections,
                        connect_timeout=settings.client_connect_timeout,
                        read_timeout=settings.client_read_timeout)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    error = GatewayError(exc.detail, code=code, status=exc.status_code)
    return error_response_for(request.url.path, error, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Only the type is logged: messages of unexpected errors may carry upstream data.
    log.error("unhandled error while serving %s: %s", request.url.path, type(exc).__name__)
    return error_response_for(request.url.path, GatewayError("internal error"))


def auth_config(settings: Settings) -> AuthConfig:
    """The OIDC verification settings; raises ValueError naming what is wrong."""
    return AuthConfig(
        issuer=settings.oidc_issuer_url,
        audience=settings.oidc_audience or settings.oidc_client_id,
        algorithms=settings.oidc_algorithms,
        leeway=settings.oidc_leeway,
        required_scopes=settings.oidc_required_scopes,
        jwks_cache_ttl=settings.oidc_jwks_cache_ttl,
        jwks_min_refresh_interval=settings.oidc_jwks_min_refresh_interval,
        exempt_paths=("/health", "/ready", settings.telemetry_metrics_path),
        fetch_timeout=settings.client_connect_timeout,
    )


def auth_middleware(app: ASGIApp, settings: Settings,
                    closers: list[Callable[[], Awaitable[None]]]) -> ASGIApp:
    """`app` behind OIDC authentication; what must be closed at shutdown goes to `closers`.

    Imported only when auth is on: the JWT libraries and httpx cost megabytes per worker.
    """
    import httpx

    from gateway.auth.middleware import AuthMiddleware

    # The identity provider gets its own client: it must never share provider credentials.
    http = httpx.AsyncClient(timeout=settings.client_connect_timeout, follow_redirects=False)
    closers.append(http.aclose)
    return AuthMiddleware(app, config=auth_config(settings), http=http)


def create_app(settings: Settings, *, hooks: AppHooks | None = None) -> ASGIApp:
    """Build the gateway for `settings`."""
    hooks = hooks or AppHooks()
    telemetry = create_telemetry(TelemetryConfig(
        enabled=settings.enable_telemetry, service_name=settings.otel_service_name,
        metrics_path=settings.telemetry_metrics_path,
        otlp_endpoint=settings.otel_exporter_otlp_endpoint, environment=settings.environment,
        secrets=secrets_of(settings), span_exporter=hooks.span_exporter,
        metric_readers=hooks.metric_readers))
    routing = routing_config(settings)  # a bad routing file fails here, at start-up
    state = GatewayState(settings=settings, providers=resolve_all(settings), telemetry=telemetry)
    closers: list[Callable[[], Awaitable[None]]] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Lifecycle]]:
        lifecycle = Lifecycle()
        async with http_client(settings) as session:
            state.upstream = Upstream(
                session, max_response_bytes=settings.max_upstream_response_bytes,
                first_byte_timeout=settings.client_first_byte_timeout,
                stream_idle_timeout=settings.client_stream_idle_timeout)
            state.router = await start_router(settings, state.providers, state.upstream,
                                              telemetry, config=routing)
            lifecycle.start()
            try:
                # The server finds the Lifecycle in the lifespan state to flip it on SIGTERM.
                yield {LIFECYCLE: lifecycle}
            finally:
                lifecycle.drain()
                await state.router.aclose()
                for close in closers:
                    await close()
                telemetry.shutdown()

    routes: list[BaseRoute] = [
        Route("/health", health.health, methods=["GET"]),
        Route("/ready", readiness, methods=["GET"]),
        Route("/llms", llms.list_all, methods=["GET"]),
        Route("/llms/{provider}", llms.list_provider, methods=["GET"]),
        Route("/llms/{provider}/generate", llms.generate, methods=["POST"]),
        Route("/v1/models", openai.list_models, methods=["GET"]),
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/status", status.status, methods=["GET"]),
        Route("/cache/stats", cache.cache_stats, methods=["GET"]),
        Route("/cache", cache.clear_cache, methods=["DELETE"]),
        *telemetry.metrics_routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.gateway = state
    # The chat routes are served in front of Starlette's router (see gateway.direct).
    served: ASGIApp = DirectRoutes(app, exact={
        "/v1/chat/completions": openai.chat_completions,
        "/v1/messages": anthropic.messages,
    }, generate=llms.generate)
    # The limits come before any route: a client over its in-flight limit is refused before
    # anything else is spent on it; then the client's read and write timeouts and the body
    # limit.
    outer: ASGIApp = RequestGuardMiddleware(
        served, limit=settings.max_concurrent_requests_per_client,
        exempt_paths=("/health", "/ready", settings.telemetry_metrics_path),
        max_bytes=settings.max_request_body_bytes, read_timeout=settings.server_read_timeout,
        write_timeout=settings.server_write_timeout)
    if settings.enable_auth:
        # Outside the limits: the in-flight limit counts per authenticated subject.
        outer = auth_middleware(outer, settings, closers)
    # Outside Starlette's own error middleware, so even a 500 carries X-Request-ID, and
    # outside auth, so refused requests are logged and traced too.
    return TelemetryMiddleware(outer, telemetry=telemetry)
