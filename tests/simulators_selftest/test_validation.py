"""Requests the real provider would refuse get a 400 in that provider's error shape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulators import ProviderSimulator
from tests.simulators_selftest.loopback import CF_RUN, USER, client, error_shape

GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"

# provider -> (path, body); each body breaks one of the provider's rules.
BAD_REQUESTS: list[tuple[str, str, Any]] = [
    ("openai", "/v1/chat/completions", {"model": "gpt-4o-mini"}),
    ("openai", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}),
    ("openai", "/v1/chat/completions",
     {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 1}]}),
    ("groq", "/openai/v1/chat/completions", {"model": "m", "messages": [USER],
                                             "logit_bias": {"1": 1}}),
    ("groq", "/openai/v1/chat/completions", {"model": "m", "messages": [USER],
                                             "reasoning_format": "bogus"}),
    ("anthropic", "/v1/messages", {"model": "claude-sonnet-4-20250514", "messages": [USER]}),
    ("anthropic", "/v1/messages", {"model": "claude-sonnet-4-20250514", "max_tokens": 9,
                                   "messages": [{"role": "system", "content": "x"}, USER]}),
    ("anthropic", "/v1/messages", {"model": "claude-sonnet-4-20250514", "max_tokens": 9,
                                   "messages": []}),
    ("google", GEMINI_PATH, {}),
    ("google", GEMINI_PATH, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
    ("cohere", "/v2/chat", {"messages": [USER]}),
    ("cohere", "/v2/chat", {"model": "command-a-03-2025", "messages": [USER],
                            "temperature": 7}),
    ("cloudflare", CF_RUN, {"max_tokens": 5}),
    ("cloudflare", "/ai/v1/chat/completions", {"model": "@cf/meta/llama-3.1-8b-instruct"}),
    ("ollama", "/api/chat", {"messages": [USER]}),
    ("ollama", "/v1/chat/completions", {"model": "llama3.2", "messages": []}),
]


@pytest.mark.parametrize(("provider", "path", "body"), BAD_REQUESTS)
def test_rejected(simulators: dict[str, ProviderSimulator], provider: str, path: str,
                  body: Any) -> None:
    """400 with the provider's error body; the request is still recorded."""
    sim = simulators[provider]
    with client(sim) as http:
        response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    assert error_shape(provider, path, response.json()), response.text
    if provider == "anthropic":
        assert response.json()["error"]["type"] == "invalid_request_error"
    if provider == "google":
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert sim.last_request.body == body


def test_anthropic_missing_max_tokens_message(anthropic_sim: ProviderSimulator) -> None:
    """The missing-max_tokens error reads like the contract's example."""
    with client(anthropic_sim) as http:
        response = http.post("/v1/messages", json={"model": "m", "messages": [USER]})
    assert response.json() == anthropic_sim.contract.response("error_400_invalid_request").body


def test_openai_error_names_param(openai_sim: ProviderSimulator) -> None:
    """OpenAI's 400 names the offending parameter."""
    with client(openai_sim) as http:
        response = http.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert response.json()["error"]["param"] == "messages"


UNKNOWN_MODELS = [
    ("openai", "/v1/chat/completions", {"model": "gpt-does-not-exist", "messages": [USER]},
     404, "error_404_model_not_found"),
    ("groq", "/openai/v1/chat/completions", {"model": "llama-does-not-exist",
                                             "messages": [USER]}, 404,
     "error_404_model_not_found"),
    ("anthropic", "/v1/messages", {"model": "claude-does-not-exist", "max_tokens": 9,
                                   "messages": [USER]}, 404, "error_404_model_not_found"),
    ("google", "/v1beta/models/gemini-does-not-exist:generateContent",
     {"contents": [{"parts": [{"text": "hi"}]}]}, 404, "error_404_model_not_found"),
    ("cohere", "/v2/chat", {"model": "command-does-not-exist", "messages": [USER]}, 404,
     "error_404_model_not_found"),
    ("cloudflare", "/ai/run/@cf/meta/does-not-exist", {"prompt": "hi"}, 400,
     "error_400_no_such_model"),
    ("ollama", "/api/chat", {"model": "llama3.3", "messages": [USER]}, 404,
     "error_404_model_not_found"),
    ("ollama", "/v1/chat/completions", {"model": "llama3.3", "messages": [USER]}, 404,
     "openai_compat_error_404"),
]


@pytest.mark.parametrize(("provider", "path", "body", "status", "example"), UNKNOWN_MODELS)
def test_unknown_model(simulators: dict[str, ProviderSimulator], provider: str, path: str,
                       body: Any, status: int, example: str) -> None:
    """An unknown model gets the contract's not-found answer."""
    sim = simulators[provider]
    with client(sim) as http:
        response = http.post(path, json=body)
    assert response.status_code == status
    expected = sim.contract.response(example).body
    if provider == "ollama":
        assert response.json() == expected  # same model name as the contract's example
    else:
        assert response.json().keys() == expected.keys()
