"""Small httpx helpers shared by the self-tests."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from tests.simulators import ProviderSimulator
from tests.simulators.contracts import Example, split_frames

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


USER = {"role": "user", "content": "hi"}
CF_RUN = "/ai/run/@cf/meta/llama-3.1-8b-instruct"

# provider -> (path, body, transcript it streams) for a plain streamed chat request.
STREAMS: dict[str, tuple[str, dict[str, Any], str]] = {
    "openai": ("/v1/chat/completions",
               {"model": "gpt-4o-mini", "stream": True, "messages": [USER]},
               "stream-recorded-no-usage.txt"),
    "groq": ("/openai/v1/chat/completions",
             {"model": "llama-3.3-70b-versatile", "stream": True, "messages": [USER]},
             "stream.txt"),
    "anthropic": ("/v1/messages",
                  {"model": "claude-sonnet-4-20250514", "max_tokens": 64, "stream": True,
                   "messages": [USER]}, "stream-recorded-padded.txt"),
    "google": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, "stream.txt"),
    "cohere": ("/v2/chat", {"model": "command-a-03-2025", "stream": True, "messages": [USER]},
               "stream.txt"),
    "cloudflare": (CF_RUN, {"messages": [USER], "stream": True}, "stream.txt"),
    "ollama": ("/api/chat", {"model": "llama3.2", "messages": [USER]},
               "stream-chat.ndjson.txt"),
}
# provider -> a cheap JSON GET under the base URL.
LISTS = {
    "openai": "/v1/models", "groq": "/openai/v1/models", "anthropic": "/v1/models",
    "google": "/v1beta/models", "cohere": "/v1/models", "cloudflare": "/ai/models/search",
    "ollama": "/api/tags",
}


def stream_frames(sim: ProviderSimulator) -> list[bytes]:
    """The frames the default streamed chat request is answered with."""
    transcript = STREAMS[sim.provider_id][2]
    return split_frames(sim.contract.transcript(transcript), sim.frame_end_for(transcript))


def read_stream(sim: ProviderSimulator) -> tuple[list[tuple[float, bytes]], Exception | None]:
    """Send the default streamed chat request; raw chunks with arrival times, and any error."""
    path, body, _ = STREAMS[sim.provider_id]
    chunks: list[tuple[float, bytes]] = []
    with client(sim) as http, http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        start = time.monotonic()
        try:
            for chunk in response.iter_raw():
                chunks.append((time.monotonic() - start, chunk))
        except httpx.HTTPError as exc:
            return chunks, exc
    return chunks, None


def error_shape(provider: str, path: str, body: Any) -> bool:
    """Whether `body` has the provider's error shape (see quirks.json)."""
    if provider in ("openai", "groq") or (provider == "ollama" and path.startswith("/v1/")):
        return {"message", "type"} <= set(body["error"])
    if provider == "anthropic":
        return body["type"] == "error" and {"type", "message"} <= set(body["error"])
    if provider == "google":
        return {"code", "message", "status"} <= set(body["error"])
    if provider == "cohere":
        return set(body) == {"id", "message"}
    if provider == "cloudflare":
        return bool(body["success"] is False and body["result"] is None and body["errors"])
    return isinstance(body["error"], str)
