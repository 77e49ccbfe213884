"""Scenario selection, and agreement between streamed and non-streamed answers.

Each (provider, scenario) request is sent twice, without and with streaming. The JSON answer
must be the scenario's contract body; the stream must be its transcript byte for byte (or,
where the contract has none, a rendering that says the same thing as the body).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.simulators import ProviderSimulator
from tests.simulators_selftest.answers import from_body, from_stream
from tests.simulators_selftest.loopback import CF_RUN, USER, client

GEMINI = "/v1beta/models/gemini-2.5-flash"


def example_body(sim: ProviderSimulator, name: str) -> dict[str, Any]:
    """A requests.json body without its stream flag."""
    body: dict[str, Any] = sim.contract.request(name).body
    body.pop("stream", None)
    body.pop("stream_options", None)
    return body


def openai_followup() -> dict[str, Any]:
    """A tool-result turn in OpenAI's shape."""
    return {"model": "m", "messages": [
        USER, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"}]}


CHAT_PATHS = {"openai": "/v1/chat/completions", "groq": "/openai/v1/chat/completions",
              "anthropic": "/v1/messages", "google": GEMINI, "cohere": "/v2/chat",
              "cloudflare": CF_RUN, "ollama": "/api/chat"}
TEXT = {"model": "m", "messages": [USER]}
GEMINI_TEXT = {"contents": [{"parts": [{"text": "hi"}]}]}
# provider -> scenario -> (path, or "" for the chat path; body, or a requests.json example name)
REQUESTS: dict[str, dict[str, tuple[str, Any]]] = {
    "openai": {"text": ("", TEXT), "tools": ("", "chat_tools"),
               "followup": ("", "chat_tool_result_followup"),
               "length": ("", {**TEXT, "max_completion_tokens": 2})},
    "groq": {"text": ("", TEXT), "tools": ("", "chat_tools"), "followup": ("", None)},
    "anthropic": {"text": ("", {**TEXT, "max_tokens": 64}), "tools": ("", "messages_tools"),
                  "followup": ("", "messages_tool_result_followup"),
                  "thinking": ("", "messages_extended_thinking"),
                  "max_tokens": ("", {**TEXT, "max_tokens": 3})},
    "google": {"text": ("", GEMINI_TEXT), "tools": ("", "generate_tools"),
               "followup": ("", "generate_function_response_followup"),
               "max_tokens": ("", {**GEMINI_TEXT, "generationConfig": {"maxOutputTokens": 2}})},
    "cohere": {"text": ("", TEXT), "tools": ("", "chat_tools"),
               "followup": ("", "chat_tool_result_followup"),
               "max_tokens": ("", {**TEXT, "max_tokens": 2})},
    "cloudflare": {"text": ("", {"messages": [USER]}), "tools": ("", "run_tools"),
                   "followup": ("", {"messages": [USER, {"role": "tool", "content": "18C"}]}),
                   "compat": ("/ai/v1/chat/completions",
                              {**TEXT, "model": "@cf/meta/llama-3.1-8b-instruct"})},
    "ollama": {"text": ("", {**TEXT, "model": "llama3.2"}), "tools": ("", "chat_tools"),
               "generate": ("/api/generate", {"model": "llama3.2", "prompt": "hi"}),
               "generate_length": ("/api/generate", {"model": "llama3.2", "prompt": "hi",
                                                     "options": {"num_predict": 3}}),
               "compat": ("/v1/chat/completions", {**TEXT, "model": "llama3.2"})},
}


def request_for(sim: ProviderSimulator, scenario: str) -> tuple[str, dict[str, Any]]:
    """Path and non-streamed body that select `scenario` on `sim`."""
    path, body = REQUESTS[sim.provider_id][scenario]
    if body is None:
        body = openai_followup()
    elif isinstance(body, str):
        body = example_body(sim, body)
    return path or CHAT_PATHS[sim.provider_id], copy.deepcopy(body)


def streamed(provider: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The streaming variant of a request."""
    if provider == "google":
        return path + ":streamGenerateContent?alt=sse", body
    body = {**copy.deepcopy(body), "stream": True}
    if provider in ("openai", "groq") or path.endswith("/chat/completions"):
        body["stream_options"] = {"include_usage": True}
    return path, body


def unstreamed(provider: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The non-streaming variant (Gemini names the method; Ollama streams unless told not to)."""
    if provider == "google":
        return path + ":generateContent", body
    if provider == "ollama" and path.startswith("/api/"):
        return path, {**body, "stream": False}
    return path, body


SCENARIOS = [(p, name) for p, table in REQUESTS.items() for name in table]
# Scenario pairs whose contract body and transcript were captured from different prompts, so
# their text differs (tool calls and finish reasons still agree where present).
DIFFERENT_TEXT = {("cohere", "text"), ("cohere", "followup"),
                  ("cloudflare", "text"), ("cloudflare", "followup"), ("cloudflare", "compat"),
                  ("ollama", "text"), ("ollama", "generate")}


@pytest.mark.parametrize(("provider", "scenario"), SCENARIOS)
def test_scenario(simulators: dict[str, ProviderSimulator], provider: str,
                  scenario: str) -> None:
    """JSON = contract body; stream = contract transcript, or a faithful rendering."""
    sim = simulators[provider]
    path, body = request_for(sim, scenario)
    stream_path, stream_body = streamed(provider, path, body)
    with client(sim) as http:
        plain_path, plain_body = unstreamed(provider, path, body)
        plain = http.post(plain_path, json=plain_body)
        stream = http.post(stream_path, json=stream_body)
    expected_body = sim.scenario_body(scenario)[0]
    assert (plain.status_code, stream.status_code) == (200, 200), plain.text + stream.text
    assert plain.json() == expected_body
    transcript = sim.scenarios[scenario].stream
    if transcript is not None:
        assert stream.content == sim.contract.transcript(transcript)
    kind = "compat" if scenario == "compat" else provider
    assert stream.headers["content-type"].startswith(
        "text/event-stream" if kind != "ollama" else "application/x-ndjson")
    from_json, from_sse = from_body(kind, plain.json()), from_stream(kind, stream.content)
    assert from_json.tool_args == from_sse.tool_args
    if provider != "cloudflare" or scenario == "compat":
        assert from_json.finish == from_sse.finish
    if (provider, scenario) not in DIFFERENT_TEXT:
        assert from_json.text == from_sse.text


def test_openai_tool_stream_without_usage(openai_sim: ProviderSimulator) -> None:
    """Without include_usage the usage chunk is left out of the tool-call transcript."""
    body = {**example_body(openai_sim, "chat_tools"), "stream": True}
    with client(openai_sim) as http:
        raw = http.post("/v1/chat/completions", json=body).content
    transcript = openai_sim.contract.transcript("stream-tool-calls.txt")
    assert b'"choices":[]' in transcript
    assert b'"choices":[]' not in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    assert from_stream("openai", raw) == from_stream("openai", transcript)


def test_google_stream_without_alt_sse(google_sim: ProviderSimulator) -> None:
    """Without alt=sse the answer is the incrementally written JSON array."""
    with client(google_sim) as http:
        text = http.post(GEMINI + ":streamGenerateContent", json=GEMINI_TEXT)
        tools = http.post(GEMINI + ":streamGenerateContent",
                          json=example_body(google_sim, "generate_tools"))
    assert text.content == google_sim.contract.transcript("stream-json-array-no-alt.txt")
    assert text.headers["content-type"].startswith("application/json")
    calls = [p["functionCall"] for p in tools.json()[0]["candidates"][0]["content"]["parts"]]
    assert calls == [{"name": "get_weather", "args": {"location": "Tokyo"}}]


def test_forced_transcript(google_sim: ProviderSimulator) -> None:
    """`sim.transcript` swaps in another contract transcript (here the LF-framed capture)."""
    google_sim.transcript = "stream-recorded-lf.txt"
    with client(google_sim) as http:
        raw = http.post(GEMINI + ":streamGenerateContent?alt=sse", json=GEMINI_TEXT).content
    assert raw == google_sim.contract.transcript("stream-recorded-lf.txt")


def test_forced_scenario(google_sim: ProviderSimulator) -> None:
    """`sim.scenario` picks a scenario no request shape leads to (a blocked prompt)."""
    google_sim.scenario = "blocked"
    with client(google_sim) as http:
        body = http.post(GEMINI + ":generateContent", json=GEMINI_TEXT).json()
    assert "candidates" not in body
    assert body["promptFeedback"]["blockReason"] == "SAFETY"


def test_cloudflare_chunk_style_model(cloudflare_sim: ProviderSimulator) -> None:
    """Newer models stream OpenAI-style chunks on /ai/run, then the native usage frame."""
    with client(cloudflare_sim) as http:
        raw = http.post("/ai/run/@cf/google/gemma-4-26b-a4b-it",
                        json={"messages": [USER], "stream": True}).content
    assert raw == cloudflare_sim.contract.transcript("stream-native-chunk-style.txt")


def test_anthropic_stream_only_scenario_falls_back(anthropic_sim: ProviderSimulator) -> None:
    """A scenario with only a transcript answers non-streamed requests with the text body."""
    anthropic_sim.scenario = "hello"
    with client(anthropic_sim) as http:
        body = http.post("/v1/messages", json={**TEXT, "max_tokens": 64}).json()
        raw = http.post("/v1/messages", json={**TEXT, "max_tokens": 64, "stream": True}).content
    assert body == anthropic_sim.contract.response("messages_basic").body
    assert raw == anthropic_sim.contract.transcript("stream.txt")


def test_ollama_stream_is_default(ollama_sim: ProviderSimulator) -> None:
    """/api/chat streams NDJSON unless "stream": false."""
    with client(ollama_sim) as http:
        response = http.post("/api/chat", json={**TEXT, "model": "llama3.2"})
        root = http.get("/")
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.content == ollama_sim.contract.transcript("stream-chat.ndjson.txt")
    assert root.text == "Ollama is running"
