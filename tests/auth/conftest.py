"""Fixtures: test-made signing keys and a real OpenID Connect provider that uses them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.auth import AuthConfig
from tests.auth.forge import AUDIENCE, KeyPair, ec_key, rsa_key
from tests.oidc.provider import IdentityProvider, running_provider


@pytest.fixture(scope="session")
def idp_keys() -> dict[str, KeyPair]:
    """The session IdP's signing keys, known to the tests so they can forge trusted tokens."""
    return {"rsa": rsa_key("test-rsa-1"), "ec": ec_key("test-ec-1")}


@pytest.fixture(scope="session")
def idp(idp_keys: dict[str, KeyPair]) -> Iterator[IdentityProvider]:
    """`oidc-provider` (Node) on 127.0.0.1, shared by tests that do not change its keys."""
    with running_provider([key.private_jwk for key in idp_keys.values()]) as provider:
        yield provider


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One client for every test request (a client per request costs an SSL context)."""
    with httpx.Client(timeout=10) as client:
        yield client


def auth_config(issuer: str, **overrides: Any) -> AuthConfig:
    """An AuthConfig for `issuer` with the test audience."""
    return AuthConfig(issuer=issuer, audience=AUDIENCE, **overrides)
