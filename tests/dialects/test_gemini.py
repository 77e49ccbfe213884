"""The Gemini dialect against the vendored Gemini wire contracts (pure translation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.dialects.base import Frame
from gateway.dialects.gemini import DIALECT
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

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "gemini"
REQUESTS = {e["name"]: e for e in json.loads((CONTRACTS / "requests.json").read_text())["examples"]}
RESPONSES = {
    e["name"]: e for e in json.loads((CONTRACTS / "responses.json").read_text())["examples"]
}
SCHEMA = json.loads((CONTRACTS / "schema.json").read_text())
WEATHER = Tool(
    name="get_weather",
    description="Get the current weather for a city",
    parameters={"type": "object", "properties": {"location": {"type": "string"}},
                "required": ["location"]},
)


def _validate(instance: Any, definition: str) -> None:
    """Check a body against a root of the vendored proto-derived JSON Schema."""
    defs = dict(SCHEMA["$defs"])
    # The model travels in the URL path, so the body never carries it (see the schema's x-note).
    request = defs["GenerateContentRequest"]
    defs["GenerateContentRequest"] = {
        **request, "required": [r for r in request["required"] if r != "model"]}
    schema = {"$ref": f"#/$defs/{definition}", "$defs": defs}
    jsonschema.Draft202012Validator(schema).validate(instance)


def _user(text: str) -> Message:
    return Message(role="user", content=[TextPart(text)])


def _decode(frames: list[Frame]) -> list[StreamEvent]:
    decoder = DIALECT.stream_decoder(model="gemini-2.5-flash")
    events: list[StreamEvent] = []
    for frame in frames:
        events.extend(decoder.feed(frame))
    return events + decoder.close()


def _sse_frames(raw: bytes, chunk: int = 7) -> list[Frame]:
    """Frames of a transcript fed in small pieces, so CRLF pairs get split across reads."""
    parser = SSEParser()
    frames: list[Frame] = []
    for start in range(0, len(raw), chunk):
        frames.extend(parser.feed(raw[start:start + chunk]))
    return frames + parser.close()


# --- build_request -----------------------------------------------------------------------------


def test_basic_request_matches_contract() -> None:
    wire = REQUESTS["generate_basic"]["body"]
    request = ChatRequest(
        model="gemini-2.5-flash",
        messages=[Message(role="system", content=[TextPart("You are a terse assistant.")]),
                  _user("Say 'Hello, World!'")],
        max_tokens=256, temperature=0.2, top_p=0.95, stop=["\n\n"],
    )
    body = DIALECT.build_request(request)
    assert body["systemInstruction"] == wire["systemInstruction"]
    assert body["contents"] == wire["contents"]
    config = wire["generationConfig"]
    assert body["generationConfig"] == {k: config[k] for k in
                                        ("temperature", "topP", "maxOutputTokens", "stopSequences")}
    _validate(body, "GenerateContentRequest")


def test_stream_flag_does_not_change_the_body() -> None:
    request = ChatRequest(model="m", messages=[_user("Say 'Hello, World!'")])
    plain = DIALECT.build_request(request)
    request.stream = True
    assert DIALECT.build_request(request) == plain == REQUESTS["stream_generate_sse"]["body"]


@pytest.mark.parametrize("extra_dialect", ["gemini", "openai", None])
def test_extra_fields_pass_through_only_for_gemini(extra_dialect: str | None) -> None:
    wire = REQUESTS["generate_multiturn_safety"]["body"]
    request = ChatRequest(
        model="gemini-2.5-flash",
        messages=[_user("Hi"), Message(role="assistant", content=[TextPart("Hello.")]),
                  _user("Count to three.")],
        max_tokens=64,
        extra={"safetySettings": wire["safetySettings"],
               "generationConfig": wire["generationConfig"]},
        extra_dialect=extra_dialect,
    )
    body = DIALECT.build_request(request)
    if extra_dialect == "gemini":
        assert body == wire
    else:
        assert "safetySettings" not in body
        assert body == {"contents": wire["contents"], "generationConfig": {"maxOutputTokens": 64}}
    _validate(body, "GenerateContentRequest")


def test_tools_request_matches_contract() -> None:
    wire = REQUESTS["generate_tools"]["body"]
    request = ChatRequest(model="gemini-2.5-flash", tools=[WEATHER], tool_choice="auto",
                          messages=[_user("What's the weather in Tokyo?")])
    body = DIALECT.build_request(request)
    assert body["contents"] == wire["contents"]
    assert body["toolConfig"] == wire["toolConfig"]
    (declaration,) = body["tools"][0]["functionDeclarations"]
    expected = wire["tools"][0]["functionDeclarations"][0]
    assert (declaration["name"], declaration["description"]) == (expected["name"],
                                                                 expected["description"])
    assert declaration["parametersJsonSchema"] == WEATHER.parameters
    _validate(body, "GenerateContentRequest")


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ("get_weather", {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    (None, None),
])
def test_tool_choice(choice: str | None, config: dict[str, Any] | None) -> None:
    request = ChatRequest(model="m", messages=[_user("hi")], tools=[WEATHER], tool_choice=choice)
    body = DIALECT.build_request(request)
    assert body.get("toolConfig") == (None if config is None else {"functionCallingConfig": config})


def test_function_response_followup_matches_contract() -> None:
    wire = REQUESTS["generate_function_response_followup"]["body"]
    request = ChatRequest(
        model="gemini-2.5-flash",
        messages=[
            _user("What's the weather in Tokyo?"),
            Message(role="assistant", tool_calls=[
                ToolCall(id="call_7", name="get_weather", arguments='{"location": "Tokyo"}')]),
            Message(role="tool", tool_call_id="call_7",
                    content=[TextPart('{"temp_c": 21, "conditions": "clear"}')]),
        ],
        tools=[WEATHER],
    )
    body = DIALECT.build_request(request)
    assert body["contents"] == wire["contents"]
    _validate(body, "GenerateContentRequest")


@pytest.mark.parametrize(("result", "response"), [
    ('{"ok": true}', {"ok": True}),
    ("[1, 2]", {"result": [1, 2]}),
    ("21", {"result": 21}),
    ("sunny and warm", {"result": "sunny and warm"}),
    ("", {"result": ""}),
])
def test_tool_results_are_objects(result: str, response: dict[str, Any]) -> None:
    messages = [
        Message(role="assistant", tool_calls=[ToolCall(id="a", name="f", arguments="{}")]),
        Message(role="tool", tool_call_id="a", content=[TextPart(result)]),
    ]
    body = DIALECT.build_request(ChatRequest(model="m", messages=messages))
    assert body["contents"][1] == {
        "role": "user", "parts": [{"functionResponse": {"name": "f", "response": response}}]}


def test_parallel_results_share_one_turn_and_names_follow_the_latest_call() -> None:
    messages = [
        _user("go"),
        Message(role="assistant", tool_calls=[ToolCall(id="call_0", name="first", arguments="")]),
        Message(role="tool", tool_call_id="call_0", content=[TextPart("1")]),
        Message(role="assistant", tool_calls=[
            ToolCall(id="call_0", name="second", arguments='{"x":1}'),
            ToolCall(id="call_1", name="third", arguments="{}")]),
        Message(role="tool", tool_call_id="call_0", content=[TextPart("2")]),
        Message(role="tool", tool_call_id="call_1", content=[TextPart("3")]),
    ]
    contents = DIALECT.build_request(ChatRequest(model="m", messages=messages))["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "first", "args": {}}}]
    assert [p["functionResponse"]["name"] for p in contents[4]["parts"]] == ["second", "third"]
    assert contents[3]["parts"][0]["functionCall"]["args"] == {"x": 1}


@pytest.mark.parametrize(("messages", "field"), [
    ([Message(role="tool", tool_call_id="nope", content=[TextPart("1")])], "messages[0]"),
    ([Message(role="assistant", tool_calls=[ToolCall(id="a", name="f", arguments="{oops")])],
     "messages[0]"),
    ([_user("x"), Message(role="assistant", tool_calls=[ToolCall(id="a", name="f",
                                                                 arguments="[1]")])],
     "messages[1]"),
])
def test_unusable_tool_turns_are_invalid_requests(messages: list[Message], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        DIALECT.build_request(ChatRequest(model="m", messages=messages))
    assert caught.value.field == field


def test_tool_result_falls_back_to_the_message_name() -> None:
    messages = [Message(role="tool", tool_call_id="x", name="lookup", content=[TextPart("{}")])]
    body = DIALECT.build_request(ChatRequest(model="m", messages=messages))
    assert body["contents"][0]["parts"][0]["functionResponse"]["name"] == "lookup"


@pytest.mark.parametrize(("image", "part"), [
    (ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
     {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}),
    (ImagePart(data="/9j/4AAQ"), {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}),
    (ImagePart(url="data:image/webp;base64,UklGRg=="),
     {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}}),
    (ImagePart(url="https://example.com/cat.png"),
     {"fileData": {"fileUri": "https://example.com/cat.png", "mimeType": "image/png"}}),
    (ImagePart(url="https://example.com/photo"), {"fileData": {"fileUri": "https://example.com/photo"}}),
])
def test_images(image: ImagePart, part: dict[str, Any]) -> None:
    message = Message(role="user", content=[TextPart("what is this?"), image])
    body = DIALECT.build_request(ChatRequest(model="m", messages=[message]))
    assert body["contents"][0]["parts"] == [{"text": "what is this?"}, part]
    _validate(body, "GenerateContentRequest")


@pytest.mark.parametrize(("fmt", "config"), [
    ({"type": "json_object"}, {"responseMimeType": "application/json"}),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
     {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}),
    ({"type": "text"}, None),
])
def test_response_format(fmt: dict[str, Any], config: dict[str, Any] | None) -> None:
    body = DIALECT.build_request(ChatRequest(model="m", messages=[_user("x")],
                                             response_format=fmt))
    assert body.get("generationConfig") == config


# --- parse_response ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "finish", "usage"), [
    ("generate_basic", "Hello, World!", "stop", Usage(11, 22)),
    ("generate_max_tokens", "One, two", "length", Usage(9, 64)),
    ("generate_function_call", "", "tool_calls", Usage(44, 19)),
    ("generate_prompt_blocked", "", "content_filter", Usage(12, 0)),
])
def test_parse_contract_responses(name: str, text: str, finish: str, usage: Usage) -> None:
    body = RESPONSES[name]["body"]
    _validate(body, "GenerateContentResponse")
    answer = DIALECT.parse_response(body, model="requested")
    assert (answer.text, answer.finish_reason, answer.usage) == (text, finish, usage)
    assert (answer.id, answer.model) == (body["responseId"], body["modelVersion"])


def test_function_call_round_trip_keeps_the_thought_signature() -> None:
    body = RESPONSES["generate_function_call"]["body"]
    part = body["candidates"][0]["content"]["parts"][0]
    (call,) = DIALECT.parse_response(body, model="m").tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"location": "Tokyo"})
    assert call.arguments == '{"location":"Tokyo"}'
    assert all(c.isalnum() or c in "_-" for c in call.id)
    request = ChatRequest(model="m", tools=[WEATHER], messages=[
        _user("What's the weather in Tokyo?"),
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", tool_call_id=call.id, content=[TextPart('{"temp_c": 21}')]),
    ])
    contents = DIALECT.build_request(request)["contents"]
    assert contents[1] == {"role": "model", "parts": [part]}
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_tool_call_ids_are_distinct_and_only_the_signed_one_carries_a_signature() -> None:
    body = {"responseId": "r-1", "candidates": [{"finishReason": "STOP", "content": {"parts": [
        {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2ln+/8="},
        {"functionCall": {"name": "b", "args": {"n": 1}}},
    ]}}]}
    calls = DIALECT.parse_response(body, model="m").tool_calls
    assert calls[0].id != calls[1].id
    parts = DIALECT.build_request(ChatRequest(model="m", messages=[
        Message(role="assistant", tool_calls=calls)]))["contents"][0]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == ["c2ln+/8=", None]


@pytest.mark.parametrize(("wire", "finish"), [
    ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("OTHER", "error"), ("MALFORMED_FUNCTION_CALL", "error"),
    ("MAX_TOKENS", "length"), ("STOP", "stop"),
])
def test_finish_reasons(wire: str, finish: str) -> None:
    body = {"candidates": [{"finishReason": wire}]}
    assert DIALECT.parse_response(body, model="m").finish_reason == finish


def test_thoughts_are_not_answer_text() -> None:
    body = {"candidates": [{"content": {"parts": [
        {"text": "let me think", "thought": True}, {"text": "4"}, {"text": "2"}]},
        "finishReason": "STOP"}]}
    answer = DIALECT.parse_response(body, model="asked")
    assert (answer.text, answer.model) == ("42", "asked")


@pytest.mark.parametrize("body", [
    [], "text", {}, {"candidates": "x"}, {"candidates": [{"content": {"parts": "x"}}]},
    {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]},
])
def test_malformed_answers(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_response(body, model="m")


# --- streams -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transcript", ["stream.txt", "stream-recorded-lf.txt"])
def test_sse_transcripts(transcript: str) -> None:
    events = _decode(_sse_frames((CONTRACTS / transcript).read_bytes()))
    assert events[0] == MessageStart(id="cWmNaqOEH9CRkdUP1bWcsQU", model="gemini-2.5-flash")
    assert all(isinstance(e, TextDelta) for e in events[1:-2])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello, World!"
    assert events[-2:] == [Finish("stop"), UsageReport(Usage(11, 22))]


def test_json_array_transcript_as_one_frame() -> None:
    raw = (CONTRACTS / "stream-json-array-no-alt.txt").read_text()
    events = _decode([Frame(data=raw)])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello, World!"
    assert events[-2:] == [Finish("stop"), UsageReport(Usage(11, 22))]


def test_finish_and_usage_wait_for_eof() -> None:
    decoder = DIALECT.stream_decoder(model="m")
    frames = _sse_frames((CONTRACTS / "stream.txt").read_bytes())
    fed = [event for frame in frames for event in decoder.feed(frame)]
    assert not any(isinstance(e, (Finish, UsageReport)) for e in fed)
    assert decoder.close() == [Finish("stop"), UsageReport(Usage(11, 22))]


def test_stream_cut_short() -> None:
    frames = _sse_frames((CONTRACTS / "stream.txt").read_bytes())[:-1]
    events = _decode(frames)
    assert isinstance(events[0], MessageStart)
    assert events[-1] == StreamError("stream ended before the provider finished")
    assert _decode([]) == [StreamError("stream ended before the provider finished")]


def test_streamed_function_call() -> None:
    body = RESPONSES["generate_function_call"]["body"]
    events = _decode([Frame(data=json.dumps(body))])
    expected_id = DIALECT.parse_response(body, model="m").tool_calls[0].id
    assert events[1:] == [
        ToolCallStart(index=0, id=expected_id, name="get_weather"),
        ToolCallDelta(index=0, arguments='{"location":"Tokyo"}'),
        Finish("tool_calls"),
        UsageReport(Usage(44, 19)),
    ]


def test_streamed_blocked_prompt() -> None:
    events = _decode([Frame(data=json.dumps(RESPONSES["generate_prompt_blocked"]["body"]))])
    assert events[1:] == [Finish("content_filter"), UsageReport(Usage(12, 0))]


@pytest.mark.parametrize(("frame", "message"), [
    ('{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}',
     "The model is overloaded."),
    ("{not json", "Gemini sent a malformed stream frame"),
])
def test_errors_inside_a_stream(frame: str, message: str) -> None:
    first = json.dumps({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]})
    events = _decode([Frame(data=first), Frame(data=frame), Frame(data=first)])
    assert events[1:] == [TextDelta("Hel"), StreamError(message)]


# --- models, errors, paths ---------------------------------------------------------------------


def test_models_page_keeps_generators_only() -> None:
    body = RESPONSES["list_models_page1"]["body"]
    _validate(body, "ListModelsResponse")
    assert DIALECT.parse_models(body, provider="google") == [
        {"id": "gemini-2.5-flash", "object": "model", "owned_by": "google",
         "name": "Gemini 2.5 Flash"},
        {"id": "gemini-2.0-flash", "object": "model", "owned_by": "google",
         "name": "Gemini 2.0 Flash"},
    ]
    assert DIALECT.parse_models(RESPONSES["list_models_last_page"]["body"], provider="google") == []
    assert DIALECT.parse_models({}, provider="google") == []


@pytest.mark.parametrize("body", [[], {"models": {}}, {"models": [{"displayName": "x"}]}])
def test_malformed_model_lists(body: Any) -> None:
    with pytest.raises(ValueError):
        DIALECT.parse_models(body, provider="google")


ERRORS = [e for e in RESPONSES.values() if e["status"] >= 400]


@pytest.mark.parametrize("example", ERRORS, ids=[e["name"] for e in ERRORS])
def test_contract_error_bodies(example: dict[str, Any]) -> None:
    body = example["body"]
    error = (body[0] if isinstance(body, list) else body)["error"]
    info = DIALECT.parse_error(example["status"], body)
    assert (info.message, info.code) == (error["message"], error["status"])
    assert info.retry_after == (43.0 if example["status"] == 429 else None)


@pytest.mark.parametrize(("body", "message"), [
    ("upstream connect error", "upstream connect error"),
    ("", "Gemini answered HTTP 502"),
    ({"unexpected": True}, "Gemini answered HTTP 502"),
])
def test_non_google_error_bodies(body: Any, message: str) -> None:
    assert DIALECT.parse_error(502, body).message == message


def test_fractional_retry_delay() -> None:
    body = {"error": {"message": "slow down", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}
    assert DIALECT.parse_error(429, body).retry_after == 1.5


@pytest.mark.parametrize(("model", "path"), [
    ("models/gemini-2.5-flash", "gemini-2.5-flash"), ("gemini-2.5-flash", "gemini-2.5-flash")])
def test_path_model(model: str, path: str) -> None:
    assert DIALECT.path_model(model) == path
