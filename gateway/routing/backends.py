"""Where routing state lives: cooldowns, budget counters and cached answers.

`MemoryBackend` keeps them in the process (the default); `RedisBackend`
(`gateway.routing.redis_backend`) keeps them in Redis so that replicas share them. Times are
on the router's clock (wall-clock seconds by default, so replicas agree); a `ttl` is how long
the backend may keep a record at all, a bound on memory rather than part of the logic.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Clock = Callable[[], float]
# Expired counters are swept once this many have been written since the last sweep.
_SWEEP_EVERY = 1024


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """One (provider, model)'s failures: skipped until `until`, after `strikes` failures."""

    until: float = 0.0
    strikes: int = 0


# The entry of a key without failures (records are never changed: one serves them all).
_NO_FAILURES = (HealthRecord(), 0.0)


class StateBackend(Protocol):
    """The operations the router needs; each one is atomic on its own."""

    kind: Literal["memory", "redis"]

    async def strike(self, key: str, now: float, heal_after: float, ttl: float) -> int:
        """Count one more failure and return the count; a quiet spell resets it first."""
        ...

    async def block(self, key: str, until: float, ttl: float) -> None:
        """Skip `key` until `until`; an existing later block stands."""
        ...

    async def clear(self, key: str) -> None:
        """Forget `key`'s failures and block (it just succeeded)."""
        ...

    async def health(self, keys: Sequence[str]) -> list[HealthRecord]:
        """The records of `keys`, in order (empty records for unknown keys)."""
        ...

    def health_now(self, keys: Sequence[str]) -> list[HealthRecord] | None:
        """`health` without waiting, when the records are kept in this process; None when
        they must be asked for (`health`)."""
        ...

    async def health_keys(self) -> list[str]:
        """Every key that has a health record."""
        ...

    async def add(self, key: str, amount: int, ttl: float | None) -> int:
        """Add `amount` to a counter and return the new value."""
        ...

    async def counts(self, keys: Sequence[str]) -> list[int]:
        """The counters' values, in order (0 for unknown keys)."""
        ...

    async def cache_get(self, key: str) -> bytes | None:
        """A cached value, marking it recently used."""
        ...

    async def cache_put(self, key: str, value: bytes, ttl: float, max_entries: int) -> None:
        """Store a value, evicting the least recently used beyond `max_entries`."""
        ...

    async def cache_size(self) -> int:
        """How many values are cached."""
        ...

    async def cache_clear(self) -> int:
        """Drop every cached value; returns how many there were."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryBackend:
    """State in this process only: plain dicts, on the event loop (no locks needed)."""

    kind: Literal["memory", "redis"] = "memory"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._health: dict[str, tuple[HealthRecord, float]] = {}  # record, last failure
        self._counters: dict[str, tuple[int, float]] = {}  # value, expires at
        self._writes = 0
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    async def strike(self, key: str, now: float, heal_after: float, ttl: float) -> int:
        """Count one more failure, starting again from one after a quiet spell."""
        record, last = self._health.get(key, (HealthRecord(), now))
        strikes = 1 if now - last > heal_after else record.strikes + 1
        self._health[key] = (HealthRecord(record.until, strikes), now)
        return strikes

    async def block(self, key: str, until: float, ttl: float) -> None:
        """Skip `key` until `until`, unless already blocked longer."""
        record, last = self._health.get(key, (HealthRecord(), self._clock()))
        self._health[key] = (HealthRecord(max(record.until, until), record.strikes), last)

    async def clear(self, key: str) -> None:
        """Forget `key`'s failures."""
        self._health.pop(key, None)

    async def health(self, keys: Sequence[str]) -> list[HealthRecord]:
        """The records of `keys`."""
        return self.health_now(keys)

    def health_now(self, keys: Sequence[str]) -> list[HealthRecord]:
        """`health` without a coroutine (what the router asks on every request)."""
        health = self._health
        return [health.get(key, _NO_FAILURES)[0] for key in keys]

    async def health_keys(self) -> list[str]:
        """Every key with a record."""
        return list(self._health)

    async def add(self, key: str, amount: int, ttl: float | None) -> int:
        """Add to a counter; an expired counter starts again from zero."""
        now = self._clock()
        value, expires = self._counters.get(key, (0, float("inf")))
        if expires <= now:
            value, expires = 0, float("inf")
        if ttl is not None and expires == float("inf"):
            expires = now + ttl
        self._counters[key] = (value + amount, expires)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(now)
        return value + amount

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._counters.items() if expires <= now]:
            del self._counters[key]

    async def counts(self, keys: Sequence[str]) -> list[int]:
        """The live counters' values."""
        now = self._clock()
        values = []
        for key in keys:
            value, expires = self._counters.get(key, (0, float("inf")))
            values.append(value if expires > now else 0)
        return values

    async def cache_get(self, key: str) -> bytes | None:
        """A live cached value, now the most recently used."""
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry[0]

    async def cache_put(self, key: str, value: bytes, ttl: float, max_entries: int) -> None:
        """Store a value; the least recently used ones go beyond `max_entries`."""
        self._cache[key] = (value, self._clock() + ttl)
        self._cache.move_to_end(key)
        while len(self._cache) > max_entries:
            self._cache.popitem(last=False)

    async def cache_size(self) -> int:
        """How many live values are cached."""
        now = self._clock()
        for key in [k for k, (_, expires) in self._cache.items() if expires <= now]:
            del self._cache[key]
        return len(self._cache)

    async def cache_clear(self) -> int:
        """Drop everything cached."""
        count = len(self._cache)
        self._cache.clear()
        return count

    async def aclose(self) -> None:
        """Nothing to release."""
