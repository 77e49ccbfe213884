"""Checking streamed answers frame by frame: time to first text, drops, merges.

Each stream must carry the mock's tokens `[t00] .. [t19]` in order, one per SSE event,
each parsed as JSON from the event's `data:`, then `[DONE]`; anything else is broken.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from bench.mock import STREAM_CHUNKS, token

EXPECTED = [token(i) for i in range(STREAM_CHUNKS)]


def event_text(payload: Any, stream_format: str) -> str:
    """The text an event carries, in the OpenAI chunk shape or the gateway's generate shape."""
    if not isinstance(payload, dict):
        return ""
    if stream_format == "generate":
        response = payload.get("response") or {}
        return str(response.get("content") or "")
    choices = payload.get("choices") or []
    if not choices:
        return ""
    return str((choices[0].get("delta") or {}).get("content") or "")


@dataclass
class StreamOutcome:
    """One stream: seconds to the first text, in total, and what went wrong (if anything)."""

    first_text_s: float | None = None
    total_s: float = 0.0
    texts: list[str] = field(default_factory=list)
    done: bool = False
    error: str = ""

    @property
    def intact(self) -> bool:
        """Every token once, in order, one per event, then `[DONE]`."""
        return not self.error and self.done and self.texts == EXPECTED


class EventReader:
    """Splits bytes into SSE events as they arrive and records their texts."""

    def __init__(self, outcome: StreamOutcome, stream_format: str, started: float) -> None:
        self._buffer = b""
        self._outcome = outcome
        self._format = stream_format
        self._started = started

    def feed(self, data: bytes) -> None:
        """Consume a chunk of the body."""
        self._buffer += data
        if b"\r" in self._buffer:  # over the whole buffer: a CRLF may straddle two chunks
            self._buffer = self._buffer.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            event, self._buffer = self._buffer.split(b"\n\n", 1)
            self._event(event)

    def _event(self, event: bytes) -> None:
        data = b"\n".join(line[5:].strip() for line in event.split(b"\n")
                          if line.startswith(b"data:"))
        if not data:
            return
        if data == b"[DONE]":
            self._outcome.done = True
            return
        text = event_text(json.loads(data), self._format)
        if text:
            if self._outcome.first_text_s is None:
                self._outcome.first_text_s = time.perf_counter() - self._started
            self._outcome.texts.append(text)
