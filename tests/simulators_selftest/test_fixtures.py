"""The fixtures serve all seven providers where the gateway's spec says it will call them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.simulators import CloudflareSimulator, ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.simulators_selftest.loopback import STREAMS, TIMEOUT

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
CONFIGS: dict[str, Any] = SPEC["components"]["schemas"]["Providers"]["x-provider-configs"]
MODELS = {"openai": "gpt-4o-mini", "groq": "llama-3.3-70b-versatile",
          "anthropic": "claude-sonnet-4-20250514", "google": "gemini-2.5-flash",
          "cohere": "command-a-03-2025", "cloudflare": "@cf/meta/llama-3.1-8b-instruct",
          "ollama": "llama3.2"}


def spec_auth(provider: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters the spec's auth_type prescribes for `key`."""
    config = CONFIGS[provider]
    headers = dict(config.get("extra_headers", {}))
    kind = config["auth_type"]
    if kind == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif kind == "xheader":
        headers[config["auth_name"]] = key
    if kind == "query":
        return headers, {config["auth_name"]: key}
    return headers, {}


def test_simulators_cover_the_spec(simulators: dict[str, ProviderSimulator]) -> None:
    """One simulator per provider id in x-provider-configs."""
    assert set(simulators) == set(CONFIGS)
    assert all(sim.provider_id == pid for pid, sim in simulators.items())


def test_gateway_env(simulators: dict[str, ProviderSimulator],
                     simulator_env: dict[str, str]) -> None:
    """URL and key per provider, the Cloudflare account id, no key for Ollama."""
    assert simulator_env == gateway_env(simulators)
    cloudflare = simulators["cloudflare"]
    assert isinstance(cloudflare, CloudflareSimulator)
    for pid, sim in simulators.items():
        assert simulator_env[f"{pid.upper()}_API_URL"] == sim.url
    assert "OLLAMA_API_KEY" not in simulator_env
    assert simulator_env["OPENAI_API_KEY"] == simulators["openai"].api_key
    assert simulator_env["CLOUDFLARE_ACCOUNT_ID"] == cloudflare.account_id
    assert cloudflare.url.endswith(f"/client/v4/accounts/{simulator_env['CLOUDFLARE_ACCOUNT_ID']}")


@pytest.mark.parametrize("provider", sorted(CONFIGS))
def test_spec_endpoints_answer(simulators: dict[str, ProviderSimulator], provider: str) -> None:
    """The spec's list and generate endpoints, called as the spec describes, answer 200."""
    sim, endpoints = simulators[provider], CONFIGS[provider]["endpoints"]
    headers, auth_query = spec_auth(provider, sim.api_key)
    listing = endpoints["list"]
    with httpx.Client(base_url=sim.url, headers=headers, timeout=TIMEOUT) as http:
        listed = http.get(listing["endpoint"], params={**listing.get("query", {}), **auth_query})
        generate = endpoints["generate"]
        path = generate["endpoint"].replace("{model+}", "{model}").format(model=MODELS[provider])
        body = {k: v for k, v in STREAMS[provider][1].items() if k != "stream"}
        if provider == "ollama":
            body["stream"] = False
        answered = http.post(path, params=auth_query, json=body)
    assert listed.status_code == 200, listed.text
    assert answered.status_code == 200, answered.text
    assert answered.headers["content-type"].startswith("application/json")
