"""Anthropic's messages API (`POST /v1/messages`), seen from the gateway as its client.

`AnthropicDialect` turns the IR into Anthropic request bodies, and Anthropic answers, stream
events, model pages and error bodies back into the IR. The gateway's own `POST /v1/messages`
for Anthropic SDK clients lives in `gateway.dialects.anthropic_front`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from gateway.dialects.base import (
    ErrorInfo,
    Frame,
    Framing,
    ModelInfo,
    StreamDecoder,
    compact_json,
    epoch_seconds,
    sampling,
)
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
TOOL_CHOICE_OUT = {"auto": "auto", "none": "none", "required": "any"}
_DEFAULT_IMAGE_TYPE = "image/png"  # the IR allows base64 data without a media type



def as_object(value: Any) -> dict[str, Any]:
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
    if choice in TOOL_CHOICE_OUT:
        return {"type": TOOL_CHOICE_OUT[choice]}
    return {"type": "tool", "name": choice}


def _output_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    """Structured output for a json_schema format; plain JSON mode has no Anthropic equivalent."""
    if response_format.get("type") != "json_schema":
        return None
    schema = as_object(response_format.get("json_schema", response_format)).get("schema")
    return {"type": "json_schema", "schema": schema} if isinstance(schema, dict) else None


def _build_body(request: ChatRequest) -> dict[str, Any]:
    """The messages-API body for an IR request."""
    body: dict[str, Any] = {"model": request.model,
                            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
                            "messages": _wire_messages(request.messages)}
    system = "\n\n".join(m.text() for m in request.messages if m.role == "system" and m.text())
    if system:
        body["system"] = system
    body.update(sampling(request, max_tokens=None, temperature="temperature", top_p="top_p",
                         stop="stop_sequences"))
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
                                  compact_json(block.get("input") or {})))
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


def _parse_models(body: Any, provider: str) -> list[ModelInfo]:
    """The models in one page of `GET /v1/models`."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("the Anthropic model list has no data list")
    models: list[ModelInfo] = []
    for item in body["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("an Anthropic model entry has no id")
        info = ModelInfo(id=item["id"], object="model", owned_by=provider)
        created = epoch_seconds(item.get("created_at"))
        if created is not None:
            info["created"] = created
        if isinstance(item.get("display_name"), str):
            info["name"] = item["display_name"]
        models.append(info)
    return models


def _parse_error(status: int, body: Any) -> ErrorInfo:
    """Message and error type from `{type: error, error: {type, message}}`."""
    error = as_object(as_object(body).get("error"))
    if error.get("message"):
        return ErrorInfo(message=str(error["message"]),
                         code=str(error["type"]) if error.get("type") else None)
    if isinstance(body, str) and body.strip():
        return ErrorInfo(message=body.strip())
    return ErrorInfo(message=f"Anthropic answered HTTP {status}")


class AnthropicStreamDecoder(StreamDecoder):
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
        kind = as_object(data).get("type") or frame.event
        if kind == "error":
            error = as_object(as_object(data).get("error"))
            return self._fail(StreamError(str(error.get("message") or "the provider failed"),
                                          str(error.get("type") or "upstream_error")))
        if not isinstance(data, dict):
            return []
        events = self._begin(as_object(data.get("message")) if kind == "message_start" else {})
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
        block = as_object(data.get("content_block"))
        if block.get("type") == "text" and block.get("text"):
            return [TextDelta(str(block["text"]))]
        if block.get("type") != "tool_use":
            return []
        position = len(self._tool_index)
        self._tool_index[_count(data.get("index"))] = position
        events: list[StreamEvent] = [
            ToolCallStart(position, str(block.get("id", "")), str(block.get("name", "")))]
        if block.get("input"):  # normally `{}`, with the arguments following as deltas
            events.append(ToolCallDelta(position, compact_json(block["input"])))
        return events

    def _block_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        """Text and tool-argument fragments; thinking and signatures are not the answer."""
        delta = as_object(data.get("delta"))
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
        reason = as_object(data.get("delta")).get("stop_reason")
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


DIALECT = AnthropicDialect()
