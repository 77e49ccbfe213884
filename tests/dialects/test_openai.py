"""The OpenAI dialect, both directions, against the vendored OpenAI, Groq and compat contracts."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from jsonschema import Draft202012Validator
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway import ir
from gateway.dialects.base import Frame
from gateway.dialects.openai import DIALECT, OpenAIStreamDecoder
from gateway.dialects.openai_front import (
    StreamEncoder,
    parse_request,
    render_error,
    render_response,
    stream_include_usage,
)
from gateway.errors import InvalidRequest
from gateway.streaming import SSEParser
from tests.support.server import serve

CONTRACTS = Path(__file__).parents[1] / "contracts"
COMPAT = ("openai", "groq", "ollama", "cloudflare")  # ollama/cloudflare: their OpenAI endpoints


def examples(provider: str, name: str) -> list[dict[str, Any]]:
    return json.loads((CONTRACTS / provider / name).read_text())["examples"]  # type: ignore[no-any-return]


def example(provider: str, name: str, file: str = "responses.json") -> dict[str, Any]:
    return next(e for e in examples(provider, file) if e["name"] == name)


def _openai_schema() -> Registry:
    doc = yaml.safe_load((CONTRACTS / "openai" / "openapi.trimmed.yaml").read_text())

    def strict(node: Any) -> Any:  # OpenAPI 3.0's `nullable` means "or null" in 2020-12 terms
        if isinstance(node, list):
            return [strict(n) for n in node]
        if not isinstance(node, dict):
            return node
        node = {k: strict(v) for k, v in node.items()}
        return {"anyOf": [node, {"type": "null"}]} if node.pop("nullable", False) else node

    resource = Resource.from_contents(strict(doc), default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource("urn:openai", resource)
    return registry


REGISTRY = _openai_schema()


def check_schema(name: str, instance: Any) -> None:
    """Validate against a schema of OpenAI's own spec."""
    ref = {"$ref": f"urn:openai#/components/schemas/{name}"}
    errors = [e.message for e in Draft202012Validator(ref, registry=REGISTRY).iter_errors(instance)]
    assert not errors, errors[:3]


def test_schema_check_is_not_vacuous() -> None:
    with pytest.raises(AssertionError):
        check_schema("CreateChatCompletionRequest", {"model": "m", "messages": [{"role": "x"}]})
    with pytest.raises(AssertionError):
        check_schema("CreateChatCompletionStreamResponse", {"id": "x", "choices": []})


# --- front: the client's request -> IR -> the upstream's request ------------------------------

CHAT_REQUESTS = [
    pytest.param(p, e["body"], id=f"{p}/{e['name']}")
    for p in COMPAT for e in examples(p, "requests.json")
    if e.get("body") and e["path"].endswith("/chat/completions")
]
EXTRA = {  # the fields the IR does not model, which must reach an OpenAI-dialect upstream
    "n": 1, "user": "user-1234", "parallel_tool_calls": True,
    "reasoning_format": "parsed", "reasoning_effort": "low", "service_tier": "on_demand",
}


def as_upstream_sees_it(body: dict[str, Any]) -> dict[str, Any]:
    """What survives the trip through the IR: the documented normalisations only."""
    out = {k: v for k, v in body.items() if k not in ("max_tokens", "stream_options")}
    if "max_tokens" in body:
        out["max_completion_tokens"] = body["max_tokens"]
    if body.get("stream"):
        out["stream_options"] = {"include_usage": True}
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    out["messages"] = []
    for m in body["messages"]:
        m = {**m, "role": "system" if m["role"] == "developer" else m["role"]}
        if isinstance(m.get("content"), list) and all(p["type"] == "text" for p in m["content"]):
            m["content"] = "".join(p["text"] for p in m["content"])
        out["messages"].append(m)
    for tool in out.get("tools", []):
        tool["function"] = {k: v for k, v in tool["function"].items() if k != "strict"}
    return out


@pytest.mark.parametrize(("provider", "body"), CHAT_REQUESTS)
def test_contract_request_survives_the_ir(provider: str, body: dict[str, Any]) -> None:
    req = parse_request(json.loads(json.dumps(body)))
    assert req.model == body["model"] and req.stream == body.get("stream", False)
    assert req.extra == {k: v for k, v in body.items() if k in EXTRA}
    assert req.extra_dialect == DIALECT.name
    wire = DIALECT.build_request(req)
    if provider != "groq":  # Groq's own knobs (service_tier "on_demand") are not OpenAI's
        check_schema("CreateChatCompletionRequest", wire)
    assert wire == as_upstream_sees_it(json.loads(json.dumps(body)))


def test_developer_role_and_parts_in_the_ir() -> None:
    body = example("openai", "chat_developer_role_and_parts", "requests.json")["body"]
    req = parse_request(body)
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.messages[0].text() == "Answer in French."
    assert (req.max_tokens, req.stop) == (32, ["\n\n"])


