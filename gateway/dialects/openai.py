"""The OpenAI chat-completions dialect, seen from the gateway as a client of the provider.

`OpenAIDialect` speaks to OpenAI, Groq and any OpenAI-compatible provider added through the
spec; the gateway's own `POST /v1/chat/completions` lives in `gateway.dialects.openai_front`.
The IR's `response_format` uses OpenAI's shape, so it crosses this dialect unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

import msgspec
import orjson

from gateway.dialects.base import (
    ErrorInfo,
    Frame,
    Framing,
    ModelInfo,
    StreamDecoder,
    compact_json,
    sampling,
)
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

_FINISH_IN: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_DEFAULT_IMAGE_TYPE = "image/png"  # the IR allows base64 data without a type; a data URL needs one



def _finish_reason(raw: Any, has_tool_calls: bool) -> FinishReason:
    """The IR finish reason; compatible servers may send null, their own words, or "stop"
    after tool calls, which clients and other dialects would take as a plain answer."""
    reason = _FINISH_IN.get(raw, "stop") if isinstance(raw, str) else "stop"
    return "tool_calls" if has_tool_calls and reason == "stop" else reason


def _count(value: Any) -> int:
    """A token count, or 0 when the field is missing or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage_of(usage: Any, groq: Any = None) -> Usage | None:
    """Usage from an answer's `usage`, or from Groq's `x_groq.usage` (`groq`) on its final
    stream chunk."""
    if not isinstance(usage, dict):
        usage = groq.get("usage") if isinstance(groq, dict) else None
    if not isinstance(usage, dict):
        return None
    return Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))


def wire_usage(usage: Usage) -> dict[str, int]:
    """OpenAI's usage object."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def wire_tool_call(call: ToolCall) -> dict[str, Any]:
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
        wire["tool_calls"] = [wire_tool_call(c) for c in message.tool_calls]
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
        arguments = "{}" if arguments is None else compact_json(arguments)
    call_id = raw.get("id") if isinstance(raw, dict) else None
    return ToolCall(call_id if isinstance(call_id, str) and call_id else f"call_{position}",
                    function["name"], arguments)


class _Delta(msgspec.Struct):
    """What the gateway reads of a stream chunk's delta (anything else is skipped unread)."""

    content: Any = None
    refusal: Any = None
    tool_calls: Any = None


class _Choice(msgspec.Struct):
    """What the gateway reads of a stream chunk's choice."""

    index: Any = 0
    delta: _Delta | None = None
    finish_reason: Any = None


class _Chunk(msgspec.Struct):
    """What the gateway reads of a `chat.completion.chunk` after the first."""

    choices: list[_Choice] | None = None
    usage: Any = None
    x_groq: Any = None
    error: Any = None


class _FirstChunk(_Chunk):
    """The first chunk, which also names the answer."""

    id: Any = None
    model: Any = None


_read_chunk = msgspec.json.Decoder(_Chunk).decode
_read_first_chunk = msgspec.json.Decoder(_FirstChunk).decode
_MALFORMED_CHUNK = "the provider sent a malformed stream chunk"


def _tolerant_chunk(chunk: dict[str, Any]) -> _FirstChunk:
    """A chunk (parsed) whose choices or deltas are not all objects, without the ones that
    are not (as a server's other oddities are left out)."""
    choices = chunk.get("choices")
    chunk["choices"] = [
        {**choice, "delta": choice.get("delta") if type(choice.get("delta")) is dict else None}
        for choice in choices if type(choice) is dict
    ] if type(choices) is list else None
    return msgspec.convert(chunk, _FirstChunk)


def _plain_text(chunk: _Chunk) -> str | None:
    """The text of a chunk that holds nothing else the gateway reads (one choice, at index 0,
    whose delta is text alone; no finish, usage or error), else None."""
    if chunk.error is not None or chunk.usage is not None or chunk.x_groq is not None:
        return None
    choices = chunk.choices
    if choices is None or len(choices) != 1:
        return None
    choice = choices[0]
    delta = choice.delta
    if (type(choice.index) is not int or choice.index != 0 or choice.finish_reason is not None
            or delta is None or delta.refusal is not None or delta.tool_calls is not None
            or type(delta.content) is not str):
        return None
    return delta.content


