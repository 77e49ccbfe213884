"""The interface every wire dialect implements.

A dialect is stateless: it turns the internal representation (`gateway.ir`) into one
provider family's request body, and that family's answers, stream frames, model lists and
error bodies back into the internal representation. Transport concerns (URLs, auth, retries)
live in `gateway.upstream`; framing (SSE, NDJSON) lives in `gateway.streaming`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypedDict

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
    """Turns one stream's frames into internal stream events; one instance per stream."""

    def feed(self, frame: Frame) -> list[StreamEvent]:
        """Decode one frame; may return no events (pings, keep-alives)."""
        ...

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
