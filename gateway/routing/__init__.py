"""The routing core: model catalog, fallback, cooldowns, retries, budgets, cache, shared state.

Build one `Router` per app with `start_router(...)` (or use `gateway.library.Gateway`), then
`await router.complete(request, requested_model=...)` or `await router.stream(...)`.
"""

from gateway.routing.catalog import Candidate, Catalog, Plan
from gateway.routing.config import RoutingConfig, RoutingConfigError, load_routing
from gateway.routing.options import RouterOptions
from gateway.routing.router import (
    Attempt,
    NoModelAvailable,
    RoutedResponse,
    RoutedStream,
    Router,
)
from gateway.routing.startup import routing_config, start_router, state_backend

__all__ = [
    "Attempt",
    "Candidate",
    "Catalog",
    "NoModelAvailable",
    "Plan",
    "RoutedResponse",
    "RoutedStream",
    "Router",
    "RouterOptions",
    "RoutingConfig",
    "RoutingConfigError",
    "load_routing",
    "routing_config",
    "start_router",
    "state_backend",
]
