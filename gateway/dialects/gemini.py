"""Google Gemini's `generateContent` wire format (the gateway's provider id `google`).

Gemini differs from the OpenAI family in ways that matter here: the system prompt lives in
`systemInstruction`, the assistant role is `model`, tool results are `functionResponse` parts
addressed by function *name*, function calls carry no id and their arguments are an object,
and a stream is a sequence of whole `GenerateContentResponse` frames that simply stops at EOF.

Gemini 3 models attach an opaque `thoughtSignature` to function-call parts and reject a
follow-up turn that does not echo it back. The IR has no field for it, so the signature rides
inside the synthesized tool-call id (which every client must echo with the tool result) and is
restored from there when the conversation comes back.
"""

from __future__ import annotations

import json
import mimetypes
import re
import uuid
from collections.abc import Iterable
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

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}

_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

# Separates the id proper from a carried thought signature; neither the ids we mint nor
# Gemini's own function-call ids contain it.
_SIGNATURE_MARK = "_ts_"
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]+)?(?:;[^,]*)?;base64,(?P<data>.*)", re.DOTALL)
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?)s\s*")
# Leading base64 characters of common image formats, for images sent without a media type.
_BASE64_MAGIC = {"iVBOR": "image/png", "/9j/": "image/jpeg", "R0lGOD": "image/gif",
                 "UklGR": "image/webp"}
_ENDED_EARLY = "stream ended before the provider finished"



# --- tool-call ids ---------------------------------------------------------------------------


def _mint_tool_call_id(call: dict[str, Any], signature: Any, response_id: str, index: int) -> str:
    """A stable id for the `index`-th function call of a response, carrying its signature."""
    wire_id = call.get("id")
    if isinstance(wire_id, str) and wire_id:
        base = wire_id
    else:
        slug = re.sub(r"[^A-Za-z0-9]", "", response_id)
        base = f"call_{slug}_{index}" if slug else f"call_{index}"
    if isinstance(signature, str) and signature:
        # URL-safe alphabet keeps the id within [A-Za-z0-9_-], which Anthropic clients require.
        safe = signature.rstrip("=").replace("+", "-").replace("/", "_")
        return f"{base}{_SIGNATURE_MARK}{safe}"
    return base


def _thought_signature(tool_call_id: str) -> str | None:
    """The thought signature carried in a minted tool-call id, in standard base64."""
    _, mark, safe = tool_call_id.partition(_SIGNATURE_MARK)
    if not mark or not safe:
        return None
    standard = safe.replace("-", "+").replace("_", "/")
    return standard + "=" * (-len(standard) % 4)


# --- request ---------------------------------------------------------------------------------


def _image_part(part: ImagePart) -> dict[str, Any]:
    """An IR image as inline data, or as a file reference when it is a plain URL."""
    data, mime = part.data, part.media_type
    if data is None and part.url and part.url.startswith("data:"):
        match = _DATA_URL.fullmatch(part.url)
        if match is None:
            raise InvalidRequest("image data URL must be base64-encoded", field="messages")
        data, mime = match["data"], mime or match["mime"]
    if data is not None:
        if not mime:
            mime = next((m for p, m in _BASE64_MAGIC.items() if data.startswith(p)), "image/jpeg")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if not part.url:
        raise InvalidRequest("image needs a url or data", field="messages")
    file_data: dict[str, Any] = {"fileUri": part.url}
    mime = mime or mimetypes.guess_type(part.url)[0]
    if mime:
        file_data["mimeType"] = mime
    return {"fileData": file_data}


def _content_parts(message: Message) -> list[dict[str, Any]]:
    """The text and image parts of a user or assistant message."""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        else:
            parts.append(_image_part(part))
    return parts


def _call_parts(calls: Iterable[ToolCall], where: str) -> list[dict[str, Any]]:
    """Assistant tool calls as `functionCall` parts, with their thought signatures restored."""
    parts: list[dict[str, Any]] = []
    for call in calls:
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            raise InvalidRequest("tool call arguments are not valid JSON", field=where) from None
        if not isinstance(args, dict):
            raise InvalidRequest("tool call arguments must be a JSON object", field=where)
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
        signature = _thought_signature(call.id)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _result_part(message: Message, names: dict[str, str], where: str) -> dict[str, Any]:
    """A tool message as a `functionResponse` part, named after the call it answers."""
    name = names.get(message.tool_call_id or "") or message.name
    if not name:
        raise InvalidRequest("tool result does not match an earlier tool call", field=where)
    text = message.text()
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    response = value if isinstance(value, dict) else {"result": value}
    return {"functionResponse": {"name": name, "response": response}}