def test_tool_follow_up_in_the_ir() -> None:
    body = example("openai", "chat_tool_result_followup", "requests.json")["body"]
    req = parse_request(body)
    assistant, tool = req.messages[1], req.messages[2]
    assert assistant.content == [] and assistant.tool_calls == [
        ir.ToolCall("call_X8zi23yeE70r4qiZ2lhIuRNK", "get_weather", '{"location":"Paris"}')]
    assert (tool.role, tool.tool_call_id) == ("tool", "call_X8zi23yeE70r4qiZ2lhIuRNK")
    assert tool.text() == '{"temp_c":18,"conditions":"cloudy"}'
    assert req.tools[0].name == "get_weather"
    assert req.tools[0].parameters["required"] == ["location"]


FRONT_CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("string stop", {"stop": "END"}, lambda r: r.stop == ["END"]),
    ("max_completion_tokens wins", {"max_tokens": 5, "max_completion_tokens": 9},
     lambda r: r.max_tokens == 9),
    ("forced function", {"tools": [{"type": "function", "function": {"name": "f"}}],
                         "tool_choice": {"type": "function", "function": {"name": "f"}}},
     lambda r: r.tool_choice == "f" and r.tools[0].parameters == {"type": "object",
                                                                   "properties": {}}),
    ("required", {"tool_choice": "required"}, lambda r: r.tool_choice == "required"),
    ("json mode", {"response_format": {"type": "json_object"}},
     lambda r: r.response_format == {"type": "json_object"}),
    ("text format is the default", {"response_format": {"type": "text"}},
     lambda r: r.response_format is None),
    ("sampling", {"temperature": 1, "top_p": 0.5},
     lambda r: (r.temperature, r.top_p) == (1.0, 0.5)),
    ("data url image", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,AAAA"}}]}]},
     lambda r: r.messages[0].content[1] == ir.ImagePart(data="AAAA", media_type="image/webp")),
    ("url image", {"messages": [{"role": "user", "content": [
        {"type": "image_url",
         "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]}]},
     lambda r: r.messages[0].content == [ir.ImagePart(url="https://example.com/a.png")]),
    ("names kept", {"messages": [{"role": "user", "content": "hi", "name": "ann"}]},
     lambda r: r.messages[0].name == "ann"),
]


@pytest.mark.parametrize(("patch", "check"), [c[1:] for c in FRONT_CASES],
                         ids=[c[0] for c in FRONT_CASES])
def test_front_fields(patch: dict[str, Any], check: Any) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **patch}
    assert check(parse_request(body))


def test_include_usage_is_read_from_stream_options() -> None:
    assert stream_include_usage({"stream_options": {"include_usage": True}}) is True
    assert stream_include_usage({"stream_options": {}}) is False
    assert stream_include_usage({}) is False
    assert "stream_options" not in parse_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}],
         "stream_options": {"include_usage": True}}).extra


