"""The Cohere v2 dialect against the vendored Cohere wire contracts (pure translation)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.dialects.base import Frame
from gateway.dialects.cohere import DIALECT
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

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "cohere"
REQUESTS = {e["name"]: e for e in json.loads((CONTRACTS / "requests.json").read_text())["examples"]}
RESPONSES = {
    e["name"]: e for e in json.loads((CONTRACTS / "responses.json").read_text())["examples"]
}
SPEC = yaml.safe_load((CONTRACTS / "openapi.trimmed.yaml").read_text())
CHAT_BODY_SCHEMA = "#/paths/~1v2~1chat/post/requestBody/content/application~1json/schema"
ENDED_EARLY = StreamError("stream ended before the provider finished")


def _validate(instance: Any, pointer: str = CHAT_BODY_SCHEMA) -> None:
    """Check an instance against a schema of the vendored spec (the /v2/chat body by default)."""
    schema = {"$ref": pointer, "paths": SPEC["paths"], "components": SPEC["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def _user(text: str) -> Message:
    return Message(role="user", content=[TextPart(text)])


def _tools(wire: list[dict[str, Any]]) -> list[Tool]:
    return [Tool(name=t["function"]["name"], description=t["function"]["description"],
                 parameters=t["function"]["parameters"]) for t in wire]


def _decode(frames: list[Frame]) -> list[StreamEvent]:
    decoder = DIALECT.stream_decoder(model="command-a")
    events: list[StreamEvent] = []
    for frame in frames:
        events.extend(decoder.feed(frame))
    return events + decoder.close()


def _transcript(name: str, chunk: int = 11) -> list[Frame]:
    """A transcript's frames, fed to the SSE parser in small pieces."""
    raw = (CONTRACTS / name).read_bytes()
    parser = SSEParser()
    frames: list[Frame] = []
    for start in range(0, len(raw), chunk):
        frames.extend(parser.feed(raw[start:start + chunk]))
    return frames + parser.close()


# --- build_request -----------------------------------------------------------------------------


@pytest.mark.parametrize("extra_dialect", ["cohere", "anthropic"])
def test_basic_request_matches_contract(extra_dialect: str) -> None:
    wire = REQUESTS["chat_basic"]["body"]
    request = ChatRequest(
        model="command-a-03-2025",
        messages=[Message(role="system", content=[TextPart("You are a terse assistant.")]),
                  _user("Tell me about LLMs in one sentence.")],
        temperature=0.3, max_tokens=128, stop=["\n\n"], top_p=0.75,
        extra={"k": 0}, extra_dialect=extra_dialect,
    )
    body = DIALECT.build_request(request)
    expected = wire if extra_dialect == "cohere" else {k: v for k, v in wire.items() if k != "k"}
    assert body == expected
    _validate(body)


@pytest.mark.parametrize(("name", "stream"), [("chat_stream", True)])
def test_stream_request_matches_contract(name: str, stream: bool) -> None:
    wire = REQUESTS[name]["body"]
    request = ChatRequest(model=wire["model"], messages=[_user(wire["messages"][0]["content"])],
                          stream=stream)
    assert DIALECT.build_request(request) == wire


@pytest.mark.parametrize("name", ["chat_tools", "chat_tools_stream"])
def test_tools_requests_match_contract(name: str) -> None:
    wire = REQUESTS[name]["body"]
    request = ChatRequest(model=wire["model"], messages=[_user(wire["messages"][0]["content"])],
                          tools=_tools(wire["tools"]), stream=wire["stream"])
    body = DIALECT.build_request(request)
    assert body == wire
    _validate(body)


def test_tool_result_followup_matches_contract() -> None:
    wire = REQUESTS["chat_tool_result_followup"]["body"]
    assistant = wire["messages"][1]
    wire_call = assistant["tool_calls"][0]
    result = json.dumps(wire["messages"][2]["content"][0]["document"]["data"])
    request = ChatRequest(model=wire["model"], tools=_tools(wire["tools"]), messages=[
        _user(wire["messages"][0]["content"]),
        Message(role="assistant", content=[TextPart(assistant["tool_plan"])], tool_calls=[
            ToolCall(id=wire_call["id"], name=wire_call["function"]["name"],
                     arguments=wire_call["function"]["arguments"])]),
        Message(role="tool", tool_call_id=wire_call["id"], content=[TextPart(result)]),
    ])
    body = DIALECT.build_request(request)
    assert body["messages"][:2] == wire["messages"][:2]
    assert body["messages"][2] == {"role": "tool", "tool_call_id": wire_call["id"],
                                   "content": result}
    assert body["tools"] == wire["tools"]
    _validate(body)


def test_tool_calls_round_trip() -> None:
    wire = RESPONSES["chat_tools"]["body"]
    answer = DIALECT.parse_response(wire, model="command-r")
    message = Message(role="assistant", tool_calls=answer.tool_calls)
    body = DIALECT.build_request(ChatRequest(model="command-r", messages=[_user("q"), message]))
    assert body["messages"][1] == {"role": "assistant",
                                   "tool_calls": wire["message"]["tool_calls"]}
    _validate(body)


