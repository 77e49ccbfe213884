"""Tokens from a real OpenID Connect provider pass; every kind of bad token is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from jose import jwe, jwk, jwt  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.auth.conftest import auth_config
from tests.auth.forge import (
    KeyPair,
    claims,
    compact,
    ec_key,
    hmac_with_public_key,
    rsa_key,
    sign,
    unb64,
    with_payload,
)
from tests.auth.protected_app import Gateway, protected
from tests.oidc.provider import IdentityProvider
from tests.support.server import serve


@pytest.fixture(scope="module")
def gateway(idp: IdentityProvider, http: httpx.Client) -> Iterator[Gateway]:
    """The protected app trusting the session IdP, default settings."""
    with protected(auth_config(idp.url), http) as gw:
        yield gw


def assert_invalid(response: httpx.Response, reason: str, token: str | None = None) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "invalid_token"
    assert reason in body["error"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="llm-gateway", error="invalid_token"')
    assert f'error_description="{body["error"]}"' in challenge
    if token:  # the token, or any recognisable piece of it, is never echoed
        assert not [part for part in token.split(".") if len(part) > 8 and part in response.text]


@pytest.mark.parametrize("resource", ["urn:llm-gateway", "urn:llm-gateway:ps256",
                                      "urn:llm-gateway:es256"])
def test_token_from_provider_passes(gateway: Gateway, idp: IdentityProvider, resource: str) -> None:
    token = idp.token(resource=resource)
    header = json.loads(unb64(token.split(".")[0]))
    assert header["alg"] == {"urn:llm-gateway": "RS256", "urn:llm-gateway:ps256": "PS256",
                             "urn:llm-gateway:es256": "ES256"}[resource]
    response = gateway.whoami(token)
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "llm-gateway-tests", "scopes": ["llm:invoke"],
                               "audience": "llm-gateway", "same_in_request_auth": True,
                               "authorization_seen": False}


def test_lowercase_scheme_accepted(gateway: Gateway, idp: IdentityProvider) -> None:
    assert gateway.whoami(idp.token(), scheme="bearer").status_code == 200
    assert gateway.whoami(idp.token(), scheme="BEARER").status_code == 200


def test_no_token_is_401_without_error_code(gateway: Gateway) -> None:
    response = gateway.whoami(None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="llm-gateway"'
    assert response.json() == {"error": "missing bearer token", "code": "invalid_token"}


def test_other_scheme_is_treated_as_no_token(gateway: Gateway) -> None:
    response = gateway.whoami("dXNlcjpwYXNz", scheme="Basic")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="llm-gateway"'


def test_two_authorization_headers_refused(gateway: Gateway, idp: IdentityProvider) -> None:
    token = idp.token()
    response = gateway.http.get(f"{gateway.url}/whoami", headers=[
        ("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")])
    assert_invalid(response, "malformed authorization header", token)


def test_health_is_exempt(gateway: Gateway) -> None:
    response = gateway.http.get(f"{gateway.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_streamed_response_passes_through(gateway: Gateway, idp: IdentityProvider) -> None:
    headers = {"Authorization": f"Bearer {idp.token()}"}
    with gateway.http.stream("GET", f"{gateway.url}/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        received = [chunk for chunk in response.iter_raw() if chunk]
    assert b"".join(received) == b"data: chunk 0\n\ndata: chunk 1\n\ndata: chunk 2\n\n"
    assert len(received) == 3  # arrived as three writes: the body was not buffered


Forger = Callable[[IdentityProvider, dict[str, KeyPair]], str]


def _alg_none(idp: IdentityProvider, keys: dict[str, KeyPair]) -> str:
    token = compact({"alg": "none", "typ": "JWT"}, claims(idp.url), b"")
    return token


def _expired(idp: IdentityProvider, keys: dict[str, KeyPair]) -> str:
    now = int(time.time())
    return sign(claims(idp.url, iat=now - 600, exp=now - 120), keys["rsa"])


def _not_yet_valid(idp: IdentityProvider, keys: dict[str, KeyPair]) -> str:
    return sign(claims(idp.url, nbf=int(time.time()) + 300), keys["rsa"])


def _issued_in_future(idp: IdentityProvider, keys: dict[str, KeyPair]) -> str:
    now = int(time.time())
    return sign(claims(idp.url, iat=now + 300, exp=now + 900), keys["ec"])


def _jwe(idp: IdentityProvider, keys: dict[str, KeyPair]) -> str:
    plaintext = json.dumps(claims(idp.url)).encode()
    token: bytes = jwe.encrypt(plaintext, keys["rsa"].public_pem, algorithm="RSA-OAEP",
                               encryption="A256GCM", kid=keys["rsa"].kid)
    return token.decode()


def _key_type_mismatch(idp: IdentityProvider, keys: dict[str, KeyPair]) -> str:
    # Signed with the EC key but naming the RSA key: the JWK's kty does not fit ES256.
    return sign(claims(idp.url), keys["ec"], kid=keys["rsa"].kid)


BAD_TOKENS: dict[str, tuple[Forger, str]] = {
    "malformed": (lambda idp, keys: "not-a-jwt", "malformed token"),
    "garbage-segments": (lambda idp, keys: "abc.def.ghi", "malformed token"),
    "header-not-object": (lambda idp, keys: compact([], {}, b"x"), "malformed token"),  # type: ignore[arg-type]
    "alg-none": (_alg_none, "unsupported algorithm: none"),
    "hs256-public-key-as-secret": (lambda idp, keys: hmac_with_public_key(
        claims(idp.url), keys["rsa"]), "unsupported algorithm: HS256"),
    "expired": (_expired, "token expired"),
    "not-yet-valid": (_not_yet_valid, "token not yet valid"),
    "issued-in-future": (_issued_in_future, "token issued in the future"),
    "no-exp": (lambda idp, keys: sign(claims(idp.url, exp=None), keys["rsa"]), "no expiry"),
    "wrong-issuer": (lambda idp, keys: sign(claims("http://127.0.0.1:1/evil"), keys["rsa"]),
                     "wrong issuer"),
    "wrong-audience-forged": (lambda idp, keys: sign(claims(idp.url, aud=["x", "y"]),
                                                     keys["ec"]), "wrong audience"),
    "wrong-audience-from-provider": (lambda idp, keys: idp.token(resource="urn:other-service"),
                                     "wrong audience"),
    "unknown-kid": (lambda idp, keys: sign(claims(idp.url), rsa_key("rogue-kid")),
                    "unknown signing key"),
    "tampered-payload": (lambda idp, keys: with_payload(idp.token(), sub="admin",
                                                        scope="llm:invoke llm:admin"),
                         "invalid signature"),
    "other-key-under-known-kid": (lambda idp, keys: sign(claims(idp.url), rsa_key("x"),
                                                         kid=keys["rsa"].kid),
                                  "invalid signature"),
    "other-ec-key-under-known-kid": (lambda idp, keys: sign(claims(idp.url), ec_key("x"),
                                                            kid=keys["ec"].kid),
                                     "invalid signature"),
    "key-type-mismatch": (_key_type_mismatch, "does not fit"),
    "jwe": (_jwe, "encrypted tokens (JWE) are not accepted"),
    "critical-header": (lambda idp, keys: compact({"alg": "RS256", "kid": "test-rsa-1",
                                                   "crit": ["exp"]}, claims(idp.url), b"sig"),
                        "critical header"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_token_refused(gateway: Gateway, idp: IdentityProvider,
                           idp_keys: dict[str, KeyPair], case: str) -> None:
    forge, reason = BAD_TOKENS[case]
    token = forge(idp, idp_keys)
    assert_invalid(gateway.whoami(token), reason, token)


def test_forged_token_with_trusted_key_passes(gateway: Gateway, idp: IdentityProvider,
                                              idp_keys: dict[str, KeyPair]) -> None:
    """The control for the forged cases: they fail for their flaw, not for being forged."""
    for key in idp_keys.values():
        response = gateway.whoami(sign(claims(idp.url), key))
        assert response.status_code == 200, response.text
        assert response.json()["subject"] == "forged-subject"


def test_token_without_kid_accepted_when_one_key_fits(
        gateway: Gateway, idp: IdentityProvider, idp_keys: dict[str, KeyPair]) -> None:
    response = gateway.whoami(sign(claims(idp.url), idp_keys["ec"], kid=None))
    assert response.status_code == 200, response.text


def test_embedded_jwk_jku_and_x5u_headers_ignored(
        gateway: Gateway, idp: IdentityProvider, idp_keys: dict[str, KeyPair]) -> None:
    """A rogue key offered inline or at a rogue URL is never used, and the URL never fetched."""
    rogue = rsa_key("test-rsa-1")
    public = {k: v for k, v in rogue.private_jwk.items() if k in ("kty", "n", "e", "kid")}
    fetched: list[str] = []

    async def rogue_jwks(request: Request) -> JSONResponse:
        fetched.append(request.url.path)
        return JSONResponse({"keys": [public]})

    rogue_app = Starlette(routes=[Route("/jwks", rogue_jwks), Route("/cert", rogue_jwks)])
    with serve(rogue_app) as rogue_server:
        assert gateway.http.get(f"{rogue_server.url}/jwks").status_code == 200  # it does serve
        fetched.clear()
        token = sign_with_headers(claims(idp.url), rogue, {
            "kid": "test-rsa-1", "jwk": public, "jku": f"{rogue_server.url}/jwks",
            "x5u": f"{rogue_server.url}/cert"})
        assert_invalid(gateway.whoami(token), "invalid signature", token)
    assert fetched == []


def sign_with_headers(body: dict[str, object], key: KeyPair, headers: dict[str, object]) -> str:
    token: str = jwt.encode(body, jwk.construct(key.private_key, key.alg), algorithm=key.alg,
                            headers=headers)
    return token


def test_leeway_applies_and_is_configurable(idp: IdentityProvider, idp_keys: dict[str, KeyPair],
                                            http: httpx.Client) -> None:
    now = int(time.time())
    token = sign(claims(idp.url, iat=now - 100, exp=now - 10), idp_keys["rsa"])
    with protected(auth_config(idp.url, leeway=30), http) as lenient:
        assert lenient.whoami(token).status_code == 200
    with protected(auth_config(idp.url, leeway=0), http) as strict:
        assert_invalid(strict.whoami(token), "token expired", token)
