"""Anthropic's messages API (`POST /v1/messages`), in both directions.

Backend: `AnthropicDialect` turns the IR into Anthropic request bodies, and Anthropic answers,
stream events, model pages and error bodies back into the IR. Front: `parse_request`,
`render_response`, `StreamEncoder` and `render_error` serve the gateway's own `POST /v1/messages`
to clients of the official Anthropic SDK.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import orjson

from gateway.dialects.base import ErrorInfo, Frame, Framing, ModelInfo
from gateway.errors import InvalidRequest
from gateway.ir import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    MessageStart,
    Part,
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
from gateway.streaming import sse_event

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; the IR may leave it unset

_FINISH_IN: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic has no stop reason for a failed answer; the error itself travels separately.
_STOP_OUT: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    504: "api_error",
    529: "overloaded_error",
}
_KNOWN_ERROR_TYPES = frozenset(_ERROR_TYPES.values()) | {"timeout_error"}
_TOOL_CHOICE_OUT = {"auto": "auto", "none": "none", "required": "any"}
_TOOL_CHOICE_IN = {wire: ir for ir, wire in _TOOL_CHOICE_OUT.items()}
_FRONT_FIELDS = frozenset({"model", "max_tokens", "messages", "system", "tools", "tool_choice",
                           "stop_sequences", "temperature", "top_p", "stream"})
_DEFAULT_IMAGE_TYPE = "image/png"  # the IR allows base64 data without a media type


def _compact_json(value: Any) -> str:
    """JSON text without whitespace, as tool arguments travel in the IR."""
    return orjson.dumps(value).decode("utf-8")


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (for lenient reading of answers)."""
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A token count, 0 when absent or not a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _prompt_tokens(usage: dict[str, Any]) -> int:
    """All prompt tokens: Anthropic counts cache reads and writes apart from input_tokens."""
    return sum(_count(usage.get(key)) for key in
               ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))


# --- backend: IR -> request body -------------------------------------------------------------


def _image_block(part: ImagePart) -> dict[str, Any]:
    """An image block; a `data:` URL becomes an inline base64 source."""
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type or _DEFAULT_IMAGE_TYPE,
                  "data": part.data}
    elif part.url and part.url.startswith("data:") and ";base64," in part.url:
        media_type, data = part.url[5:].split(";base64,", 1)
        source = {"type": "base64", "media_type": media_type or _DEFAULT_IMAGE_TYPE, "data": data}
    else:
        source = {"type": "url", "url": part.url or ""}
    return {"type": "image", "source": source}


def _part_blocks(parts: list[Part]) -> list[dict[str, Any]]:
    """Content blocks for IR parts; empty text is dropped because Anthropic rejects it."""
    return [{"type": "text", "text": p.text} if isinstance(p, TextPart) else _image_block(p)
            for p in parts if not isinstance(p, TextPart) or p.text]


def _tool_input(call: ToolCall, field: str) -> dict[str, Any]:
    """A tool call's JSON-string arguments as the object Anthropic wants."""
    if not call.arguments.strip():
        return {}
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", field=field)
    return value


