"""The Ollama native chat dialect: `POST /api/chat`, answers streamed as NDJSON.

Ollama carries tool-call arguments as JSON objects, gives tool calls no ids and has no
"tool_calls" finish reason, accepts images only inline as base64, and streams unless told
otherwise; this module bridges those differences to the internal representation.
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
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)

# load/unload answers carry no generated text; they still ended normally.
_DONE_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "load": "stop",
    "unload": "stop",
}
_CUT_SHORT = "stream ended before the provider finished"



def _response_id() -> str:
    """An id for an answer; Ollama's answers have none."""
    return f"ollama-{uuid.uuid4().hex}"


def _finish_reason(done_reason: Any, has_tool_calls: bool) -> FinishReason:
    """The IR finish reason; Ollama reports "stop" even when it asks for tool calls."""
    if has_tool_calls:
        return "tool_calls"
    return _DONE_REASONS.get(done_reason, "stop") if isinstance(done_reason, str) else "stop"


def _usage(body: dict[str, Any]) -> Usage | None:
    """Token counts of a final object; prompt_eval_count is omitted when the prompt was cached."""
    prompt, output = body.get("prompt_eval_count"), body.get("eval_count")
    if not isinstance(prompt, int | float) and not isinstance(output, int | float):
        return None
    return Usage(
        input_tokens=int(prompt) if isinstance(prompt, int | float) else 0,
        output_tokens=int(output) if isinstance(output, int | float) else 0,
    )


def _ir_tool_call(raw: Any, index: int) -> ToolCall:
    """One wire tool call as an IR ToolCall, with a synthesized id when Ollama gives none."""
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError("Ollama tool call has no function name")
    arguments = function.get("arguments")
    if arguments is None:
        encoded = "{}"
    elif isinstance(arguments, str):
        encoded = arguments
    else:
        encoded = compact_json(arguments)
    call_id = raw.get("id")
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        name=function["name"],
        arguments=encoded,
    )


def _error_text(error: Any) -> str:
    """The message of an `error` member, which is a string natively and an object on /v1."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)


# --- request ---------------------------------------------------------------------------------


def _image(part: ImagePart, field: str) -> str:
    """The base64 payload of an image; Ollama cannot fetch URLs, only data URLs carry bytes."""
    if part.data:
        return part.data
    if part.url and part.url.startswith("data:") and ";base64," in part.url:
        return part.url.split(";base64,", 1)[1]
    raise InvalidRequest("Ollama accepts only inline base64 images, not image URLs", field=field)


def _wire_tool_call(call: ToolCall, field: str) -> dict[str, Any]:
    """An IR tool call in Ollama's shape, whose arguments must be a JSON object."""
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", field=field)
    return {"function": {"name": call.name, "arguments": arguments}}


def _wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation in Ollama's shape; tool results name their tool via `tool_name`."""
    tool_names: dict[str, str] = {}
    wire_messages: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        wire: dict[str, Any] = {"role": message.role, "content": message.text()}
        images = [
            _image(part, f"messages[{i}].content[{j}]")
            for j, part in enumerate(message.content)
            if isinstance(part, ImagePart)
        ]
        if images:
            wire["images"] = images
        if message.tool_calls:
            wire["tool_calls"] = [
                _wire_tool_call(call, f"messages[{i}].tool_calls[{j}].arguments")
                for j, call in enumerate(message.tool_calls)
            ]
            tool_names.update((call.id, call.name) for call in message.tool_calls)
        if message.role == "tool":
            tool_name = message.name or tool_names.get(message.tool_call_id or "")
            if tool_name:
                wire["tool_name"] = tool_name
        wire_messages.append(wire)
    return wire_messages


def _wire_tools(request: ChatRequest) -> list[dict[str, Any]]:
    """Tool definitions; Ollama has no tool_choice, so "none" and a forced name narrow the list."""
    if request.tool_choice == "none":
        return []
    tools = request.tools
    if request.tool_choice not in (None, "auto", "required"):
        tools = [tool for tool in tools if tool.name == request.tool_choice] or tools
    wire_tools: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description is not None:
            function["description"] = tool.description
        wire_tools.append({"type": "function", "function": function})
    return wire_tools


def _options(request: ChatRequest) -> dict[str, Any]:
    """Sampling settings, which Ollama takes inside `options`."""
    return sampling(request, max_tokens="num_predict", temperature="temperature",
                    top_p="top_p", stop="stop")


