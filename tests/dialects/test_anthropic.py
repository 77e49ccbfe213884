"""The Anthropic dialect, both directions, against the contracts in tests/contracts/anthropic."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import pydantic
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.dialects.anthropic import DIALECT
from gateway.dialects.anthropic_front import (
    StreamEncoder,
    parse_request,
    render_error,
    render_response,
)
from gateway.dialects.base import Dialect, Frame
from gateway.errors import InvalidRequest
from gateway.ir import (
    ChatRequest,
    ChatResponse,
    Finish,
    ImagePart,
    Message,
    MessageStart,
    StreamError,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from gateway.streaming import SSEParser
from tests.support.server import serve

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "anthropic"
TYPED: Dialect = DIALECT  # mypy checks that the dialect satisfies the Protocol
SCHEMA = json.loads((CONTRACTS / "schema.json").read_text())
STREAM_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
WEATHER = Tool("get_weather", "Get the current weather for a city",
               {"type": "object", "properties": {"location": {"type": "string"}},
                "required": ["location"]})


def examples(file: str) -> dict[str, dict[str, Any]]:
    """The examples of a contract file, by name."""
    return {e["name"]: e for e in json.loads((CONTRACTS / file).read_text())["examples"]}


REQUESTS, RESPONSES = examples("requests.json"), examples("responses.json")
MESSAGE_REQUESTS = [n for n, e in REQUESTS.items() if e["path"] == "/v1/messages"]
MESSAGE_BODIES = [n for n, e in RESPONSES.items() if e["status"] == 200 and "content" in e["body"]]
ERROR_BODIES = [n for n, e in RESPONSES.items() if e["status"] >= 400]


def check_request_schema(body: dict[str, Any]) -> None:
    """Validate a built body against the SDK-derived `MessageCreateParamsBase` schema."""
    schema = {"$ref": "#/$defs/MessageCreateParamsBase", "$defs": SCHEMA["$defs"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def frames_of(raw: bytes, chunk_size: int = 13) -> list[Frame]:
    """Split a transcript into SSE frames, fed in small reads as the network would."""
    parser = SSEParser()
    frames: list[Frame] = []
    for at in range(0, len(raw), chunk_size):
        frames += parser.feed(raw[at:at + chunk_size])
    return frames + parser.close()


def decode(raw: bytes) -> list[StreamEvent]:
    """Run a transcript through the framer and a fresh decoder, including close()."""
    decoder = DIALECT.stream_decoder(model="requested")
    events = [event for frame in frames_of(raw) for event in decoder.feed(frame)]
    return events + decoder.close()


def user(text: str) -> Message:
    """A user turn with one text part."""
    return Message(role="user", content=[TextPart(text)])


# --- backend: requests -----------------------------------------------------------------------

CALL = ToolCall("toolu_1", "get_weather", '{"location":"Paris"}')
BUILD_CASES: list[tuple[str, ChatRequest, dict[str, Any]]] = [
    ("defaults", ChatRequest(model="m", messages=[user("hi")]),
     {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}),
    ("sampling_and_stream", ChatRequest(
        model="m", messages=[Message("system", [TextPart("be terse")]),
                             Message("system", [TextPart("be kind")]), user("hi")],
        max_tokens=10, temperature=0.2, top_p=0.9, stop=["END"], stream=True),
     {"model": "m", "max_tokens": 10, "system": "be terse\n\nbe kind", "temperature": 0.2,
      "top_p": 0.9, "stop_sequences": ["END"], "stream": True,
      "messages": [{"role": "user", "content": "hi"}]}),
    ("images", ChatRequest(model="m", messages=[Message("user", [
        TextPart("what is this?"), ImagePart(data="AAAA", media_type="image/jpeg"),
        ImagePart(url="https://example.com/cat.png"),
        ImagePart(url="data:image/gif;base64,R0lG")])]),
     {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": [
         {"type": "text", "text": "what is this?"},
         {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                      "data": "AAAA"}},
         {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
         {"type": "image", "source": {"type": "base64", "media_type": "image/gif",
                                      "data": "R0lG"}}]}]}),
    ("tool_round_trip_merges_turns", ChatRequest(model="m", tools=[WEATHER], tool_choice="required",
                                                 messages=[
        user("weather?"), user("in Paris and Rome"),
        Message("assistant", [TextPart("checking")], tool_calls=[
            CALL, ToolCall("toolu_2", "get_weather", "")]),
        Message("tool", [TextPart("18C")], tool_call_id="toolu_1"),
        Message("tool", [TextPart("21C")], tool_call_id="toolu_2"), user("thanks")]),
     {"model": "m", "max_tokens": 4096, "tool_choice": {"type": "any"},
      "tools": [{"name": "get_weather", "description": "Get the current weather for a city",
                 "input_schema": WEATHER.parameters}],
      "messages": [
          {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                       {"type": "text", "text": "in Paris and Rome"}]},
          {"role": "assistant", "content": [
              {"type": "text", "text": "checking"},
              {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
               "input": {"location": "Paris"}},
              {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}]},
          {"role": "user", "content": [
              {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
              {"type": "tool_result", "tool_use_id": "toolu_2", "content": "21C"},
              {"type": "text", "text": "thanks"}]}]}),
    ("json_schema_and_extra", ChatRequest(
        model="m", messages=[user("hi")], extra={"top_k": 5}, extra_dialect="anthropic",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object"}}}),
     {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}],
      "top_k": 5,
      "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}),
    ("foreign_extra_and_json_mode_ignored", ChatRequest(
        model="m", messages=[user("hi")], extra={"seed": 1}, extra_dialect="openai",
        response_format={"type": "json_object"}, tool_choice="auto"),
     {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}),
]


@pytest.mark.parametrize(("request_", "expected"), [c[1:] for c in BUILD_CASES],
                         ids=[c[0] for c in BUILD_CASES])
def test_build_request(request_: ChatRequest, expected: dict[str, Any]) -> None:
    body = DIALECT.build_request(request_)
    assert body == expected
    check_request_schema(body)


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ("get_weather", {"type": "tool", "name": "get_weather"})])
def test_tool_choice(choice: str, wire: dict[str, Any]) -> None:
    request_ = ChatRequest(model="m", messages=[user("hi")], tools=[WEATHER], tool_choice=choice)
    assert DIALECT.build_request(request_)["tool_choice"] == wire
    assert parse_request(DIALECT.build_request(request_)).tool_choice == choice


@pytest.mark.parametrize("arguments", ["[1]", "{nope", '"text"'])
def test_tool_arguments_must_be_an_object(arguments: str) -> None:
    request_ = ChatRequest(model="m", messages=[
        user("hi"), Message("assistant", tool_calls=[ToolCall("t", "f", arguments)])])
    with pytest.raises(InvalidRequest) as info:
        DIALECT.build_request(request_)
    assert info.value.field == "messages[1].tool_calls[0].arguments"


def canonical(body: dict[str, Any]) -> dict[str, Any]:
    """What the backend writes for an equivalent body: system and lone text as plain strings."""
    out = dict(body)
    if isinstance(out.get("system"), list):
        out["system"] = "\n\n".join(block["text"] for block in out["system"])
    out["messages"] = [{**m, "content": m["content"][0]["text"]}
                       if isinstance(m["content"], list) and len(m["content"]) == 1
                       and m["content"][0]["type"] == "text" else m for m in body["messages"]]
    return out


@pytest.mark.parametrize("name", MESSAGE_REQUESTS)
def test_contract_requests_survive_the_round_trip(name: str) -> None:
    body = REQUESTS[name]["body"]
    check_request_schema(body)
    rebuilt = DIALECT.build_request(parse_request(body))
    assert rebuilt == canonical(body)
    check_request_schema(rebuilt)


# --- backend: answers ------------------------------------------------------------------------

PARSED = {
    "messages_basic": ChatResponse("msg_013LBDy1nvGiRgxiRAWseYRS", "claude-sonnet-4-20250514",
                                   "Hello World", usage=Usage(14, 5)),
    "messages_tools": ChatResponse(
        "msg_01LEocKDcwMbVwu5WfQD4F9e", "claude-sonnet-4-20250514",
        "I'll check the current weather in Paris for you.",
        [ToolCall("toolu_01Dq95J3WcnLmvSvBpAuaXwi", "get_weather", '{"location":"Paris"}')],
        "tool_calls", Usage(380, 65)),
    "messages_extended_thinking": ChatResponse(
        "msg_01MHEipmYGTxtwNoLd4876Ug", "claude-sonnet-4-20250514",
        RESPONSES["messages_extended_thinking"]["body"]["content"][1]["text"],
        usage=Usage(53, 211)),
    "messages_max_tokens": ChatResponse("msg_01AbCdEfGhIjKlMnOpQrStUv",
                                        "claude-sonnet-4-20250514", "One, two,",
                                        finish_reason="length", usage=Usage(21, 5)),
}


def test_every_contract_message_body_has_an_expectation() -> None:
    assert sorted(PARSED) == sorted(MESSAGE_BODIES)


@pytest.mark.parametrize("name", MESSAGE_BODIES)
def test_parse_response(name: str) -> None:
    assert DIALECT.parse_response(RESPONSES[name]["body"], model="asked") == PARSED[name]


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"),
    ("max_tokens", "length"), ("model_context_window_exceeded", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter")])
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    body = {**RESPONSES["messages_basic"]["body"], "stop_reason": stop_reason}
    assert DIALECT.parse_response(body, model="m").finish_reason == finish


def test_cached_prompt_tokens_count_as_input() -> None:
    body = {**RESPONSES["messages_basic"]["body"], "usage": {
        "input_tokens": 3, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
        "output_tokens": 7}}
    assert DIALECT.parse_response(body, model="m").usage == Usage(123, 7)


@pytest.mark.parametrize("body", [None, [], "text", {"content": "x"}, {"content": ["x"]}])
def test_malformed_answers_raise_value_error(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_response(body, model="m")


def test_parse_models_pages() -> None:
    models = [m for page in ("list_models_page1", "list_models_page2")
              for m in DIALECT.parse_models(RESPONSES[page]["body"], provider="anthropic")]
    assert [m["id"] for m in models] == [
        "claude-opus-4-1-20250805", "claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514",
        "claude-3-5-haiku-20241022"]
    assert models[0] == {"id": "claude-opus-4-1-20250805", "object": "model",
                         "owned_by": "anthropic", "name": "Claude Opus 4.1",
                         "created": int(datetime(2025, 8, 5, tzinfo=UTC).timestamp())}
    assert models[3]["created"] == int(datetime(2024, 10, 22, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("body", [None, {"data": "x"}, {"data": [{"type": "model"}]}])
def test_malformed_model_pages_raise_value_error(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_models(body, provider="anthropic")


@pytest.mark.parametrize("name", ERROR_BODIES)
def test_parse_error(name: str) -> None:
    example = RESPONSES[name]
    info = DIALECT.parse_error(example["status"], example["body"])
    assert (info.message, info.code) == (example["body"]["error"]["message"],
                                         example["body"]["error"]["type"])
    assert info.retry_after is None


def test_parse_error_without_json() -> None:
    assert DIALECT.parse_error(502, "  Bad gateway\n").message == "Bad gateway"
    assert "502" in DIALECT.parse_error(502, {"unexpected": True}).message


# --- backend: streams ------------------------------------------------------------------------

TOOL_ID = "toolu_01NRLabsLyVHZPKxbKvkfSMn"
STREAMS: dict[str, list[StreamEvent]] = {
    "stream.txt": [MessageStart("msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-latest"),
                   TextDelta("Hello"), TextDelta(" there"), TextDelta("!"), Finish("stop"),
                   UsageReport(Usage(11, 6))],
    "stream-tool-use.txt": [
        MessageStart("msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514"), TextDelta("I"),
        TextDelta("'ll check the current weather in Paris for you."),
        ToolCallStart(0, TOOL_ID, "get_weather"), ToolCallDelta(0, '{"locati'),
        ToolCallDelta(0, 'on": "P'), ToolCallDelta(0, "ar"), ToolCallDelta(0, 'is"}'),
        Finish("tool_calls"), UsageReport(Usage(377, 65))],
    "stream-recorded-padded.txt": [
        MessageStart("msg_01SJmPi7XXP8qscFQiHPR9oy", "claude-sonnet-4-20250514"),
        TextDelta("Hello World"), Finish("stop"), UsageReport(Usage(10, 5))],
    "stream-error-midstream.txt": [
        MessageStart("msg_01Xy7Kq2WmRb3nTz8VcL4pDs", "claude-sonnet-4-20250514"),
        TextDelta("Once upon"), StreamError("Overloaded", "overloaded_error")],
}


def test_every_transcript_has_an_expectation() -> None:
    assert sorted(STREAMS) == sorted(p.name for p in CONTRACTS.glob("stream*.txt"))


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_decode_transcripts(name: str) -> None:
    assert decode((CONTRACTS / name).read_bytes()) == STREAMS[name]


def test_truncated_stream_reports_an_error() -> None:
    raw = (CONTRACTS / "stream.txt").read_bytes()
    events = decode(raw[:raw.index(b"event: message_delta")])
    assert events[-1] == StreamError("stream ended before the provider finished")
    assert not any(isinstance(e, Finish) for e in events)


def test_usage_is_flushed_when_message_stop_is_missing() -> None:
    raw = (CONTRACTS / "stream.txt").read_bytes()
    assert decode(raw[:raw.index(b"event: message_stop")]) == STREAMS["stream.txt"]


def frame(data: dict[str, Any]) -> Frame:
    """An SSE frame named after its data's type."""
    return Frame(json.dumps(data), data["type"])


