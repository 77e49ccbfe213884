"""The OpenAI chat-completions dialect, in both directions.

Backend: `OpenAIDialect` speaks to OpenAI, Groq and any OpenAI-compatible provider added
through the spec. Front: `parse_request`, `render_response`, `StreamEncoder` and
`render_error` serve the gateway's own `POST /v1/chat/completions` to OpenAI SDK clients.
The IR's `response_format` uses OpenAI's shape, so it crosses this dialect unchanged.
"""

from __future__ import annotations

import secrets
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
    Role,
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
from gateway.streaming import SSE_DONE

_FINISH_IN: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_DEFAULT_IMAGE_TYPE = "image/png"  # the IR allows base64 data without a type; a data URL needs one


def _compact_json(value: Any) -> str:
    """JSON text without whitespace, for tool arguments that arrive as an object."""
    return orjson.dumps(value).decode("utf-8")


def _finish_reason(raw: Any, has_tool_calls: bool) -> FinishReason:
    """The IR finish reason; compatible servers may send null, their own words, or "stop"
    after tool calls, which clients and other dialects would take as a plain answer."""
    reason = _FINISH_IN.get(raw, "stop") if isinstance(raw, str) else "stop"
    return "tool_calls" if has_tool_calls and reason == "stop" else reason


def _count(value: Any) -> int:
    """A token count, or 0 when the field is missing or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage_of(body: dict[str, Any]) -> Usage | None:
    """Usage from `usage`, or from Groq's `x_groq.usage` on its final stream chunk."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        groq = body.get("x_groq")
        usage = groq.get("usage") if isinstance(groq, dict) else None
    if not isinstance(usage, dict):
        return None
    return Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))


def _wire_usage(usage: Usage) -> dict[str, int]:
    """OpenAI's usage object."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _wire_tool_call(call: ToolCall) -> dict[str, Any]:
    """A complete tool call as it appears in an assistant message."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


# --- backend: IR -> provider -----------------------------------------------------------------


def _wire_part(part: Part) -> dict[str, Any]:
    """One content part; inline images become data URLs."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    url = part.url or f"data:{part.media_type or _DEFAULT_IMAGE_TYPE};base64,{part.data or ''}"
    return {"type": "image_url", "image_url": {"url": url}}


def _wire_message(message: Message) -> dict[str, Any]:
    """One message in OpenAI's shape."""
    wire: dict[str, Any] = {"role": message.role}
    if message.role == "user" and (
        len(message.content) > 1 or any(isinstance(p, ImagePart) for p in message.content)
    ):
        wire["content"] = [_wire_part(p) for p in message.content]
    else:
        # Groq and many compatible servers accept only a string outside user turns.
        wire["content"] = message.text()
    if message.role == "assistant" and message.tool_calls:
        wire["tool_calls"] = [_wire_tool_call(c) for c in message.tool_calls]
        if not wire["content"]:
            wire["content"] = None
    if message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id or ""
    elif message.name:
        wire["name"] = message.name
    return wire


def _wire_tool(tool: Tool) -> dict[str, Any]:
    """A function tool definition."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


def _wire_tool_choice(choice: str) -> str | dict[str, Any]:
    """`auto`/`none`/`required` as is; a bare tool name forces that function."""
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _text_of(content: Any) -> str:
    """A message's text: a string, null, or an array of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    raise ValueError("message content is neither text nor a list of parts")


def _ir_tool_call(raw: Any, position: int) -> ToolCall:
    """A tool call of a non-streamed answer."""
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError("a tool call has no function name")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = "{}" if arguments is None else _compact_json(arguments)
    call_id = raw.get("id") if isinstance(raw, dict) else None
    return ToolCall(call_id if isinstance(call_id, str) and call_id else f"call_{position}",
                    function["name"], arguments)


