"""The Ollama dialect against the vendored contracts in tests/contracts/ollama."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.dialects.base import Dialect, Frame
from gateway.dialects.ollama import DIALECT
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
from gateway.streaming import NDJSONParser

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "ollama"


def examples(file: str) -> dict[str, dict[str, Any]]:
    """The examples of a contract file, by name."""
    return {e["name"]: e for e in json.loads((CONTRACTS / file).read_text())["examples"]}


REQUESTS, RESPONSES = examples("requests.json"), examples("responses.json")
SPEC = yaml.safe_load((CONTRACTS / "openapi.trimmed.yaml").read_text())
TYPED: Dialect = DIALECT  # mypy checks that the module satisfies the Protocol


def chat_request_schema_check(body: dict[str, Any]) -> None:
    """Validate a built body against the vendored `ChatRequest` schema."""
    schema = {"$ref": "#/components/schemas/ChatRequest", "components": SPEC["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def decode(raw: bytes, chunk_size: int = 17) -> list[StreamEvent]:
    """Run a transcript through the NDJSON framer (in small reads) and a fresh decoder."""
    parser, decoder = NDJSONParser(), DIALECT.stream_decoder(model="requested")
    frames: list[Frame] = []
    for start in range(0, len(raw), chunk_size):
        frames += parser.feed(raw[start:start + chunk_size])
    frames += parser.close()
    events = [event for frame in frames for event in decoder.feed(frame)]
    return events + decoder.close()


def user(text: str) -> Message:
    """A user turn with one text part."""
    return Message(role="user", content=[TextPart(text)])


def tool_from_wire(wire: dict[str, Any]) -> Tool:
    """The IR tool for one of Ollama's tool definitions."""
    function = wire["function"]
    return Tool(function["name"], function.get("description"), function["parameters"])


# --- requests --------------------------------------------------------------------------------

def _default_stream_request() -> ChatRequest:
    example = REQUESTS["chat_stream_default"]["body"]
    return ChatRequest(
        model="llama3.2",
        messages=[Message(role="system", content=[TextPart("You are a terse assistant.")]),
                  user("why is the sky blue?")],
        temperature=0.2, max_tokens=128, top_p=0.9, stop=["\n\n"], stream=True,
        extra={"keep_alive": example["keep_alive"]}, extra_dialect="ollama",
    )


BUILD_CASES = [
    # (contract example, IR request, fields the gateway adds to the example body)
    ("chat_stream_default", _default_stream_request(), {"stream": True}),
    ("chat_no_stream", ChatRequest(model="llama3.2", messages=[user("why is the sky blue?")]), {}),
    ("chat_tools", ChatRequest(
        model="llama3.2", messages=[user("what is the weather in tokyo?")],
        tools=[tool_from_wire(t) for t in REQUESTS["chat_tools"]["body"]["tools"]]), {}),
]


@pytest.mark.parametrize(("name", "request_", "added"), BUILD_CASES,
                         ids=[c[0] for c in BUILD_CASES])
def test_build_request_matches_contract(name: str, request_: ChatRequest,
                                        added: dict[str, Any]) -> None:
    body = DIALECT.build_request(request_)
    assert body == {**REQUESTS[name]["body"], **added}
    assert isinstance(body["stream"], bool)  # Ollama streams unless told otherwise
    chat_request_schema_check(body)


def test_extra_fields_only_pass_through_for_the_same_dialect() -> None:
    request_ = _default_stream_request()
    request_.extra = {"keep_alive": "5m", "options": {"num_ctx": 8192}}
    body = DIALECT.build_request(request_)
    assert body["keep_alive"] == "5m"
    assert body["options"] == {"temperature": 0.2, "top_p": 0.9, "num_predict": 128,
                               "stop": ["\n\n"], "num_ctx": 8192}
    request_.extra_dialect = "openai"
    body = DIALECT.build_request(request_)
    assert "keep_alive" not in body and "num_ctx" not in body["options"]