def test_parallel_tool_calls_thinking_and_pings() -> None:
    decoder = DIALECT.stream_decoder(model="asked")
    wire: list[dict[str, Any]] = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta",
                                                              "thinking": "hmm"}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "a", "name": "f", "input": {}}},
        {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "b", "name": "g", "input": {"x": 1}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
                                                              "partial_json": "{}"}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {
            "output_tokens": 9}},
    ]
    events = [e for data in wire for e in decoder.feed(frame(data))] + decoder.close()
    assert events == [MessageStart("", "asked"), ToolCallStart(0, "a", "f"),
                      ToolCallStart(1, "b", "g"), ToolCallDelta(1, '{"x":1}'),
                      ToolCallDelta(0, "{}"), Finish("tool_calls"), UsageReport(Usage(0, 9))]


def test_malformed_frame_ends_the_stream() -> None:
    decoder = DIALECT.stream_decoder(model="asked")
    assert decoder.feed(Frame("")) == [] and decoder.feed(Frame("[DONE]")) == []
    assert decoder.feed(Frame("{not json", "content_block_delta")) == [
        MessageStart("", "asked"), StreamError("the provider sent a malformed stream event")]
    assert decoder.feed(frame({"type": "message_stop"})) == [] and decoder.close() == []


# --- front: requests -------------------------------------------------------------------------

