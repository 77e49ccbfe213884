"""Building the router at start-up: routing file, state backend, local discovery."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from gateway.chat import AnyTelemetry
from gateway.providers import Provider
from gateway.routing.backends import MemoryBackend, StateBackend
from gateway.routing.catalog import Catalog
from gateway.routing.config import RoutingConfig, load_routing
from gateway.routing.discovery import discover
from gateway.routing.options import RouterOptions
from gateway.routing.router import Router, Sleep
from gateway.upstream import Upstream
from generated.settings import Settings

log = logging.getLogger("gateway.routing")


def routing_config(settings: Settings) -> RoutingConfig:
    """The validated routing configuration; raises RoutingConfigError naming each problem."""
    return load_routing(settings.routing_file)


def state_backend(settings: Settings, clock: Callable[[], float]) -> StateBackend:
    """Redis when REDIS_URL is set, else memory."""
    if settings.redis_url is None:
        return MemoryBackend(clock)
    # Imported only when used: the redis client costs megabytes of memory per worker.
    from gateway.routing.redis_backend import RedisBackend

    return RedisBackend(settings.redis_url.get_secret_value(), prefix=settings.redis_key_prefix)


def explicit_locals(settings: Settings, config: RoutingConfig,
                    providers: Mapping[str, Provider]) -> set[str]:
    """Local spec providers (Ollama) whose URL the settings name explicitly."""
    given = settings.model_fields_set
    return {pid for pid in config.local_servers
            if pid in providers and f"{pid}_api_url" in given}


async def start_router(settings: Settings, providers: Mapping[str, Provider],
                       upstream: Upstream, telemetry: AnyTelemetry, *,
                       config: RoutingConfig | None = None,
                       backend: StateBackend | None = None,
                       clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep,
                       rng: random.Random | None = None) -> Router:
    """A ready router: configuration validated, backend reachable (or warned), locals found."""
    config = config or routing_config(settings)
    backend = backend or state_backend(settings, clock)
    ping = getattr(backend, "ping", None)  # only the shared (Redis) backend can be away
    if ping is not None and not await ping():
        log.warning("REDIS_URL does not answer; cooldowns, budgets and the cache are not "
                    "shared until it does")
    every = dict(providers)
    discovered: dict[str, tuple[str, ...]] = {}
    if settings.local_discovery:
        found = await discover(upstream, config, providers,
                               probe_timeout=settings.local_discovery_timeout,
                               own_port=settings.server_port or None)
        for pid, server in found.items():
            every.setdefault(pid, server.provider)
            discovered[pid] = server.models
    catalog = Catalog(config, every, explicit_locals=explicit_locals(settings, config, providers),
                      discovered=discovered)
    return Router(config=config, catalog=catalog, upstream=upstream, telemetry=telemetry,
                  backend=backend, options=RouterOptions.from_settings(settings), clock=clock,
                  sleep=sleep, rng=rng)
