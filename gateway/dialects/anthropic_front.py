"""The gateway's own `POST /v1/messages`, as Anthropic SDK clients speak it.

`parse_request` turns a client's body into the IR; `render_response`, `StreamEncoder` and
`render_error` turn the IR (whichever provider produced it) back into Anthropic's wire shapes.
"""

from __future__ import annotations

from random import getrandbits
from typing import Any

import orjson

from gateway.dialects.anthropic import DIALECT, TOOL_CHOICE_OUT, as_object
from gateway.dialects.base import compact_json
from gateway.errors import InvalidRequest
from gateway.ir import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    ImagePart,
    Message,
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
_FRONT_FIELDS = frozenset({"model", "max_tokens", "messages", "system", "tools", "tool_choice",
                           "stop_sequences", "temperature", "top_p", "stream"})
_TOOL_CHOICE_IN = {wire: ir for ir, wire in TOOL_CHOICE_OUT.items()}



def _needas_object(value: Any, field: str, what: str = "must be an object") -> dict[str, Any]:
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
    source = _needas_object(block.get("source"), f"{field}.source")
    if source.get("type") == "base64":
        media_type = source.get("media_type")
        return ImagePart(data=_need_str(source.get("data"), f"{field}.source.data"),
                         media_type=media_type if isinstance(media_type, str) else None)
    if source.get("type") == "url":
        return ImagePart(url=_need_str(source.get("url"), f"{field}.source.url"))
    raise InvalidRequest("image source type must be base64 or url", field=f"{field}.source.type")


def _front_part(block: Any, field: str) -> Part:
    """A text or image block as an IR part."""
    block = _needas_object(block, field)
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
    arguments = _needas_object(block.get("input", {}), f"{field}.input")
    return ToolCall(_need_str(block.get("id"), f"{field}.id"),
                    _need_str(block.get("name"), f"{field}.name"), compact_json(arguments))


def _front_turn(turn: Any, field: str) -> list[Message]:
    """One turn; tool results in a user turn become IR tool messages, keeping their order."""
    turn = _needas_object(turn, field)
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
        kind = _needas_object(raw, spot).get("type")
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
        tool = _needas_object(raw, f"tools[{n}]")
        if tool.get("type", "custom") != "custom":
            raise InvalidRequest("only custom tools are supported", field=f"tools[{n}].type")
        description = tool.get("description")
        result.append(Tool(name=_need_str(tool.get("name"), f"tools[{n}].name"),
                           description=description if isinstance(description, str) else None,
                           parameters=_needas_object(tool.get("input_schema"),
                                                f"tools[{n}].input_schema")))
    return result


def _front_tool_choice(raw: Any) -> str:
    """The IR tool choice for {type: auto | any | none | tool}."""
    choice = _needas_object(raw, "tool_choice")
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
    fmt = as_object(as_object(body.get("output_config")).get("format"))
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        options["response_format"] = {
            "type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}
    return options


def parse_request(body: Any) -> ChatRequest:
    """A `POST /v1/messages` body from an Anthropic client as an IR request."""
    body = _needas_object(body, "body")
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
                       extra_dialect=DIALECT.name, **_front_options(body))


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


def new_message_id() -> str:
    """A fresh `msg_...` id for answers whose upstream gave none (unique, not secret)."""
    return f"msg_{getrandbits(96):024x}"


def render_response(resp: ChatResponse) -> dict[str, Any]:
    """An IR answer as an Anthropic `message` object."""
    content: list[dict[str, Any]] = [{"type": "text", "text": resp.text}] if resp.text else []
    content += [{"type": "tool_use", "id": call.id, "name": call.name,
                 "input": _answer_input(call)} for call in resp.tool_calls]
    usage = resp.usage or Usage()
    return {
        "id": resp.id or new_message_id(),
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
        # The open text block's content_block_delta event up to its text (see `encode`).
        self._text_head = b""

    def encode(self, event: StreamEvent) -> bytes:
        """The bytes for one IR event; the closing message_delta waits for usage or finish()."""
        if self._done:
            return b""
        if type(event) is TextDelta and self._text_head and event.text:
            # Nearly every event: more text for the open text block, from prebuilt bytes
            # (the same bytes as serialising the whole event).
            return self._text_head + orjson.dumps(event.text) + b"}}\n\n"
        if type(event) is StreamError:  # the events are final classes (see gateway.ir)
            self._done = True
            return _sse({"type": "error", "error": {"type": _error_type(500, event.type),
                                                     "message": event.message}})
        out = self._start()
        if type(event) is TextDelta and event.text:
            if self._open is None or self._open[0] != "text":
                out += self._open_block("text", {"type": "text", "text": ""})
                delta = self._delta(self._blocks - 1, {"type": "text_delta", "text": ""})
                self._text_head = delta[:delta.rindex(b'""}}')]
            out += self._delta(self._blocks - 1, {"type": "text_delta", "text": event.text})
        elif type(event) is ToolCallStart:
            out += self._start_tool(event.index, event.id, event.name)
        elif type(event) is ToolCallDelta and event.arguments:
            if event.index not in self._tool_blocks:
                out += self._start_tool(event.index, "", "")
            # A closed block cannot reopen; a late fragment still names its own block.
            out += self._delta(self._tool_blocks[event.index],
                               {"type": "input_json_delta", "partial_json": event.arguments})
        elif type(event) is Finish:
            out += self._close_block()
            self._stop_reason = _STOP_OUT[event.reason]
        elif type(event) is UsageReport:
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
        self._text_head = b""
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
