"""Reduce a provider answer (JSON body or raw stream) to text, finish reason and tool calls.

Test-only decoding, written independently of the simulators, so that streamed and
non-streamed answers of one scenario can be compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.simulators.contracts import sse_payloads


@dataclass
class Answer:
    """What a client would take away from one answer."""

    text: str = ""
    finish: str | None = None
    tool_args: list[Any] = field(default_factory=list)


def _args(value: Any) -> Any:
    """Tool arguments as an object, whether sent as a JSON string or an object."""
    return json.loads(value) if isinstance(value, str) else value


def from_body(provider: str, body: Any) -> Answer:
    """The answer in a non-streamed body."""
    if provider in ("openai", "groq", "compat"):
        choice = body["choices"][0]
        calls = choice["message"].get("tool_calls") or []
        return Answer(choice["message"].get("content") or "", choice["finish_reason"],
                      [_args(c["function"]["arguments"]) for c in calls])
    if provider == "anthropic":
        blocks = body["content"]
        return Answer("".join(b["text"] for b in blocks if b["type"] == "text"),
                      body["stop_reason"], [b["input"] for b in blocks if b["type"] == "tool_use"])
    if provider == "google":
        candidate = body["candidates"][0]
        parts = candidate["content"]["parts"]
        return Answer("".join(p.get("text", "") for p in parts), candidate["finishReason"],
                      [p["functionCall"]["args"] for p in parts if "functionCall" in p])
    if provider == "cohere":
        message = body["message"]
        return Answer("".join(c["text"] for c in message.get("content", [])
                              if c["type"] == "text"), body["finish_reason"],
                      [_args(c["function"]["arguments"]) for c in message.get("tool_calls", [])])
    if provider == "cloudflare":
        result = body["result"]
        return Answer(result["response"] or "", None,
                      [c["arguments"] for c in result.get("tool_calls", [])])
    message = body.get("message") or {"content": body["response"]}
    return Answer(message["content"], body["done_reason"],
                  [c["function"]["arguments"] for c in message.get("tool_calls", [])])


def from_stream(provider: str, raw: bytes) -> Answer:
    """The answer assembled from a raw stream."""
    if provider == "ollama":
        return _ollama(raw)
    payloads = [json.loads(data) for _, data in sse_payloads(raw) if data != "[DONE]"]
    decoders = {"anthropic": _anthropic, "google": _google, "cohere": _cohere,
                "cloudflare": _cloudflare}
    return decoders.get(provider, _openai)(payloads)


def _openai(payloads: list[dict[str, Any]]) -> Answer:
    answer, pieces = Answer(), dict[int, str]()
    for chunk in payloads:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            answer.text += delta.get("content") or ""
            answer.finish = choice["finish_reason"] or answer.finish
            for call in delta.get("tool_calls") or []:
                pieces[call["index"]] = pieces.get(call["index"], "") + call["function"].get(
                    "arguments", "")
    answer.tool_args = [_args(pieces[i]) for i in sorted(pieces)]
    return answer


def _anthropic(payloads: list[dict[str, Any]]) -> Answer:
    answer, pieces = Answer(), dict[int, str]()
    for event in payloads:
        delta = event.get("delta", {})
        if delta.get("type") == "text_delta":
            answer.text += delta["text"]
        elif delta.get("type") == "input_json_delta":
            pieces[event["index"]] = pieces.get(event["index"], "") + delta["partial_json"]
        elif event["type"] == "message_delta":
            answer.finish = delta["stop_reason"]
    answer.tool_args = [_args(pieces[i]) for i in sorted(pieces)]
    return answer


def _google(payloads: list[dict[str, Any]]) -> Answer:
    answer = Answer()
    for frame in payloads:
        candidate = frame["candidates"][0]
        for part in candidate["content"]["parts"]:
            answer.text += part.get("text", "")
            if "functionCall" in part:
                answer.tool_args.append(part["functionCall"]["args"])
        answer.finish = candidate.get("finishReason", answer.finish)
    return answer


def _cohere(payloads: list[dict[str, Any]]) -> Answer:
    answer, pieces = Answer(), dict[int, str]()
    for event in payloads:
        message = event.get("delta", {}).get("message", {})
        if event["type"] == "content-delta":
            answer.text += message["content"]["text"]
        elif event["type"] in ("tool-call-start", "tool-call-delta"):
            pieces[event["index"]] = (pieces.get(event["index"], "")
                                      + message["tool_calls"]["function"]["arguments"])
        elif event["type"] == "message-end":
            answer.finish = event["delta"]["finish_reason"]
    answer.tool_args = [_args(pieces[i]) for i in sorted(pieces)]
    return answer


def _cloudflare(payloads: list[dict[str, Any]]) -> Answer:
    answer = Answer()
    for frame in payloads:
        answer.text += frame.get("response") or ""
        answer.tool_args += [c["arguments"] for c in frame.get("tool_calls", [])]
    return answer


def _ollama(raw: bytes) -> Answer:
    answer = Answer()
    for line in raw.decode().splitlines():
        obj = json.loads(line)
        message = obj.get("message", {})
        answer.text += message.get("content", obj.get("response", ""))
        answer.tool_args += [c["function"]["arguments"] for c in message.get("tool_calls", [])]
        if obj.get("done"):
            answer.finish = obj["done_reason"]
    return answer
