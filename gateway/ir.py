"""The gateway's internal representation of a chat exchange.

Every wire dialect translates to and from these types, so a request that arrives in one
dialect (OpenAI chat completions, Anthropic messages, the spec's generate call) can be sent
to a provider that speaks another. Tool-call arguments are always a JSON *string* here;
dialects whose wire format carries an object encode or decode it at their boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, final

import msgspec

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(slots=True)
class TextPart:
    """A run of text inside a message."""

    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image, either by URL or inline as base64 data with its media type."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    type: Literal["image"] = "image"


Part = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    """A function call requested by the model; `arguments` is a JSON string."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Message:
    """One turn. `tool` messages carry a result for `tool_call_id`."""

    role: Role
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def text(self) -> str:
        """The concatenated text parts of this message."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    """A function the model may call; `parameters` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


ToolChoice = Literal["auto", "none", "required"] | str  # a bare tool name forces that tool


@dataclass(slots=True)
class ChatRequest:
    """A provider-neutral chat request."""

    model: str
    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    # Fields the front dialect did not understand, passed through unchanged only when the
    # upstream speaks that same dialect.
    extra: dict[str, Any] = field(default_factory=dict)
    extra_dialect: str | None = None

    def retarget(self, model: str, *, stream: bool) -> ChatRequest:
        """A shallow copy for one candidate's model (`dataclasses.replace` costs 5x more)."""
        return ChatRequest(model, self.messages,
                           self.max_tokens, self.temperature, self.top_p, self.stop,
                           self.tools, self.tool_choice, self.response_format, stream,
                           self.extra, self.extra_dialect)


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatResponse:
    """A complete, non-streamed answer."""

    id: str
    model: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None


# --- stream events -------------------------------------------------------------------------

# Stream events are made for every piece of every stream, so they are msgspec Structs: made in
# C, at a third of a slotted dataclass's cost (gc=False where they hold only strings and
# numbers, which cannot form a cycle). Their classes are final, and code that sorts events
# compares `type(event) is ...`: an isinstance that fails against a Struct class costs twice
# what it does against a plain class (the metaclass's check).


@final
class MessageStart(msgspec.Struct, gc=False):
    """The first event of every decoded stream."""

    id: str
    model: str


@final
class TextDelta(msgspec.Struct, gc=False):
    """More text for the answer."""

    text: str


@final
class ToolCallStart(msgspec.Struct, gc=False):
    """A new tool call at position `index` of the answer's tool calls."""

    index: int
    id: str
    name: str


@final
class ToolCallDelta(msgspec.Struct, gc=False):
    """A fragment of a tool call's JSON arguments string."""

    index: int
    arguments: str


@final
class Finish(msgspec.Struct, gc=False):
    """The model stopped; usage may follow in a separate event."""

    reason: FinishReason


@final
class UsageReport(msgspec.Struct):
    """Token usage, usually at the end of a stream."""

    usage: Usage


@final
class StreamError(msgspec.Struct, gc=False):
    """The upstream reported an error after the stream had started."""

    message: str
    type: str = "upstream_error"


StreamEvent = (
    MessageStart | TextDelta | ToolCallStart | ToolCallDelta | Finish | UsageReport | StreamError
)
