"""Cohere's v2 chat wire format (`POST /v2/chat`, `GET /v1/models`).

Close to OpenAI's, with its own names: `p` for top_p, `stop_sequences`, upper-case finish
reasons and tool_choice, assistant reasoning before tool calls in `tool_plan`, answer text as
a list of typed content blocks, and a stream of named SSE events that ends with `message-end`
followed by `data: [DONE]`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

from gateway.dialects.base import (
    ErrorInfo,
    Frame,
    Framing,
    ModelInfo,
    StreamDecoder,
    compact_json,
    sampling,
)
from gateway.errors import InvalidRequest
from gateway.ir import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
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
from gateway.ir import Message as IRMessage

_FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "TIMEOUT": "error",
}
_TOOL_CHOICES = {"required": "REQUIRED", "none": "NONE"}
# Cohere rejects p outside this range; clients routinely send top_p=1 to mean "no limit".
_P_RANGE = (0.01, 0.99)
_ENDED_EARLY = "stream ended before the provider finished"



# --- request ---------------------------------------------------------------------------------


def _user_content(message: IRMessage) -> str | list[dict[str, Any]]:
    """Plain text stays a string; text with images becomes a list of content blocks."""
    if all(isinstance(part, TextPart) for part in message.content):
        return message.text()
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif part.data is not None:
            url = f"data:{part.media_type or 'image/jpeg'};base64,{part.data}"
            blocks.append({"type": "image_url", "image_url": {"url": url}})
        elif part.url:
            blocks.append({"type": "image_url", "image_url": {"url": part.url}})
    return blocks


def _assistant(message: IRMessage) -> dict[str, Any]:
    """An assistant turn; text that accompanies tool calls is Cohere's `tool_plan`."""
    wire: dict[str, Any] = {"role": "assistant"}
    text = message.text()
    if not message.tool_calls:
        wire["content"] = text
        return wire
    if text:
        wire["tool_plan"] = text
    wire["tool_calls"] = [
        {"id": call.id, "type": "function",
         "function": {"name": call.name, "arguments": call.arguments or "{}"}}
        for call in message.tool_calls
    ]
    return wire


def _message(message: IRMessage, position: int) -> dict[str, Any]:
    """One IR message in Cohere's shape."""
    if message.role == "assistant":
        return _assistant(message)
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest("tool result needs a tool_call_id",
                                 field=f"messages[{position}].tool_call_id")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text()}
    if message.role == "system":
        return {"role": "system", "content": message.text()}
    return {"role": "user", "content": _user_content(message)}


def _tool(tool: Tool) -> dict[str, Any]:
    """A tool in Cohere's OpenAI-like function shape."""
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _apply_tools(body: dict[str, Any], request: ChatRequest) -> None:
    """Tools and tool_choice; Cohere cannot name a tool, so forcing one sends only that one."""
    tools = request.tools
    choice = request.tool_choice
    if choice is not None and choice != "auto" and choice not in _TOOL_CHOICES:
        tools = [tool for tool in tools if tool.name == choice]
        if not tools:
            raise InvalidRequest("tool_choice names a tool that is not in tools",
                                 field="tool_choice")
        choice = "required"
    if tools:
        body["tools"] = [_tool(tool) for tool in tools]
        if choice in _TOOL_CHOICES:
            body["tool_choice"] = _TOOL_CHOICES[choice]