RESPONSE_FORMATS: list[tuple[dict[str, Any] | None, Any]] = [
    (None, None),
    ({"type": "text"}, None),
    ({"type": "json_object"}, "json"),
    ({"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}}},
     {"type": "object"}),
]


@pytest.mark.parametrize(("response_format", "expected"), RESPONSE_FORMATS)
def test_response_format_becomes_format(response_format: dict[str, Any] | None,
                                        expected: Any) -> None:
    request_ = ChatRequest(model="m", messages=[user("hi")], response_format=response_format)
    body = DIALECT.build_request(request_)
    assert body.get("format") == expected
    chat_request_schema_check(body)


@pytest.mark.parametrize(("choice", "names"), [
    (None, ["a", "b"]), ("auto", ["a", "b"]), ("required", ["a", "b"]), ("none", []), ("b", ["b"]),
])
def test_tool_choice_narrows_the_tool_list(choice: str | None, names: list[str]) -> None:
    request_ = ChatRequest(model="m", messages=[user("hi")], tools=[Tool("a"), Tool("b")],
                           tool_choice=choice)
    body = DIALECT.build_request(request_)
    assert [t["function"]["name"] for t in body.get("tools", [])] == names


IMAGE_CASES = [
    (ImagePart(data="aGVsbG8=", media_type="image/png"), "aGVsbG8="),
    (ImagePart(url="data:image/png;base64,aGVsbG8="), "aGVsbG8="),
]


@pytest.mark.parametrize(("part", "expected"), IMAGE_CASES)
def test_inline_images_are_sent_as_base64(part: ImagePart, expected: str) -> None:
    message = Message(role="user", content=[TextPart("what is this?"), part])
    body = DIALECT.build_request(ChatRequest(model="m", messages=[message]))
    assert body["messages"] == [{"role": "user", "content": "what is this?", "images": [expected]}]
    chat_request_schema_check(body)


def test_image_urls_are_rejected_naming_the_field() -> None:
    message = Message(role="user", content=[TextPart("x"), ImagePart(url="https://example.com/a.png")])
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.build_request(ChatRequest(model="m", messages=[user("hi"), message]))
    assert caught.value.field == "messages[1].content[1]"


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]"])
def test_tool_call_arguments_must_be_an_object(arguments: str) -> None:
    turn = Message(role="assistant", tool_calls=[ToolCall("call_0", "f", arguments)])
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.build_request(ChatRequest(model="m", messages=[user("hi"), turn]))
    assert caught.value.field == "messages[1].tool_calls[0].arguments"


def test_tool_round_trip_through_the_wire() -> None:
    answer = DIALECT.parse_response(RESPONSES["chat_tools"]["body"], model="llama3.2")
    wire_call = RESPONSES["chat_tools"]["body"]["message"]["tool_calls"][0]
    assert answer.tool_calls == [ToolCall("call_0", "get_weather", '{"city":"Tokyo"}')]
    follow_up = ChatRequest(model="llama3.2", messages=[
        user("what is the weather in tokyo?"),
        Message(role="assistant", tool_calls=answer.tool_calls),
        Message(role="tool", content=[TextPart("11 degrees")], tool_call_id="call_0"),
    ])
    body = DIALECT.build_request(follow_up)
    assert body["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [wire_call]}
    assert body["messages"][2] == {"role": "tool", "content": "11 degrees",
                                   "tool_name": "get_weather"}
    chat_request_schema_check(body)


# --- responses -------------------------------------------------------------------------------

PARSE_CASES = [
    # (response example, text, tool-call names, finish reason, usage)
    ("chat_no_stream", "Hello! How are you today?", [], "stop", Usage(26, 298)),
    ("chat_tools", "", ["get_weather"], "tool_calls", Usage(169, 18)),
    ("generate_no_stream", "The sky is blue because it is the color of the sky.", [], "stop",
     Usage(26, 290)),
    ("generate_length", "The sky appears blue because", [], "length", Usage(31, 5)),
]


@pytest.mark.parametrize(("name", "text", "tools", "finish", "usage"), PARSE_CASES,
                         ids=[c[0] for c in PARSE_CASES])
def test_parse_response(name: str, text: str, tools: list[str], finish: str, usage: Usage) -> None:
    answer = DIALECT.parse_response(RESPONSES[name]["body"], model="requested")
    assert (answer.text, [c.name for c in answer.tool_calls]) == (text, tools)
    assert (answer.finish_reason, answer.usage) == (finish, usage)
    assert answer.model == "llama3.2" and answer.id


@pytest.mark.parametrize("done_reason", ["load", "unload"])
def test_load_and_unload_answers_finish_normally(done_reason: str) -> None:
    body = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True,
            "done_reason": done_reason}
    answer = DIALECT.parse_response(body, model="m")
    assert answer.finish_reason == "stop" and answer.usage is None


def test_cached_prompt_without_prompt_eval_count_still_reports_usage() -> None:
    body = {"model": "m", "message": {"role": "assistant", "content": "hi"}, "done": True,
            "eval_count": 3}
    assert DIALECT.parse_response(body, model="m").usage == Usage(0, 3)