USER = {"role": "user", "content": "hi"}
INVALID: list[tuple[Any, str | None]] = [
    ([], None),
    ({"messages": [USER]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [USER, {"role": "robot", "content": "x"}]}, "messages[1].role"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0].type"),
    ({"model": "m", "messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "https://x"}}]}]},
     "messages[0].content[0].type"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"model": "m",
      "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
     "messages[0].tool_calls[0].id"),
    ({"model": "m", "messages": [USER], "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": [USER], "max_completion_tokens": "9"}, "max_completion_tokens"),
    ({"model": "m", "messages": [USER], "temperature": 3}, "temperature"),
    ({"model": "m", "messages": [USER], "top_p": True}, "top_p"),
    ({"model": "m", "messages": [USER], "stop": [1]}, "stop"),
    ({"model": "m", "messages": [USER], "tools": [{"type": "custom"}]}, "tools[0].type"),
    ({"model": "m", "messages": [USER], "tools": [{"type": "function", "function": {}}]},
     "tools[0].function.name"),
    ({"model": "m", "messages": [USER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "messages": [USER], "tool_choice": {"type": "function",
                                                         "function": {"name": "nope"}}},
     "tool_choice"),
    ({"model": "m", "messages": [USER], "response_format": {"type": "yaml"}},
     "response_format.type"),
    ({"model": "m", "messages": [USER], "response_format": {"type": "json_schema"}},
     "response_format.json_schema"),
    ({"model": "m", "messages": [USER], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [USER], "stream_options": {"include_usage": 1}},
     "stream_options.include_usage"),
    ({"model": "m", "messages": [USER], "n": 2}, "n"),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_invalid_requests_name_the_field(body: Any, field: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body)
    assert caught.value.field == field and caught.value.status == 400


# --- backend: IR -> upstream request --------------------------------------------------------


def chat(**fields: Any) -> ir.ChatRequest:
    return ir.ChatRequest(model="m", messages=[ir.Message("user", [ir.TextPart("hi")])], **fields)


def test_streaming_always_asks_for_usage() -> None:
    wire = DIALECT.build_request(chat(stream=True))
    assert wire["stream"] is True and wire["stream_options"] == {"include_usage": True}
    assert "stream" not in DIALECT.build_request(chat())


def test_extra_only_reaches_the_same_dialect() -> None:
    assert DIALECT.build_request(chat(extra={"seed": 7}, extra_dialect="openai"))["seed"] == 7
    assert "seed" not in DIALECT.build_request(chat(extra={"seed": 7}, extra_dialect="anthropic"))


def test_images_and_forced_tool() -> None:
    req = chat(tools=[ir.Tool("f", "does f")], tool_choice="f", max_tokens=10)
    req.messages = [ir.Message("user", [ir.TextPart("look"), ir.ImagePart(data="QUJD"),
                                        ir.ImagePart(url="https://example.com/x.jpg")])]
    wire = DIALECT.build_request(req)
    check_schema("CreateChatCompletionRequest", wire)
    assert wire["messages"][0]["content"][1:] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.jpg"}}]
    assert wire["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert wire["max_completion_tokens"] == 10


def test_tools_round_trip_ir_wire_ir() -> None:
    tools = [ir.Tool("get_weather", "Weather", {"type": "object",
                                                "properties": {"city": {"type": "string"}}})]
    messages = [
        ir.Message("system", [ir.TextPart("be brief")]),
        ir.Message("user", [ir.TextPart("weather?")]),
        ir.Message("assistant", [ir.TextPart("checking")], tool_calls=[
            ir.ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),
            ir.ToolCall("call_2", "get_weather", '{"city":"Rome"}')]),
        ir.Message("tool", [ir.TextPart("cold")], tool_call_id="call_1"),
        ir.Message("tool", [ir.TextPart("warm")], tool_call_id="call_2"),
    ]
    original = ir.ChatRequest("m", messages, tools=tools, tool_choice="required",
                              temperature=0.5, stop=["x"], extra_dialect="openai")
    wire = DIALECT.build_request(original)
    check_schema("CreateChatCompletionRequest", wire)
    assert parse_request(wire) == original


# --- backend: upstream answers -> IR ---------------------------------------------------------

ANSWERS = [  # provider, example, text, tool calls, finish reason, usage in/out
    ("openai", "chat_basic", "Hello, World!", [], "stop", (17, 4)),
    ("openai", "chat_length_cutoff", "Hello, wor", [], "length", (17, 3)),
    ("openai", "chat_tools", "",
     [("call_X8zi23yeE70r4qiZ2lhIuRNK", "get_weather", '{"location":"Paris"}')],
     "tool_calls", (47, 14)),
    ("groq", "chat_basic", "Hello World!", [], "stop", (38, 4)),
    ("groq", "chat_tools", "", [("2zvvry1t5", "get_weather", '{"location":"London"}')],
     "tool_calls", (203, 14)),
    ("ollama", "openai_compat_chat", "Hello!", [], "stop", (27, 3)),
    ("cloudflare", "openai_compat_chat",
     "1. Carve a spoon blank. 2. Hollow the bowl. 3. Sand and oil it.", [], "stop", None),
]


@pytest.mark.parametrize(("provider", "name", "text", "calls", "reason", "usage"), ANSWERS)
def test_contract_answers(provider: str, name: str, text: str, calls: list[tuple[str, str, str]],
                          reason: str, usage: tuple[int, int] | None) -> None:
    body = example(provider, name)["body"]
    resp = DIALECT.parse_response(body, model="asked-for")
    assert (resp.id, resp.model) == (body["id"], body["model"])
    assert (resp.text, resp.finish_reason) == (text, reason)
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == calls
    if usage is None:
        usage = (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
    assert resp.usage == ir.Usage(*usage)
    # ... and back out to an OpenAI client, unchanged where it matters.
    out = render_response(resp, created=body["created"])
    check_schema("CreateChatCompletionResponse", out)
    ChatCompletion.model_validate(out)
    message, original = out["choices"][0], body["choices"][0]
    assert message["message"]["content"] == original["message"].get("content")
    assert message["message"].get("tool_calls") == (original["message"].get("tool_calls") or None)
    assert message["finish_reason"] == original["finish_reason"]
    assert out["usage"]["total_tokens"] == body["usage"]["total_tokens"]


ODD_ANSWERS = [
    ({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text",
                                                                           "text": "b"}]}}]},
     lambda r: r.text == "ab" and r.model == "asked-for" and r.usage is None),
    ({"choices": [{"message": {"content": None, "refusal": "I can't."},
                   "finish_reason": "content_filter"}]},
     lambda r: (r.text, r.finish_reason) == ("I can't.", "content_filter")),
    ({"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                   "finish_reason": None}]},
     lambda r: r.tool_calls == [ir.ToolCall("call_0", "f", '{"a":1}')]
     and r.finish_reason == "tool_calls"),
    ({"choices": [{"message": {"content": "x"}, "finish_reason": "function_call"}]},
     lambda r: r.finish_reason == "tool_calls"),
]


