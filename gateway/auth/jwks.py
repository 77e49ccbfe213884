"""The issuer's signing keys: discovered lazily, cached with a TTL, refreshed on demand.

Nothing here runs at start-up, so an identity provider that is down when the gateway starts
only makes protected requests answer 503 until it is back. Fetches are coalesced (one in
flight at a time), retried with a doubling back-off while failing, and fetches caused by
unknown key ids are limited to one per `jwks_min_refresh_interval`, so junk tokens cannot
make the gateway hammer its identity provider. Keys that disappear from the JWKS stop being
accepted at the first successful refresh; while refreshes fail, the last good keys are kept.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from gateway.auth.config import AuthConfig
from gateway.auth.errors import AuthUnavailable
from gateway.auth.keys import SigningKey, parse_jwk

log = logging.getLogger(__name__)


class KeyFetchFailed(Exception):
    """Discovery or the JWKS could not be fetched or made no sense."""


class KeyStore:
    """Signing keys of one issuer, fetched through the injected async HTTP client."""

    def __init__(self, config: AuthConfig, http: httpx.AsyncClient, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._keys: tuple[SigningKey, ...] | None = None
        self._jwks_uri: str | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._next_attempt_at = -math.inf
        self._failures = 0
        self._generation = 0  # counts completed fetch attempts; lets waiters skip a refetch
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[SigningKey, ...]:
        """The keys to verify with, fetching first when none are cached or the TTL ran out."""
        now = self._clock()
        stale = now - self._fetched_at >= self._config.jwks_cache_ttl
        if (self._keys is None or stale) and now >= self._next_attempt_at:
            await self._refresh()
        if self._keys is None:
            raise AuthUnavailable("identity provider unavailable: no signing keys could be "
                                  "fetched", retry_after=self._retry_after())
        return self._keys

    async def refresh_for_unknown_kid(self) -> bool:
        """Refetch because a token named an unknown key; rate-limited. True if it fetched."""
        now = self._clock()
        if now - self._attempted_at < self._config.jwks_min_refresh_interval:
            return False
        if now < self._next_attempt_at:
            return False
        await self._refresh()
        return True

    async def _refresh(self) -> None:
        seen = self._generation
        async with self._lock:
            if self._generation != seen:
                return  # another request fetched while this one waited: use its result
            self._attempted_at = self._clock()
            try:
                keys = await self._fetch()
            except KeyFetchFailed as exc:
                self._failures += 1
                delay = self._config.unavailable_retry_initial * 2 ** (self._failures - 1)
                cap = max(self._config.jwks_min_refresh_interval,
                          self._config.unavailable_retry_initial)
                self._next_attempt_at = self._clock() + min(delay, cap)
                log.warning("cannot fetch OIDC signing keys from %s: %s",
                            self._config.issuer, exc)
            else:
                self._keys = keys
                self._failures = 0
                self._fetched_at = self._clock()
                self._next_attempt_at = -math.inf
            self._generation += 1

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._next_attempt_at - self._clock()))

    async def _fetch(self) -> tuple[SigningKey, ...]:
        if self._jwks_uri is None:
            self._jwks_uri = await self._discover()
        try:
            body = await self._get_json(self._jwks_uri)
        except KeyFetchFailed:
            self._jwks_uri = None  # rediscover next time: the IdP may have moved its keys
            raise
        entries = body.get("keys")
        if not isinstance(entries, list):
            raise KeyFetchFailed("JWKS has no 'keys' list")
        return tuple(key for key in map(parse_jwk, entries) if key is not None)

    async def _discover(self) -> str:
        document = await self._get_json(self._config.discovery_url)
        if document.get("issuer") != self._config.issuer:
            raise KeyFetchFailed("discovery document names a different issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise KeyFetchFailed("discovery document has no usable jwks_uri")
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            # auth=None: whatever credentials the shared client carries are not for the IdP.
            response = await self._http.get(url, timeout=self._config.fetch_timeout,
                                            headers={"accept": "application/json"},
                                            auth=None, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise KeyFetchFailed(f"{url}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise KeyFetchFailed(f"{url} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise KeyFetchFailed(f"{url} did not answer JSON") from exc
        if not isinstance(body, dict):
            raise KeyFetchFailed(f"{url} did not answer a JSON object")
        return body