class OpenAIStreamDecoder:
    """Decodes one stream of `chat.completion.chunk` frames into IR events."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._started = False
        self._finished = False
        self._closed = False  # after [DONE] or an error nothing more is decoded
        self._usage: Usage | None = None
        self._tool_index: dict[int, int] = {}  # wire index -> position in the answer
        self._tool_count = 0

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one SSE event."""
        data = frame.data.strip()
        if self._closed or not data:
            return []
        if data == "[DONE]":
            return self._end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail("the provider sent a malformed stream chunk")
        if not isinstance(chunk, dict):
            return self._fail("the provider sent a malformed stream chunk")
        if chunk.get("error"):
            return self._fail(_error_message(chunk["error"]))
        events = self._begin(chunk)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, events)
        # Usage is held back: some servers repeat it (Groq: in x_groq, then in a usage chunk).
        usage = _usage_of(chunk)
        if usage is not None:
            self._usage = usage
        return events

    def close(self) -> list[StreamEvent]:
        """End of input: the held-back usage, or an error if the answer was cut short."""
        if self._closed:
            return []
        if not self._finished:
            return self._fail("stream ended before the provider finished")
        return self._end()

    def _begin(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """The MessageStart, if it has not been sent yet."""
        if self._started:
            return []
        self._started = True
        model = chunk.get("model")
        return [MessageStart(id=str(chunk.get("id") or ""),
                             model=model if isinstance(model, str) and model else self._model)]

    def _end(self) -> list[StreamEvent]:
        """[DONE] or a clean EOF: Finish if the provider gave none, then the usage."""
        events = self._begin({})
        self._closed = True
        if not self._finished:
            self._finished = True
            events.append(Finish(_finish_reason(None, self._tool_count > 0)))
        if self._usage is not None:
            events.append(UsageReport(self._usage))
        return events

    def _fail(self, message: str) -> list[StreamEvent]:
        """An error inside the stream ends it."""
        events = self._begin({})
        self._closed = True
        events.append(StreamError(message))
        return events

    def _choice(self, choice: dict[str, Any], events: list[StreamEvent]) -> None:
        """Text, tool-call fragments and the finish reason of the first choice."""
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    events.append(TextDelta(text))
            calls = delta.get("tool_calls")
            for position, call in enumerate(calls if isinstance(calls, list) else ()):
                if isinstance(call, dict):
                    self._tool_call(call, position, events)
        reason = choice.get("finish_reason")
        if reason and not self._finished:
            self._finished = True
            events.append(Finish(_finish_reason(reason, self._tool_count > 0)))

    def _tool_call(self, call: dict[str, Any], position: int, events: list[StreamEvent]) -> None:
        """One tool-call fragment: its first fragment (id, name) starts the call."""
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        wire_index = call.get("index")
        if isinstance(wire_index, int) and not isinstance(wire_index, bool):
            index = self._tool_index.get(wire_index)
        else:
            # Without an index, a fragment with an id starts a call; others continue the last.
            wire_index = None
            index = self._tool_count - 1 if self._tool_count and not call.get("id") else None
        if index is None:
            index = self._tool_count
            self._tool_count += 1
            if wire_index is not None:
                self._tool_index[wire_index] = index
            call_id, name = call.get("id"), function.get("name")
            events.append(ToolCallStart(index, str(call_id or f"call_{index}"), str(name or "")))
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = _compact_json(arguments)
        if arguments:
            events.append(ToolCallDelta(index, arguments))


def _error_message(error: Any) -> str:
    """The message of an `{error: ...}` value (object or bare string)."""
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    return "the provider reported an error during the stream"


class OpenAIDialect:
    """OpenAI chat completions as spoken by OpenAI, Groq and compatible servers."""

    name: ClassVar[str] = "openai"
    framing: ClassVar[Framing] = "sse"

    def path_model(self, model: str) -> str:
        """Model ids go into paths unchanged."""
        return model

    def build_request(self, request: ChatRequest) -> dict[str, Any]:
        """The `/chat/completions` body; streaming always asks for the usage chunk."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_wire_message(m) for m in request.messages],
        }
        if request.max_tokens is not None:
            # `max_tokens` is deprecated by OpenAI and refused by its reasoning models.
            body["max_completion_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [_wire_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _wire_tool_choice(request.tool_choice)
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.extra_dialect == self.name:
            body.update(request.extra)
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def parse_response(self, body: Any, *, model: str) -> ChatResponse:
        """A `chat.completion` object; only the first choice is used."""
        if not isinstance(body, dict):
            raise ValueError("the answer is not a JSON object")
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ValueError("the answer has no choices")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise ValueError("the answer's first choice has no message")
        raw_calls = message.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise ValueError("the answer's tool_calls is not a list")
        calls = [_ir_tool_call(c, i) for i, c in enumerate(raw_calls)]
        text = _text_of(message.get("content"))
        refusal = message.get("refusal")
        if not text and isinstance(refusal, str):
            text = refusal
        answer_model = body.get("model")
        return ChatResponse(
            id=str(body.get("id") or ""),
            model=answer_model if isinstance(answer_model, str) and answer_model else model,
            text=text,
            tool_calls=calls,
            finish_reason=_finish_reason(choices[0].get("finish_reason"), bool(calls)),
            usage=_usage_of(body),
        )

    def stream_decoder(self, *, model: str) -> OpenAIStreamDecoder:
        """A fresh decoder for one streamed answer."""
        return OpenAIStreamDecoder(model=model)

    def parse_models(self, body: Any, *, provider: str) -> list[ModelInfo]:
        """The `{object: list, data: [...]}` answer (a bare array is accepted too)."""
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise ValueError("the model list has no data array")
        models: list[ModelInfo] = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            owner = item.get("owned_by")
            info = ModelInfo(id=item["id"], object="model",
                             owned_by=owner if isinstance(owner, str) and owner else provider)
            created = item.get("created")
            if isinstance(created, int) and not isinstance(created, bool):
                info["created"] = created
            if isinstance(item.get("name"), str):
                info["name"] = item["name"]
            models.append(info)
        return models

    def parse_error(self, status: int, body: Any) -> ErrorInfo:
        """`{error: {message, type, param, code}}`; the code falls back to the type."""
        message: Any = None
        code: Any = None
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                message, code = error.get("message"), error.get("code") or error.get("type")
            else:
                message, code = error or body.get("message"), body.get("code")
        elif isinstance(body, str):
            message = body.strip()[:500]
        if not isinstance(message, str) or not message:
            message = f"the provider answered with HTTP status {status}"
        return ErrorInfo(message=message, code=None if code in (None, "") else str(code))


# --- front: the gateway's own /v1/chat/completions -------------------------------------------

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
    "tools", "tool_choice", "response_format", "stream", "stream_options",
})
_OUT_FINISH: dict[FinishReason, str] = {"error": "stop"}  # OpenAI has no word for it
_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def _number(body: dict[str, Any], key: str, high: float) -> float | None:
    """An optional number within [0, high]."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'{key}' must be a number", field=key)
    if not 0 <= value <= high:
        raise InvalidRequest(f"'{key}' must be between 0 and {high:g}", field=key)
    return float(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    """`max_completion_tokens`, or the older `max_tokens`."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequest(f"'{key}' must be a positive integer", field=key)
        return value
    return None


def _stop(value: Any) -> list[str]:
    """`stop` as a string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise InvalidRequest("'stop' must be a string or an array of strings", field="stop")


def _image(part: dict[str, Any], at: str) -> ImagePart:
    """An `image_url` part; a base64 data URL becomes inline data."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest("an image_url part needs a url", field=f"{at}.image_url.url")
    if not url.startswith("data:"):
        return ImagePart(url=url)
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequest("image data URLs must be base64", field=f"{at}.image_url.url")
    return ImagePart(data=data, media_type=header[: -len(";base64")] or None)


def _content(value: Any, at: str, *, images: bool) -> list[Part] | None:
    """A message's content: a string, an array of parts, or null (None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [TextPart(value)] if value else []
    if not isinstance(value, list):
        raise InvalidRequest("content must be a string or an array of parts", field=at)
    parts: list[Part] = []
    for j, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal") and isinstance(part.get(kind), str):
            parts.append(TextPart(part[kind]))
        elif kind == "image_url" and images:
            parts.append(_image(part, f"{at}[{j}]"))
        else:
            raise InvalidRequest(f"unsupported content part {kind!r}", field=f"{at}[{j}].type")
    return parts


def _tool_calls(value: Any, at: str) -> list[ToolCall]:
    """The tool calls of an assistant turn."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("'tool_calls' must be an array", field=at)
    calls = []
    for i, call in enumerate(value):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("a tool call needs function.name", field=f"{at}[{i}].function")
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise InvalidRequest("a tool call needs an id", field=f"{at}[{i}].id")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            raise InvalidRequest("arguments must be a JSON string",
                                 field=f"{at}[{i}].function.arguments")
        calls.append(ToolCall(call["id"], function["name"], arguments))
    return calls


def _message(raw: Any, at: str) -> Message:
    """One request message."""
    if not isinstance(raw, dict):
        raise InvalidRequest("a message must be an object", field=at)
    role = raw.get("role")
    ir_role = _ROLES.get(role) if isinstance(role, str) else None
    if ir_role is None:
        raise InvalidRequest(f"unsupported role {role!r}", field=f"{at}.role")
    content = _content(raw.get("content"), f"{at}.content", images=ir_role == "user")
    calls = _tool_calls(raw.get("tool_calls"), f"{at}.tool_calls") if ir_role == "assistant" else []
    if content is None and not calls:
        raise InvalidRequest("content is required", field=f"{at}.content")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("'name' must be a string", field=f"{at}.name")
    message = Message(role=ir_role, content=content or [], tool_calls=calls, name=name)
    if ir_role == "tool":
        call_id = raw.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest("a tool message needs tool_call_id", field=f"{at}.tool_call_id")
        message.tool_call_id = call_id
    return message


def _tools(value: Any) -> list[Tool]:
    """Function tool definitions."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("'tools' must be an array", field="tools")
    tools = []
    for i, tool in enumerate(value):
        at = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest("only function tools are supported", field=f"{at}.type")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("a tool needs function.name", field=f"{at}.function.name")
        description, parameters = function.get("description"), function.get("parameters")
        if description is not None and not isinstance(description, str):
            raise InvalidRequest("description must be a string", field=f"{at}.function.description")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidRequest("parameters must be an object", field=f"{at}.function.parameters")
        tools.append(Tool(function["name"], description, parameters or {"type": "object",
                                                                         "properties": {}}))
    return tools


def _tool_choice(value: Any, tools: list[Tool]) -> str | None:
    """`auto`/`none`/`required`, or the name of the one function to call."""
    if value is None or (isinstance(value, str) and value in ("auto", "none", "required")):
        return value
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or value.get("type") != "function":
        raise InvalidRequest("tool_choice must be auto, none, required or a function",
                             field="tool_choice")
    if name not in {t.name for t in tools}:
        raise InvalidRequest(f"tool_choice names unknown function {name!r}", field="tool_choice")
    return name


def _response_format(value: Any) -> dict[str, Any] | None:
    """`text` (the default, so None), `json_object` or `json_schema`."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest("unsupported response_format", field="response_format.type")
    if kind == "json_schema" and not isinstance(value.get("json_schema"), dict):
        raise InvalidRequest("json_schema is required", field="response_format.json_schema")
    return None if kind == "text" else dict(value)


def stream_include_usage(body: dict[str, Any]) -> bool:
    """Whether the client asked for the final usage chunk (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    if options is None:
        return False
    include = options.get("include_usage") if isinstance(options, dict) else None
    if not isinstance(options, dict) or not isinstance(include, (bool, type(None))):
        raise InvalidRequest("include_usage must be a boolean",
                             field="stream_options.include_usage")
    return bool(include)


def parse_request(body: Any) -> ChatRequest:
    """A client's chat-completions body as an IR request; unknown fields go to `extra`."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string", field="model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("'messages' must be a non-empty array", field="messages")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", field="stream")
    if body.get("n") not in (None, 1):
        raise InvalidRequest("only n=1 is supported", field="n")
    stream_include_usage(body)
    tools = _tools(body.get("tools"))
    return ChatRequest(
        model=model,
        messages=[_message(m, f"messages[{i}]") for i, m in enumerate(raw_messages)],
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", 2),
        top_p=_number(body, "top_p", 1),
        stop=_stop(body.get("stop")),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        response_format=_response_format(body.get("response_format")),
        stream=bool(stream),
        extra={k: v for k, v in body.items() if k not in _KNOWN_FIELDS},
        extra_dialect=OpenAIDialect.name,
    )


def new_completion_id() -> str:
    """A fresh `chatcmpl-...` id for answers whose upstream gave none."""
    return "chatcmpl-" + secrets.token_hex(12)


def render_response(resp: ChatResponse, *, created: int) -> dict[str, Any]:
    """A `chat.completion` object as the OpenAI SDK expects it."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if resp.tool_calls and not resp.text else resp.text,
        "refusal": None,
    }
    if resp.tool_calls:
        message["tool_calls"] = [_wire_tool_call(c) for c in resp.tool_calls]
    body: dict[str, Any] = {
        "id": resp.id or new_completion_id(),
        "object": "chat.completion",
        "created": created,
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": _OUT_FINISH.get(resp.finish_reason, resp.finish_reason),
        }],
    }
    if resp.usage is not None:
        body["usage"] = _wire_usage(resp.usage)
    return body


