"""A minimal stream encoder for tests that drive `EventStreamResponse` directly."""

from __future__ import annotations

from gateway import ir


class TextLines:
    """Each text event as one SSE event, and `[DONE]` at the end."""

    def encode(self, event: ir.StreamEvent) -> bytes:
        assert isinstance(event, ir.TextDelta)
        return b"data: %b\n\n" % event.text.encode()

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n"