def _response_format(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI-style response_format as Cohere's json_object (with an optional schema)."""
    kind = (fmt or {}).get("type")
    if kind not in ("json_object", "json_schema") or fmt is None:
        return None
    wire: dict[str, Any] = {"type": "json_object"}
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else fmt.get("schema")
    if isinstance(schema, dict):
        wire["json_schema"] = schema
    return wire


# --- answers ---------------------------------------------------------------------------------


def _finish_reason(wire: Any) -> FinishReason:
    """Cohere's finish reason in IR terms; an unknown one is an error."""
    return _FINISH_REASONS.get(str(wire), "error") if wire else "stop"


def _usage(usage: Any) -> Usage | None:
    """Raw token counts, else the billed ones (which exclude the system preamble)."""
    if not isinstance(usage, dict):
        return None
    counts = usage.get("tokens")
    if not isinstance(counts, dict):
        counts = usage.get("billed_units")
    if not isinstance(counts, dict):
        return None
    return Usage(input_tokens=int(counts.get("input_tokens") or 0),
                 output_tokens=int(counts.get("output_tokens") or 0))


def _arguments(value: Any) -> str:
    """Tool-call arguments as a JSON string, whatever Cohere sent."""
    if value is None:
        return ""
    return value if isinstance(value, str) else compact_json(value)


def _tool_call(wire: Any) -> ToolCall:
    """One `tool_calls` entry as an IR tool call."""
    if not isinstance(wire, dict) or not isinstance(wire.get("function"), dict):
        raise ValueError("Cohere tool call is malformed")
    function = wire["function"]
    if not isinstance(function.get("name"), str):
        raise ValueError("Cohere tool call has no function name")
    ident = wire.get("id")
    return ToolCall(id=ident if isinstance(ident, str) and ident else f"call_{uuid.uuid4().hex}",
                    name=function["name"], arguments=_arguments(function.get("arguments")))


def _answer_text(content: Any) -> str:
    """The text blocks of an answer, joined; thinking blocks are dropped."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise ValueError("Cohere answer content is not a list")
    return "".join(
        block["text"] for block in content
        if isinstance(block, dict) and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def _nested(payload: dict[str, Any], *keys: str) -> Any:
    """payload[k1][k2]..., or None where a level is missing or not an object."""
    value: Any = payload
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# --- stream ----------------------------------------------------------------------------------


class CohereStreamDecoder(StreamDecoder):
    """Decodes Cohere's named SSE events into IR stream events."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._ended = False
        self._calls: dict[Any, int] = {}  # Cohere's tool-call index -> position in the answer

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one event; `[DONE]`, plans, citations and debug events produce nothing."""
        data = frame.data.strip()
        if self._ended or not data or data == "[DONE]":
            return []
        try:
            payload = json.loads(data)
        except ValueError:
            return self._fail("Cohere sent a malformed stream event")
        if not isinstance(payload, dict):
            return self._fail("Cohere sent a malformed stream event")
        kind = payload.get("type") or frame.event
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            ident = payload.get("id") if kind == "message-start" else None
            events.append(MessageStart(id=ident if isinstance(ident, str) and ident
                                       else f"cohere-{uuid.uuid4().hex}", model=self._model))
        try:
            events.extend(self._event(kind, payload))
        except ValueError as exc:
            events.extend(self._fail(str(exc)))
        return events

    def close(self) -> list[StreamEvent]:
        """Nothing is held back; a stream without `message-end` was cut short."""
        if self._ended:
            return []
        return [StreamError(_ENDED_EARLY)]

    def _fail(self, message: str) -> list[StreamEvent]:
        self._ended = True
        return [StreamError(message)]

    def _event(self, kind: Any, payload: dict[str, Any]) -> list[StreamEvent]:
        """Events for one decoded Cohere event of type `kind`."""
        if kind in ("content-start", "content-delta"):
            text = _nested(payload, "delta", "message", "content", "text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "tool-call-start":
            return self._tool_call_start(payload)
        if kind == "tool-call-delta":
            position = self._calls.get(payload.get("index"))
            fragment = _nested(payload, "delta", "message", "tool_calls", "function", "arguments")
            if position is None:
                raise ValueError("Cohere sent arguments for a tool call that never started")
            if not isinstance(fragment, str) or not fragment:
                return []
            return [ToolCallDelta(position, fragment)]
        if kind == "message-end":
            return self._message_end(payload)
        return []

    def _tool_call_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        call = _tool_call(_nested(payload, "delta", "message", "tool_calls"))
        position = len(self._calls)
        self._calls[payload.get("index", position)] = position
        events: list[StreamEvent] = [ToolCallStart(position, call.id, call.name)]
        if call.arguments:
            events.append(ToolCallDelta(position, call.arguments))
        return events

    def _message_end(self, payload: dict[str, Any]) -> list[StreamEvent]:
        self._ended = True
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        error = delta.get("error")
        if isinstance(error, str) and error:
            return [StreamError(error)]
        events: list[StreamEvent] = [Finish(_finish_reason(delta.get("finish_reason")))]
        usage = _usage(delta.get("usage"))
        if usage is not None:
            events.append(UsageReport(usage))
        return events


# --- dialect ---------------------------------------------------------------------------------


class CohereDialect:
    """Cohere's v2 chat API and v1 model list."""

    name: ClassVar[str] = "cohere"
    framing: ClassVar[Framing] = "sse"

    def path_model(self, model: str) -> str:
        """Cohere model names go into paths unchanged."""
        return model

    def build_request(self, request: ChatRequest) -> dict[str, Any]:
        """The /v2/chat body; `stream` selects the SSE answer."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(m, i) for i, m in enumerate(request.messages)],
            "stream": request.stream,
        }
        _apply_tools(body, request)
        body.update(sampling(request, max_tokens="max_tokens", temperature="temperature",
                             top_p=None, stop="stop_sequences"))
        if request.top_p is not None:
            body["p"] = min(max(request.top_p, _P_RANGE[0]), _P_RANGE[1])
        fmt = _response_format(request.response_format)
        if fmt is not None:
            body["response_format"] = fmt
        if request.extra_dialect == self.name:
            body.update(request.extra)
        return body

    def parse_response(self, body: Any, *, model: str) -> ChatResponse:
        """A ChatResponseV2 as an IR answer."""
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            raise ValueError("Cohere answer has no message")
        message = body["message"]
        calls = message.get("tool_calls")
        if calls is None:
            calls = []
        elif not isinstance(calls, list):
            raise ValueError("Cohere answer has malformed tool_calls")
        ident = body.get("id")
        return ChatResponse(
            id=ident if isinstance(ident, str) and ident else f"cohere-{uuid.uuid4().hex}",
            model=model,
            text=_answer_text(message.get("content")),
            tool_calls=[_tool_call(call) for call in calls],
            finish_reason=_finish_reason(body.get("finish_reason")),
            usage=_usage(body.get("usage")),
        )

    def stream_decoder(self, *, model: str) -> StreamDecoder:
        """A decoder for one streamed chat answer."""
        return CohereStreamDecoder(model)

    def parse_models(self, body: Any, *, provider: str) -> list[ModelInfo]:
        """The models of one list page, by name."""
        if not isinstance(body, dict):
            raise ValueError("Cohere model list is not a JSON object")
        models = body.get("models")
        if models is None:
            return []  # an empty page may omit the field
        if not isinstance(models, list):
            raise ValueError("Cohere model list has no models array")
        found: list[ModelInfo] = []
        for entry in models:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError("Cohere model entry has no name")
            found.append(ModelInfo(id=entry["name"], object="model", owned_by=provider))
        return found

    def parse_error(self, status: int, body: Any) -> ErrorInfo:
        """The `message` of Cohere's `{id, message}` error body."""
        if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
            return ErrorInfo(message=body["message"])
        if isinstance(body, str) and body.strip():
            return ErrorInfo(message=body.strip()[:500])
        return ErrorInfo(message=f"Cohere answered HTTP {status}")


DIALECT = CohereDialect()
