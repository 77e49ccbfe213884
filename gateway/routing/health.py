"""Which candidates to skip: cooldowns per (provider, model) and keys a provider refused.

A failing model is skipped for the provider's Retry-After (or Gemini's retryDelay) when it
gave one, else for COOLDOWN_BASE doubled for each further failure, up to COOLDOWN_MAX. It
heals by itself: the cooldown runs out, and after COOLDOWN_MAX without a failure the count
starts again. Account-wide failures cool down every model of the provider at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.providers import Provider
from gateway.routing.backends import HealthRecord, StateBackend

# A provider's own Retry-After is trusted up to this long (a daily quota says "tomorrow").
MAX_RETRY_AFTER = 86400.0
_LAYOUTS_KEPT = 1024


def model_key(provider_id: str, model: str) -> str:
    """The health key of one provider's model."""
    return f"{provider_id}/{model}"


def provider_key(provider_id: str) -> str:
    """The health key that cools down every model of a provider."""
    return f"{provider_id}/*"


@dataclass(frozen=True, slots=True)
class Standing:
    """A candidate's health now: skipped until `until` (if in the future), after `strikes`."""

    until: float
    strikes: int

    def cooling(self, now: float) -> bool:
        """Whether the candidate is still to be skipped."""
        return self.until > now


_CLEAR = Standing(0.0, 0)  # the standing of a candidate that has not failed


def _standings(records: Sequence[HealthRecord], wholes: list[int]) -> list[Standing]:
    """Each pair's standing from the records of its key and of its provider's."""
    return [_standing(max(records[index].until, records[whole].until), records[index].strikes)
            for index, whole in enumerate(wholes)]


def _standing(until: float, strikes: int) -> Standing:
    """A standing; the shared `_CLEAR` for most (a frozen object costs more to make)."""
    return _CLEAR if until == 0.0 and strikes == 0 else Standing(until, strikes)


class Cooldowns:
    """Failure counts and cooldowns, kept in the state backend."""

    def __init__(self, backend: StateBackend, clock: Callable[[], float], *, base: float,
                 cap: float) -> None:
        self._backend = backend
        self._clock = clock
        self.base = base
        self.cap = cap
        self._layouts: dict[tuple[tuple[str, str], ...], tuple[list[str], list[int]]] = {}

    async def standings(self, pairs: Sequence[tuple[str, str]]) -> list[Standing]:
        """The standing of each (provider, model), counting provider-wide cooldowns."""
        keys, wholes = self._layout_of(pairs)
        return _standings(await self._backend.health(keys), wholes)

    def standings_now(self, pairs: Sequence[tuple[str, str]]) -> list[Standing] | None:
        """`standings` without waiting, when the backend keeps its records in this process;
        None when it must be asked (Redis)."""
        keys, wholes = self._layout_of(pairs)
        records = self._backend.health_now(keys)
        return None if records is None else _standings(records, wholes)

    def _layout_of(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[int]]:
        pairs = tuple(pairs)
        layout = self._layouts.get(pairs)
        return self._layout(pairs) if layout is None else layout

    def _layout(self, pairs: tuple[tuple[str, str], ...]) -> tuple[list[str], list[int]]:
        """The health keys to read for `pairs`: each pair's, then each provider's once; and
        for each pair, where its provider's record is among them. Kept by `pairs` (the
        router asks for the same few plans again and again)."""
        providers = sorted({provider for provider, _ in pairs})
        keys = [model_key(p, m) for p, m in pairs] + [provider_key(p) for p in providers]
        wholes = [len(pairs) + providers.index(provider) for provider, _ in pairs]
        if len(self._layouts) >= _LAYOUTS_KEPT:
            self._layouts.clear()
        layout = self._layouts[pairs] = (keys, wholes)
        return layout

    async def fail(self, provider_id: str, model: str, *, retry_after: float | None,
                   long: bool = False, whole_provider: bool = False) -> float:
        """Record a failure and start the cooldown; returns when it ends."""
        now = self._clock()
        key = provider_key(provider_id) if whole_provider else model_key(provider_id, model)
        strikes = await self._backend.strike(key, now, heal_after=self.cap, ttl=2 * self.cap)
        if retry_after is not None and not long:
            duration = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        elif long:
            duration = max(self.cap, min(retry_after or 0.0, MAX_RETRY_AFTER))
        else:
            duration = min(self.cap, self.base * (2 ** min(strikes - 1, 32)))
        until = now + duration
        await self._backend.block(key, until, ttl=duration + self.cap)
        return until

    async def succeed(self, provider_id: str, model: str, standing: Standing) -> None:
        """Forget the failures of a model that just answered (no call when there were none)."""
        if standing.strikes or standing.until:
            await self._backend.clear(model_key(provider_id, model))

    async def records(self) -> dict[str, HealthRecord]:
        """Every key with a record, for the status endpoint."""
        keys = await self._backend.health_keys()
        return dict(zip(keys, await self._backend.health(keys), strict=True))


def key_fingerprint(provider: Provider) -> str:
    """A digest of the provider's key, so a refused key is recognised without keeping it."""
    return hashlib.sha256((provider.api_key or "").encode()).hexdigest()[:16]


class KeyGuard:
    """Providers whose key was refused (401/403), kept until the key changes or a restart.

    Kept in this process only: a key fixed by redeploying must not stay marked bad in Redis.
    """

    def __init__(self) -> None:
        self._bad: dict[str, str] = {}

    def mark_bad(self, provider: Provider) -> None:
        """Remember that `provider` refused its current key."""
        self._bad[provider.id] = key_fingerprint(provider)

    def is_bad(self, provider: Provider) -> bool:
        """Whether `provider`'s current key was refused."""
        refused = self._bad.get(provider.id)  # hashing only when there is something to compare
        return refused is not None and refused == key_fingerprint(provider)