def _format(response_format: dict[str, Any] | None) -> str | dict[str, Any] | None:
    """Ollama's `format`: "json" for JSON mode, or the bare JSON schema for structured output."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        wrapper = response_format.get("json_schema")
        if isinstance(wrapper, dict):
            schema = wrapper.get("schema", wrapper)
            return schema if isinstance(schema, dict) else "json"
        return "json"
    return None


def _merge(body: dict[str, Any], extra: dict[str, Any]) -> None:
    """Overlay pass-through fields; nested objects such as `options` are merged key by key."""
    for key, value in extra.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            body[key] = {**current, **value}
        else:
            body[key] = value


# --- stream ----------------------------------------------------------------------------------


class OllamaStreamDecoder(StreamDecoder):
    """Decodes one NDJSON answer of `/api/chat` (or `/api/generate`) into IR stream events."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._ended = False
        self._tool_calls = 0

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one NDJSON line."""
        if self._ended or not frame.data.strip():
            return []
        try:
            chunk: Any = json.loads(frame.data)
        except ValueError:
            chunk = None
        events = self._begin(chunk)
        if not isinstance(chunk, dict):
            return events + self._fail("Ollama sent a stream line that is not a JSON object")
        if chunk.get("error") is not None:
            return events + self._fail(_error_text(chunk["error"]))
        try:
            events.extend(self._content(chunk))
        except ValueError as exc:
            return events + self._fail(str(exc))
        if chunk.get("done") is True:
            self._ended = True
            events.append(Finish(_finish_reason(chunk.get("done_reason"), self._tool_calls > 0)))
            usage = _usage(chunk)
            if usage is not None:
                events.append(UsageReport(usage))
        return events

    def close(self) -> list[StreamEvent]:
        """At EOF: nothing if the final object arrived, else an error for the cut-short stream."""
        if self._ended:
            return []
        return self._begin(None) + self._fail(_CUT_SHORT)

    def _begin(self, chunk: Any) -> list[StreamEvent]:
        """The MessageStart, once, before any other event."""
        if self._started:
            return []
        self._started = True
        model = chunk.get("model") if isinstance(chunk, dict) else None
        model = model if isinstance(model, str) else self._model
        return [MessageStart(id=_response_id(), model=model)]

    def _fail(self, message: str) -> list[StreamEvent]:
        """End the stream with an error; later lines are ignored."""
        self._ended = True
        return [StreamError(message)]

    def _content(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """Text and tool calls of one line; Ollama sends each tool call whole."""
        message = chunk.get("message")
        message = message if isinstance(message, dict) else {}
        text = message.get("content", chunk.get("response"))
        events: list[StreamEvent] = []
        if isinstance(text, str) and text:
            events.append(TextDelta(text))
        raw_calls = message.get("tool_calls")
        for raw in raw_calls if isinstance(raw_calls, list) else []:
            call = _ir_tool_call(raw, self._tool_calls)
            events.append(ToolCallStart(index=self._tool_calls, id=call.id, name=call.name))
            events.append(ToolCallDelta(index=self._tool_calls, arguments=call.arguments))
            self._tool_calls += 1
        return events


# --- dialect ---------------------------------------------------------------------------------




class OllamaDialect:
    """Ollama's native API: `/api/chat` for generation, `/api/tags` for the model list."""

    name: ClassVar[str] = "ollama"
    framing: ClassVar[Framing] = "ndjson"

    def path_model(self, model: str) -> str:
        """Ollama model names go into paths unchanged."""
        return model

    def build_request(self, request: ChatRequest) -> dict[str, Any]:
        """The `/api/chat` body; `stream` is always explicit because Ollama streams by default."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": _wire_messages(request.messages),
            "stream": request.stream,
        }
        tools = _wire_tools(request)
        if tools:
            body["tools"] = tools
        options = _options(request)
        if options:
            body["options"] = options
        response_format = _format(request.response_format)
        if response_format is not None:
            body["format"] = response_format
        if request.extra_dialect == self.name:
            _merge(body, request.extra)
        return body

    def parse_response(self, body: Any, *, model: str) -> ChatResponse:
        """A non-streamed `/api/chat` answer (a `/api/generate` one is accepted too)."""
        if not isinstance(body, dict):
            raise ValueError("Ollama answer is not a JSON object")
        if body.get("error") is not None:
            raise ValueError(f"Ollama reported an error: {_error_text(body['error'])}")
        message = body.get("message")
        if isinstance(message, dict):
            text, raw_calls = message.get("content") or "", message.get("tool_calls") or []
        elif isinstance(body.get("response"), str):
            text, raw_calls = body["response"], []
        else:
            raise ValueError("Ollama answer has no message")
        if not isinstance(text, str) or not isinstance(raw_calls, list):
            raise ValueError("Ollama message has an unexpected shape")
        calls = [_ir_tool_call(raw, index) for index, raw in enumerate(raw_calls)]
        answer_model = body.get("model")
        return ChatResponse(
            id=_response_id(),
            model=answer_model if isinstance(answer_model, str) else model,
            text=text,
            tool_calls=calls,
            finish_reason=_finish_reason(body.get("done_reason"), bool(calls)),
            usage=_usage(body),
        )

    def stream_decoder(self, *, model: str) -> OllamaStreamDecoder:
        """A decoder for one NDJSON answer."""
        return OllamaStreamDecoder(model)

    def parse_models(self, body: Any, *, provider: str) -> list[ModelInfo]:
        """The `/api/tags` list (it has no pages)."""
        entries = body.get("models") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise ValueError("Ollama model list has no `models` array")
        models: list[ModelInfo] = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            model_id = entry.get("name") or entry.get("model")
            if not isinstance(model_id, str) or not model_id:
                continue
            info = ModelInfo(id=model_id, object="model", owned_by=provider)
            created = epoch_seconds(entry.get("modified_at"))
            if created is not None:
                info["created"] = created
            models.append(info)
        return models

    def parse_error(self, status: int, body: Any) -> ErrorInfo:
        """`{"error": "..."}` natively; `{"error": {message, type}}` from the /v1 routes."""
        if isinstance(body, dict) and body.get("error"):
            error = body["error"]
            code = error.get("type") if isinstance(error, dict) else None
            return ErrorInfo(_error_text(error), code=code if isinstance(code, str) else None)
        if isinstance(body, str) and body.strip():
            return ErrorInfo(body.strip())
        return ErrorInfo(f"Ollama answered HTTP {status}")


DIALECT = OllamaDialect()
