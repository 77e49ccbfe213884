"""Bounds on the request head, enforced in the HTTP protocol before any ASGI code runs.

uvicorn's httptools protocol has no limit on the size of the request line and headers (it
buffers a header of any length) and no limit on the time they take: a client that connects
and sends nothing, or trickles a header byte now and then, holds its connection forever, since
the keep-alive timeout only runs between requests. This subclass adds both:

- a head larger than `max_head_bytes` (MAX_HEADER_BYTES) gets 431 and the connection closed;
  bytes are counted as they arrive, so a head is never buffered much past the limit;
- a head not complete within `head_timeout` (SERVER_HEADER_TIMEOUT) of the connection or of
  its first byte gets 408 and the connection closed; a connection that never sent a byte is
  just closed.

With TLS, the clock starts once the handshake is done; the handshake itself is bounded by
asyncio's `ssl_handshake_timeout` (60 s). Request bodies are bounded by the ASGI middleware
(`gateway.middleware.guard.RequestGuardMiddleware`).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.middleware.batched_writes import BatchedWrites

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
# Per header line: ": " and CRLF around the name and value uvicorn keeps.
_LINE_OVERHEAD = 4


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and a time limit on each request head."""

    max_head_bytes: ClassVar[int] = 32 * 1024
    head_timeout: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        # True from the end of one message (or the connection's start) until the next head
        # is complete: bytes arriving meanwhile belong to a request head.
        self._in_head = True
        self._head_begun = False  # the parser saw the first byte of a request
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the head clock: a connection that never sends a head is closed too.

        The protocol writes through `BatchedWrites`: a response's head and body leave in
        one system call.
        """
        super().connection_made(BatchedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the head clock."""
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count head bytes as they arrive; refuse once an unfinished head passes the limit."""
        if self._refused:
            return
        counted = self._in_head
        if counted:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the same head after all of `data`: every counted byte is head.
        if counted and self._in_head and self._head_begun:
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "the request head is larger than the limit of "
                             f"{self.max_head_bytes} bytes", "request_header_fields_too_large")
            else:
                # A head that did not arrive whole: its clock runs from now. (Most heads
                # arrive in one read and never need a timer.)
                self._arm_head_timer()

    # --- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A new request's first byte: its head must now complete in time (the clock starts
        in `data_received` if the head is still incomplete after this read)."""
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        """Check the exact head size, then hand the request on as uvicorn does."""
        self._cancel_head_timer()
        self._in_head = self._head_begun = False
        self._head_bytes = 0
        if self._refused:
            return
        size = len(self.url) + sum(len(n) + len(v) + _LINE_OVERHEAD for n, v in self.headers)
        if size > self.max_head_bytes:
            self._refuse(431, "the request head is larger than the limit of "
                         f"{self.max_head_bytes} bytes", "request_header_fields_too_large")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Drop the body of a refused request."""
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """The next bytes on this connection start another head."""
        self._in_head = True
        if not self._refused:
            super().on_message_complete()

    # --- the head clock and refusals -----------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and not self._refused:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if not self._head_begun and not self._answering():
            # Nothing of a request yet: an idle connection, closed without an answer.
            self._refused = True
            self.transport.close()
            return
        self._refuse(408, f"the request head did not arrive within {self.head_timeout:g}s",
                     "request_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer `status` with a JSON error and close the connection."""
        self._refused = True
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        if self._answering():
            # A pipelined head went wrong while an earlier answer is still being written: that
            # answer finishes, then the connection closes, and the refused request never runs.
            self.cycle.keep_alive = False
            return
        body = orjson.dumps({"error": message, "code": code})
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        head += b"connection: close\r\n\r\n"
        self.transport.write(head + body)
        self.transport.close()

    def _answering(self) -> bool:
        """Whether the answer to an earlier request on this connection is still going out."""
        return self.cycle is not None and not self.cycle.response_complete


def guarded_protocol(max_head_bytes: int, head_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), with these limits."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"max_head_bytes": max_head_bytes, "head_timeout": head_timeout})