class StreamEncoder:
    """Turns IR stream events into `chat.completion.chunk` SSE frames for one answer."""

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        self._head = {"id": id, "object": "chat.completion.chunk", "created": created,
                      "model": model}
        if include_usage:
            self._head["usage"] = None  # as OpenAI does: null on every chunk but the last
        self._include_usage = include_usage
        self._started = False
        self._finished = False
        self._failed = False
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        """Zero or more SSE frames for one event."""
        if self._failed:
            return b""
        if isinstance(event, StreamError):
            self._failed = True
            return _frame({"error": {"message": event.message, "type": event.type}})
        out = b"" if self._started else self._chunk({"role": "assistant", "content": ""})
        self._started = True
        if isinstance(event, TextDelta) and event.text:
            out += self._chunk({"content": event.text})
        elif isinstance(event, ToolCallStart):
            out += self._chunk({"tool_calls": [{
                "index": event.index, "id": event.id, "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }]})
        elif isinstance(event, ToolCallDelta) and event.arguments:
            out += self._chunk({"tool_calls": [{
                "index": event.index, "function": {"arguments": event.arguments},
            }]})
        elif isinstance(event, Finish) and not self._finished:
            self._finished = True
            out += self._chunk({}, _OUT_FINISH.get(event.reason, event.reason))
        elif isinstance(event, UsageReport):
            self._usage = event.usage
        return out

    def finish(self) -> bytes:
        """The usage chunk when the client asked for it, then `[DONE]`."""
        if not self._include_usage or self._usage is None or self._failed:
            return SSE_DONE
        return _frame({**self._head, "choices": [], "usage": _wire_usage(self._usage)}) + SSE_DONE

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """One chunk frame for the first choice."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _frame({**self._head, "choices": [choice]})


def _frame(payload: dict[str, Any]) -> bytes:
    """A `data:` SSE frame; orjson never emits raw newlines, so one line is always enough."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def render_error(status: int, message: str, code: str, *, param: str | None = None
                 ) -> dict[str, Any]:
    """An error body in OpenAI's shape, which the SDK turns into its typed exceptions."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


DIALECT = OpenAIDialect()