# What a JSON string holds unescaped: anything but quotes, backslashes and control characters.
_BARE = r'[^"\\\x00-\x1f]*'
_bare = re.compile(_BARE + r"\Z").match
_CONTENT_KEY = '"content":'
_OBFUSCATION_KEY = '"obfuscation":"'


class _Template(msgspec.Struct, gc=False):
    """A plain text chunk of one stream with holes where its text (and OpenAI's
    `obfuscation` padding, a random string on every chunk) go.

    A server writes every text chunk of an answer alike but for those: the same id, model,
    fingerprint and nulls, in the same order. A frame that starts with `head` and whose rest
    `rest` matches (bare strings in the holes, then the template's bytes to the end) reads,
    by the JSON grammar, as the chunk the template was learned from with another text: the
    text is taken from the match rather than the frame parsed (a third of the cost).
    Anything else (escapes, another field, other spacing) takes the parser.
    """

    head: str  # up to and including the text's opening quote
    at: int  # len(head)
    rest: re.Pattern[str]  # the text (group 1), then the rest of the chunk

    @classmethod
    def learn(cls, data: str, text: str) -> _Template | None:
        """The template of `data`, a plain chunk (`_plain_text`) whose text is `text`; None
        when its text cannot be found for certain or is not bare."""
        if not _bare(text):
            return None
        key = data.find(_CONTENT_KEY)
        if key < 0 or data.find(_CONTENT_KEY, key + 1) >= 0:
            return None
        at = key + len(_CONTENT_KEY)
        while data[at:at + 1] in (" ", "\t", "\r", "\n"):
            at += 1
        if not data.startswith(f'"{text}"', at):
            return None
        head, tail = data[:at + 1], data[at + 1 + len(text):]
        parts: tuple[str, ...] = (tail,)
        pad = tail.find(_OBFUSCATION_KEY)
        if pad >= 0 and tail.find(_OBFUSCATION_KEY, pad + 1) < 0:
            start = pad + len(_OBFUSCATION_KEY)
            close = tail.find('"', start)
            if close >= 0 and _bare(tail[start:close]):
                parts = (tail[:start], tail[close:])
        # The holes must be what they seem: the template with other strings in them must
        # read as the same plain chunk with another text.
        try:
            if _plain_text(_read_chunk(head + "#" + "x".join(parts))) != "#":
                return None
        except msgspec.DecodeError:
            return None
        rest = _RESTS.get(parts)
        if rest is None:
            if len(_RESTS) >= _MAX_RESTS:
                _RESTS.clear()
            rest = _RESTS[parts] = re.compile(
                f"({_BARE})" + _BARE.join(map(re.escape, parts)) + r"\Z")
        return cls(head, len(head), rest)


# The patterns of templates' rests by their fixed parts: the same for every answer of a
# model (the id is in the head), and escaping them for a pattern costs more than the rest of
# learning a template.
_RESTS: dict[tuple[str, ...], re.Pattern[str]] = {}
_MAX_RESTS = 256


