"""Small httpx helpers shared by the self-tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from tests.simulators import ProviderSimulator
from tests.simulators.contracts import Example

TIMEOUT = httpx.Timeout(10.0)


def send_example(sim: ProviderSimulator, example: Example,
                 headers: Mapping[str, str] | None = None) -> httpx.Response:
    """Send a requests.json example verbatim (its own path, query, headers and body)."""
    raw = example.raw
    all_headers = {**raw.get("headers", {}), **(headers or {})}
    with httpx.Client(base_url=sim.origin, timeout=TIMEOUT) as client:
        return client.request(raw["method"], raw["path"], params=raw.get("query"),
                              headers=all_headers, json=raw.get("body"))


def auth_headers(sim: ProviderSimulator) -> dict[str, str]:
    """Valid credentials for `sim`, the way its provider expects them."""
    by_provider = {
        "anthropic": {"x-api-key": sim.api_key, "anthropic-version": "2023-06-01"},
        "google": {"x-goog-api-key": sim.api_key},
        "ollama": {},
    }
    return by_provider.get(sim.provider_id, {"Authorization": f"Bearer {sim.api_key}"})


def client(sim: ProviderSimulator, **kwargs: Any) -> httpx.Client:
    """A client rooted at the simulator's base URL, with valid credentials."""
    kwargs.setdefault("timeout", TIMEOUT)
    return httpx.Client(base_url=sim.url, headers=auth_headers(sim), **kwargs)
