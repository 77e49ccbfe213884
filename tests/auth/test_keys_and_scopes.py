"""Key discovery, caching, rotation and rate limits against a real provider; scopes (403)."""

from __future__ import annotations

import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.auth.conftest import auth_config
from tests.auth.forge import KeyPair, claims, rsa_key, sign
from tests.auth.protected_app import protected
from tests.oidc.provider import IdentityProvider, running_provider


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_missing_scope_is_403(idp: IdentityProvider, http: httpx.Client) -> None:
    token = idp.token(scope="llm:invoke")
    with protected(auth_config(idp.url, required_scopes=("llm:invoke", "llm:admin")), http) as gw:
        response = gw.whoami(token)
        assert response.status_code == 403
        assert response.json() == {"error": "token lacks required scope(s): llm:admin",
                                    "code": "insufficient_scope"}
        assert response.headers["www-authenticate"] == (
            'Bearer realm="llm-gateway", error="insufficient_scope", '
            'scope="llm:invoke llm:admin"')
        assert gw.whoami(idp.token(scope="llm:invoke llm:admin")).status_code == 200


def test_scp_list_claim_counts_as_scopes(idp: IdentityProvider,
                                         idp_keys: dict[str, KeyPair], http: httpx.Client) -> None:
    token = sign(claims(idp.url, scope=None, scp=["llm:invoke", "llm:admin"]), idp_keys["rsa"])
    with protected(auth_config(idp.url, required_scopes=("llm:admin",)), http) as gw:
        response = gw.whoami(token)
        assert response.status_code == 200, response.text
        assert response.json()["scopes"] == ["llm:admin", "llm:invoke"]


def test_key_rotation_picked_up_and_removed_key_refused(http: httpx.Client) -> None:
    old, new = rsa_key(f"old-{uuid.uuid4().hex[:8]}"), rsa_key(f"new-{uuid.uuid4().hex[:8]}")
    with running_provider([old.private_jwk]) as idp:
        config = auth_config(idp.url, jwks_cache_ttl=1.0, jwks_min_refresh_interval=0.0)
        with protected(config, http) as gw:
            old_token = idp.token()
            assert gw.whoami(old_token).status_code == 200
            fetches = idp.stats()["jwks"]

            idp.set_keys([new.private_jwk, old.private_jwk])  # rotate, old still published
            new_token = idp.token()
            assert new_token != old_token
            assert gw.whoami(new_token).status_code == 200  # unknown kid -> refetched
            assert idp.stats()["jwks"] == fetches + 1
            assert gw.whoami(old_token).status_code == 200

            idp.set_keys([new.private_jwk])  # the old key is retired
            time.sleep(1.2)  # past the cache TTL: the next request refetches
            response = gw.whoami(old_token)
            assert response.status_code == 401
            assert response.json()["error"] == "unknown signing key"
            assert gw.whoami(new_token).status_code == 200


def test_token_without_kid_refused_when_several_keys_fit(http: httpx.Client) -> None:
    first, second = rsa_key("first"), rsa_key("second")
    with running_provider([first.private_jwk, second.private_jwk]) as idp:
        with protected(auth_config(idp.url), http) as gw:
            response = gw.whoami(sign(claims(idp.url), first, kid=None))
            assert response.status_code == 401
            assert response.json()["error"] == "token has no key id (kid)"
            assert gw.whoami(sign(claims(idp.url), first)).status_code == 200


def test_provider_down_at_startup_gives_503_then_recovers(idp_keys: dict[str, KeyPair],
                                                         http: httpx.Client) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = auth_config(issuer, jwks_min_refresh_interval=0.5, unavailable_retry_initial=0.1)
    with protected(config, http) as gw:
        forged = sign(claims(issuer), idp_keys["rsa"])
        response = gw.whoami(forged)
        assert response.status_code == 503
        assert response.json()["code"] == "auth_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        assert "www-authenticate" not in response.headers
        assert gw.http.get(f"{gw.url}/health").status_code == 200

        with running_provider([idp_keys["rsa"].private_jwk], port=port) as idp:
            token = idp.token()
            deadline = time.monotonic() + 10
            status = 503
            while status == 503 and time.monotonic() < deadline:
                status = gw.whoami(token).status_code
                time.sleep(0.05)
            assert status == 200


def test_discovery_must_name_the_configured_issuer(idp: IdentityProvider,
                                                  http: httpx.Client) -> None:
    with protected(auth_config(idp.url + "/"), http) as gw:  # the IdP says it is idp.url
        response = gw.whoami(idp.token())
        assert response.status_code == 503
        assert response.json()["code"] == "auth_unavailable"


def test_junk_kids_do_not_hammer_the_provider(idp: IdentityProvider, http: httpx.Client) -> None:
    with protected(auth_config(idp.url, jwks_min_refresh_interval=60.0), http) as gw:
        before = idp.stats()
        assert gw.whoami(idp.token()).status_code == 200
        rogue = rsa_key("rogue")
        junk = [sign(claims(idp.url), rogue, kid=uuid.uuid4().hex) for _ in range(30)]
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(lambda token: gw.whoami(token).status_code, junk))
        assert statuses == [401] * len(junk)
        after = idp.stats()
    assert after["jwks"] - before["jwks"] == 1
    assert after["discovery"] - before["discovery"] == 1


def test_junk_kid_refreshes_are_rate_limited(idp: IdentityProvider, http: httpx.Client) -> None:
    interval, duration = 0.5, 2.0
    rogue = rsa_key("rogue")
    with protected(auth_config(idp.url, jwks_min_refresh_interval=interval), http) as gw:
        before = idp.stats()["jwks"]
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < duration:
            junk = sign(claims(idp.url), rogue, kid=uuid.uuid4().hex)
            assert gw.whoami(junk).status_code == 401
            sent += 1
        fetched = idp.stats()["jwks"] - before
    assert sent > fetched
    assert 2 <= fetched <= 1 + duration / interval + 1


def test_concurrent_first_requests_share_one_fetch(idp: IdentityProvider,
                                                  http: httpx.Client) -> None:
    tokens = [idp.token() for _ in range(3)] * 8
    idp.delay_jwks(0.5)  # every request arrives while the first fetch is still in flight
    try:
        with protected(auth_config(idp.url), http) as gw:
            before = idp.stats()["jwks"]
            with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
                statuses = list(pool.map(lambda token: gw.whoami(token).status_code, tokens))
            assert statuses == [200] * len(tokens)
            assert idp.stats()["jwks"] - before == 1
    finally:
        idp.delay_jwks(0)
