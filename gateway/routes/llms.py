"""The spec's native API: `GET /llms`, `GET /llms/{provider}`, `POST /llms/{provider}/generate`.

`generate` streams as server-sent events when asked to: one `data:` event per text delta,
then one with `finish_reason` and `usage`, then `data: [DONE]`; a failure after the first
byte is a last `data:` event in the spec's `Error` shape instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pydantic
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway import ir
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    ProviderNotConfigured,
    UpstreamError,
)
from gateway.providers import Provider
from gateway.responses import JSONResponse
from gateway.routes import dispatch
from gateway.routes.streaming import EventStreamResponse, client_api
from gateway.state import GatewayState
from gateway.streaming import SSE_DONE, sse_event
from generated.models import GenerateRequest


def lookup(state: GatewayState, provider_id: str) -> Provider:
    """The configured provider named in the path, or a 404 saying what is missing."""
    provider = state.providers.get(provider_id)
    if provider is None:
        known = ", ".join(state.providers)
        raise NotFound(f"unknown provider '{provider_id}'; known providers: {known}",
                       code="unknown_provider")
    if not provider.configured:
        raise ProviderNotConfigured(provider.id, list(provider.missing))
    return provider


async def read_body(request: Request) -> bytes:
    """The whole request body, read straight from `receive` (without Starlette's stream
    generator, which costs more than the read itself for the usual one-message body)."""
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if not chunks:
                return body
            chunks.append(body)
            return b"".join(chunks)
        chunks.append(body)


async def read_json(request: Request) -> Any:
    """The request body as JSON, or a 400 that says why it is not."""
    body = await read_body(request)
    if not body:
        raise InvalidRequest("the request body is empty; expected a JSON object", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc.msg}",
                             field="body") from None


def field_path(loc: tuple[int | str, ...]) -> str:
    """`('messages', 0, 'role')` → `messages[0].role`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validate_generate(raw: bytes) -> GenerateRequest:
    """Validate the body against the spec's GenerateRequest, naming the first bad field.

    Strict: JSON types must match the spec (no "yes" for a boolean, no "5" for a number).
    """
    if not raw.strip():
        raise InvalidRequest("the request body is empty; expected a JSON object", field="body")
    try:
        return GenerateRequest.model_validate_json(raw, strict=True)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = field_path(tuple(first["loc"]))
        raise InvalidRequest(f"{where}: {first['msg']}", field=where) from None


def to_ir(request: GenerateRequest) -> ir.ChatRequest:
    """The spec's GenerateRequest in the internal representation."""
    messages = [ir.Message(role=m.role.value, content=[ir.TextPart(m.content)])
                for m in request.messages]
    return ir.ChatRequest(model=request.model, messages=messages,
                          max_tokens=request.max_tokens, temperature=request.temperature,
                          stream=bool(request.stream))


def render_generate(provider: Provider, answer: ir.ChatResponse) -> dict[str, Any]:
    """The internal answer in the spec's GenerateResponse shape."""
    body: dict[str, Any] = {
        "provider": provider.id,
        "response": {"role": "assistant", "model": answer.model, "content": answer.text},
        "finish_reason": answer.finish_reason,
    }
    if answer.usage is not None:
        body["usage"] = _usage(answer.usage)
    return body


def _usage(usage: ir.Usage) -> dict[str, int]:
    """The spec's Usage object."""
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens}


