"""The Cloudflare Workers AI dialect against the vendored contracts (tests/contracts/cloudflare)."""

from __future__ import annotations

import calendar
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.dialects.base import Dialect, Frame
from gateway.dialects.cloudflare import DIALECT
from gateway.errors import InvalidRequest
from gateway.ir import (
    ChatRequest,
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

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "cloudflare"
MODEL_SCHEMA = json.loads(
    (CONTRACTS / "model-schema.llama-3.3-70b-instruct-fp8-fast.json").read_text())["schema"]
TYPED: Dialect = DIALECT  # mypy checks that the module satisfies the Protocol


def examples(file: str) -> dict[str, dict[str, Any]]:
    """The examples of a contract file, by name."""
    return {e["name"]: e for e in json.loads((CONTRACTS / file).read_text())["examples"]}


REQUESTS, RESPONSES = examples("requests.json"), examples("responses.json")


def model_input_check(body: dict[str, Any]) -> None:
    """Validate a built body against the vendored model input schema (Prompt | Messages)."""
    jsonschema.Draft202012Validator(MODEL_SCHEMA["input"]).validate(body)


def decode(raw: bytes, chunk_size: int = 23) -> list[StreamEvent]:
    """Run a transcript through the SSE framer (in small reads) and a fresh decoder."""
    parser, decoder = SSEParser(), DIALECT.stream_decoder(model="requested")
    frames: list[Frame] = []
    for start in range(0, len(raw), chunk_size):
        frames += parser.feed(raw[start:start + chunk_size])
    frames += parser.close()
    events = [event for frame in frames for event in decoder.feed(frame)]
    return events + decoder.close()


def sse(*payloads: Any) -> bytes:
    """An SSE body with one data frame per payload (strings are sent as they are)."""
    return b"".join(
        f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n".encode() for p in payloads)


def message(role: Any, text: str) -> Message:
    """A turn with one text part."""
    return Message(role=role, content=[TextPart(text)])


def ir_messages(wire: list[dict[str, str]]) -> list[Message]:
    """The IR turns for a contract example's `{role, content}` messages."""
    return [message(m["role"], m["content"]) for m in wire]


# --- requests --------------------------------------------------------------------------------

def _example_request(name: str, **fields: Any) -> ChatRequest:
    """The IR request behind a contract example's messages."""
    body = REQUESTS[name]["body"]
    return ChatRequest(model="@cf/meta/llama-3.1-8b-instruct",
                       messages=ir_messages(body["messages"]), **fields)


BUILD_CASES = [
    ("run_messages", {"max_tokens": 256, "temperature": 0.6}),
    ("run_stream", {"stream": True}),
    ("run_tools", {"tools": [Tool(t["name"], t["description"], t["parameters"])
                             for t in REQUESTS["run_tools"]["body"]["tools"]]}),
]


@pytest.mark.parametrize(("name", "fields"), BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_build_request_matches_contract(name: str, fields: dict[str, Any]) -> None:
    body = DIALECT.build_request(_example_request(name, **fields))
    assert body == REQUESTS[name]["body"]
    model_input_check(body)


def test_extra_fields_only_pass_through_for_the_same_dialect() -> None:
    extra = REQUESTS["run_reject_if_busy"]["body"]["options"]
    request_ = _example_request("run_reject_if_busy", extra={"options": extra},
                                extra_dialect="cloudflare")
    assert DIALECT.build_request(request_) == REQUESTS["run_reject_if_busy"]["body"]
    request_.extra_dialect = "openai"
    assert "options" not in DIALECT.build_request(request_)


def test_tools_are_filled_out_to_what_the_model_schema_requires() -> None:
    tool = Tool("lookup", None, {"type": "object", "properties": {"q": {"type": "string"}}})
    body = DIALECT.build_request(ChatRequest(model="m", messages=[message("user", "hi")],
                                             tools=[tool, Tool("now")]))
    assert body["tools"] == [
        {"name": "lookup", "description": "",
         "parameters": {"type": "object", "properties": {"q": {"type": "string",
                                                              "description": ""}}}},
        {"name": "now", "description": "", "parameters": {"type": "object", "properties": {}}},
    ]
    model_input_check(body)


@pytest.mark.parametrize(("choice", "names"), [
    (None, ["a", "b"]), ("auto", ["a", "b"]), ("required", ["a", "b"]), ("none", []), ("b", ["b"]),
])
def test_tool_choice_narrows_the_tool_list(choice: str | None, names: list[str]) -> None:
    request_ = ChatRequest(model="m", messages=[message("user", "hi")],
                           tools=[Tool("a"), Tool("b")], tool_choice=choice)
    assert [t["name"] for t in DIALECT.build_request(request_).get("tools", [])] == names


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
RESPONSE_FORMATS: list[tuple[dict[str, Any] | None, Any]] = [
    (None, None),
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "json_schema": {"name": "country", "schema": SCHEMA}},
     {"type": "json_schema", "json_schema": SCHEMA}),
]


@pytest.mark.parametrize(("response_format", "expected"), RESPONSE_FORMATS)
def test_response_format_unwraps_the_schema(response_format: dict[str, Any] | None,
                                           expected: Any) -> None:
    request_ = ChatRequest(model="m", messages=[message("user", "hi")],
                           response_format=response_format)
    body = DIALECT.build_request(request_)
    assert body.get("response_format") == expected
    model_input_check(body)


def test_images_are_rejected_naming_the_field() -> None:
    turn = Message(role="user", content=[TextPart("x"), ImagePart(data="aGk=")])
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.build_request(ChatRequest(model="m", messages=[message("user", "hi"), turn]))
    assert caught.value.field == "messages[1].content[1]"


def test_tool_round_trip_keeps_calls_as_text() -> None:
    answer = DIALECT.parse_response(RESPONSES["run_tools"]["body"], model="m")
    assert answer.tool_calls == [ToolCall("call_0", "get_weather", '{"location":"Austin"}')]
    assert answer.finish_reason == "tool_calls"
    follow_up = ChatRequest(model="m", messages=[
        message("user", "What's the weather in Austin?"),
        Message(role="assistant", content=[TextPart("Checking.")], tool_calls=answer.tool_calls),
        Message(role="tool", content=[TextPart("31 C")], tool_call_id="call_0"),
    ])
    body = DIALECT.build_request(follow_up)
    assistant, result = body["messages"][1:]
    text, call = assistant["content"].split("\n")
    wire_call = RESPONSES["run_tools"]["body"]["result"]["tool_calls"][0]
    assert (assistant["role"], text) == ("assistant", "Checking.")
    assert json.loads(call) == {"id": "call_0", **wire_call}
    assert result == {"role": "tool", "content": "31 C"}
    model_input_check(body)


# --- responses -------------------------------------------------------------------------------

def test_parse_native_text_response() -> None:
    body = RESPONSES["run_messages"]["body"]
    answer = DIALECT.parse_response(body, model="@cf/meta/llama-3.1-8b-instruct")
    assert answer.text == body["result"]["response"]
    assert (answer.tool_calls, answer.finish_reason) == ([], "stop")
    assert answer.usage == Usage(25, 52) and answer.model == "@cf/meta/llama-3.1-8b-instruct"


def test_json_mode_object_response_becomes_text() -> None:
    body = {"result": {"response": {"name": "India", "capital": "New Delhi"}}, "success": True}
    answer = DIALECT.parse_response(body, model="m")
    assert json.loads(answer.text) == {"name": "India", "capital": "New Delhi"}


def test_chat_completion_shaped_result() -> None:
    completion = RESPONSES["openai_compat_chat"]["body"]
    answer = DIALECT.parse_response({"result": completion, "success": True}, model="m")
    assert answer.text == completion["choices"][0]["message"]["content"]
    assert (answer.id, answer.finish_reason, answer.usage) == (completion["id"], "stop",
                                                              Usage(41, 24))
    calls = {"id": "call_7", "type": "function",
             "function": {"name": "f", "arguments": '{"a":1}'}}
    completion = {"choices": [{"message": {"content": None, "tool_calls": [calls]},
                               "finish_reason": "tool_calls"}]}
    answer = DIALECT.parse_response({"result": completion, "success": True}, model="m")
    assert answer.tool_calls == [ToolCall("call_7", "f", '{"a":1}')]


@pytest.mark.parametrize("body", [
    [], {"result": None, "success": True}, {"result": {"response": 5, "tool_calls": 3}},
    {"result": {"tool_calls": [{"arguments": {}}]}},
    {"result": {"choices": []}},
    *[e["body"] for e in RESPONSES.values() if e["status"] >= 400],
])
def test_malformed_or_failed_answers_raise_value_error(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_response(body, model="m")


def test_success_false_in_a_200_names_the_error() -> None:
    body = RESPONSES["error_429_capacity"]["body"]
    with pytest.raises(ValueError, match="Capacity temporarily exceeded"):
        DIALECT.parse_response(body, model="m")


# --- streams ---------------------------------------------------------------------------------

STREAM_CASES = [
    # (transcript, text, usage): the chunk-style usage must not be added to the native total
    ("stream.txt", "Hello! How can I help?", Usage(12, 7)),
    ("stream-native-chunk-style.txt", "Hello! Nice to meet you.", Usage(147, 3)),
    ("stream-openai-compat.txt", "Hello!", Usage(44, 2)),
]


@pytest.mark.parametrize(("transcript", "text", "usage"), STREAM_CASES,
                         ids=[c[0] for c in STREAM_CASES])
def test_stream_transcripts(transcript: str, text: str, usage: Usage) -> None:
    events = decode((CONTRACTS / transcript).read_bytes())
    assert isinstance(events[0], MessageStart)
    assert sum(isinstance(e, MessageStart) for e in events) == 1
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text
    assert events[-2:] == [Finish("stop"), UsageReport(usage)]
    assert sum(isinstance(e, Finish) for e in events) == 1


def test_chunk_style_start_uses_the_chunk_id_and_model() -> None:
    events = decode((CONTRACTS / "stream-native-chunk-style.txt").read_bytes())
    assert events[0] == MessageStart("f962191d3d2f47418286b60056319eb5",
                                     "@cf/google/gemma-4-26b-a4b-it")


def test_native_stream_tool_calls() -> None:
    raw = sse({"response": "", "tool_calls": [{"name": "get_weather",
                                               "arguments": {"location": "Austin"}}]},
              {"response": "", "usage": {"prompt_tokens": 233, "completion_tokens": 18}},
              "[DONE]")
    assert decode(raw)[1:] == [
        ToolCallStart(0, "call_0", "get_weather"), ToolCallDelta(0, '{"location":"Austin"}'),
        Finish("tool_calls"), UsageReport(Usage(233, 18)),
    ]


def test_chunk_style_tool_call_fragments() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        """One chat.completion.chunk with a single choice."""
        return {"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    raw = sse(
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Austin"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"name": "now", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"), "[DONE]",
    )
    assert decode(raw)[1:] == [
        ToolCallStart(0, "call_a", "get_weather"), ToolCallDelta(0, '{"location":'),
        ToolCallDelta(0, '"Austin"}'), ToolCallStart(1, "call_1", "now"),
        ToolCallDelta(1, "{}"), Finish("tool_calls"),
    ]


@pytest.mark.parametrize(("raw", "kinds"), [
    (b"", [MessageStart, StreamError]),
    (sse({"response": "Hel"}), [MessageStart, TextDelta, StreamError]),
    (sse("not json"), [MessageStart, StreamError]),
    (sse({"response": "a"}, {"errors": [{"code": 3040, "message": "busy"}], "success": False},
         "[DONE]"), [MessageStart, TextDelta, StreamError]),
])
def test_cut_or_failed_streams_end_with_one_error(raw: bytes, kinds: list[type]) -> None:
    events = decode(raw)
    assert [type(e) for e in events] == kinds
    assert sum(isinstance(e, StreamError) for e in events) == 1


def test_usage_frame_without_done_still_finishes_at_close() -> None:
    raw = sse({"response": "Hi"}, {"response": "", "usage": {"prompt_tokens": 1,
                                                             "completion_tokens": 1}})
    assert decode(raw)[-2:] == [Finish("stop"), UsageReport(Usage(1, 1))]


def test_frames_after_done_are_ignored() -> None:
    decoder = DIALECT.stream_decoder(model="m")
    decoder.feed(Frame("[DONE]"))
    assert decoder.feed(Frame('{"response":"late"}')) == []
    assert decoder.close() == []


# --- models and errors -----------------------------------------------------------------------

def test_parse_models() -> None:
    body = RESPONSES["models_search"]["body"]
    models = DIALECT.parse_models(body, provider="cloudflare")
    assert [m["id"] for m in models] == [e["name"] for e in body["result"]]
    assert {m["owned_by"] for m in models} == {"cloudflare"}
    # created_at "2024-12-06 17:09:18.338" is UTC
    assert models[0]["created"] == calendar.timegm((2024, 12, 6, 17, 9, 18))


@pytest.mark.parametrize("body", [{}, [], {"result": None}])
def test_parse_models_rejects_other_shapes(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_models(body, provider="cloudflare")


ERROR_CASES = [(e["status"], e["body"]) for e in RESPONSES.values() if e["status"] >= 400]


@pytest.mark.parametrize(("status", "body"), ERROR_CASES)
def test_parse_error_contract_bodies(status: int, body: dict[str, Any]) -> None:
    info = DIALECT.parse_error(status, body)
    first = body["errors"][0]
    assert (info.message, info.code, info.retry_after) == (first["message"], str(first["code"]),
                                                           None)


@pytest.mark.parametrize(("body", "message", "code"), [
    ({"success": False, "errors": [{"code": 1, "message": "a"}, {"code": 2, "message": "b"}]},
     "a; b", "1"),
    ({"success": False, "errors": [{"code": 7000}]}, "Cloudflare answered HTTP 500", "7000"),
    ({"error": {"message": "compat failure"}}, "compat failure", None),
    ("upstream proxy said no", "upstream proxy said no", None),
    ("", "Cloudflare answered HTTP 500", None),
])
def test_parse_error_other_bodies(body: Any, message: str, code: str | None) -> None:
    info = DIALECT.parse_error(500, body)
    assert (info.message, info.code) == (message, code)


def test_path_model_keeps_the_slashes() -> None:
    assert DIALECT.path_model("@cf/meta/llama-3.1-8b-instruct") == "@cf/meta/llama-3.1-8b-instruct"
