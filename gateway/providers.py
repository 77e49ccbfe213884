"""Providers as the running gateway sees them: the spec's registry resolved against settings.

The generated registry says how to talk to each provider; the settings say where it is and
which key to use. Resolving both once at start-up keeps the request path free of lookups:
headers, base URLs and the dialect are prepared here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.dialects import DIALECTS
from gateway.dialects.base import Dialect
from generated.providers import PROVIDERS, Endpoint, ProviderConfig
from generated.settings import Settings

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider ready to be called: resolved URL, auth and dialect."""

    config: ProviderConfig
    base_url: str
    dialect: Dialect
    # Credentials stay out of repr, so a logged provider never shows its key.
    headers: Mapping[str, str] = field(repr=False)
    auth_query: Mapping[str, str] = field(repr=False)
    missing: tuple[str, ...] = field(default=())
    api_key: str | None = field(default=None, repr=False)
    # The provider id, as used in URLs and settings: the config's, kept as a field (it is
    # read about ten times a request, and a property costs a call each time).
    id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.config.id)

    @property
    def configured(self) -> bool:
        """Whether every setting the provider needs is present."""
        return not self.missing

    @property
    def host(self) -> str:
        """The upstream host, for telemetry's server.address."""
        rest = self.base_url.split("://", 1)[-1]
        return rest.split("/", 1)[0]

    def redact(self, text: str) -> str:
        """`text` with this provider's key removed; providers sometimes echo it in errors."""
        if self.api_key and self.api_key in text:
            return text.replace(self.api_key, "[REDACTED]")
        return text

    def endpoint(self, name: str) -> Endpoint | None:
        """The spec's endpoint by name: `list`, `generate` or `stream`."""
        endpoint: Endpoint | None = getattr(self.config, name)
        return endpoint


def _auth(config: ProviderConfig, key: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that carry the API key, per the spec's auth type."""
    if key is None or config.auth_type == "none":
        return {}, {}
    name = config.auth_name
    if config.auth_type == "bearer":
        return {name or "Authorization": f"Bearer {key}"}, {}
    if config.auth_type == "xheader":
        return {name or "x-api-key": key}, {}
    return {}, {name or "key": key}


def resolve(config: ProviderConfig, settings: Settings) -> Provider:
    """Combine one registry entry with the settings into a callable provider."""
    missing: list[str] = []
    key = settings.provider_key(config.id)
    if config.auth_type != "none" and not key:
        missing.append(config.api_key_env)
    url = settings.provider_url(config.id).rstrip("/")
    params = settings.provider_url_params(config.id)
    envs = {p.name: p.env for p in config.url_params}

    def fill(match: re.Match[str]) -> str:
        value = params.get(match.group(1))
        if not value:
            missing.append(envs.get(match.group(1), match.group(1).upper()))
            return match.group(0)
        return value

    url = _PLACEHOLDER.sub(fill, url)
    headers, query = _auth(config, key)
    headers = {**config.extra_headers, **headers}
    return Provider(
        config=config,
        base_url=url,
        dialect=DIALECTS[config.dialect],
        headers=MappingProxyType(headers),
        auth_query=MappingProxyType(query),
        missing=tuple(missing),
        api_key=key or None,
    )


def resolve_all(settings: Settings) -> dict[str, Provider]:
    """Every provider of the registry, in spec order, configured or not."""
    return {pid: resolve(cfg, settings) for pid, cfg in PROVIDERS.items()}