@pytest.mark.parametrize(("choice", "wire_choice", "names"), [
    ("auto", None, ["a", "b"]),
    (None, None, ["a", "b"]),
    ("required", "REQUIRED", ["a", "b"]),
    ("none", "NONE", ["a", "b"]),
    ("b", "REQUIRED", ["b"]),
])
def test_tool_choice(choice: str | None, wire_choice: str | None, names: list[str]) -> None:
    request = ChatRequest(model="m", messages=[_user("x")], tools=[Tool("a"), Tool("b")],
                          tool_choice=choice)
    body = DIALECT.build_request(request)
    assert body.get("tool_choice") == wire_choice
    assert [t["function"]["name"] for t in body["tools"]] == names
    _validate(body)


def test_unknown_forced_tool_is_an_invalid_request() -> None:
    request = ChatRequest(model="m", messages=[_user("x")], tools=[Tool("a")], tool_choice="zzz")
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.build_request(request)
    assert caught.value.field == "tool_choice"


def test_tool_result_without_id_is_an_invalid_request() -> None:
    request = ChatRequest(model="m", messages=[_user("x"), Message(role="tool")])
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.build_request(request)
    assert caught.value.field == "messages[1].tool_call_id"


@pytest.mark.parametrize(("top_p", "p"), [(1.0, 0.99), (0.0, 0.01), (0.5, 0.5)])
def test_top_p_is_kept_in_cohere_range(top_p: float, p: float) -> None:
    body = DIALECT.build_request(ChatRequest(model="m", messages=[_user("x")], top_p=top_p))
    assert body["p"] == p
    _validate(body)


def test_images_become_content_blocks() -> None:
    message = Message(role="user", content=[
        TextPart("compare"), ImagePart(url="https://example.com/a.png"),
        ImagePart(data="iVBORw0KGgo=", media_type="image/png")])
    body = DIALECT.build_request(ChatRequest(model="m", messages=[message]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    _validate(body)


@pytest.mark.parametrize(("fmt", "wire"), [
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
     {"type": "json_object", "json_schema": {"type": "object"}}),
    ({"type": "text"}, None),
])
def test_response_format(fmt: dict[str, Any], wire: dict[str, Any] | None) -> None:
    body = DIALECT.build_request(ChatRequest(model="m", messages=[_user("x")],
                                             response_format=fmt))
    assert body.get("response_format") == wire
    if wire is not None:
        # The spec's response_format union is a discriminated oneOf that plain JSON Schema
        # cannot tell apart (both members accept {"type": "json_object"}): check the member.
        _validate(body.pop("response_format"), "#/components/schemas/JsonResponseFormatV2")
    _validate(body)


# --- parse_response ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "finish", "usage", "calls"), [
    ("chat_basic", "LLMs are neural networks trained on large text corpora to understand and "
     "generate language.", "stop", Usage(512, 19), []),
    ("chat_max_tokens", "LLMs are", "length", Usage(512, 3), []),
    ("chat_tools", "", "tool_calls", Usage(1032, 124), [
        ToolCall("query_daily_sales_report_hgxxmkby3wta", "query_daily_sales_report",
                 '{"day": "2023-09-29"}'),
        ToolCall("query_product_catalog_rpg0z5h8yyz2", "query_product_catalog",
                 '{"category": "Electronics"}')]),
])
def test_parse_contract_responses(
    name: str, text: str, finish: str, usage: Usage, calls: list[ToolCall]
) -> None:
    body = RESPONSES[name]["body"]
    answer = DIALECT.parse_response(body, model="command-a")
    assert (answer.id, answer.model) == (body["id"], "command-a")
    assert (answer.text, answer.finish_reason, answer.usage, answer.tool_calls) == (
        text, finish, usage, calls)


def test_billed_units_when_raw_tokens_are_missing() -> None:
    body = copy.deepcopy(RESPONSES["chat_basic"]["body"])
    del body["usage"]["tokens"]
    assert DIALECT.parse_response(body, model="m").usage == Usage(13, 17)
    del body["usage"]
    assert DIALECT.parse_response(body, model="m").usage is None


@pytest.mark.parametrize(("wire", "finish"), [
    ("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"),
    ("TOOL_CALL", "tool_calls"), ("ERROR", "error"), ("TIMEOUT", "error"),
])
def test_finish_reasons(wire: str, finish: str) -> None:
    body = {"id": "x", "finish_reason": wire, "message": {"role": "assistant", "content": []}}
    assert DIALECT.parse_response(body, model="m").finish_reason == finish


def test_object_arguments_are_encoded_compactly() -> None:
    body = {"id": "x", "finish_reason": "TOOL_CALL", "message": {"tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": {"a": [1, 2]}}}]}}
    assert DIALECT.parse_response(body, model="m").tool_calls[0].arguments == '{"a":[1,2]}'


