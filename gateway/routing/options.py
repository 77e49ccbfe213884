"""The router's tunables, read from the settings (the spec's x-config)."""

from __future__ import annotations

from dataclasses import dataclass

from generated.settings import Settings


@dataclass(frozen=True, slots=True)
class RouterOptions:
    """Retries, deadline, cooldowns and cache limits; durations in seconds."""

    retries: int = 1
    backoff_base: float = 0.25
    backoff_max: float = 5.0
    deadline: float = 120.0
    cooldown_base: float = 30.0
    cooldown_max: float = 600.0
    cache_enabled: bool = True
    cache_ttl: float = 600.0
    cache_max_entries: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> RouterOptions:
        """The options the settings give."""
        return cls(retries=settings.routing_retries,
                   backoff_base=settings.routing_backoff_base,
                   backoff_max=settings.routing_backoff_max,
                   deadline=settings.routing_deadline,
                   cooldown_base=settings.cooldown_base,
                   cooldown_max=settings.cooldown_max,
                   cache_enabled=settings.cache_enabled,
                   cache_ttl=settings.cache_ttl,
                   cache_max_entries=settings.cache_max_entries)