def _contents(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as Gemini `contents`; adjacent turns of one role are merged."""
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-call id -> function name, latest call wins
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        if message.role == "system":
            continue
        if message.role == "tool":
            role, parts = "user", [_result_part(message, names, where)]
        elif message.role == "assistant":
            names.update((call.id, call.name) for call in message.tool_calls)
            role = "model"
            parts = _content_parts(message) + _call_parts(message.tool_calls, where)
        else:
            role, parts = "user", _content_parts(message)
        if not parts:
            continue
        # Parallel tool results must share one turn; merging all same-role neighbours also
        # satisfies models that insist on alternating turns.
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    """Sampling limits and JSON mode."""
    config = sampling(request, max_tokens="maxOutputTokens", temperature="temperature",
                      top_p="topP", stop="stopSequences")
    fmt = request.response_format or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else fmt.get("schema")
        if isinstance(schema, dict):
            # responseJsonSchema takes standard JSON Schema; responseSchema is an OpenAPI subset.
            config["responseJsonSchema"] = schema
    return config


def _declaration(tool: Tool) -> dict[str, Any]:
    """A tool as a function declaration; parameters stay standard JSON Schema."""
    return {
        "name": tool.name,
        "description": tool.description or "",
        "parametersJsonSchema": tool.parameters,
    }


def _tool_config(choice: str) -> dict[str, Any]:
    """`tool_choice` as a function-calling mode; a bare name forces that function."""
    mode = _TOOL_CHOICE_MODES.get(choice)
    calling: dict[str, Any] = {"mode": mode or "ANY"}
    if mode is None:
        calling["allowedFunctionNames"] = [choice]
    return {"functionCallingConfig": calling}


# --- answers ---------------------------------------------------------------------------------


def _usage(meta: Any) -> Usage | None:
    """Token counts from `usageMetadata`; thinking tokens count as output."""
    if not isinstance(meta, dict):
        return None
    output = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
    return Usage(input_tokens=int(meta.get("promptTokenCount") or 0), output_tokens=output)


def _finish_reason(wire: Any) -> FinishReason:
    """Gemini's finish reason in IR terms; unknown reasons are errors, none is a stop."""
    return _FINISH_REASONS.get(str(wire), "error") if wire else "stop"


def _after_calls(reason: FinishReason, has_calls: bool) -> FinishReason:
    """Gemini says STOP after function calls; the IR says tool_calls."""
    return "tool_calls" if reason == "stop" and has_calls else reason


def _candidate(body: dict[str, Any]) -> dict[str, Any] | None:
    """The first candidate of a response, or None when there is none (a blocked prompt)."""
    candidates = body.get("candidates")
    if not candidates:
        return None
    if not isinstance(candidates, list) or not isinstance(candidates[0], dict):
        raise ValueError("Gemini answer has malformed candidates")
    return candidates[0]


def _parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a candidate's content; absent content (e.g. after SAFETY) is no parts."""
    content = candidate.get("content") or {}
    parts = content.get("parts") if isinstance(content, dict) else None
    if parts is None:
        return []
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ValueError("Gemini answer has malformed content parts")
    return parts


def _read_parts(parts: list[dict[str, Any]], response_id: str,
                first_index: int) -> tuple[list[str], list[ToolCall]]:
    """Visible text pieces and function calls of some parts; thoughts are dropped."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in parts:
        call = part.get("functionCall")
        if isinstance(call, dict):
            name = call.get("name")
            if not isinstance(name, str):
                raise ValueError("Gemini function call has no name")
            index = first_index + len(calls)
            ident = _mint_tool_call_id(call, part.get("thoughtSignature"), response_id, index)
            arguments = compact_json(call.get("args") or {})
            calls.append(ToolCall(id=ident, name=name, arguments=arguments))
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            texts.append(part["text"])
    return texts, calls


def _blocked(body: dict[str, Any]) -> bool:
    """Whether the prompt itself was refused (HTTP 200, no candidates)."""
    feedback = body.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def _response_id(body: dict[str, Any]) -> str:
    """Gemini's responseId, or a fresh one when the answer lacks it."""
    value = body.get("responseId")
    return value if isinstance(value, str) and value else f"gemini-{uuid.uuid4().hex}"


def _model_name(body: dict[str, Any], requested: str) -> str:
    """The model version Gemini reports, else the one that was asked for."""
    value = body.get("modelVersion")
    return value if isinstance(value, str) and value else requested


def _retry_after(details: Any) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail (`retryDelay` like "7s" or "1.5s")."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.fullmatch(str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


# --- stream ----------------------------------------------------------------------------------


class GeminiStreamDecoder(StreamDecoder):
    """Decodes `alt=sse` frames; finish and usage are held back until EOF."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._response_id = ""
        self._started = False
        self._failed = False
        self._calls = 0
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one frame (a whole response chunk, or a JSON array of them)."""
        data = frame.data.strip()
        if self._failed or not data:
            return []
        try:
            payload = json.loads(data)
        except ValueError:
            return self._fail("Gemini sent a malformed stream frame")
        events: list[StreamEvent] = []
        for chunk in payload if isinstance(payload, list) else [payload]:
            events.extend(self._chunk(chunk))
            if self._failed:
                break
        return events

    def close(self) -> list[StreamEvent]:
        """Emit the held finish and usage, or an error when the stream was cut short."""
        if self._failed:
            return []
        if self._finish is None:
            return [StreamError(_ENDED_EARLY)]
        events: list[StreamEvent] = [Finish(_after_calls(self._finish, self._calls > 0))]
        if self._usage is not None:
            events.append(UsageReport(self._usage))
        return events

    def _fail(self, message: str) -> list[StreamEvent]:
        self._failed = True
        return [StreamError(message)]

    def _chunk(self, chunk: Any) -> list[StreamEvent]:
        """Events for one GenerateContentResponse (or an in-stream error object)."""
        if not isinstance(chunk, dict):
            return self._fail("Gemini sent a malformed stream frame")
        error = chunk.get("error")
        if isinstance(error, dict):
            return self._fail(str(error.get("message") or "Gemini reported an error"))
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            self._response_id = _response_id(chunk)
            events.append(MessageStart(id=self._response_id, model=_model_name(chunk, self._model)))
        try:
            candidate = _candidate(chunk)
            parts = _parts(candidate) if candidate else []
            texts, calls = _read_parts(parts, self._response_id, self._calls)
        except ValueError as exc:
            return events + self._fail(str(exc))
        events.extend(TextDelta(text) for text in texts if text)
        for call in calls:
            events.append(ToolCallStart(index=self._calls, id=call.id, name=call.name))
            events.append(ToolCallDelta(index=self._calls, arguments=call.arguments))
            self._calls += 1
        if candidate and candidate.get("finishReason"):
            self._finish = _finish_reason(candidate["finishReason"])
        elif candidate is None and _blocked(chunk):
            self._finish = "content_filter"
        self._usage = _usage(chunk.get("usageMetadata")) or self._usage
        return events


# --- dialect ---------------------------------------------------------------------------------


class GeminiDialect:
    """Gemini's generateContent / streamGenerateContent(alt=sse) / models API."""

    name: ClassVar[str] = "gemini"
    framing: ClassVar[Framing] = "sse"

    def path_model(self, model: str) -> str:
        """Model ids go into `models/{model}:...`, so a leading "models/" is dropped."""
        return model.removeprefix("models/")

    def build_request(self, request: ChatRequest) -> dict[str, Any]:
        """The generateContent body; streaming uses another endpoint, not a body flag."""
        body: dict[str, Any] = {"contents": _contents(request.messages)}
        system = [
            {"text": message.text()}
            for message in request.messages
            if message.role == "system" and message.text()
        ]
        if system:
            body["systemInstruction"] = {"parts": system}
        config = _generation_config(request)
        if config:
            body["generationConfig"] = config
        if request.tools:
            body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
            if request.tool_choice is not None:
                body["toolConfig"] = _tool_config(request.tool_choice)
        if request.extra_dialect == self.name:
            body.update(request.extra)
        return body

    def parse_response(self, body: Any, *, model: str) -> ChatResponse:
        """A GenerateContentResponse as an IR answer; a blocked prompt is content_filter."""
        if not isinstance(body, dict):
            raise ValueError("Gemini answer is not a JSON object")
        response_id = _response_id(body)
        usage = _usage(body.get("usageMetadata"))
        answer = ChatResponse(id=response_id, model=_model_name(body, model), usage=usage)
        candidate = _candidate(body)
        if candidate is None:
            if not _blocked(body):
                raise ValueError("Gemini answer has no candidates")
            answer.finish_reason = "content_filter"
            return answer
        texts, calls = _read_parts(_parts(candidate), response_id, 0)
        answer.text = "".join(texts)
        answer.tool_calls = calls
        answer.finish_reason = _after_calls(_finish_reason(candidate.get("finishReason")),
                                            bool(calls))
        return answer

    def stream_decoder(self, *, model: str) -> StreamDecoder:
        """A decoder for one `alt=sse` stream."""
        return GeminiStreamDecoder(model)

    def parse_models(self, body: Any, *, provider: str) -> list[ModelInfo]:
        """The page's models that can generate content, ids without the "models/" prefix."""
        if not isinstance(body, dict):
            raise ValueError("Gemini model list is not a JSON object")
        models = body.get("models")
        if models is None:
            return []  # a page with no models omits the field
        if not isinstance(models, list):
            raise ValueError("Gemini model list has no models array")
        found: list[ModelInfo] = []
        for entry in models:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError("Gemini model entry has no name")
            methods = entry.get("supportedGenerationMethods")
            if isinstance(methods, list) and "generateContent" not in methods:
                continue
            info = ModelInfo(id=self.path_model(entry["name"]), object="model", owned_by=provider)
            if isinstance(entry.get("displayName"), str):
                info["name"] = entry["displayName"]
            found.append(info)
        return found

    def parse_error(self, status: int, body: Any) -> ErrorInfo:
        """Message and status name from a google.rpc error, plus RetryInfo's delay."""
        if isinstance(body, list) and body:
            body = body[0]  # streamGenerateContent without alt=sse wraps errors in an array
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = error.get("message")
            code = error.get("status")
            return ErrorInfo(
                message=str(message) if message else f"Gemini answered HTTP {status}",
                code=str(code) if code else None,
                retry_after=_retry_after(error.get("details")),
            )
        if isinstance(body, str) and body.strip():
            return ErrorInfo(message=body.strip()[:500])
        return ErrorInfo(message=f"Gemini answered HTTP {status}")


DIALECT = GeminiDialect()