def test_parse_request_tool_results_keep_their_order() -> None:
    request_ = parse_request({"model": "m", "max_tokens": 5, "system": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "messages": [
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "x", "signature": "s"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "é"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "before"},
            {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": [
                {"type": "text", "text": "boom"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
            {"type": "tool_result", "tool_use_id": "t2"}, {"type": "text", "text": "after"}]}]})
    assert request_.messages == [
        Message("system", [TextPart("a")]), Message("system", [TextPart("b")]),
        Message("assistant", tool_calls=[ToolCall("t1", "f", '{"q":"é"}')]),
        user("before"),
        Message("tool", [TextPart("Error: "), TextPart("boom"), ImagePart(url="https://x/y.png")],
                tool_call_id="t1"),
        Message("tool", [], tool_call_id="t2"), user("after")]
    assert (request_.max_tokens, request_.extra, request_.extra_dialect) == (5, {}, "anthropic")


def test_parse_request_options_and_extra() -> None:
    body = {**REQUESTS["messages_system_blocks_multiturn"]["body"], "stream": True,
            "temperature": 0, "output_config": {"effort": "low", "format": {
                "type": "json_schema", "schema": {"type": "object"}}}}
    request_ = parse_request(body)
    assert (request_.stop, request_.top_p, request_.temperature, request_.stream) == (
        ["\n\nHuman:"], 0.9, 0, True)
    assert request_.extra == {"top_k": 40, "metadata": {"user_id": "user-1234"},
                              "output_config": body["output_config"]}
    assert request_.response_format == {"type": "json_schema", "json_schema": {
        "name": "output", "schema": {"type": "object"}}}
    assert DIALECT.build_request(request_)["output_config"] == body["output_config"]


