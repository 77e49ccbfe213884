"""What each provider's simulator answers, read from the vendored contracts (not the gateway).

For every provider: the model the tests ask for, and the text, token counts and first tool
call of its canned answers, both as a whole body (responses.json) and as the stream
transcript the simulator replays for that scenario (or the body, where it has none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.simulators.contracts import NDJSON_FRAME_END, split_frames, sse_payloads

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
PROVIDERS = ("openai", "groq", "anthropic", "google", "cohere", "cloudflare", "ollama")
FOLDER = {"google": "gemini"}  # gateway provider id -> contract folder, where they differ
MODELS = {
    "openai": "gpt-4o-mini",
    "groq": "llama-3.3-70b-versatile",
    "anthropic": "claude-sonnet-4-20250514",
    "google": "gemini-2.5-flash",
    "cohere": "command-a-03-2025",
    "cloudflare": "@cf/meta/llama-3.1-8b-instruct",
    "ollama": "llama3.2",
}


@dataclass(frozen=True)
class Answer:
    """The text and token counts of one canned answer."""

    text: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ToolCall:
    """The first tool call of one canned answer, arguments parsed."""

    name: str
    arguments: dict[str, Any]


def gateway_model(provider: str) -> str:
    """The `provider/model` id a client sends to the gateway."""
    return f"{provider}/{MODELS[provider]}"


def body(provider: str, name: str) -> Any:
    """A responses.json body by example name."""
    path = CONTRACTS / FOLDER.get(provider, provider) / "responses.json"
    examples = json.loads(path.read_text())["examples"]
    return next(e["body"] for e in examples if e["name"] == name)


def transcript(provider: str, file_name: str) -> list[Any]:
    """The JSON payloads of a stream transcript, in order ([DONE] and non-JSON skipped)."""
    raw = (CONTRACTS / FOLDER.get(provider, provider) / file_name).read_bytes()
    if file_name.endswith(".ndjson.txt"):
        texts = [f.decode().strip() for f in split_frames(raw, NDJSON_FRAME_END)]
    else:
        texts = [data for _event, data in sse_payloads(raw)]
    return [json.loads(t) for t in texts if t and t != "[DONE]"]


# --- whole answers ---------------------------------------------------------------------------


def text_answer(provider: str) -> Answer:
    """The answer to a plain chat request, from responses.json."""
    if provider in ("openai", "groq"):
        b = body(provider, "chat_basic")
        return Answer(b["choices"][0]["message"]["content"], b["usage"]["prompt_tokens"],
                      b["usage"]["completion_tokens"])
    if provider == "anthropic":
        b = body(provider, "messages_basic")
        return Answer(b["content"][0]["text"], b["usage"]["input_tokens"],
                      b["usage"]["output_tokens"])
    if provider == "google":
        b = body(provider, "generate_basic")
        meta = b["usageMetadata"]
        return Answer("".join(p["text"] for p in b["candidates"][0]["content"]["parts"]),
                      meta["promptTokenCount"],
                      meta["candidatesTokenCount"] + meta.get("thoughtsTokenCount", 0))
    if provider == "cohere":
        b = body(provider, "chat_basic")
        return Answer("".join(c["text"] for c in b["message"]["content"] if c["type"] == "text"),
                      b["usage"]["tokens"]["input_tokens"], b["usage"]["tokens"]["output_tokens"])
    if provider == "cloudflare":
        b = body(provider, "run_messages")["result"]
        return Answer(b["response"], b["usage"]["prompt_tokens"], b["usage"]["completion_tokens"])
    b = body(provider, "chat_no_stream")
    return Answer(b["message"]["content"], b["prompt_eval_count"], b["eval_count"])


def tool_call(provider: str) -> ToolCall:
    """The first tool call of the answer to a request with tools, from responses.json."""
    if provider in ("openai", "groq", "cohere"):
        b = body(provider, "chat_tools")
        message = b["message"] if provider == "cohere" else b["choices"][0]["message"]
        function = message["tool_calls"][0]["function"]
        return ToolCall(function["name"], json.loads(function["arguments"]))
    if provider == "anthropic":
        block = next(c for c in body(provider, "messages_tools")["content"]
                     if c["type"] == "tool_use")
        return ToolCall(block["name"], block["input"])
    if provider == "google":
        part = body(provider, "generate_function_call")["candidates"][0]["content"]["parts"][0]
        return ToolCall(part["functionCall"]["name"], part["functionCall"]["args"])
    if provider == "cloudflare":
        call = body(provider, "run_tools")["result"]["tool_calls"][0]
        return ToolCall(call["name"], call["arguments"])
    function = body(provider, "chat_tools")["message"]["tool_calls"][0]["function"]
    return ToolCall(function["name"], function["arguments"])


# --- streamed answers ------------------------------------------------------------------------


def _openai_stream(events: list[Any]) -> Answer:
    chunks = [e for e in events if e.get("choices")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    usage = next(u for e in reversed(events)
                 if (u := e.get("usage") or (e.get("x_groq") or {}).get("usage")))
    return Answer(text, usage["prompt_tokens"], usage["completion_tokens"])


def stream_answer(provider: str) -> Answer:
    """The answer the simulator streams for a plain chat request, from its transcript."""
    if provider == "openai":
        return _openai_stream(transcript(provider, "stream.txt"))
    if provider == "groq":
        return _openai_stream(transcript(provider, "stream-include-usage.txt"))
    if provider == "anthropic":
        events = transcript(provider, "stream-recorded-padded.txt")
        start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]
        delta = next(e for e in events if e["type"] == "message_delta")["usage"]
        return Answer("".join(e["delta"]["text"] for e in events
                              if e["type"] == "content_block_delta"),
                      start["input_tokens"], delta["output_tokens"])
    if provider == "google":
        events = transcript(provider, "stream.txt")
        meta = events[-1]["usageMetadata"]
        return Answer("".join(p["text"] for e in events
                              for p in e["candidates"][0]["content"]["parts"]),
                      meta["promptTokenCount"],
                      meta["candidatesTokenCount"] + meta.get("thoughtsTokenCount", 0))
    if provider == "cohere":
        events = transcript(provider, "stream.txt")
        tokens = next(e for e in events if e["type"] == "message-end")["delta"]["usage"]["tokens"]
        return Answer("".join(e["delta"]["message"]["content"]["text"] for e in events
                              if e["type"] == "content-delta"),
                      tokens["input_tokens"], tokens["output_tokens"])
    if provider == "cloudflare":
        events = transcript(provider, "stream.txt")
        usage = next(e["usage"] for e in events if "usage" in e)
        return Answer("".join(e["response"] for e in events),
                      usage["prompt_tokens"], usage["completion_tokens"])
    events = transcript(provider, "stream-chat.ndjson.txt")
    return Answer("".join(e["message"]["content"] for e in events),
                  events[-1]["prompt_eval_count"], events[-1]["eval_count"])


def _streamed_openai_tool(events: list[Any]) -> ToolCall:
    name, arguments = "", ""
    for event in events:
        for call in (event.get("choices") or [{}])[0].get("delta", {}).get("tool_calls") or []:
            if call.get("index", 0) == 0:
                name = name or call.get("function", {}).get("name", "")
                arguments += call.get("function", {}).get("arguments") or ""
    return ToolCall(name, json.loads(arguments))


def stream_tool_call(provider: str) -> ToolCall:
    """The first tool call the simulator streams for a request with tools."""
    if provider in ("openai", "groq"):
        return _streamed_openai_tool(transcript(provider, "stream-tool-calls.txt"))
    if provider == "anthropic":
        events = transcript(provider, "stream-tool-use.txt")
        start = next(e for e in events if e["type"] == "content_block_start"
                     and e["content_block"]["type"] == "tool_use")
        arguments = "".join(e["delta"]["partial_json"] for e in events
                            if e["type"] == "content_block_delta"
                            and e["index"] == start["index"])
        return ToolCall(start["content_block"]["name"], json.loads(arguments))
    if provider == "cohere":
        events = transcript(provider, "stream-tool-calls.txt")
        start = next(e for e in events if e["type"] == "tool-call-start" and e["index"] == 0)
        arguments = "".join(e["delta"]["message"]["tool_calls"]["function"]["arguments"]
                            for e in events if e["type"] == "tool-call-delta" and e["index"] == 0)
        return ToolCall(start["delta"]["message"]["tool_calls"]["function"]["name"],
                        json.loads(arguments))
    return tool_call(provider)  # these simulators stream the whole body in one piece
