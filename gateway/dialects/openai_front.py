"""The gateway's own `POST /v1/chat/completions`, as OpenAI SDK clients speak it.

`parse_request` turns a client's body into the IR; `render_response`, `StreamEncoder` and
`render_error` turn the IR (whichever provider produced it) back into OpenAI's wire shapes.
"""

from __future__ import annotations

from random import getrandbits
from typing import Any

import orjson

from gateway.dialects.openai import DIALECT, wire_tool_call, wire_usage
from gateway.errors import InvalidRequest
from gateway.ir import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    ImagePart,
    Message,
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
        extra_dialect=DIALECT.name,
    )


def new_completion_id() -> str:
    """A fresh `chatcmpl-...` id for answers whose upstream gave none (unique, not secret:
    `random` rather than a system call for entropy on every stream)."""
    return f"chatcmpl-{getrandbits(96):024x}"


def render_response(resp: ChatResponse, *, created: int) -> dict[str, Any]:
    """A `chat.completion` object as the OpenAI SDK expects it."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if resp.tool_calls and not resp.text else resp.text,
        "refusal": None,
    }
    if resp.tool_calls:
        message["tool_calls"] = [wire_tool_call(c) for c in resp.tool_calls]
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
        body["usage"] = wire_usage(resp.usage)
    return body


class StreamEncoder:
    """Turns IR stream events into `chat.completion.chunk` SSE frames for one answer.

    Every chunk of an answer shares its head (id, created, model) and differs only in the
    delta and finish reason, so the frame is written from prebuilt byte fragments: the same
    bytes as serialising the whole chunk object each time, at a fraction of the cost.
    """

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        self._head = {"id": id, "object": "chat.completion.chunk", "created": created,
                      "model": model}
        if include_usage:
            self._head["usage"] = None  # as OpenAI does: null on every chunk but the last
        # `data: {head...,"choices":[{"index":0,"delta":` DELTA `,"logprobs":null,...}]}`
        self._open = b"data: " + orjson.dumps(self._head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._open_text = self._open + b'{"content":'
        self._include_usage = include_usage
        self._started = False
        self._finished = False
        self._failed = False
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        """Zero or more SSE frames for one event."""
        if self._failed:
            return b""
        if type(event) is TextDelta and self._started:  # nearly every event: the short way
            if not event.text:
                return b""
            return b"".join((self._open_text, orjson.dumps(event.text), _TEXT_NOT_FINISHED))
        if type(event) is StreamError:  # the events are final classes (see gateway.ir)
            self._failed = True
            return _frame({"error": {"message": event.message, "type": event.type}})
        out = b"" if self._started else self._open + _ROLE_DELTA + _NOT_FINISHED
        self._started = True
        if type(event) is TextDelta and event.text:
            out += self._chunk({"content": event.text})
        elif type(event) is ToolCallStart:
            out += self._chunk({"tool_calls": [{
                "index": event.index, "id": event.id, "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }]})
        elif type(event) is ToolCallDelta and event.arguments:
            out += self._chunk({"tool_calls": [{
                "index": event.index, "function": {"arguments": event.arguments},
            }]})
        elif type(event) is Finish and not self._finished:
            self._finished = True
            out += self._chunk({}, _OUT_FINISH.get(event.reason, event.reason))
        elif type(event) is UsageReport:
            self._usage = event.usage
        return out

    def finish(self) -> bytes:
        """The usage chunk when the client asked for it, then `[DONE]`."""
        if not self._include_usage or self._usage is None or self._failed:
            return SSE_DONE
        return _frame({**self._head, "choices": [], "usage": wire_usage(self._usage)}) + SSE_DONE

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """One chunk frame for the first choice."""
        if finish_reason is None:
            return self._open + orjson.dumps(delta) + _NOT_FINISHED
        return (self._open + orjson.dumps(delta) + b',"logprobs":null,"finish_reason":'
                + orjson.dumps(finish_reason) + b"}]}\n\n")


# The fixed parts of a chunk frame (see StreamEncoder).
_ROLE_DELTA = b'{"role":"assistant","content":""}'
_NOT_FINISHED = b',"logprobs":null,"finish_reason":null}]}\n\n'
_TEXT_NOT_FINISHED = b"}" + _NOT_FINISHED


def _frame(payload: dict[str, Any]) -> bytes:
    """A `data:` SSE frame; orjson never emits raw newlines, so one line is always enough."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def render_error(status: int, message: str, code: str, *, param: str | None = None
                 ) -> dict[str, Any]:
    """An error body in OpenAI's shape, which the SDK turns into its typed exceptions."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
