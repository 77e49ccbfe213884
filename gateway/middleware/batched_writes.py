"""One socket write per loop iteration instead of one per ASGI message.

uvicorn writes a response's head and its body with two `transport.write` calls, and a
stream's events with one each. Every write is a system call, and on a local connection
(a sidecar, a node-local proxy, the benchmark) the kernel delivers the bytes to the reader
inside that call, so each write costs as much as the rest of a small request's handling.
`BatchedWrites` wraps the connection's transport: writes made during one iteration of the
event loop are joined and written once, at the end of that iteration (`call_soon`), so a
small response goes out in one write and nothing is held longer than the iteration that
made it. Flow control is unchanged: the real transport still pauses and resumes the
protocol from the size of its own buffer, which the joined bytes reach within the same
iteration; a batch over `MAX_HELD_BYTES` is written at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

MAX_HELD_BYTES = 64 * 1024


class BatchedWrites:
    """A transport whose writes of one loop iteration are joined into one (see module doc).

    Everything but writing and closing is the wrapped transport's own.
    """

    __slots__ = ("_held", "_held_bytes", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold `data` until the end of this loop iteration (or write now, past the cap)."""
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes > MAX_HELD_BYTES:
            self.flush()

    def writelines(self, lines: Any) -> None:
        """Hold each of `lines`."""
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Write what is held, as one write."""
        held = self._held
        if not held:
            return
        self._held = []
        self._held_bytes = 0
        if self._transport.is_closing():
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        """Write what is held, then close (the transport sends its buffer before closing)."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Write what is held, then half-close."""
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        """Drop what is held and close at once."""
        self._held = []
        self._held_bytes = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        """What the transport buffers plus what is held here."""
        return self._transport.get_write_buffer_size() + self._held_bytes

    # The calls uvicorn makes on every request, without __getattr__'s lookup.
    def is_closing(self) -> bool:
        """The transport's own state."""
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        """Stop reading from the socket."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the socket again."""
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's extra info (peer and socket addresses, TLS object)."""
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