@pytest.mark.parametrize(("body", "check"), ODD_ANSWERS)
def test_odd_but_valid_answers(body: dict[str, Any], check: Any) -> None:
    assert check(DIALECT.parse_response(body, model="asked-for"))


@pytest.mark.parametrize("body", [
    None, "text", [], {}, {"choices": []}, {"choices": ["x"]}, {"choices": [{}]},
    {"choices": [{"message": {"content": 5}}]},
    {"choices": [{"message": {"tool_calls": {"id": 1}}}]},
    {"choices": [{"message": {"tool_calls": [{"function": {}}]}}]},
])
def test_malformed_answers_raise_value_error(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_response(body, model="m")


@pytest.mark.parametrize(("provider", "name"), [
    ("openai", "list_models"), ("groq", "list_models"), ("ollama", "openai_compat_models")])
def test_model_lists(provider: str, name: str) -> None:
    data = example(provider, name)["body"]["data"]
    models = DIALECT.parse_models(example(provider, name)["body"], provider=provider)
    assert [m["id"] for m in models] == [d["id"] for d in data]
    assert [(m["owned_by"], m["created"], m["object"]) for m in models] == [
        (d["owned_by"], d["created"], "model") for d in data]


def test_model_list_defaults_and_garbage() -> None:
    body = {"object": "list", "data": [{"id": "a"}, {"no": "id"}, {"id": "b", "name": "B",
                                                                    "created": True}]}
    assert DIALECT.parse_models(body, provider="acme") == [
        {"id": "a", "object": "model", "owned_by": "acme"},
        {"id": "b", "object": "model", "owned_by": "acme", "name": "B"}]
    with pytest.raises(ValueError):
        DIALECT.parse_models({"object": "list"}, provider="acme")


ERRORS = [pytest.param(e, id=f"{p}/{e['name']}") for p in COMPAT
          for e in examples(p, "responses.json")
          if e["status"] >= 400 and isinstance(e.get("body"), dict) and "error" in e["body"]
          and isinstance(e["body"]["error"], dict)]


@pytest.mark.parametrize("answer", ERRORS)
def test_contract_error_bodies(answer: dict[str, Any]) -> None:
    error = answer["body"]["error"]
    info = DIALECT.parse_error(answer["status"], answer["body"])
    assert info.message == error["message"]
    assert info.code == (error.get("code") or error.get("type"))
    assert info.retry_after is None


def test_quota_is_told_apart_from_rate_limit() -> None:
    quota = example("openai", "error_429_insufficient_quota")
    limit = example("openai", "error_429_rate_limit")
    assert DIALECT.parse_error(429, quota["body"]).code == "insufficient_quota"
    assert DIALECT.parse_error(429, limit["body"]).code == "rate_limit_exceeded"


@pytest.mark.parametrize(("body", "message", "code"), [
    ("<html>Bad gateway</html>\n", "<html>Bad gateway</html>", None),
    ("", "the provider answered with HTTP status 502", None),
    ({"error": "plain", "code": 12}, "plain", "12"),
    ({"message": "top level"}, "top level", None),
    (None, "the provider answered with HTTP status 502", None),
])
def test_odd_error_bodies(body: Any, message: str, code: str | None) -> None:
    info = DIALECT.parse_error(502, body)
    assert (info.message, info.code) == (message, code)


def test_path_model_is_unchanged() -> None:
    assert DIALECT.path_model("openai/gpt-oss-20b") == "openai/gpt-oss-20b"
    assert (DIALECT.name, DIALECT.framing) == ("openai", "sse")


# --- backend: upstream streams -> IR events --------------------------------------------------

STREAMS = [  # file, text, tool calls, finish reason, usage in/out
    ("openai/stream.txt", "Hello, World!", [], "stop", (11, 4)),
    ("openai/stream-recorded-no-usage.txt", "Hello, World!", [], "stop", None),
    ("openai/stream-tool-calls.txt", "",
     [("call_9QzTmUu2b1Xl0ZkR4Yc8WvEa", "get_weather", '{"location":"Paris"}')],
     "tool_calls", (47, 14)),
    ("groq/stream.txt", "Hello World!", [], "stop", (38, 4)),
    ("groq/stream-include-usage.txt", "Hello World!", [], "stop", (38, 4)),
    ("groq/stream-tool-calls.txt", "", [("f2k9wq7mz", "get_weather", '{"location":"London"}')],
     "tool_calls", (203, 14)),
    ("ollama/stream-openai-compat.txt", "Hello!", [], "stop", (27, 3)),
    ("cloudflare/stream-openai-compat.txt", "Hello!", [], "stop", (44, 2)),
]


def frames_of(raw: bytes, rng: random.Random | None = None) -> list[Frame]:
    """SSE frames of a transcript, optionally cut into random chunks first."""
    parser, frames, at = SSEParser(), [], 0
    while at < len(raw):
        size = rng.randint(1, 50) if rng else len(raw)
        frames += parser.feed(raw[at:at + size])
        at += size
    return frames + parser.close()


def decode(frames: list[Frame], model: str = "asked-for") -> list[ir.StreamEvent]:
    """The events of `frames` fed one by one; fed all at once, and in random groups, they
    must be the same."""
    decoder = DIALECT.stream_decoder(model=model)
    events = [event for frame in frames for event in decoder.feed(frame)] + decoder.close()
    at_once = DIALECT.stream_decoder(model=model)
    assert at_once.feed_all(frames) + at_once.close() == events
    rng, grouped, at = random.Random(len(frames)), DIALECT.stream_decoder(model=model), 0
    in_groups: list[ir.StreamEvent] = []
    while at < len(frames):
        size = rng.randint(1, 4)
        in_groups += grouped.feed_all(frames[at:at + size])
        at += size
    assert in_groups + grouped.close() == events
    return events


def assemble(events: list[ir.StreamEvent]) -> tuple[str, list[tuple[str, str, str]], str,
                                                    tuple[int, int] | None]:
    """Text, tool calls, finish reason and usage, checking the event grammar on the way."""
    assert isinstance(events[0], ir.MessageStart)
    assert not any(isinstance(e, ir.MessageStart | ir.StreamError) for e in events[1:]), events
    finishes = [e for e in events if isinstance(e, ir.Finish)]
    usages = [e.usage for e in events if isinstance(e, ir.UsageReport)]
    assert len(finishes) == 1 and len(usages) <= 1
    calls: dict[int, list[str]] = {}
    for e in events:
        if isinstance(e, ir.ToolCallStart):
            assert e.index == len(calls) and e.index not in calls
            calls[e.index] = [e.id, e.name, ""]
        elif isinstance(e, ir.ToolCallDelta):
            calls[e.index][2] += e.arguments
    text = "".join(e.text for e in events if isinstance(e, ir.TextDelta))
    usage = (usages[0].input_tokens, usages[0].output_tokens) if usages else None
    return text, [tuple(c) for c in calls.values()], finishes[0].reason, usage  # type: ignore[misc]


@pytest.mark.parametrize(("path", "text", "calls", "reason", "usage"), STREAMS)
def test_contract_streams(path: str, text: str, calls: list[tuple[str, str, str]], reason: str,
                          usage: tuple[int, int] | None) -> None:
    raw = (CONTRACTS / path).read_bytes()
    events = decode(frames_of(raw))
    start = events[0]
    first = json.loads(raw.split(b"\n", 1)[0].removeprefix(b"data: "))
    assert isinstance(start, ir.MessageStart) and (start.id, start.model) == (
        first["id"], first["model"])
    assert assemble(events) == (text, calls, reason, usage)
    for seed in range(3):  # chunking must not change the decoded answer
        assert decode(frames_of(raw, random.Random(seed))) == events


def test_stream_and_plain_answer_agree() -> None:
    raw = (CONTRACTS / "openai/stream-tool-calls.txt").read_bytes()
    streamed = assemble(decode(frames_of(raw)))
    plain = DIALECT.parse_response(example("openai", "chat_tools")["body"], model="m")
    assert streamed[1][0][1:] == (plain.tool_calls[0].name, plain.tool_calls[0].arguments)
    assert streamed[3] == (plain.usage.input_tokens, plain.usage.output_tokens)  # type: ignore[union-attr]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Frame:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return Frame(json.dumps({"id": "c1", "model": "up", "choices": choices, **extra}))


def test_cut_short_stream_is_an_error() -> None:
    frames = frames_of((CONTRACTS / "openai/stream.txt").read_bytes())[:3]
    events = decode(frames)
    assert isinstance(events[-1], ir.StreamError)
    assert events[-1].message == "stream ended before the provider finished"
    assert not any(isinstance(e, ir.Finish) for e in events)


def test_empty_stream_still_starts_then_fails() -> None:
    events = decode([])
    assert [type(e) for e in events] == [ir.MessageStart, ir.StreamError]
    assert events[0] == ir.MessageStart(id="", model="asked-for")


@pytest.mark.parametrize("bad", [
    Frame('{"error": {"message": "overloaded", "type": "server_error"}}'),
    Frame("{not json"),
    Frame("[1, 2]"),
])
def test_errors_inside_the_stream_end_it(bad: Frame) -> None:
    events = decode([chunk({"content": "Hi"}), bad, chunk({"content": "more"}, "stop")])
    assert [type(e) for e in events] == [ir.MessageStart, ir.TextDelta, ir.StreamError]
    if "overloaded" in bad.data:
        assert events[-1].message == "overloaded"  # type: ignore[union-attr]


def test_odd_chunks_keep_what_is_readable() -> None:
    """Chunks whose choices, deltas or values have the wrong types: what can be read is."""
    frames = [
        chunk({"role": "assistant", "content": ""}, logprobs=None, obfuscation="x1"),
        Frame('{"choices": "none", "usage": null}'),
        Frame('{"choices": [7, {"index": 0, "delta": {"content": "a"}}]}'),
        Frame('{"choices": [{"index": 1, "delta": {"content": "other choice"}}]}'),
        Frame('{"choices": [{"index": 0, "delta": {"content": 5, "refusal": "b"}}]}'),
        Frame('{"choices": [{"delta": {"content": "c", "role": "assistant"},'
              ' "logprobs": {"content": [{"token": "c", "logprob": -0.1}]}}], "extra": [1, {}]}'),
        Frame("  "),
        Frame('{"choices": [{"index": 0, "delta": "d", "finish_reason": "length"}]}'),
        Frame('{"choices": [], "x_groq": {"usage": {"prompt_tokens": 4,'
              ' "completion_tokens": true}}}'),
        Frame(" [DONE] "),
        Frame('{"choices": [{"index": 0, "delta": {"content": "late"}}]}'),
    ]
    events = decode(frames)
    assert events == [ir.MessageStart(id="c1", model="up"), ir.TextDelta("a"), ir.TextDelta("b"),
                      ir.TextDelta("c"), ir.Finish("length"), ir.UsageReport(ir.Usage(4, 0))]


def test_a_first_chunk_without_names_uses_the_asked_for_model() -> None:
    events = decode([Frame('{"id": 5, "model": "", "choices": []}'), chunk({}, "stop")])
    assert events[0] == ir.MessageStart(id="5", model="asked-for")


def test_done_without_finish_reason_finishes() -> None:
    events = decode([chunk({"content": "Hi"}), Frame("[DONE]"), chunk({"content": "late"})])
    assert events[-1] == ir.Finish("stop") and len(events) == 3


def test_tool_calls_without_index_and_with_object_arguments() -> None:
    frames = [
        chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": {"x": 1}}}]}),
        chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{\"y\""}}]}),
        chunk({"tool_calls": [{"function": {"arguments": ":2}"}}]}),
        chunk({}, "tool_calls"), chunk(usage={"prompt_tokens": 3, "completion_tokens": 2}),
        Frame("[DONE]"),
    ]
    assert assemble(decode(frames)) == (
        "", [("a", "f", '{"x":1}'), ("b", "g", '{"y":2}')], "tool_calls", (3, 2))


