"""The Cloudflare Workers AI native dialect: `POST .../ai/run/{model}`, answers streamed as SSE.

Non-streamed answers come in Cloudflare's v4 envelope `{result, success, errors, messages}`;
streams do not. The model input schemas accept only `{role, content}` messages with string
content, so tool-call turns travel as text. Streams come in two shapes: the native
`{"response": ...}` frames and, from newer backends on the same route, OpenAI-style chunks
followed by one native frame with the cumulative usage.
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

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_CUT_SHORT = "stream ended before the provider finished"



def _response_id() -> str:
    """An id for an answer; native Workers AI answers have none."""
    return f"cloudflare-{uuid.uuid4().hex}"


def _object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (for optional nested members)."""
    return value if isinstance(value, dict) else {}


def _arguments(value: Any) -> str:
    """Tool-call arguments as a JSON string, whether the wire gave an object or a string."""
    if value is None:
        return "{}"
    return value if isinstance(value, str) else compact_json(value)


def _text(value: Any) -> str:
    """A `response` member as text; JSON mode may answer with the object itself."""
    if value is None or isinstance(value, str):
        return value or ""
    return compact_json(value)


def _usage(raw: Any) -> Usage | None:
    """`{prompt_tokens, completion_tokens}` (numbers in the model schemas) as IR usage."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return Usage(
        input_tokens=int(prompt) if isinstance(prompt, int | float) else 0,
        output_tokens=int(completion) if isinstance(completion, int | float) else 0,
    )


def _ir_tool_call(raw: Any, index: int) -> ToolCall:
    """A tool call in the native `{name, arguments}` shape or the OpenAI `{id, function}` one."""
    if not isinstance(raw, dict):
        raise ValueError("Cloudflare tool call is not an object")
    function = _object(raw.get("function")) or raw
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("Cloudflare tool call has no name")
    call_id = raw.get("id")
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        name=name,
        arguments=_arguments(function.get("arguments")),
    )


def _envelope_errors(body: dict[str, Any]) -> tuple[str, str | None]:
    """The joined messages and the first code of an envelope's `errors` list."""
    errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    messages = [str(e["message"]) for e in errors if e.get("message")]
    code = errors[0].get("code") if errors else None
    return "; ".join(messages), None if code is None else str(code)


def _frame_error(chunk: dict[str, Any]) -> str | None:
    """The message of an error reported inside a stream frame, if the frame is one."""
    error = chunk.get("error")
    if error is not None:
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        return str(error)
    if chunk.get("success") is False or chunk.get("errors"):
        return _envelope_errors(chunk)[0] or "Cloudflare reported an error in the stream"
    return None


# --- request ---------------------------------------------------------------------------------


def _content(message: Message, index: int) -> str:
    """A message's text, with its tool calls written out as JSON lines, which is all the
    schema's string `content` can carry; images are not part of that schema."""
    for j, part in enumerate(message.content):
        if isinstance(part, ImagePart):
            raise InvalidRequest(
                "Cloudflare Workers AI chat models accept text only, not images",
                field=f"messages[{index}].content[{j}]",
            )
    lines = [message.text()] if message.text() else []
    for call in message.tool_calls:
        try:
            arguments: Any = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            arguments = call.arguments  # kept verbatim rather than dropped
        lines.append(compact_json({"id": call.id, "name": call.name, "arguments": arguments}))
    return "\n".join(lines)


def _wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as `{role, content}` pairs."""
    return [{"role": m.role, "content": _content(m, i)} for i, m in enumerate(messages)]


def _wire_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameter schema filled out to what the model schemas require: `type` and
    `properties` at the top, a `description` on every property."""
    wire = {"type": "object", "properties": {}, **parameters}
    properties = wire["properties"]
    if isinstance(properties, dict):
        wire["properties"] = {
            key: {**value, "description": value.get("description", "")}
            if isinstance(value, dict) else value
            for key, value in properties.items()
        }
    return wire


def _wire_tools(request: ChatRequest) -> list[dict[str, Any]]:
    """Flat tool definitions; there is no tool_choice, so "none" and a forced name narrow it."""
    if request.tool_choice == "none":
        return []
    tools = request.tools
    if request.tool_choice not in (None, "auto", "required"):
        tools = [tool for tool in tools if tool.name == request.tool_choice] or tools
    return [
        {
            "name": tool.name,
            "description": tool.description or "",
            "parameters": _wire_parameters(tool.parameters),
        }
        for tool in tools
    ]


def _response_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON mode: Cloudflare wants the bare schema under `json_schema`, not OpenAI's wrapper."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        wrapper = response_format.get("json_schema")
        schema = wrapper.get("schema", wrapper) if isinstance(wrapper, dict) else None
        if isinstance(schema, dict):
            return {"type": "json_schema", "json_schema": schema}
        return {"type": "json_object"}
    return None


