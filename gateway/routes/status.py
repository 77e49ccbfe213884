"""`GET /status`: every provider and model as the router sees them now."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import ServiceUnavailable
from gateway.responses import JSONResponse
from gateway.routing import Router
from gateway.routing.status import routing_status


def router_of(request: Request) -> Router:
    """The app's router (`app.state.gateway.router`), set in the lifespan."""
    router = getattr(request.app.state.gateway, "router", None)
    if not isinstance(router, Router):
        raise ServiceUnavailable("the router is not running")
    return router


async def status(request: Request) -> Response:
    """Configured, key refused, cooldowns and budgets per provider and model; the catalog."""
    return JSONResponse(await routing_status(router_of(request)))
