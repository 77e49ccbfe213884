"""Stream framing: incremental SSE and NDJSON parsers, and SSE writing.

Upstream bytes arrive in arbitrary chunks (a multi-byte character, a CRLF pair or a JSON
object may be split between two reads), so both parsers keep the unfinished tail of the
input and only decode complete lines. They work line by line with bytes methods: per-byte
Python loops would be far too slow on the streaming hot path.

`Frame` is defined here, a leaf module, so that the dialects can import both it and the SSE
writers without an import cycle through `gateway.dialects`.
"""

from __future__ import annotations

import msgspec


class Frame(msgspec.Struct, gc=False):
    """One decoded unit of a stream: an SSE event or an NDJSON line.

    For SSE, `event` is the event name (or None) and `data` the joined data lines.
    For NDJSON, `event` is None and `data` is the line. One is made per event, so it is a
    msgspec Struct (made in C; it holds only strings, so the cycle collector need not track it).
    """

    data: str
    event: str | None = None


_BOM = b"\xef\xbb\xbf"


class SSEParser:
    """Splits a `text/event-stream` body into Frames, per the WHATWG EventSource rules."""

    __slots__ = ("_at_start", "_data", "_event", "_frame", "_partial", "_skip_lf")

    boundary = b"\n\n"
    """What ends nearly every event: input cut just after it gives whole events."""

    def __init__(self) -> None:
        self._frame = Frame
        # Pieces of the unfinished last line, joined only once it ends: a long line arriving
        # in many small chunks is then copied once, not once per chunk.
        self._partial: list[bytes] = []
        # A chunk that ended in CR may be the first half of CRLF: drop the LF that follows.
        self._skip_lf = False
        self._at_start = True
        self._data: list[str] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[Frame]:
        """Consume more bytes; return the events completed by them."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\n" not in chunk and b"\r" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        buf = self._take(chunk)
        if b"\r" in buf:
            self._skip_lf = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n") + 1
        if end < len(buf):
            self._partial.append(buf[end:])
        # Complete lines only, so no character is cut in two: decoded at once, not per line.
        return self._events(buf[:end].decode("utf-8", "replace"))

    def close(self) -> list[Frame]:
        """End of input: flush a last line and an event not followed by a blank line."""
        frames: list[Frame] = []
        tail = self._take(b"")
        self._lines([tail.decode("utf-8", "replace"), ""] if tail else [""], frames)
        return frames

    def _take(self, chunk: bytes) -> bytes:
        """The pending partial line plus `chunk`, without the stream's byte-order mark."""
        buf = b"".join((*self._partial, chunk)) if self._partial else chunk
        self._partial.clear()
        if self._at_start and buf:
            self._at_start = False
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        return buf

    def _events(self, text: str) -> list[Frame]:
        """The events completed by `text`, whole lines each ending in LF.

        Split at its blank lines first: an event of a single `data: ` line, which nearly
        every event of every stream is, becomes a Frame at once; anything else goes through
        `_lines`, line by line.
        """
        frame = self._frame
        if (text.startswith("data: ") and text.endswith("\n\n") and not self._data
                and self._event is None):
            # Most reads: whole events of one `data: ` line each. Split at the blank line and
            # the next event's `data: `, that gives each event's data, unless a piece still
            # holds a newline (some event is more than one data line, or not data at all).
            # (Joined and searched at once: `str.count` and a search per piece cost 3-7x more.)
            payloads = text[6:-2].split("\n\ndata: ")
            if "\n" not in "".join(payloads):
                return [frame(data, None) for data in payloads]
        frames: list[Frame] = []
        blocks = text.split("\n\n")
        last = blocks.pop()  # after the last blank line: lines of an event still open
        for block in blocks:
            if (block.startswith("data: ") and "\n" not in block and not self._data
                    and self._event is None):
                frames.append(frame(block[6:], None))
            else:
                self._lines([*block.split("\n"), ""], frames)
        if last:
            self._lines(last[:-1].split("\n"), frames)
        return frames

    def _lines(self, lines: list[str], frames: list[Frame]) -> None:
        """Apply complete lines to the pending event, dispatching it on each blank line."""
        data = self._data
        for line in lines:
            if not line:
                if data:
                    frames.append(self._frame(data[0] if len(data) == 1 else "\n".join(data),
                                              self._event))
                    data.clear()
                self._event = None
            elif line.startswith("data:"):  # nearly every line: the short way
                data.append(line[6:] if line[5:6] == " " else line[5:])
            elif line[0] != ":":  # a colon first is a comment
                name, colon, value = line.partition(":")
                if colon and value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    data.append(value)
                elif name == "event":
                    self._event = value or None
                # `id` and `retry` steer browser reconnection, which a gateway never does.


class NDJSONParser:
    """Splits a newline-delimited JSON body into one Frame per non-empty line."""

    __slots__ = ("_frame", "_partial")

    boundary = b"\n"
    """What ends every line."""

    def __init__(self) -> None:
        self._frame = Frame
        self._partial: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Frame]:
        """Consume more bytes; return the lines completed by them."""
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        buf = b"".join((*self._partial, chunk)) if self._partial else chunk
        self._partial.clear()
        lines = buf.split(b"\n")
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        return [frame for line in lines if (frame := self._line(line)) is not None]

    def close(self) -> list[Frame]:
        """End of input: flush a last line that had no newline."""
        frame = self._line(b"".join(self._partial))
        self._partial.clear()
        return [] if frame is None else [frame]

    def _line(self, line: bytes) -> Frame | None:
        """A Frame for a line, or None for a blank one; tolerates CRLF line ends."""
        line = line.strip()
        return self._frame(line.decode("utf-8", "replace")) if line else None


def sse_event(data: bytes | str, event: str | None = None) -> bytes:
    """One SSE event; multi-line data becomes several `data:` lines as the format requires."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    head = b"event: " + event.encode("utf-8") + b"\n" if event else b""
    if b"\n" not in raw and b"\r" not in raw:
        return head + b"data: " + raw + b"\n\n"
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def sse_comment(text: str = "") -> bytes:
    """An SSE comment line, which clients ignore; useful as a keep-alive."""
    return b": " + text.encode("utf-8") + b"\n\n" if text else b":\n\n"


SSE_DONE = b"data: [DONE]\n\n"
"""The terminator OpenAI-style streams end with."""
