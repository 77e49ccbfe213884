"""Verifying a bearer JWT: structure and header first, then key, signature, claims, scopes.

Everything checkable without a key is checked before any key is looked at: the header's
`alg` must be on the configured allow-list (so never `none`, never HS*), and must fit the
chosen JWK's type, curve and declared `alg`. The key is chosen by `kid` from the issuer's
JWKS only; `jku`, `x5u`, `x5c` and embedded `jwk` headers are never read. A token without a
`kid` is accepted only when the JWKS holds exactly one key fitting its algorithm, since then
there is no ambiguity to exploit. Encrypted tokens (JWE, five parts) are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeGuard

from jose import jws  # type: ignore[import-untyped]
from jose.exceptions import JOSEError  # type: ignore[import-untyped]

from gateway.auth.config import AuthConfig
from gateway.auth.errors import InsufficientScope, InvalidToken, UnknownSigningKey
from gateway.auth.jwks import KeyStore
from gateway.auth.keys import SigningKey

MAX_TOKEN_LENGTH = 16 * 1024
_SAFE_ALG = re.compile(r"[A-Za-z0-9+_.-]{1,32}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for. Deliberately holds no copy of the token itself."""

    subject: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any]


def _b64decode(segment: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", segment):
        raise InvalidToken("malformed token")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("malformed token") from exc


def _no_constants(name: str) -> Any:
    # json accepts NaN and Infinity; an `exp` of NaN would compare as never expired.
    raise ValueError(f"non-finite number {name}")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(value, dict):
        raise InvalidToken("malformed token")
    return value


def _number(value: Any) -> TypeGuard[int | float]:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return frozenset(found)


class TokenVerifier:
    """Checks bearer tokens against the configured issuer's keys and rules."""

    def __init__(self, config: AuthConfig, keys: KeyStore, *,
                 now: Callable[[], float] = time.time) -> None:
        self._config = config
        self._keys = keys
        self._now = now

    async def verify(self, token: str) -> Principal:
        """The principal a valid token stands for; raises InvalidToken or InsufficientScope."""
        header = self._check_header(token)
        alg: str = header["alg"]
        key = await self._select_key(header.get("kid"), alg)
        try:
            payload = jws.verify(token, key.verifier(alg), algorithms=[alg])
        except JOSEError as exc:
            raise InvalidToken("invalid signature") from exc
        claims = _json_object(payload)
        self._check_claims(claims)
        principal = Principal(subject=claims["sub"] if isinstance(claims.get("sub"), str) else None,
                              scopes=_scopes(claims), claims=MappingProxyType(claims))
        missing = tuple(s for s in self._config.required_scopes if s not in principal.scopes)
        if missing:
            raise InsufficientScope(missing, self._config.required_scopes)
        return principal

    def _check_header(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token: too long")
        parts = token.split(".")
        if len(parts) == 5:
            raise InvalidToken("encrypted tokens (JWE) are not accepted")
        if len(parts) != 3:
            raise InvalidToken("malformed token")
        header = _json_object(_b64decode(parts[0]))
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise InvalidToken("malformed token: no algorithm")
        if "enc" in header:
            raise InvalidToken("encrypted tokens (JWE) are not accepted")
        if alg not in self._config.algorithms:
            shown = alg if _SAFE_ALG.fullmatch(alg) else "?"
            raise InvalidToken(f"unsupported algorithm: {shown}")
        if not parts[1] or not parts[2]:
            raise InvalidToken("malformed token")
        if "crit" in header:
            raise InvalidToken("unsupported critical header parameter")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise InvalidToken("malformed token: bad key id")
        return header

    async def _select_key(self, kid: str | None, alg: str) -> SigningKey:
        keys = await self._keys.current()
        try:
            return self._pick(keys, kid, alg)
        except UnknownSigningKey:
            if not await self._keys.refresh_for_unknown_kid():
                raise
        return self._pick(await self._keys.current(), kid, alg)

    @staticmethod
    def _pick(keys: tuple[SigningKey, ...], kid: str | None, alg: str) -> SigningKey:
        if kid is None:
            fitting = [key for key in keys if key.fits(alg)]
            if len(fitting) != 1:
                raise InvalidToken("token has no key id (kid)")
            return fitting[0]
        named = [key for key in keys if key.kid == kid]
        if not named:
            raise UnknownSigningKey("unknown signing key")
        for key in named:
            if key.fits(alg):
                return key
        raise InvalidToken("signing key does not fit the token's algorithm")

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        now, leeway = self._now(), self._config.leeway
        if claims.get("iss") != self._config.issuer:
            raise InvalidToken("wrong issuer")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self._config.audience not in audiences:
            raise InvalidToken("wrong audience")
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if not _number(exp):
            raise InvalidToken("token has no expiry (exp)")
        if now >= exp + leeway:
            raise InvalidToken("token expired")
        if nbf is not None and (not _number(nbf) or now + leeway < nbf):
            raise InvalidToken("token not yet valid (nbf)")
        if iat is not None and (not _number(iat) or iat > now + leeway):
            raise InvalidToken("token issued in the future (iat)")
