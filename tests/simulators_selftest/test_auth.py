"""Credentials are checked the way each provider checks them, with its real error bodies."""

from __future__ import annotations

import httpx
import pytest

from tests.simulators import ProviderSimulator
from tests.simulators_selftest.loopback import TIMEOUT, auth_headers, client

# provider -> (a cheap GET path under the base URL, bad-credential headers, example name)
WRONG_KEY = {
    "openai": ("/v1/models", {"Authorization": "Bearer sk-wrong"}, "error_401_invalid_key"),
    "groq": ("/openai/v1/models", {"Authorization": "Bearer gsk_wrong"}, "error_401_invalid_key"),
    "anthropic": ("/v1/models", {"x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"},
                  "error_401_authentication"),
    "google": ("/v1beta/models", {"x-goog-api-key": "AIzaWrong"}, "error_400_invalid_key"),
    "cohere": ("/v1/models", {"Authorization": "Bearer co-wrong"}, "error_401_invalid_key"),
    "cloudflare": ("/ai/models/search", {"Authorization": "Bearer cf-wrong"}, "error_401_auth"),
}
MISSING_KEY = {
    "openai": ("/v1/models", "error_401_invalid_key"),
    "groq": ("/openai/v1/models", "error_401_invalid_key"),
    "anthropic": ("/v1/models", "error_401_authentication"),
    "google": ("/v1beta/models", "error_403_missing_key"),
    "cohere": ("/v1/models", "error_401_missing_key"),
    "cloudflare": ("/ai/models/search", "error_401_auth"),
}


@pytest.mark.parametrize("provider", sorted(WRONG_KEY))
def test_wrong_key(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """A wrong key gets the provider's own status and body."""
    sim = simulators[provider]
    path, headers, example_name = WRONG_KEY[provider]
    response = httpx.get(sim.url + path, headers=headers, timeout=TIMEOUT)
    example = sim.contract.response(example_name)
    assert (response.status_code, response.json()) == (example.status, example.body)


@pytest.mark.parametrize("provider", sorted(MISSING_KEY))
def test_missing_key(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """No credentials at all get the provider's own status and body."""
    sim = simulators[provider]
    path, example_name = MISSING_KEY[provider]
    response = httpx.get(sim.url + path, timeout=TIMEOUT)
    example = sim.contract.response(example_name)
    assert (response.status_code, response.json()) == (example.status, example.body)


@pytest.mark.parametrize("provider", sorted(WRONG_KEY))
def test_right_key(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """The expected key passes."""
    sim = simulators[provider]
    with client(sim) as http:
        assert http.get(WRONG_KEY[provider][0]).status_code == 200


def test_key_is_a_constructor_parameter() -> None:
    """A simulator built with another key expects that key."""
    from tests.simulators import OpenAISimulator
    from tests.support.server import serve

    sim = OpenAISimulator(api_key="sk-custom")
    with serve(sim.app) as server:
        sim.origin = server.url
        with client(sim) as http:
            assert http.get("/v1/models").status_code == 200
        assert httpx.get(sim.url + "/v1/models", headers={
            "Authorization": "Bearer sk-test-0000000000000000"}).status_code == 401


def test_anthropic_requires_version_header(anthropic_sim: ProviderSimulator) -> None:
    """x-api-key alone is not enough: anthropic-version is required."""
    response = httpx.get(anthropic_sim.url + "/v1/models",
                         headers={"x-api-key": anthropic_sim.api_key}, timeout=TIMEOUT)
    example = anthropic_sim.contract.response("error_400_missing_version_header")
    assert (response.status_code, response.json()) == (400, example.body)


def test_google_key_in_query(google_sim: ProviderSimulator) -> None:
    """?key= works as well as the header, and a wrong one is 400 API_KEY_INVALID."""
    ok = httpx.get(google_sim.url + "/v1beta/models", params={"key": google_sim.api_key})
    bad = httpx.get(google_sim.url + "/v1beta/models", params={"key": "nope"})
    assert ok.status_code == 200
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_google_error_on_array_stream_is_an_array(google_sim: ProviderSimulator) -> None:
    """streamGenerateContent without alt=sse wraps even errors in a JSON array."""
    response = httpx.post(
        google_sim.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        params={"key": "nope"}, json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert response.status_code == 400
    assert response.json()[0]["error"]["status"] == "INVALID_ARGUMENT"


def test_cloudflare_wrong_account(cloudflare_sim: ProviderSimulator) -> None:
    """Another account id does not route: 404 with Cloudflare's v4 envelope."""
    url = cloudflare_sim.url.replace(cloudflare_sim.base_path(), "/client/v4/accounts/0000")
    response = httpx.get(url + "/ai/models/search", headers=auth_headers(cloudflare_sim))
    body = response.json()
    assert response.status_code == 404
    assert (body["success"], body["result"], body["errors"][0]["code"]) == (False, None, 7003)


def test_ollama_needs_no_key(ollama_sim: ProviderSimulator) -> None:
    """A local Ollama answers without credentials."""
    response = httpx.get(ollama_sim.url + "/api/tags", timeout=TIMEOUT)
    assert response.json() == ollama_sim.contract.response("tags").body