def _turn(message: Message, position: int) -> tuple[str, list[dict[str, Any]]]:
    """The Anthropic role and content blocks of one non-system IR message."""
    blocks = _part_blocks(message.content)
    if message.role == "tool":
        text_only = all(block["type"] == "text" for block in blocks)
        return "user", [{"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                         "content": message.text() if text_only else blocks}]
    if message.role != "assistant":
        return "user", blocks
    for n, call in enumerate(message.tool_calls):
        field = f"messages[{position}].tool_calls[{n}].arguments"
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": _tool_input(call, field)})
    return "assistant", blocks


def _wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Strictly alternating user/assistant turns, as Anthropic requires."""
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        if message.role == "system":
            continue
        role, blocks = _turn(message, position)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # Tool results must lead their user turn; a stable sort keeps everything else in order.
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
        if len(turn["content"]) == 1 and turn["content"][0]["type"] == "text":
            turn["content"] = turn["content"][0]["text"]
    return turns


def _wire_tool(tool: Tool) -> dict[str, Any]:
    """A custom tool definition."""
    wire: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description:
        wire["description"] = tool.description
    return wire


def _wire_tool_choice(choice: str) -> dict[str, Any]:
    """Anthropic's tool_choice object; a bare name forces that tool."""
    if choice in _TOOL_CHOICE_OUT:
        return {"type": _TOOL_CHOICE_OUT[choice]}
    return {"type": "tool", "name": choice}


def _output_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    """Structured output for a json_schema format; plain JSON mode has no Anthropic equivalent."""
    if response_format.get("type") != "json_schema":
        return None
    schema = _obj(response_format.get("json_schema", response_format)).get("schema")
    return {"type": "json_schema", "schema": schema} if isinstance(schema, dict) else None


def _build_body(request: ChatRequest) -> dict[str, Any]:
    """The messages-API body for an IR request."""
    body: dict[str, Any] = {"model": request.model,
                            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
                            "messages": _wire_messages(request.messages)}
    system = "\n\n".join(m.text() for m in request.messages if m.role == "system" and m.text())
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [_wire_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _wire_tool_choice(request.tool_choice)
    fmt = _output_format(request.response_format) if request.response_format else None
    if fmt is not None:
        body["output_config"] = {"format": fmt}
    if request.stream:
        body["stream"] = True
    if request.extra_dialect == AnthropicDialect.name:
        body.update(request.extra)
    return body


# --- backend: answers -> IR ------------------------------------------------------------------


def _parse_message(body: Any, model: str) -> ChatResponse:
    """A `message` object as a ChatResponse; thinking blocks are not part of the text."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise ValueError("the Anthropic answer has no content list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in body["content"]:
        if not isinstance(block, dict):
            raise ValueError("an Anthropic content block is not an object")
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(ToolCall(str(block.get("id", "")), str(block.get("name", "")),
                                  _compact_json(block.get("input") or {})))
    usage = body.get("usage")
    return ChatResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model") or model),
        text="".join(texts),
        tool_calls=calls,
        finish_reason=_FINISH_IN.get(str(body.get("stop_reason")), "stop"),
        usage=(Usage(_prompt_tokens(usage), _count(usage.get("output_tokens")))
               if isinstance(usage, dict) else None),
    )


def _epoch_seconds(stamp: Any) -> int | None:
    """Seconds since the epoch for an RFC 3339 time, or None if it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        return int(datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return None


def _parse_models(body: Any, provider: str) -> list[ModelInfo]:
    """The models in one page of `GET /v1/models`."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("the Anthropic model list has no data list")
    models: list[ModelInfo] = []
    for item in body["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("an Anthropic model entry has no id")
        info = ModelInfo(id=item["id"], object="model", owned_by=provider)
        created = _epoch_seconds(item.get("created_at"))
        if created is not None:
            info["created"] = created
        if isinstance(item.get("display_name"), str):
            info["name"] = item["display_name"]
        models.append(info)
    return models


def _parse_error(status: int, body: Any) -> ErrorInfo:
    """Message and error type from `{type: error, error: {type, message}}`."""
    error = _obj(_obj(body).get("error"))
    if error.get("message"):
        return ErrorInfo(message=str(error["message"]),
                         code=str(error["type"]) if error.get("type") else None)
    if isinstance(body, str) and body.strip():
        return ErrorInfo(message=body.strip())
    return ErrorInfo(message=f"Anthropic answered HTTP {status}")


class AnthropicStreamDecoder:
    """Decodes one Anthropic SSE stream into IR events."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._started = False
        self._finished = False
        self._closed = False  # after message_stop or an error nothing more is decoded
        self._usage: Usage | None = None
        self._tool_index: dict[int, int] = {}  # content block index -> tool call position

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one SSE event; pings and unknown events yield nothing."""
        if self._closed or frame.data.strip() in ("", "[DONE]"):
            return []
        try:
            data = orjson.loads(frame.data)
        except orjson.JSONDecodeError:
            return self._fail(StreamError("the provider sent a malformed stream event"))
        kind = _obj(data).get("type") or frame.event
        if kind == "error":
            error = _obj(_obj(data).get("error"))
            return self._fail(StreamError(str(error.get("message") or "the provider failed"),
                                          str(error.get("type") or "upstream_error")))
        if not isinstance(data, dict):
            return []
        events = self._begin(_obj(data.get("message")) if kind == "message_start" else {})
        if kind == "content_block_start":
            events += self._block_start(data)
        elif kind == "content_block_delta":
            events += self._block_delta(data)
        elif kind == "message_delta":
            events += self._message_delta(data)
        elif kind == "message_stop":
            events += self._end()
        return events

    def close(self) -> list[StreamEvent]:
        """End of input: the held-back usage, or an error if the answer was cut short."""
        if self._closed:
            return []
        if not self._finished:
            return self._fail(StreamError("stream ended before the provider finished"))
        return self._end()

    def _begin(self, message: dict[str, Any]) -> list[StreamEvent]:
        """The MessageStart, once; message_start also carries the input tokens."""
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._usage = Usage(_prompt_tokens(usage), _count(usage.get("output_tokens")))
        if self._started:
            return []
        self._started = True
        return [MessageStart(id=str(message.get("id") or ""),
                             model=str(message.get("model") or self._model))]

    def _end(self) -> list[StreamEvent]:
        """message_stop or a clean EOF after the finish: the usage, once."""
        self._closed = True
        events: list[StreamEvent] = []
        if not self._finished:  # message_stop without a stop reason still means done
            self._finished = True
            events.append(Finish("stop"))
        if self._usage is not None:
            events.append(UsageReport(self._usage))
        return events

    def _fail(self, error: StreamError) -> list[StreamEvent]:
        """An error ends the stream."""
        events = self._begin({})
        self._closed = True
        return [*events, error]

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        """A text block's initial text, or the start of a tool call."""
        block = _obj(data.get("content_block"))
        if block.get("type") == "text" and block.get("text"):
            return [TextDelta(str(block["text"]))]
        if block.get("type") != "tool_use":
            return []
        position = len(self._tool_index)
        self._tool_index[_count(data.get("index"))] = position
        events: list[StreamEvent] = [
            ToolCallStart(position, str(block.get("id", "")), str(block.get("name", "")))]
        if block.get("input"):  # normally `{}`, with the arguments following as deltas
            events.append(ToolCallDelta(position, _compact_json(block["input"])))
        return events

    def _block_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        """Text and tool-argument fragments; thinking and signatures are not the answer."""
        delta = _obj(data.get("delta"))
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [TextDelta(str(delta["text"]))]
        position = self._tool_index.get(_count(data.get("index")))
        if delta.get("type") == "input_json_delta" and delta.get("partial_json") and \
                position is not None:
            return [ToolCallDelta(position, str(delta["partial_json"]))]
        return []

    def _message_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        """The stop reason now; the (cumulative) usage is held until message_stop."""
        usage = data.get("usage")
        if isinstance(usage, dict):
            held = self._usage or Usage()
            prompt = _prompt_tokens(usage) if "input_tokens" in usage else held.input_tokens
            self._usage = Usage(prompt, _count(usage.get("output_tokens")) or held.output_tokens)
        reason = _obj(data.get("delta")).get("stop_reason")
        if not reason or self._finished:
            return []
        self._finished = True
        return [Finish(_FINISH_IN.get(str(reason), "stop"))]


class AnthropicDialect:
    """The Anthropic messages API, seen from the gateway as its client."""

    name: ClassVar[str] = "anthropic"
    framing: ClassVar[Framing] = "sse"

    def path_model(self, model: str) -> str:
        """Anthropic model ids go into paths unchanged."""
        return model

    def build_request(self, request: ChatRequest) -> dict[str, Any]:
        """The `POST /v1/messages` body; sets `stream` when the request streams."""
        return _build_body(request)

    def parse_response(self, body: Any, *, model: str) -> ChatResponse:
        """Translate a `message` answer; raises ValueError if it is not one."""
        return _parse_message(body, model)

    def stream_decoder(self, *, model: str) -> AnthropicStreamDecoder:
        """A fresh decoder for one streamed answer."""
        return AnthropicStreamDecoder(model=model)

    def parse_models(self, body: Any, *, provider: str) -> list[ModelInfo]:
        """The models in one page of the list answer."""
        return _parse_models(body, provider)

    def parse_error(self, status: int, body: Any) -> ErrorInfo:
        """Message and error type from an Anthropic error body."""
        return _parse_error(status, body)


# --- front: Anthropic clients -> IR ----------------------------------------------------------


def _need_obj(value: Any, field: str, what: str = "must be an object") -> dict[str, Any]:
    """`value` as a JSON object, or InvalidRequest naming `field`."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} {what}", field=field)
    return value


def _need_str(value: Any, field: str) -> str:
    """`value` as a string, or InvalidRequest naming `field`."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string", field=field)
    return value


def _front_image(block: dict[str, Any], field: str) -> ImagePart:
    """An image block with a base64 or url source."""
    source = _need_obj(block.get("source"), f"{field}.source")
    if source.get("type") == "base64":
        media_type = source.get("media_type")
        return ImagePart(data=_need_str(source.get("data"), f"{field}.source.data"),
                         media_type=media_type if isinstance(media_type, str) else None)
    if source.get("type") == "url":
        return ImagePart(url=_need_str(source.get("url"), f"{field}.source.url"))
    raise InvalidRequest("image source type must be base64 or url", field=f"{field}.source.type")


def _front_part(block: Any, field: str) -> Part:
    """A text or image block as an IR part."""
    block = _need_obj(block, field)
    if block.get("type") == "image":
        return _front_image(block, field)
    if block.get("type") == "text":
        return TextPart(_need_str(block.get("text"), f"{field}.text"))
    raise InvalidRequest(f"unsupported content block type {block.get('type')!r}",
                         field=f"{field}.type")


def _front_parts(content: Any, field: str) -> list[Part]:
    """The parts of a system prompt or tool result: a string or a list of blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{field} must be a string or a list of blocks", field=field)
    return [_front_part(block, f"{field}[{n}]") for n, block in enumerate(content)]


def _front_tool_result(block: dict[str, Any], field: str) -> Message:
    """A tool_result block as an IR tool message; an error result says so in its text."""
    call_id = _need_str(block.get("tool_use_id"), f"{field}.tool_use_id")
    parts = _front_parts(block.get("content"), f"{field}.content")
    if block.get("is_error") is True:
        parts.insert(0, TextPart("Error: "))
    return Message(role="tool", content=parts, tool_call_id=call_id)


def _front_tool_use(block: dict[str, Any], field: str) -> ToolCall:
    """A tool_use block as an IR tool call with JSON-string arguments."""
    arguments = _need_obj(block.get("input", {}), f"{field}.input")
    return ToolCall(_need_str(block.get("id"), f"{field}.id"),
                    _need_str(block.get("name"), f"{field}.name"), _compact_json(arguments))


def _front_turn(turn: Any, field: str) -> list[Message]:
    """One turn; tool results in a user turn become IR tool messages, keeping their order."""
    turn = _need_obj(turn, field)
    role = turn.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{field}.role must be user or assistant", field=f"{field}.role")
    content = turn.get("content")
    if isinstance(content, str):
        return [Message(role=role, content=[TextPart(content)])]
    if not isinstance(content, list):
        raise InvalidRequest(f"{field}.content must be a string or a list of blocks",
                             field=f"{field}.content")
    out: list[Message] = []
    current = Message(role=role)
    for n, raw in enumerate(content):
        spot = f"{field}.content[{n}]"
        kind = _need_obj(raw, spot).get("type")
        if kind == "tool_use" and role == "assistant":
            current.tool_calls.append(_front_tool_use(raw, spot))
        elif kind == "tool_result" and role == "user":
            if current.content:
                out.append(current)
                current = Message(role=role)
            out.append(_front_tool_result(raw, spot))
        elif kind not in ("thinking", "redacted_thinking"):
            # Earlier reasoning is not conversation text, so the IR has no place for it.
            current.content.append(_front_part(raw, spot))
    if current.content or current.tool_calls or not out:
        out.append(current)
    return out


def _front_tools(tools: Any) -> list[Tool]:
    """Custom tool definitions; Anthropic's server tools have no IR equivalent."""
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", field="tools")
    result: list[Tool] = []
    for n, raw in enumerate(tools):
        tool = _need_obj(raw, f"tools[{n}]")
        if tool.get("type", "custom") != "custom":
            raise InvalidRequest("only custom tools are supported", field=f"tools[{n}].type")
        description = tool.get("description")
        result.append(Tool(name=_need_str(tool.get("name"), f"tools[{n}].name"),
                           description=description if isinstance(description, str) else None,
                           parameters=_need_obj(tool.get("input_schema"),
                                                f"tools[{n}].input_schema")))
    return result


def _front_tool_choice(raw: Any) -> str:
    """The IR tool choice for {type: auto | any | none | tool}."""
    choice = _need_obj(raw, "tool_choice")
    if choice.get("type") == "tool":
        return _need_str(choice.get("name"), "tool_choice.name")
    if choice.get("type") not in _TOOL_CHOICE_IN:
        raise InvalidRequest("tool_choice.type must be auto, any, none or tool",
                             field="tool_choice.type")
    return _TOOL_CHOICE_IN[choice["type"]]


def _front_options(body: dict[str, Any]) -> dict[str, Any]:
    """The ChatRequest fields beyond model, messages and max_tokens."""
    options: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidRequest(f"{key} must be a non-negative number", field=key)
            options[key] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences must be a list of strings",
                                 field="stop_sequences")
        options["stop"] = list(stop)
    if body.get("stream") is not None:
        if not isinstance(body["stream"], bool):
            raise InvalidRequest("stream must be a boolean", field="stream")
        options["stream"] = body["stream"]
    if body.get("tools") is not None:
        options["tools"] = _front_tools(body["tools"])
    if body.get("tool_choice") is not None:
        options["tool_choice"] = _front_tool_choice(body["tool_choice"])
    fmt = _obj(_obj(body.get("output_config")).get("format"))
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        options["response_format"] = {
            "type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}
    return options


def parse_request(body: Any) -> ChatRequest:
    """A `POST /v1/messages` body from an Anthropic client as an IR request."""
    body = _need_obj(body, "body")
    model = _need_str(body.get("model"), "model")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens is required", field="max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens must be a positive integer", field="max_tokens")
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("messages must be a non-empty list", field="messages")
    # One IR system message per block; the backend joins them again with blank lines.
    messages = [Message(role="system", content=[part])
                for part in _front_parts(body.get("system"), "system")]
    for n, turn in enumerate(turns):
        messages.extend(_front_turn(turn, f"messages[{n}]"))
    # Unknown fields reach the upstream only if it speaks Anthropic too; output_config stays
    # whole there, since only its format has an IR field.
    extra = {key: value for key, value in body.items() if key not in _FRONT_FIELDS}
    return ChatRequest(model=model, messages=messages, max_tokens=max_tokens, extra=extra,
                       extra_dialect=AnthropicDialect.name, **_front_options(body))


# --- front: IR -> Anthropic answers ----------------------------------------------------------


def _answer_input(call: ToolCall) -> dict[str, Any]:
    """Tool arguments as the object Anthropic clients expect.

    Other providers can produce arguments that are not a JSON object; those are kept whole
    under `arguments` rather than dropped.
    """
    if not call.arguments.strip():
        return {}
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"arguments": call.arguments}


def render_response(resp: ChatResponse) -> dict[str, Any]:
    """An IR answer as an Anthropic `message` object."""
    content: list[dict[str, Any]] = [{"type": "text", "text": resp.text}] if resp.text else []
    content += [{"type": "tool_use", "id": call.id, "name": call.name,
                 "input": _answer_input(call)} for call in resp.tool_calls]
    usage = resp.usage or Usage()
    return {
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        # Clients commonly read content[0].text, so an empty answer still has a text block.
        "content": content or [{"type": "text", "text": ""}],
        "stop_reason": _STOP_OUT[resp.finish_reason],
        "stop_sequence": None,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
    }


def _error_type(status: int, code: str | None) -> str:
    """Anthropic's error type for a status, or the code itself when it already is one."""
    if code in _KNOWN_ERROR_TYPES:
        return str(code)
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def render_error(status: int, message: str, code: str) -> dict[str, Any]:
    """An error body in Anthropic's shape, so the SDK raises its matching exception."""
    return {"type": "error", "error": {"type": _error_type(status, code), "message": message}}


def _sse(data: dict[str, Any]) -> bytes:
    """One event as Anthropic frames it: the event name repeats the data's type."""
    return sse_event(orjson.dumps(data), str(data["type"]))


class StreamEncoder:
    """Renders IR stream events as Anthropic SSE events, block by block."""

    def __init__(self, *, id: str, model: str) -> None:
        self._id = id
        self._model = model
        self._started = False
        self._done = False
        self._blocks = 0
        self._open: tuple[str, int] | None = None  # kind ("text"/"tool") and block index
        self._tool_blocks: dict[int, int] = {}  # IR tool position -> block index
        self._stop_reason: str | None = None
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        """The bytes for one IR event; the closing message_delta waits for usage or finish()."""
        if self._done:
            return b""
        if isinstance(event, StreamError):
            self._done = True
            return _sse({"type": "error", "error": {"type": _error_type(500, event.type),
                                                     "message": event.message}})
        out = self._start()
        if isinstance(event, TextDelta) and event.text:
            if self._open is None or self._open[0] != "text":
                out += self._open_block("text", {"type": "text", "text": ""})
            out += self._delta(self._blocks - 1, {"type": "text_delta", "text": event.text})
        elif isinstance(event, ToolCallStart):
            out += self._start_tool(event.index, event.id, event.name)
        elif isinstance(event, ToolCallDelta) and event.arguments:
            if event.index not in self._tool_blocks:
                out += self._start_tool(event.index, "", "")
            # A closed block cannot reopen; a late fragment still names its own block.
            out += self._delta(self._tool_blocks[event.index],
                               {"type": "input_json_delta", "partial_json": event.arguments})
        elif isinstance(event, Finish):
            out += self._close_block()
            self._stop_reason = _STOP_OUT[event.reason]
        elif isinstance(event, UsageReport):
            self._usage = event.usage
            if self._stop_reason is not None:
                out += self._end()
        return out

    def finish(self) -> bytes:
        """Close what is open and end the message, unless that already happened."""
        if self._done:
            return b""
        return self._start() + self._close_block() + self._end()

    def _start(self) -> bytes:
        """message_start, once."""
        if self._started:
            return b""
        self._started = True
        return _sse({"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})

    def _start_tool(self, position: int, call_id: str, name: str) -> bytes:
        """Open a tool_use block for the tool call at `position`."""
        self._tool_blocks[position] = self._blocks
        return self._open_block("tool", {"type": "tool_use", "id": call_id, "name": name,
                                         "input": {}})

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        """Close the open block and start the next one."""
        out = self._close_block()
        self._open = (kind, self._blocks)
        self._blocks += 1
        return out + _sse({"type": "content_block_start", "index": self._open[1],
                           "content_block": block})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        """A content_block_delta for block `index`."""
        return _sse({"type": "content_block_delta", "index": index, "delta": delta})

    def _close_block(self) -> bytes:
        """content_block_stop for the open block, if any."""
        if self._open is None:
            return b""
        index, self._open = self._open[1], None
        return _sse({"type": "content_block_stop", "index": index})

    def _end(self) -> bytes:
        """message_delta with the stop reason and usage, then message_stop."""
        self._done = True
        usage: dict[str, int] = {"output_tokens": 0}
        if self._usage is not None:
            # input_tokens here too: message_start went out before the IR reported usage.
            usage = {"input_tokens": self._usage.input_tokens,
                     "output_tokens": self._usage.output_tokens}
        delta = {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None}
        return _sse({"type": "message_delta", "delta": delta, "usage": usage}) + _sse(
            {"type": "message_stop"})


DIALECT = AnthropicDialect()