class GenerateStreamEncoder:
    """IR stream events as the SSE events of a streamed `generate` (see the module doc).

    Content events differ only in their text: each is its prebuilt head, the text, and the
    closing braces (the same bytes as serialising the whole object).
    """

    def __init__(self, provider: Provider, model: str) -> None:
        self._provider = provider.id
        self._model = model
        self._head = b""
        self._finish: str | None = None
        self._usage: ir.Usage | None = None

    def encode(self, event: ir.StreamEvent) -> bytes:
        """A content event per text delta; finish and usage are held for the last event."""
        if type(event) is ir.TextDelta:  # nearly every event: the short way
            if not event.text:
                return b""
            head = self._head or self._content_head()
            return b"".join((head, orjson.dumps(event.text), b"}}\n\n"))
        if type(event) is ir.MessageStart and event.model:  # final classes (see gateway.ir)
            self._model = event.model
            self._head = b""
        elif type(event) is ir.Finish:
            self._finish = event.reason
        elif type(event) is ir.UsageReport:
            self._usage = event.usage
        elif type(event) is ir.StreamError:
            return self._event({"error": event.message, "code": event.type,
                                "provider": self._provider})
        return b""

    def finish(self) -> bytes:
        """The event with the finish reason and usage, then `[DONE]`."""
        last = self._body("")
        last["finish_reason"] = self._finish or "stop"
        if self._usage is not None:
            last["usage"] = _usage(self._usage)
        return self._event(last) + SSE_DONE

    def _content_head(self) -> bytes:
        """`data: {"provider":...,"response":{...,"content":` for the current model."""
        body = orjson.dumps(self._body(""))
        self._head = b"data: " + body[:body.rindex(b'""}}')]
        return self._head

    def _body(self, content: str) -> dict[str, Any]:
        return {"provider": self._provider,
                "response": {"role": "assistant", "model": self._model, "content": content}}

    def _event(self, payload: dict[str, Any]) -> bytes:
        return sse_event(orjson.dumps(payload))


async def list_each(state: GatewayState) -> list[dict[str, Any]]:
    """Every configured provider's models, listed concurrently; failures are reported each."""
    configured = [p for p in state.providers.values() if p.configured]
    return list(await asyncio.gather(*(_list_one(state, p) for p in configured)))


async def list_all(request: Request) -> Response:
    """Every configured provider's models; failures are reported per provider."""
    return JSONResponse(await list_each(request.app.state.gateway))


async def _list_one(state: GatewayState, provider: Provider) -> dict[str, Any]:
    try:
        async with asyncio.timeout(state.list_timeout):
            models = await state.list_models(provider)
    except TimeoutError:
        return {"provider": provider.id, "models": [],
                "error": {"message": f"{provider.id} did not list its models in time",
                          "code": "upstream_timeout"}}
    except GatewayError as exc:
        error: dict[str, Any] = {"message": exc.message, "code": exc.code}
        if isinstance(exc, UpstreamError) and exc.upstream_status is not None:
            error["upstream_status"] = exc.upstream_status
        return {"provider": provider.id, "models": [], "error": error}
    return {"provider": provider.id, "models": models}


async def list_provider(request: Request) -> Response:
    """One provider's models, every page fetched."""
    state: GatewayState = request.app.state.gateway
    provider = lookup(state, request.path_params["provider"])
    models = await state.list_models(provider)
    return JSONResponse({"provider": provider.id, "models": models})


def error_body(exc: GatewayError) -> dict[str, Any]:
    """A gateway error in the spec's own `Error` shape (each error type fills in its own)."""
    return exc.payload()


@client_api(error_body)
async def generate(request: Request) -> Response:
    """Translate a GenerateRequest to the provider's dialect and its answer back."""
    state: GatewayState = request.app.state.gateway
    provider = lookup(state, request.path_params["provider"])
    chat = to_ir(validate_generate(await read_body(request)))
    # The path names the provider: routing may retry it or serve from the cache, but it
    # never falls back to another provider.
    requested = f"{provider.id}/{chat.model}"
    if chat.stream:
        streamed = await dispatch.stream(request, chat, requested_model=requested)
        assert streamed.batches is not None
        return EventStreamResponse(streamed.batches, GenerateStreamEncoder(provider, chat.model),
                                   headers=dispatch.headers(streamed))
    routed = await dispatch.complete(request, chat, requested_model=requested)
    return JSONResponse(render_generate(provider, routed.answer),
                        headers=dispatch.headers(routed))