@pytest.mark.parametrize("body", [
    [], "x", {"id": "x"}, {"message": {"content": "x", "tool_calls": {}}},
    {"message": {"content": 5}}, {"message": {"tool_calls": [{"id": "t"}]}},
])
def test_malformed_answers(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_response(body, model="m")


# --- streams -----------------------------------------------------------------------------------


def test_text_stream_transcript() -> None:
    events = _decode(_transcript("stream.txt"))
    assert events[0] == MessageStart(id="29f14a5a-11de-4cae-9800-25e4747408ea", model="command-a")
    assert all(isinstance(e, TextDelta) for e in events[1:-2])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == (
        "LLMs stand for Large Language Models, which are a type of neural network model "
        "specialized in processing and generating human language.")
    assert events[-2:] == [Finish("stop"), UsageReport(Usage(71, 26))]


def test_tool_call_stream_transcript() -> None:
    events = _decode(_transcript("stream-tool-calls.txt"))
    assert events[0] == MessageStart(id="2edfdf70-019c-4f7a-be20-3cdbfaa3dca6", model="command-a")
    assert not any(isinstance(e, TextDelta) for e in events)  # the tool plan is not answer text
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts == [
        ToolCallStart(0, "query_daily_sales_report_j3f0adww9pmr", "query_daily_sales_report"),
        ToolCallStart(1, "query_product_catalog_c66nf11r6s8g", "query_product_catalog")]
    arguments = ["", ""]
    for event in events:
        if isinstance(event, ToolCallDelta):
            arguments[event.index] += event.arguments
    assert arguments == ['{"day": "2023-09-29"}', '{"category": "Electronics"}']
    assert events[-2:] == [Finish("tool_calls"), UsageReport(Usage(1589, 135))]


def test_stream_cut_short() -> None:
    frames = [f for f in _transcript("stream.txt") if f.event != "message-end"]
    events = _decode(frames)
    assert isinstance(events[0], MessageStart)
    assert events[-1] == ENDED_EARLY
    assert _decode([]) == [ENDED_EARLY]


def test_thinking_content_is_not_answer_text() -> None:
    frames = [
        Frame('{"type":"message-start","id":"m1"}', "message-start"),
        Frame('{"type":"content-start","index":0,"delta":{"message":{"content":'
              '{"type":"thinking","thinking":"hmm"}}}}', "content-start"),
        Frame('{"type":"content-delta","index":0,"delta":{"message":{"content":'
              '{"thinking":" more"}}}}', "content-delta"),
        Frame('{"type":"content-delta","index":1,"delta":{"message":{"content":{"text":"Hi"}}}}',
              "content-delta"),
        Frame('{"type":"message-end","delta":{"finish_reason":"COMPLETE"}}', "message-end"),
        Frame("[DONE]"),
    ]
    assert _decode(frames) == [MessageStart("m1", "command-a"), TextDelta("Hi"), Finish("stop")]


@pytest.mark.parametrize(("frame", "error"), [
    (Frame('{"type":"message-end","delta":{"error":"model overloaded"}}', "message-end"),
     StreamError("model overloaded")),
    (Frame("{broken", "content-delta"), StreamError("Cohere sent a malformed stream event")),
    (Frame('{"type":"tool-call-delta","index":4,"delta":{"message":{"tool_calls":'
           '{"function":{"arguments":"x"}}}}}', "tool-call-delta"),
     StreamError("Cohere sent arguments for a tool call that never started")),
])
def test_errors_inside_a_stream(frame: Frame, error: StreamError) -> None:
    start = Frame('{"type":"message-start","id":"m1"}', "message-start")
    late = Frame('{"type":"content-delta","delta":{"message":{"content":{"text":"late"}}}}')
    assert _decode([start, frame, late]) == [MessageStart("m1", "command-a"), error]


# --- models, errors, paths ---------------------------------------------------------------------


def test_models_page() -> None:
    assert DIALECT.parse_models(RESPONSES["list_models"]["body"], provider="cohere") == [
        {"id": "command-a-03-2025", "object": "model", "owned_by": "cohere"},
        {"id": "command-r7b-12-2024", "object": "model", "owned_by": "cohere"},
    ]
    assert DIALECT.parse_models({"models": []}, provider="cohere") == []


@pytest.mark.parametrize("body", [[], {"models": {}}, {"models": [{"endpoints": []}]}])
def test_malformed_model_lists(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_models(body, provider="cohere")


ERRORS = [e for e in RESPONSES.values() if e["status"] >= 400]


@pytest.mark.parametrize("example", ERRORS, ids=[e["name"] for e in ERRORS])
def test_contract_error_bodies(example: dict[str, Any]) -> None:
    info = DIALECT.parse_error(example["status"], example["body"])
    assert (info.message, info.retry_after) == (example["body"]["message"], None)


@pytest.mark.parametrize(("body", "message"), [
    ("Bad Gateway", "Bad Gateway"), ("", "Cohere answered HTTP 502"),
    ({"id": "x"}, "Cohere answered HTTP 502"),
])
def test_non_cohere_error_bodies(body: Any, message: str) -> None:
    assert DIALECT.parse_error(502, body).message == message


def test_path_model_is_unchanged() -> None:
    assert DIALECT.path_model("command-a-03-2025") == "command-a-03-2025"