# --- stream ----------------------------------------------------------------------------------


class CloudflareStreamDecoder(StreamDecoder):
    """Decodes one `/ai/run` SSE answer, in the native or the OpenAI-chunk style, into events."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._ended = False
        self._finish_seen = False
        self._reason: FinishReason | None = None
        self._tool_calls = 0
        self._wire_indexes: dict[int, int] = {}
        self._native_usage: Usage | None = None
        self._chunk_usage: Usage | None = None

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one SSE event."""
        data = frame.data.strip()
        if self._ended or not data:
            return []
        if data == "[DONE]":
            return self._begin(None) + self._end()
        try:
            chunk: Any = json.loads(data)
        except ValueError:
            chunk = None
        events = self._begin(chunk)
        if not isinstance(chunk, dict):
            return events + self._fail("Cloudflare sent a stream frame that is not a JSON object")
        error = _frame_error(chunk)
        if error is not None:
            return events + self._fail(error)
        try:
            if isinstance(chunk.get("choices"), list):
                events.extend(self._openai_chunk(chunk))
            else:
                events.extend(self._native_frame(chunk))
        except ValueError as exc:
            return events + self._fail(str(exc))
        return events

    def close(self) -> list[StreamEvent]:
        """At EOF: the held-back finish if the answer was complete, else an error."""
        if self._ended:
            return []
        if self._finish_seen:
            return self._begin(None) + self._end()
        self._ended = True
        return [*self._begin(None), StreamError(_CUT_SHORT)]

    def _begin(self, chunk: Any) -> list[StreamEvent]:
        """The MessageStart, once, before any other event; chunk-style frames carry an id."""
        if self._started:
            return []
        self._started = True
        fields = chunk if isinstance(chunk, dict) else {}
        answer_id, model = fields.get("id"), fields.get("model")
        return [MessageStart(
            id=answer_id if isinstance(answer_id, str) and answer_id else _response_id(),
            model=model if isinstance(model, str) and model else self._model,
        )]

    def _end(self) -> list[StreamEvent]:
        """The single Finish, then usage; the native total wins over summed chunk usage."""
        self._ended = True
        reason: FinishReason = "tool_calls" if self._tool_calls else self._reason or "stop"
        events: list[StreamEvent] = [Finish(reason)]
        usage = self._native_usage or self._chunk_usage
        if usage is not None:
            events.append(UsageReport(usage))
        return events

    def _fail(self, message: str) -> list[StreamEvent]:
        """End the stream with an error; later frames are ignored."""
        self._ended = True
        return [StreamError(message)]

    def _native_frame(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """`{"response": "...", "tool_calls"?, "usage"?}`; the usage frame is the last one."""
        events: list[StreamEvent] = []
        text = _text(chunk.get("response"))
        if text:
            events.append(TextDelta(text))
        raw_calls = chunk.get("tool_calls")
        for raw in raw_calls if isinstance(raw_calls, list) else []:
            call = _ir_tool_call(raw, self._tool_calls)
            events.append(ToolCallStart(index=self._tool_calls, id=call.id, name=call.name))
            events.append(ToolCallDelta(index=self._tool_calls, arguments=call.arguments))
            self._tool_calls += 1
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self._native_usage = usage
            self._finish_seen = True
        return events

    def _openai_chunk(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """A `chat.completion.chunk`; its usage is per chunk, so it is summed."""
        events: list[StreamEvent] = []
        choices = [c for c in chunk["choices"] if isinstance(c, dict)]
        for choice in choices[:1]:
            delta = _object(choice.get("delta"))
            text = delta.get("content")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
            raw_calls = delta.get("tool_calls")
            for raw in raw_calls if isinstance(raw_calls, list) else []:
                events.extend(self._tool_fragment(raw))
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self._reason = _FINISH_REASONS.get(reason, "stop")
                self._finish_seen = True
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            total = self._chunk_usage or Usage()
            self._chunk_usage = Usage(total.input_tokens + usage.input_tokens,
                                      total.output_tokens + usage.output_tokens)
        return events

    def _tool_fragment(self, raw: Any) -> list[StreamEvent]:
        """An OpenAI tool-call delta: the first fragment of a call names it, later ones add
        argument text."""
        if not isinstance(raw, dict):
            raise ValueError("Cloudflare tool-call delta is not an object")
        wire_index = raw.get("index")
        key = wire_index if isinstance(wire_index, int) else len(self._wire_indexes)
        function = _object(raw.get("function"))
        events: list[StreamEvent] = []
        if key not in self._wire_indexes:
            index = self._wire_indexes[key] = self._tool_calls
            self._tool_calls += 1
            call_id, name = raw.get("id"), function.get("name")
            events.append(ToolCallStart(
                index=index,
                id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
                name=name if isinstance(name, str) else "",
            ))
        arguments = function.get("arguments")
        if arguments is not None and arguments != "":
            events.append(ToolCallDelta(self._wire_indexes[key], _arguments(arguments)))
        return events


# --- dialect ---------------------------------------------------------------------------------




def _result(body: Any) -> dict[str, Any]:
    """The `result` of a successful v4 envelope (an unwrapped answer is accepted as is)."""
    if not isinstance(body, dict):
        raise ValueError("Cloudflare answer is not a JSON object")
    if body.get("success") is False:
        message = _envelope_errors(body)[0] or "no error message"
        raise ValueError(f"Cloudflare reported failure: {message}")
    result = body.get("result", body)
    if not isinstance(result, dict):
        raise ValueError("Cloudflare answer has no result object")
    return result


def _openai_result(result: dict[str, Any]) -> tuple[Any, Any, FinishReason]:
    """Text, raw tool calls and finish reason of a `chat.completion` shaped result."""
    choices = result["choices"]
    if not choices or not isinstance(choices[0], dict):
        raise ValueError("Cloudflare answer has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError("Cloudflare choice has no message")
    reason = choices[0].get("finish_reason")
    finish = _FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return message.get("content") or "", message.get("tool_calls"), finish


class CloudflareDialect:
    """Workers AI's native run API and its models search."""

    name: ClassVar[str] = "cloudflare"
    framing: ClassVar[Framing] = "sse"

    def path_model(self, model: str) -> str:
        """Model ids (`@cf/meta/...`) go into the `{model+}` path raw, slashes included."""
        return model

    def build_request(self, request: ChatRequest) -> dict[str, Any]:
        """The `/ai/run/{model}` body in the model schemas' `Messages` form."""
        body: dict[str, Any] = {"messages": _wire_messages(request.messages)}
        if request.stream:
            body["stream"] = True
        # Cloudflare's model schemas have no stop sequences.
        body.update(sampling(request, max_tokens="max_tokens", temperature="temperature",
                             top_p="top_p", stop=None))
        tools = _wire_tools(request)
        if tools:
            body["tools"] = tools
        response_format = _response_format(request.response_format)
        if response_format is not None:
            body["response_format"] = response_format
        if request.extra_dialect == self.name:
            body.update(request.extra)
        return body

    def parse_response(self, body: Any, *, model: str) -> ChatResponse:
        """A non-streamed run answer; `success: false` inside a 200 is an error too."""
        result = _result(body)
        if isinstance(result.get("choices"), list):
            text, raw_calls, finish = _openai_result(result)
        else:  # native results carry no finish reason
            finish = "stop"
            text, raw_calls = _text(result.get("response")), result.get("tool_calls")
        raw_calls = raw_calls or []
        if not isinstance(text, str) or not isinstance(raw_calls, list):
            raise ValueError("Cloudflare result has an unexpected shape")
        calls = [_ir_tool_call(raw, index) for index, raw in enumerate(raw_calls)]
        answer_id, answer_model = result.get("id"), result.get("model")
        return ChatResponse(
            id=answer_id if isinstance(answer_id, str) and answer_id else _response_id(),
            model=answer_model if isinstance(answer_model, str) else model,
            text=text,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else finish,
            usage=_usage(result.get("usage")),
        )

    def stream_decoder(self, *, model: str) -> CloudflareStreamDecoder:
        """A decoder for one SSE answer."""
        return CloudflareStreamDecoder(model)

    def parse_models(self, body: Any, *, provider: str) -> list[ModelInfo]:
        """One page of `/ai/models/search`; the id is the model's `@cf/...` name."""
        if not isinstance(body, dict) or not isinstance(body.get("result"), list):
            raise ValueError("Cloudflare model list has no `result` array")
        models: list[ModelInfo] = []
        for entry in body["result"]:
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                continue
            info = ModelInfo(id=name, object="model", owned_by=provider)
            created = epoch_seconds(entry.get("created_at"))
            if created is not None:
                info["created"] = created
            models.append(info)
        return models

    def parse_error(self, status: int, body: Any) -> ErrorInfo:
        """The envelope's `errors[]` messages, joined; the code is the first internal code."""
        code: str | None = None
        if isinstance(body, dict):
            message, code = _envelope_errors(body)
            if not message and body.get("error") is not None:
                message = _frame_error(body) or ""
            if message:
                return ErrorInfo(message, code=code)
        elif isinstance(body, str) and body.strip():
            return ErrorInfo(body.strip())
        return ErrorInfo(f"Cloudflare answered HTTP {status}", code=code)


DIALECT = CloudflareDialect()
