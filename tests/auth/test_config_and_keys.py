"""AuthConfig validation, JWKS entry parsing, and the non-HTTP scopes of the middleware."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk  # type: ignore[import-untyped]

from gateway.auth import AuthConfig, AuthMiddleware
from gateway.auth.keys import parse_jwk
from tests.auth.conftest import auth_config
from tests.auth.forge import KeyPair, claims, ec_key, rsa_key, sign
from tests.oidc.provider import IdentityProvider


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "RSA-OAEP", "EdDSA"])
def test_config_refuses_unsafe_algorithms(alg: str) -> None:
    with pytest.raises(ValueError, match=alg):
        AuthConfig(issuer="http://127.0.0.1:1", audience="a", algorithms=("RS256", alg))


@pytest.mark.parametrize(("given", "used"), [(120, 60.0), (-5, 0.0), (12.5, 12.5)])
def test_config_clamps_leeway(given: float, used: float) -> None:
    assert AuthConfig(issuer="http://127.0.0.1:1", audience="a", leeway=given).leeway == used


def test_config_needs_issuer_and_audience() -> None:
    with pytest.raises(ValueError, match="issuer"):
        AuthConfig(issuer="", audience="a")
    with pytest.raises(ValueError, match="audience"):
        AuthConfig(issuer="http://127.0.0.1:1", audience="")


def test_config_defaults() -> None:
    config = AuthConfig(issuer="http://127.0.0.1:1/", audience="a")
    assert config.exempt_paths == ("/health",)
    assert config.discovery_url == "http://127.0.0.1:1/.well-known/openid-configuration"
    assert "HS256" not in config.algorithms and "PS512" in config.algorithms


def _public(key: KeyPair, **extra: Any) -> dict[str, Any]:
    members = ("kty", "n", "e", "crv", "x", "y", "kid")
    return {**{k: v for k, v in key.private_jwk.items() if k in members}, **extra}


def test_jwks_entries_that_are_not_signature_keys_are_skipped() -> None:
    rsa_pair, ec_pair = rsa_key("r"), ec_key("e")
    assert parse_jwk(_public(rsa_pair)) is not None
    assert parse_jwk(_public(rsa_pair, use="enc")) is None
    assert parse_jwk(_public(rsa_pair, alg="RSA-OAEP")) is None
    assert parse_jwk(_public(rsa_pair, key_ops=["encrypt"])) is None
    assert parse_jwk(_public(rsa_pair, kid=7)) is None
    assert parse_jwk({"kty": "oct", "k": "c2VjcmV0"}) is None
    assert parse_jwk(_public(ec_pair, x="AAAA")) is None  # not a point on the curve
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_jwk = jwk.construct(small.public_key(), "RS256").to_dict()
    assert parse_jwk(small_jwk) is None


def test_private_members_of_a_jwk_are_not_used() -> None:
    key = parse_jwk(rsa_key("r").private_jwk)
    assert key is not None
    assert isinstance(key.public_key, rsa.RSAPublicKey)


def test_key_fits_only_its_type_curve_and_declared_alg() -> None:
    rsa_only = parse_jwk(_public(rsa_key("r")))
    rs256 = parse_jwk(_public(rsa_key("r"), alg="RS256"))
    p256 = parse_jwk(_public(ec_key("e")))
    assert rsa_only and rs256 and p256
    assert rsa_only.fits("RS256") and rsa_only.fits("PS384") and not rsa_only.fits("ES256")
    assert rs256.fits("RS256") and not rs256.fits("PS256")
    assert p256.fits("ES256") and not p256.fits("ES384") and not p256.fits("RS256")


async def _websocket(app: AuthMiddleware, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    sent: list[Any] = []
    scope = {"type": "websocket", "path": "/v1/ws", "headers": headers}

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
async def test_websocket_needs_a_token_and_lifespan_passes(
        idp: IdentityProvider, idp_keys: dict[str, KeyPair]) -> None:
    reached: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    async with httpx.AsyncClient() as http:
        app = AuthMiddleware(inner, config=auth_config(idp.url), http=http)
        assert await _websocket(app, []) == [{"type": "websocket.close", "code": 1008}]
        assert reached == []
        token = sign(claims(idp.url), idp_keys["rsa"])
        assert await _websocket(app, [(b"authorization", f"Bearer {token}".encode())]) == []
        assert reached[-1]["auth"].subject == "forged-subject"
        assert reached[-1]["headers"] == []
        await app({"type": "lifespan"}, _never, _never)
        assert reached[-1] == {"type": "lifespan"}


async def _never(*args: Any) -> Any:
    raise AssertionError("not expected to be called")