class OpenAIStreamDecoder(StreamDecoder):
    """Decodes one stream of `chat.completion.chunk` frames into IR events.

    Nearly every frame is a chunk with a little text, and most of its bytes are fields the
    gateway does not use (ids, fingerprints, logprobs): msgspec reads it into `_Chunk`,
    which takes only the fields used and skips the rest without building them (about 40 %
    of what building the whole object costs). Values are still checked here, as they come:
    compatible servers send all sorts.
    """

    LEARNS: ClassVar[int] = 3
    """Templates learned per stream at most: a server whose text chunks differ in more than
    their text (a counter, a timestamp) is parsed after that without trying again."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._started = False
        self._finished = False
        self._closed = False  # after [DONE] or an error nothing more is decoded
        self._usage: Usage | None = None
        self._tool_index: dict[int, int] = {}  # wire index -> position in the answer
        self._tool_count = 0
        self._template: _Template | None = None  # see `_Template`
        self._learns = self.LEARNS

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one SSE event."""
        return self.feed_all((frame,))

    def feed_all(self, frames: Iterable[Frame]) -> list[StreamEvent]:
        """Decode SSE events in order (one loop for the many events of one read)."""
        events: list[StreamEvent] = []
        for frame in frames:
            if self._closed:
                break
            data = frame.data
            template = self._template
            if template is not None and data.startswith(template.head):
                found = template.rest.match(data, template.at)
                if found is not None:  # the template's chunk with other text: no parsing
                    text = found[1]
                    if text:
                        events.append(TextDelta(text))
                    continue
            if data == "[DONE]":
                events += self._end()
                break
            started = self._started
            try:
                chunk: _Chunk | None = (_read_chunk if started else _read_first_chunk)(data)
            except msgspec.DecodeError:  # not JSON, or not shaped like a chunk: the slow way
                chunk = self._reread(data, events)
            if chunk is None:
                continue
            if chunk.error:
                events += self._fail(_error_message(chunk.error))
                break
            if not started:
                events += self._begin(chunk)
            elif self._learns:  # a text chunk the template (if any) did not match: learn it
                text = _plain_text(chunk)
                if text is not None:
                    self._learns -= 1
                    self._template = _Template.learn(data, text)
            for choice in chunk.choices or ():
                if choice.index == 0:
                    self._choice(choice, events)
            # Usage is held back: some servers repeat it (Groq: in x_groq, then in a usage
            # chunk).
            if chunk.usage is not None or chunk.x_groq is not None:
                usage = _usage_of(chunk.usage, chunk.x_groq)
                if usage is not None:
                    self._usage = usage
        return events

    def _reread(self, data: str, events: list[StreamEvent]) -> _FirstChunk | None:
        """A frame msgspec refused: the chunk as far as it can be read, or None when the
        frame is blank, [DONE] with spaces, or not a chunk at all (what follows from it is
        added to `events`)."""
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            data = data.strip()
            if data == "[DONE]":
                events += self._end()
            elif data:
                events += self._fail(_MALFORMED_CHUNK)
            return None
        if type(parsed) is not dict:
            events += self._fail(_MALFORMED_CHUNK)
            return None
        return _tolerant_chunk(parsed)

    def close(self) -> list[StreamEvent]:
        """End of input: the held-back usage, or an error if the answer was cut short."""
        if self._closed:
            return []
        if not self._finished:
            return self._fail("stream ended before the provider finished")
        return self._end()

    def _begin(self, chunk: _Chunk | None) -> list[StreamEvent]:
        """The MessageStart, if it has not been sent yet."""
        if self._started:
            return []
        self._started = True
        first = chunk if isinstance(chunk, _FirstChunk) else _FirstChunk()
        model = first.model
        return [MessageStart(id=str(first.id or ""),
                             model=model if isinstance(model, str) and model else self._model)]

    def _end(self) -> list[StreamEvent]:
        """[DONE] or a clean EOF: Finish if the provider gave none, then the usage."""
        events = self._begin(None)
        self._closed = True
        if not self._finished:
            self._finished = True
            events.append(Finish(_finish_reason(None, self._tool_count > 0)))
        if self._usage is not None:
            events.append(UsageReport(self._usage))
        return events

    def _fail(self, message: str) -> list[StreamEvent]:
        """An error inside the stream ends it."""
        events = self._begin(None)
        self._closed = True
        events.append(StreamError(message))
        return events

    def _choice(self, choice: _Choice, events: list[StreamEvent]) -> None:
        """Text, tool-call fragments and the finish reason of the first choice."""
        delta = choice.delta
        if delta is not None:
            text = delta.content
            if text and type(text) is str:
                events.append(TextDelta(text))
            text = delta.refusal
            if text and type(text) is str:
                events.append(TextDelta(text))
            calls = delta.tool_calls
            if calls and type(calls) is list:
                for position, call in enumerate(calls):
                    if type(call) is dict:
                        self._tool_call(call, position, events)
        reason = choice.finish_reason
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
            arguments = compact_json(arguments)
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
        # `max_tokens` is deprecated by OpenAI and refused by its reasoning models.
        body.update(sampling(request, max_tokens="max_completion_tokens",
                             temperature="temperature", top_p="top_p", stop="stop"))
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
            usage=_usage_of(body.get("usage"), body.get("x_groq")),
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


DIALECT = OpenAIDialect()
