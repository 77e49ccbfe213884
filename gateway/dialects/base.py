"""The interface every wire dialect implements.

A dialect is stateless: it turns the internal representation (`gateway.ir`) into one
provider family's request body, and that family's answers, stream frames, model lists and
error bodies back into the internal representation. Transport concerns (URLs, auth, retries)
live in `gateway.upstream`; framing (SSE, NDJSON) lives in `gateway.streaming`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol, TypedDict

import orjson

from gateway.ir import ChatRequest, ChatResponse, StreamEvent
from gateway.streaming import Frame

__all__ = ["Dialect", "ErrorInfo", "Frame", "Framing", "ModelInfo", "StreamDecoder"]

Framing = Literal["sse", "ndjson"]


class ModelInfo(TypedDict, total=False):
    """A model in the spec's `Model` shape (OpenAI's list shape)."""

    id: str
    object: str
    owned_by: str
    created: int
    name: str


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What a provider said went wrong, extracted from its error body."""

    message: str
    code: str | None = None
    retry_after: float | None = None  # seconds, when the body says (Gemini's retryDelay)


class StreamDecoder(Protocol):
    """Turns one stream's frames into internal stream events; one instance per stream.

    The decoders subclass it for `feed_all`, which one may replace with a single loop.
    """

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one frame; may return no events (pings, keep-alives)."""
        ...

    def feed_all(self, frames: Iterable[Frame]) -> list[StreamEvent]:
        """Decode frames in order: the events of `feed` of each, joined."""
        events: list[StreamEvent] = []
        for frame in frames:
            events += self.feed(frame)
        return events

    def close(self) -> list[StreamEvent]:
        """Called at end of input; returns trailing events, or a StreamError if cut short."""
        ...


class Dialect(Protocol):
    """A provider family's wire format, seen from the gateway as a client of it."""

    name: ClassVar[str]
    framing: ClassVar[Framing]

    def path_model(self, model: str) -> str:
        """The model id as it goes into an endpoint path's `{model}` placeholder."""
        ...

    def build_request(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body for the generate (or stream) endpoint; honours `request.stream`."""
        ...

    def parse_response(self, body: Any, *, model: str) -> ChatResponse:
        """Translate a successful non-streamed answer; raise `ValueError` if malformed."""
        ...

    def stream_decoder(self, *, model: str) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""
        ...

    def parse_models(self, body: Any, *, provider: str) -> list[ModelInfo]:
        """The models in one page of the provider's list answer."""
        ...

    def parse_error(self, status: int, body: Any) -> ErrorInfo:
        """The message and code in an error answer; `body` is parsed JSON or raw text."""
        ...


def sampling(request: ChatRequest, *, max_tokens: str | None, temperature: str | None,
             top_p: str | None, stop: str | None) -> dict[str, Any]:
    """The request's sampling settings under one provider's field names.

    A name of None means the provider has no such field; unset settings are left out.
    """
    fields: dict[str, Any] = {}
    if max_tokens and request.max_tokens is not None:
        fields[max_tokens] = request.max_tokens
    if temperature and request.temperature is not None:
        fields[temperature] = request.temperature
    if top_p and request.top_p is not None:
        fields[top_p] = request.top_p
    if stop and request.stop:
        fields[stop] = list(request.stop)
    return fields


def epoch_seconds(stamp: Any) -> int | None:
    """Seconds since the epoch of an ISO 8601 / RFC 3339 time (UTC if it names no zone)."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def compact_json(value: Any) -> str:
    """JSON text without whitespace, as tool arguments travel in the IR."""
    return orjson.dumps(value).decode("utf-8")
