"""Authentication through the whole gateway: a real IdP, real tokens, real upstream calls."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.auth.forge import AUDIENCE
from tests.oidc.provider import IdentityProvider
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateway(idp: IdentityProvider, simulators: dict[str, ProviderSimulator]
            ) -> Iterator[RunningServer]:
    """The gateway with ENABLE_AUTH=true, trusting the test identity provider."""
    env = gateway_env(simulators) | {"ENABLE_AUTH": "true", "OIDC_ISSUER_URL": idp.url,
                                     "OIDC_AUDIENCE": AUDIENCE}
    with run_gateway(env) as server:
        yield server


def test_a_valid_token_reaches_the_provider_without_its_authorization_header(
        gateway: RunningServer, idp: IdentityProvider, openai_sim: ProviderSimulator) -> None:
    token = idp.token()
    r = httpx.post(f"{gateway.url}/llms/openai/generate", json=HELLO, timeout=10,
                   headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200, r.text
    sent = openai_sim.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {openai_sim.api_key}"
    assert token not in str(sent.headers)


def test_protected_endpoints_refuse_without_a_token(gateway: RunningServer,
                                                    openai_sim: ProviderSimulator) -> None:
    for method, path in [("GET", "/llms"), ("GET", "/llms/openai"),
                         ("POST", "/llms/openai/generate")]:
        r = httpx.request(method, f"{gateway.url}{path}", json=HELLO, timeout=10)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["code"]
    r = httpx.post(f"{gateway.url}/llms/openai/generate", json=HELLO, timeout=10,
                   headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert "not.a.jwt" not in r.text
    assert openai_sim.requests == []


def test_health_needs_no_token(gateway: RunningServer) -> None:
    assert httpx.get(f"{gateway.url}/health").status_code == 200


def test_the_sdks_see_auth_failures_in_their_own_shape(gateway: RunningServer,
                                                      idp: IdentityProvider) -> None:
    import anthropic
    import openai

    # Every SDK client is closed here: one left to the garbage collector warns about its
    # socket in whichever later test happens to collect it.
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-a-jwt",
                       max_retries=0) as refused, pytest.raises(openai.AuthenticationError) as oa:
        refused.chat.completions.create(model="openai/gpt-4o-mini",
                                        messages=[{"role": "user", "content": "x"}])
    assert oa.value.status_code == 401
    assert isinstance(oa.value.body, dict) and oa.value.body["message"]
    with anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0,
                             default_headers={"Authorization": "Bearer not-a-jwt"}) as client, \
            pytest.raises(anthropic.AuthenticationError) as an:
        client.messages.create(model="anthropic/claude-sonnet-4-20250514", max_tokens=5,
                               messages=[{"role": "user", "content": "x"}])
    assert an.value.status_code == 401
    # With a real token, the OpenAI SDK (which sends its key as a bearer token) gets through.
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=idp.token(),
                       max_retries=0) as allowed:
        ok = allowed.chat.completions.create(model="openai/gpt-4o-mini",
                                             messages=[{"role": "user", "content": "x"}])
    assert ok.choices[0].message.content
