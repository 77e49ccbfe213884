"""`GET /v1/models`: every configured provider's models in OpenAI's list shape."""

from __future__ import annotations

import time

import httpx
import openai

from tests.clients.expected import body
from tests.simulators import ProviderSimulator
from tests.support.server import RunningServer


def _contract_ids() -> set[str]:
    """Models the contracts list for providers whose list is a single page."""
    ids = {f"openai/{m['id']}" for m in body("openai", "list_models")["data"]}
    ids |= {f"groq/{m['id']}" for m in body("groq", "list_models")["data"]}
    ids |= {f"ollama/{m['name']}" for m in body("ollama", "tags")["models"]}
    return ids


def test_models_list_spans_every_provider(openai_client: openai.OpenAI,
                                          simulators: dict[str, ProviderSimulator]) -> None:
    models = list(openai_client.models.list())
    ids = [m.id for m in models]
    assert len(ids) == len(set(ids))
    assert _contract_ids() <= set(ids)
    assert {"anthropic/claude-sonnet-4-20250514", "google/gemini-2.5-flash",
            "cloudflare/@cf/meta/llama-3.3-70b-instruct-fp8-fast"} <= set(ids)
    assert {m.id.partition("/")[0] for m in models} == set(simulators)
    for model in models:
        assert model.object == "model" and isinstance(model.created, int)
        assert model.owned_by == model.id.partition("/")[0]
    created = {m.id: m.created for m in models}
    first = body("openai", "list_models")["data"][0]
    assert created[f"openai/{first['id']}"] == first["created"]


def test_failing_providers_are_left_out(gateway: RunningServer,
                                        simulators: dict[str, ProviderSimulator]) -> None:
    simulators["cohere"].fail_next(500, times=10)
    simulators["groq"].hang()
    started = time.monotonic()
    response = httpx.get(f"{gateway.url}/v1/models", timeout=30)
    assert time.monotonic() - started < 15, "a hung provider must not stall the list"
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list"
    providers = {m["id"].partition("/")[0] for m in listing["data"]}
    assert providers == set(simulators) - {"cohere", "groq"}