def valid(**changes: Any) -> dict[str, Any]:
    """A minimal valid messages body with some fields changed (None removes one)."""
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


INVALID = [
    ([], "body"), (valid(max_tokens=None), "max_tokens"), (valid(max_tokens=0), "max_tokens"),
    (valid(max_tokens=True), "max_tokens"), (valid(model=None), "model"),
    (valid(messages=[]), "messages"), (valid(messages=[{"role": "system", "content": "x"}]),
                                        "messages[0].role"),
    (valid(messages=[{"role": "user", "content": 3}]), "messages[0].content"),
    (valid(messages=[{"role": "user", "content": [{"type": "document"}]}]),
     "messages[0].content[0].type"),
    (valid(messages=[{"role": "assistant", "content": [{"type": "tool_result"}]}]),
     "messages[0].content[0].type"),
    (valid(messages=[{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}]),
     "messages[0].content[0].input"),
    (valid(messages=[{"role": "user", "content": [{"type": "image", "source": {
        "type": "file", "file_id": "f"}}]}]), "messages[0].content[0].source.type"),
    (valid(system=7), "system"), (valid(temperature="hot"), "temperature"),
    (valid(stop_sequences="END"), "stop_sequences"), (valid(stream="yes"), "stream"),
    (valid(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type"),
    (valid(tools=[{"name": "f"}]), "tools[0].input_schema"),
    (valid(tool_choice={"type": "sometimes"}), "tool_choice.type"),
    (valid(tool_choice={"type": "tool"}), "tool_choice.name"),
]


@pytest.mark.parametrize(("body", "field"), INVALID, ids=[c[1] for c in INVALID])
def test_parse_request_rejects(body: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(body)
    assert info.value.field == field
    assert info.value.status == 400


# --- front: answers --------------------------------------------------------------------------

RENDER_CASES = [*PARSED.values(),
                ChatResponse("msg_e", "m", finish_reason="content_filter"),
                ChatResponse("msg_odd", "m", tool_calls=[ToolCall("t", "f", ""),
                                                         ToolCall("u", "g", "not json")],
                             finish_reason="tool_calls", usage=Usage(1, 2))]


@pytest.mark.parametrize("resp", RENDER_CASES, ids=[r.id for r in RENDER_CASES])
def test_render_response_is_an_sdk_message(resp: ChatResponse) -> None:
    body = render_response(resp)
    message = SDKMessage.model_validate(body)
    assert message.id == resp.id
    assert message.usage.output_tokens == (resp.usage or Usage()).output_tokens
    back = DIALECT.parse_response(body, model="m")
    if resp.id == "msg_odd":
        assert [c.arguments for c in back.tool_calls] == ["{}", '{"arguments":"not json"}']
    else:
        assert back == (resp if resp.usage else replace(resp, usage=Usage()))


def test_render_response_stop_reasons() -> None:
    reasons = {r: render_response(ChatResponse("i", "m", finish_reason=r))["stop_reason"]
               for r in ("stop", "length", "tool_calls", "content_filter", "error")}
    assert reasons == {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                       "content_filter": "refusal", "error": "end_turn"}


@pytest.mark.parametrize(("status", "code", "type_"), [
    (400, "invalid_request", "invalid_request_error"),
    (401, "unauthorized", "authentication_error"),
    (403, "forbidden", "permission_error"), (404, "not_found", "not_found_error"),
    (413, "payload_too_large", "request_too_large"), (429, "rate_limited", "rate_limit_error"),
    (500, "internal_error", "api_error"), (502, "upstream_error", "api_error"),
    (503, "service_unavailable", "api_error"), (504, "upstream_timeout", "api_error"),
    (529, "upstream_error", "overloaded_error"), (422, "x", "invalid_request_error"),
    (502, "overloaded_error", "overloaded_error")])
def test_render_error(status: int, code: str, type_: str) -> None:
    assert render_error(status, "why", code) == {"type": "error", "error": {
        "type": type_, "message": "why"}}


# --- front: streams --------------------------------------------------------------------------

def encode_all(events: list[StreamEvent], *, finish: bool = True) -> bytes:
    """The encoder's bytes for a run of IR events."""
    encoder = StreamEncoder(id="msg_gw", model="gw-model")
    return b"".join(encoder.encode(e) for e in events) + (encoder.finish() if finish else b"")


def sdk_events(raw: bytes) -> list[Any]:
    """The encoder's frames, each checked against the SDK's stream event types."""
    out: list[Any] = []
    for f in frames_of(raw):
        data = json.loads(f.data)
        assert f.event == data["type"]
        out.append(data if f.event == "error" else STREAM_EVENT.validate_python(data))
    return out


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_encoder_round_trips_every_transcript(name: str) -> None:
    events = STREAMS[name]
    raw = encode_all(events)
    kinds = [e["type"] if isinstance(e, dict) else e.type for e in sdk_events(raw)]
    assert kinds[0] == "message_start"
    assert kinds[-1] == ("error" if name == "stream-error-midstream.txt" else "message_stop")
    assert decode(raw) == [MessageStart("msg_gw", "gw-model"), *events[1:]]


def test_encoder_block_indexes_and_held_usage() -> None:
    encoder = StreamEncoder(id="msg_gw", model="gw-model")
    script: list[StreamEvent] = [
        MessageStart("x", "y"), TextDelta("a"), ToolCallStart(0, "t0", "f"), ToolCallDelta(0, "{"),
        ToolCallStart(1, "t1", "g"), ToolCallDelta(0, "}"), Finish("tool_calls")]
    out = [encoder.encode(e) for e in script]
    assert b"message_delta" not in b"".join(out)  # usage may still follow the finish
    out.append(encoder.encode(UsageReport(Usage(3, 4))))
    events = sdk_events(b"".join(out))
    assert [(e.type, getattr(e, "index", None)) for e in events] == [
        ("message_start", None), ("content_block_start", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1),
        ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 1),
        ("content_block_stop", 2), ("message_delta", None), ("message_stop", None)]
    assert events[-2].usage.output_tokens == 4 and events[-2].usage.input_tokens == 3
    assert events[-2].delta.stop_reason == "tool_use"
    assert encoder.finish() == b"" and encoder.encode(TextDelta("late")) == b""


def test_encoder_finish_closes_an_empty_or_unfinished_stream() -> None:
    kinds = [e.type for e in sdk_events(encode_all([]))]
    assert kinds == ["message_start", "message_delta", "message_stop"]
    events = sdk_events(encode_all([TextDelta("cut")]))
    assert [e.type for e in events] == ["message_start", "content_block_start",
                                        "content_block_delta", "content_block_stop",
                                        "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == 0


def test_encoder_error_event() -> None:
    raw = encode_all([TextDelta("x"), StreamError("upstream died")])
    assert sdk_events(raw)[-1] == {"type": "error", "error": {"type": "api_error",
                                                             "message": "upstream died"}}


# --- front: the official SDK over HTTP -------------------------------------------------------

SCRIPT: list[StreamEvent] = [
    MessageStart("up", "up-model"), TextDelta("Let me check."),
    ToolCallStart(0, "toolu_9", "get_weather"),
    ToolCallDelta(0, '{"location":'), ToolCallDelta(0, '"Paris"}'), Finish("tool_calls"),
    UsageReport(Usage(12, 7))]


async def messages(request: Request) -> Response:
    """A stand-in for the gateway's route: parse, then answer from SCRIPT."""
    try:
        parsed = parse_request(await request.json())
    except InvalidRequest as exc:
        return JSONResponse(render_error(400, exc.message, exc.code), status_code=400)
    if parsed.model == "busy":
        return JSONResponse(render_error(529, "Overloaded", "upstream_error"), status_code=529)
    if not parsed.stream:
        return JSONResponse(render_response(ChatResponse(
            "msg_gw", parsed.model, "Let me check.", [CALL], "tool_calls", Usage(12, 7))))
    encoder = StreamEncoder(id="msg_gw", model=parsed.model)

    async def body() -> Any:
        for event in SCRIPT:
            yield encoder.encode(event)
        yield encoder.finish()
    return StreamingResponse(body(), media_type="text/event-stream")


def test_official_sdk_against_the_front_dialect() -> None:
    app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
    with serve(app) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        turn: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
        tools: list[Any] = [{"name": "get_weather", "input_schema": WEATHER.parameters}]
        with client.messages.stream(model="claude-x", max_tokens=64, messages=turn,
                                    tools=tools) as stream:
            final = stream.get_final_message()
        assert (final.id, final.model, final.stop_reason) == ("msg_gw", "claude-x", "tool_use")
        assert final.content[0].type == "text" and final.content[0].text == "Let me check."
        assert final.content[1].type == "tool_use"
        assert final.content[1].input == {"location": "Paris"}
        assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 7)
        plain = client.messages.create(model="claude-x", max_tokens=64, messages=turn)
        assert plain.content[1].type == "tool_use"
        assert plain.content[1].input == {"location": "Paris"}
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.create(model="claude-x", max_tokens=0, messages=turn)
        assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(model="busy", max_tokens=8, messages=turn)