@pytest.mark.parametrize("body", [
    [], "text", {}, {"message": "text"}, {"message": {"content": 5}},
    {"message": {"content": "", "tool_calls": [{"function": {}}]}},
    RESPONSES["error_midstream_ndjson"]["body"],
])
def test_malformed_answers_raise_value_error(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_response(body, model="m")


# --- streams ---------------------------------------------------------------------------------

SKY = "The sky is blue because of Rayleigh scattering."


@pytest.mark.parametrize("transcript", ["stream-chat.ndjson.txt", "stream-generate.ndjson.txt"])
def test_stream_transcripts(transcript: str) -> None:
    events = decode((CONTRACTS / transcript).read_bytes())
    assert isinstance(events[0], MessageStart) and events[0].model == "llama3.2"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == SKY
    assert events[-2:] == [Finish("stop"), UsageReport(Usage(26, 6))]
    assert sum(isinstance(e, MessageStart) for e in events) == 1


def test_stream_error_line_becomes_stream_error() -> None:
    events = decode((CONTRACTS / "stream-error.ndjson.txt").read_bytes())
    message = RESPONSES["error_midstream_ndjson"]["body"]["error"]
    assert [type(e) for e in events] == [MessageStart] + [TextDelta] * 4 + [StreamError]
    assert events[-1] == StreamError(message)


def test_stream_tool_call_arrives_whole() -> None:
    lines = [
        {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
            {"function": {"name": "get_time", "arguments": {}}}]}, "done": False},
        {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop", "prompt_eval_count": 169, "eval_count": 18},
    ]
    events = decode("".join(json.dumps(line) + "\n" for line in lines).encode())
    assert events[1:] == [
        ToolCallStart(0, "call_0", "get_weather"), ToolCallDelta(0, '{"city":"Tokyo"}'),
        ToolCallStart(1, "call_1", "get_time"), ToolCallDelta(1, "{}"),
        Finish("tool_calls"), UsageReport(Usage(169, 18)),
    ]


@pytest.mark.parametrize(("raw", "kinds"), [
    (b"", [MessageStart, StreamError]),
    (b'{"model":"m","message":{"content":"hi"},"done":false}\n',
     [MessageStart, TextDelta, StreamError]),
    (b"not json\n", [MessageStart, StreamError]),
])
def test_cut_or_garbled_streams_end_with_one_error(raw: bytes, kinds: list[type]) -> None:
    events = decode(raw)
    assert [type(e) for e in events] == kinds
    assert sum(isinstance(e, StreamError) for e in events) == 1


def test_lines_after_the_final_object_are_ignored() -> None:
    decoder = DIALECT.stream_decoder(model="m")
    decoder.feed(Frame('{"message":{"content":"a"},"done":true,"done_reason":"length"}'))
    assert decoder.feed(Frame('{"message":{"content":"b"},"done":false}')) == []
    assert decoder.close() == []


# --- models and errors -----------------------------------------------------------------------

def test_parse_models_matches_the_compat_listing() -> None:
    models = DIALECT.parse_models(RESPONSES["tags"]["body"], provider="ollama")
    compat = RESPONSES["openai_compat_models"]["body"]["data"]
    # Ollama's own /v1/models derives `created` from the same modified_at timestamps.
    assert models == [{"id": m["id"], "object": "model", "owned_by": "ollama",
                       "created": m["created"]} for m in compat]


@pytest.mark.parametrize("body", [{}, [], {"models": None}])
def test_parse_models_rejects_other_shapes(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_models(body, provider="ollama")


ERROR_CASES = [
    (e["status"], e["body"]) for e in RESPONSES.values() if e["status"] >= 400
]


@pytest.mark.parametrize(("status", "body"), ERROR_CASES)
def test_parse_error_contract_bodies(status: int, body: dict[str, Any]) -> None:
    info = DIALECT.parse_error(status, body)
    error = body["error"]
    if isinstance(error, dict):
        assert (info.message, info.code) == (error["message"], error["type"])
    else:
        assert (info.message, info.code) == (error, None)
    assert info.retry_after is None


@pytest.mark.parametrize(("body", "message"), [
    ("upstream proxy said no", "upstream proxy said no"), ("", "Ollama answered HTTP 502"),
    ({}, "Ollama answered HTTP 502"),
])
def test_parse_error_without_a_json_error(body: Any, message: str) -> None:
    assert DIALECT.parse_error(502, body).message == message


def test_path_model_is_unchanged() -> None:
    assert DIALECT.path_model("library/llama3.2:latest") == "library/llama3.2:latest"