def test_parallel_tool_calls_keyed_by_index() -> None:
    frames = [
        chunk({"tool_calls": [
            {"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
            {"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "[]"}}]}),
        chunk({}, "stop"),
    ]
    events = decode(frames)
    assert assemble(events) == ("", [("a", "f", "[]"), ("b", "g", "{}")], "tool_calls", None)


class _Parsed(OpenAIStreamDecoder):
    """The decoder without templates: every frame parsed."""

    LEARNS = 0


def _decoded(decoder: OpenAIStreamDecoder, frames: list[Frame], rng: random.Random
             ) -> list[ir.StreamEvent]:
    events: list[ir.StreamEvent] = []
    at = 0
    while at < len(frames):
        size = rng.randint(1, 5)
        events += decoder.feed_all(frames[at:at + size])
        at += size
    return events + decoder.close()


# Characters a token may hold: some are written bare in JSON, some only escaped, some both.
_CHARACTERS = ["a", " ", "Z", "é", "中", "😀", '"', "\\", "\n", "\t", "\x01", "\x7f", "\u00a0",
               "\u2028", "/", "<", "{", "}", ":", ","]


def _random_chunk(rng: random.Random, stream_id: str) -> Frame:
    """A text chunk written as servers write them, or now and then as they should not."""
    text = "".join(rng.choice(_CHARACTERS) for _ in range(rng.randint(0, 6)))
    delta: dict[str, Any] = {"content": text}
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": None}
    body: dict[str, Any] = {"id": stream_id, "object": "chat.completion.chunk",
                            "created": 1769092764, "model": "m", "choices": [choice],
                            "usage": None}
    if rng.random() < 0.5:  # OpenAI's padding, now and then with escapes
        body["obfuscation"] = "".join(
            rng.choice("aZ9\"\\\x02" if rng.random() < 0.1 else "abcXYZ019")
            for _ in range(rng.randint(0, 9)))
    roll = rng.random()
    if roll < 0.03:
        choice["finish_reason"] = "stop"
    elif roll < 0.06:
        body["usage"] = {"prompt_tokens": 3, "completion_tokens": 4}
    elif roll < 0.08:
        delta["tool_calls"] = [{"index": 0, "id": "t", "function": {"name": "f", "arguments": ""}}]
    elif roll < 0.10:
        delta["refusal"] = "no"
    elif roll < 0.12:
        body["id"] = stream_id + "x"  # a server whose chunks differ in more than the text
    elif roll < 0.14:
        choice["index"] = 1
    elif roll < 0.16:
        body["choices"] = [choice, {**choice, "index": 1}]
    elif roll < 0.18:
        choice["logprobs"] = {"content": [{"token": text, "logprob": -0.5}]}
    elif roll < 0.20:
        body["x_groq"] = {"id": "req"}
    elif roll < 0.22:
        del delta["content"]
    separators = (",", ":") if rng.random() < 0.9 else (", ", ": ")
    data = json.dumps(body, separators=separators, ensure_ascii=rng.random() < 0.2)
    if rng.random() < 0.02:
        data = data[:-1]  # cut short: not JSON
    elif rng.random() < 0.05:  # control characters unescaped: not JSON either
        data = data.replace("\\u0001", "\x01").replace("\\t", "\t")
    return Frame(data)


def test_text_chunks_read_through_a_template_decode_as_parsed() -> None:
    """Text chunks matched against a learned template (`_Template`) give exactly the events
    and state that parsing each gives: 400 random streams of text chunks written as servers
    write them (OpenAI's padding included), with escapes, control characters, other fields,
    other ids, other spacing and broken JSON mixed in, fed in random groups."""
    learned = 0
    for seed in range(400):
        rng = random.Random(seed)
        stream_id = f"chatcmpl-{seed}"
        frames = [chunk({"role": "assistant", "content": ""})]
        frames += [_random_chunk(rng, stream_id) for _ in range(rng.randint(1, 40))]
        if rng.random() < 0.8:
            frames.append(Frame("[DONE]"))
        template = OpenAIStreamDecoder(model="asked-for")
        parsed = _Parsed(model="asked-for")
        assert _decoded(template, frames, random.Random(seed)) == _decoded(
            parsed, frames, random.Random(seed)), seed
        learned += template._template is not None
    assert learned > 100  # many streams are read through a template


def test_template_reads_the_contract_streams() -> None:
    """OpenAI's transcripts (with `obfuscation` padding on every chunk), Groq's and the
    compatible servers' plain streams are read through a template after their first text."""
    for path in ("openai/stream.txt", "openai/stream-recorded-no-usage.txt", "groq/stream.txt",
                 "ollama/stream-openai-compat.txt", "cloudflare/stream-openai-compat.txt"):
        frames = frames_of((CONTRACTS / path).read_bytes())
        decoder = OpenAIStreamDecoder(model="m")
        events = decoder.feed_all(frames) + decoder.close()
        parsed = _Parsed(model="m")
        assert events == parsed.feed_all(frames) + parsed.close()
        assert decoder._template is not None, path


def test_a_template_is_only_kept_when_its_hole_is_the_text() -> None:
    """A chunk whose delta names its text with an escaped key, and carries the same text
    under a plain `content` key elsewhere: the plain one is not the delta's text, so no
    template may be learned from it (the next chunk's text is the delta's, not the other)."""
    frames = [chunk({"role": "assistant", "content": ""})] + [
        Frame('{"id":"c","choices":[{"index":0,"delta":{"cont\\u0065nt":"hi"}}],'
              f'"echo":{{"content":"{echo}"}}}}') for echo in ("hi", "yo", "no")]
    events = OpenAIStreamDecoder(model="m").feed_all(frames)
    assert events[1:] == [ir.TextDelta("hi")] * 3


# --- front: IR events -> the client's stream -------------------------------------------------


def encode(events: list[ir.StreamEvent], include_usage: bool) -> list[Frame]:
    encoder = StreamEncoder(id="chatcmpl-gw", model="gw-model", created=1700000000,
                            include_usage=include_usage)
    raw = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    return frames_of(raw)


@pytest.mark.parametrize("path", [s[0] for s in STREAMS])
@pytest.mark.parametrize("include_usage", [True, False])
def test_encoded_streams_read_back_the_same(path: str, include_usage: bool) -> None:
    events = decode(frames_of((CONTRACTS / path).read_bytes()))
    frames = encode(events, include_usage)
    assert frames[-1] == Frame("[DONE]")
    chunks = [json.loads(f.data) for f in frames[:-1]]
    for c in chunks:
        check_schema("CreateChatCompletionStreamResponse", c)
        ChatCompletionChunk.model_validate(c)
        assert (c["id"], c["model"], c["created"]) == ("chatcmpl-gw", "gw-model", 1700000000)
        assert ("usage" in c) is include_usage
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text, calls, reason, usage = assemble(events)
    if not include_usage:
        usage = None
    assert assemble(decode(frames)) == (text, calls, reason, usage)


def test_stream_error_becomes_an_error_frame() -> None:
    frames = encode([ir.MessageStart("x", "y"), ir.TextDelta("Hi"),
                     ir.StreamError("upstream fell over", "upstream_error"), ir.TextDelta("no"),
                     ir.UsageReport(ir.Usage(1, 2))], include_usage=True)
    assert json.loads(frames[-2].data) == {
        "error": {"message": "upstream fell over", "type": "upstream_error"}}
    assert frames[-1] == Frame("[DONE]") and len(frames) == 4


def test_only_one_finish_and_no_empty_deltas() -> None:
    frames = encode([ir.TextDelta(""), ir.Finish("error"), ir.Finish("stop")], include_usage=False)
    chunks = [json.loads(f.data) for f in frames[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"),
                                              (401, "authentication_error"),
                                              (429, "rate_limit_error"), (502, "server_error")])
def test_render_error(status: int, kind: str) -> None:
    body = render_error(status, "nope", "some_code", param="messages[0]")
    check_schema("ErrorResponse", body)
    assert body["error"] == {"message": "nope", "type": kind, "param": "messages[0]",
                             "code": "some_code"}


def test_render_response_shapes() -> None:
    tool_only = render_response(ir.ChatResponse("", "m", tool_calls=[ir.ToolCall("c", "f", "{}")],
                                                finish_reason="tool_calls"), created=1)
    assert tool_only["id"].startswith("chatcmpl-") and "usage" not in tool_only
    message = ChatCompletion.model_validate(tool_only).choices[0].message
    assert message.content is None and message.tool_calls is not None
    failed = render_response(ir.ChatResponse("i", "m", text="partial", finish_reason="error"),
                             created=1)
    assert ChatCompletion.model_validate(failed).choices[0].finish_reason == "stop"


# --- the official SDK, over real HTTP ---------------------------------------------------------


def sdk_app() -> Starlette:
    """A stand-in for the gateway's route: contract answers, rendered by this dialect."""

    async def completions(request: Request) -> Response:
        body = await request.json()
        try:
            req = parse_request(body)
        except InvalidRequest as exc:
            return JSONResponse(render_error(400, exc.message, exc.code, param=exc.field), 400)
        if req.model == "limited":
            return JSONResponse(render_error(429, "slow down", "rate_limit_exceeded"), 429)
        if not req.stream:
            answer = DIALECT.parse_response(example("openai", "chat_basic")["body"], model="m")
            return JSONResponse(render_response(answer, created=1769092737))
        path = "openai/stream-tool-calls.txt" if req.tools else "openai/stream.txt"
        events = decode(frames_of((CONTRACTS / path).read_bytes()))
        if req.model == "broken":
            events = [*events[:3], ir.StreamError("upstream fell over")]
        encoder = StreamEncoder(id="chatcmpl-gw", model=req.model, created=1,
                                include_usage=stream_include_usage(body))

        async def chunks() -> Any:
            for event in events:
                yield encoder.encode(event)
            yield encoder.finish()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with serve(sdk_app()) as server, openai.OpenAI(
            api_key="test", base_url=f"{server.url}/v1", max_retries=0, timeout=10) as sdk:
        yield sdk


HELLO: list[Any] = [{"role": "developer", "content": "terse"}, {"role": "user", "content": "hi"}]


def test_sdk_plain_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="m", messages=HELLO, max_tokens=5)
    assert completion.choices[0].message.content == "Hello, World!"
    assert completion.usage is not None and completion.usage.total_tokens == 21


def test_sdk_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="m", messages=HELLO, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello, World!"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 11


def test_sdk_stream_helper_assembles_tool_calls(client: openai.OpenAI) -> None:
    tools: list[Any] = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
    with client.chat.completions.stream(model="m", messages=HELLO, tools=tools) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert (calls[0].function.name, calls[0].function.arguments) == (
        "get_weather", '{"location":"Paris"}')
    assert final.choices[0].finish_reason == "tool_calls"


def test_sdk_raises_on_stream_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="broken", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="upstream fell over"):
        list(stream)


def test_sdk_maps_error_statuses(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="limited", messages=HELLO)
    assert limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="m", messages=[{"role": "robot", "content": "x"}])  # type: ignore[misc, list-item]
    assert bad.value.param == "messages[0].role"
