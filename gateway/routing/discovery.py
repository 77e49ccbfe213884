"""Finding model servers on this machine: Ollama, LM Studio, llama.cpp, vLLM.

Each server in the routing file's `local_servers` is probed once, concurrently, with a short
timeout; one that answers its model list becomes a provider. Only loopback addresses are
probed, and never the gateway's own port (llama.cpp's default, 8080, is also the gateway's):
a gateway that discovered itself would route requests to itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from gateway.dialects import DIALECTS
from gateway.providers import Provider
from gateway.routing.config import LocalServer, RoutingConfig
from gateway.upstream import Upstream
from generated.providers import Endpoint, ProviderConfig

log = logging.getLogger("gateway.routing")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True, slots=True)
class Discovered:
    """A local server that answered, and the models it listed."""

    provider: Provider
    models: tuple[str, ...]


def local_provider(server: LocalServer) -> Provider:
    """A provider for a local server that the spec does not describe (OpenAI-style APIs)."""
    assert server.url and server.generate and server.dialect, "validated by the config"
    empty: Mapping[str, str] = MappingProxyType({})
    upper = server.id.upper()
    config = ProviderConfig(
        id=server.id, name=server.name or server.id, url=server.url, auth_type="none",
        auth_name=None, extra_headers=empty, dialect=server.dialect,
        list=Endpoint(method="GET", path=server.probe, query=empty),
        generate=Endpoint(method="POST", path=server.generate, query=empty),
        stream=None, url_params=(), api_url_env=f"{upper}_API_URL",
        api_key_env=f"{upper}_API_KEY")
    return Provider(config=config, base_url=server.url.rstrip("/"),
                    dialect=DIALECTS[server.dialect], headers=empty, auth_query=empty)


def _probe_target(server: LocalServer, providers: Mapping[str, Provider]) -> Provider | None:
    spec = providers.get(server.id)
    if spec is not None:
        return spec if spec.configured else None
    return local_provider(server)


def _is_self(base_url: str, own_port: int | None) -> bool:
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return own_port is not None and port == own_port


async def _probe(upstream: Upstream, server: LocalServer, provider: Provider,
                 limit: float) -> Discovered | None:
    listing = await upstream.probe_json(provider.base_url + server.probe, limit)
    if listing is None:
        return None
    try:
        listed = provider.dialect.parse_models(listing, provider=provider.id)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    models = tuple(str(m["id"]) for m in listed if m.get("id"))
    log.info("discovered %s on %s with %d models", provider.id, provider.host, len(models))
    return Discovered(provider, models)


async def discover(upstream: Upstream, config: RoutingConfig,
                   providers: Mapping[str, Provider], *, probe_timeout: float,
                   own_port: int | None) -> dict[str, Discovered]:
    """The local servers that answer within `probe_timeout` seconds, by provider id."""
    probes: list[tuple[str, asyncio.Task[Discovered | None]]] = []
    async with asyncio.TaskGroup() as group:
        for sid, server in config.local_servers.items():
            provider = _probe_target(server, providers)
            if provider is None:
                continue
            host = urlsplit(provider.base_url).hostname or ""
            if host not in _LOOPBACK or _is_self(provider.base_url, own_port):
                continue
            task = group.create_task(_probe(upstream, server, provider, probe_timeout))
            probes.append((sid, task))
    return {sid: found for sid, task in probes if (found := task.result()) is not None}
