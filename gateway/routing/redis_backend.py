"""Routing state in Redis, shared by every replica that uses the same REDIS_URL and prefix.

Each operation is one round trip and atomic: read-modify-write steps run as Lua scripts
(INCRBY with its EXPIRE, a cooldown that only ever lengthens, an LRU insert that evicts).
When Redis is unreachable the gateway keeps serving: reads come back empty and writes are
dropped, with a warning, because failing every request would cost users more than a
briefly unshared cooldown or budget.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.routing.backends import HealthRecord

log = logging.getLogger("gateway.routing")
T = TypeVar("T")

_STRIKE = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '-1')
local strikes = tonumber(redis.call('HGET', KEYS[1], 'strikes') or '0')
local now = tonumber(ARGV[1])
if last < 0 or now - last > tonumber(ARGV[2]) then strikes = 0 end
strikes = strikes + 1
redis.call('HSET', KEYS[1], 'strikes', strikes, 'last', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return strikes
"""

_BLOCK = """
local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'until', ARGV[1]) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""

_ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

_CACHE_GET = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return value
"""

_CACHE_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[4])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #oldest, 2 do redis.call('DEL', ARGV[5] .. oldest[i]) end
end
return over
"""

_CACHE_SIZE = """
local live = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. member) == 1 then
    live = live + 1
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return live
"""

_CACHE_CLEAR = """
local live = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  live = live + redis.call('DEL', ARGV[1] .. member)
end
redis.call('DEL', KEYS[1])
return live
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisBackend:
    """`StateBackend` over redis.asyncio; `prefix` namespaces every key."""

    kind: Literal["memory", "redis"] = "redis"

    def __init__(self, url: str, *, prefix: str) -> None:
        self._redis: aioredis.Redis = aioredis.from_url(url, socket_connect_timeout=2,
                                                        socket_timeout=2)
        self._p = prefix.rstrip(":") + ":"
        self._index = self._p + "health-index"
        self._lru = self._p + "cache-lru"  # members scored by a use counter, oldest first
        self._tick = self._p + "cache-tick"
        self._strike = self._redis.register_script(_STRIKE)
        self._block = self._redis.register_script(_BLOCK)
        self._add = self._redis.register_script(_ADD)
        self._cache_get = self._redis.register_script(_CACHE_GET)
        self._cache_put = self._redis.register_script(_CACHE_PUT)
        self._cache_size = self._redis.register_script(_CACHE_SIZE)
        self._cache_clear = self._redis.register_script(_CACHE_CLEAR)

    async def _guard(self, action: Callable[[], Awaitable[T]], fallback: T) -> T:
        try:
            return await action()
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable, routing state not shared: %s", type(exc).__name__)
            return fallback

    async def ping(self) -> bool:
        """Whether Redis answers."""
        return await self._guard(self._ping, False)

    async def _ping(self) -> bool:
        return bool(await self._redis.ping())

    async def strike(self, key: str, now: float, heal_after: float, ttl: float) -> int:
        """Count one more failure, starting again from one after a quiet spell."""
        result = await self._guard(lambda: self._strike(
            keys=[self._p + "health:" + key, self._index],
            args=[repr(now), repr(heal_after), _ms(ttl), key]), 1)
        return int(result)

    async def block(self, key: str, until: float, ttl: float) -> None:
        """Skip `key` until `until`, unless already blocked longer."""
        await self._guard(lambda: self._block(
            keys=[self._p + "health:" + key, self._index], args=[repr(until), _ms(ttl), key]),
            None)

    async def clear(self, key: str) -> None:
        """Forget `key`'s failures."""
        async def run() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._p + "health:" + key)
                pipe.srem(self._index, key)
                await pipe.execute()
        await self._guard(run, None)

    async def health(self, keys: Sequence[str]) -> list[HealthRecord]:
        """The records of `keys`, in one round trip."""
        async def run() -> list[HealthRecord]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(self._p + "health:" + key, ["until", "strikes"])
                rows: list[list[Any]] = await pipe.execute()
            return [HealthRecord(float(until or 0), int(strikes or 0)) for until, strikes in rows]
        return await self._guard(run, [HealthRecord() for _ in keys])

    def health_now(self, keys: Sequence[str]) -> None:
        """None: the records are in Redis, to be asked for (`health`)."""
        return None

    async def health_keys(self) -> list[str]:
        """Every key with a live record (expired ones are dropped from the index)."""
        async def run() -> list[str]:
            raw = await self._redis.smembers(self._index)
            members = sorted(m.decode() if isinstance(m, bytes) else m for m in raw)
            if not members:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.exists(self._p + "health:" + member)
                alive = await pipe.execute()
            gone = [m for m, ok in zip(members, alive, strict=True) if not ok]
            if gone:
                await self._redis.srem(self._index, *gone)
            return [m for m, ok in zip(members, alive, strict=True) if ok]
        return await self._guard(run, [])

    async def add(self, key: str, amount: int, ttl: float | None) -> int:
        """INCRBY with its expiry set once, atomically."""
        result = await self._guard(lambda: self._add(
            keys=[self._p + "n:" + key], args=[amount, "" if ttl is None else _ms(ttl)]), 0)
        return int(result)

    async def counts(self, keys: Sequence[str]) -> list[int]:
        """The counters' values, in one MGET."""
        async def run() -> list[int]:
            values = await self._redis.mget([self._p + "n:" + key for key in keys])
            return [int(v or 0) for v in values]
        return await self._guard(run, [0 for _ in keys])

    async def cache_get(self, key: str) -> bytes | None:
        """A cached value, now the most recently used."""
        async def run() -> bytes | None:
            value = await self._cache_get(
                keys=[self._p + "cache:" + key, self._lru, self._tick], args=[key])
            return bytes(value) if value is not None else None
        return await self._guard(run, None)

    async def cache_put(self, key: str, value: bytes, ttl: float, max_entries: int) -> None:
        """Store a value; the least recently used ones are evicted beyond `max_entries`."""
        await self._guard(lambda: self._cache_put(
            keys=[self._p + "cache:" + key, self._lru, self._tick],
            args=[value, _ms(ttl), max_entries, key, self._p + "cache:"]),
            None)

    async def cache_size(self) -> int:
        """How many values are cached (shared by every replica)."""
        result = await self._guard(lambda: self._cache_size(
            keys=[self._lru], args=[self._p + "cache:"]), 0)
        return int(result)

    async def cache_clear(self) -> int:
        """Drop every cached value, for every replica."""
        result = await self._guard(lambda: self._cache_clear(
            keys=[self._lru], args=[self._p + "cache:"]), 0)
        return int(result)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
