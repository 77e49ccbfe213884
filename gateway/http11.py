"""The gateway's HTTP/1.1 server protocol: httptools parsing, ASGI 3 to the app, lean per request.

uvicorn runs the server (sockets, signals, the lifespan, graceful shutdown); this protocol
takes the place of its httptools protocol (`uvicorn.Config(http=...)`). It does what that
protocol does — keep-alive, pipelining, `Expect: 100-continue`, chunked and fixed-length
bodies, HEAD, flow control both ways, a 500 for an app that fails before answering — at a
fraction of the cost per request, and adds what the gateway needs at this level:

- **Bounds on the request head.** A head larger than `max_head_bytes` (MAX_HEADER_BYTES)
  gets 431; a head not complete within `head_timeout` (SERVER_HEADER_TIMEOUT) of the
  connection or of its first byte gets 408 (a connection that never sent a byte is just
  closed). Bytes are counted as they arrive, so a head is never buffered much past the
  limit. A malformed request gets 400. All of them in JSON, and the connection is closed.
- **One write per connection per loop iteration.** What a connection's responses write
  during one iteration of the event loop is held and written together when the iteration's
  ready callbacks have run (one callback for all connections, the upstream client's too:
  `gateway.flushing`; at once past 64 KiB): a response's head leaves with the body bytes
  sent in the same iteration (a small response is one system call, a stream's head goes
  with its first chunk), and each later upstream read is one write. On a local connection
  every write is a system call that delivers to the reader inside it; writing at the end
  of the iteration also lets the loop take in more requests per iteration under load (A/B
  against writing at once: about 8 % more requests per second at 64 concurrent). With one
  request in flight there is nothing to write together with, and what the request still
  does after its answer (unwinding, the access log) would only delay it: its writes go at
  once (`make compare ARGS="--concurrency 1"`: p50 0.657 → 0.578 ms through the chat
  route).
- **Less work per request.** No `asyncio.Event` and no timer per request (the keep-alive
  clock is one timer per connection, moved lazily), a `receive` that has its body returns
  without waiting, and response headers are checked with two searches per response rather
  than two per header. The chat route under callgrind (`make instructions`): 967,743
  user-space instructions per request with uvicorn's protocol, 927,044 with this one.

With TLS, the head clock starts once the handshake is done; the handshake itself is bounded
by asyncio's `ssl_handshake_timeout` (60 s). Request bodies are bounded by the ASGI guard
(`gateway.middleware.guard`). WebSocket upgrades are not served (the gateway has none): an
upgrade request is answered as plain HTTP and its connection closed afterwards.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from gateway.flushing import flusher
from gateway.timing import limited

log = logging.getLogger("gateway")

# Forbidden in a header name (RFC 9110 tokens) and in a header value (controls but tab).
_BAD_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


def _status_line(status: int) -> bytes:
    phrase = http.HTTPStatus(status).phrase if status in _KNOWN else ""
    return b"HTTP/1.1 %d %b\r\n" % (status, phrase.encode("ascii"))


_KNOWN = frozenset(int(status) for status in http.HTTPStatus)
_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}

# What a response header is to the head: (its line, its kind, the kind's number).
_PLAIN, _LENGTH, _CODING, _CONNECTION = range(4)
HeadLine = tuple[bytes, int, int]
# Header lines kept by (name, value) as the app gives them: answers repeat the same few
# (content type, the date of this second, the gateway's own), and a line found here is
# neither lowered, checked nor formatted again. A request id is new every time: not kept.
_HEAD_LINES: dict[tuple[bytes, bytes], HeadLine] = {}
_HEAD_LINES_KEPT = 1024
_UNIQUE = b"x-request-id"


def _head_line(name: bytes, value: bytes) -> HeadLine:
    """The line of one response header and what it says about the response; RuntimeError
    for a name or value that cannot be sent."""
    name = bytes(name).lower()
    if _BAD_NAME.search(name):
        raise RuntimeError("invalid HTTP header name")
    if _BAD_VALUE.search(value):
        raise RuntimeError("invalid HTTP header value")
    line = b"%b: %b\r\n" % (name, value)
    if name == b"content-length":
        try:
            return line, _LENGTH, int(value)
        except ValueError:  # refused if it is the first length (`_render_head`)
            return line, _LENGTH, -1
    if name == b"transfer-encoding":
        return line, _CODING, value.lower() == b"chunked"
    if name == b"connection":
        return line, _CONNECTION, b"close" in value.lower()
    return line, _PLAIN, 0


def _kept_head_line(item: tuple[bytes, bytes]) -> HeadLine:
    """`_head_line` of a header not yet kept, kept unless it is a request id (or unusable as
    a key: a header given as a list)."""
    name, value = item
    found = _head_line(name, value)
    if (type(item) is tuple and type(name) is bytes and type(value) is bytes
            and name.lower() != _UNIQUE):
        if len(_HEAD_LINES) >= _HEAD_LINES_KEPT:
            _HEAD_LINES.clear()
        _HEAD_LINES[item] = found
    return found


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Past this many bytes held in one iteration, they are written at once.
MAX_HELD_BYTES = 64 * 1024
# Per header line: ": " and CRLF around the name and value kept.
_LINE_OVERHEAD = 4


class Cycle:
    """One request and its response: the ASGI `receive` and `send` the app is given."""

    __slots__ = (
        "_waiter",
        "body",
        "body_limit",
        "chunked",
        "disconnected",
        "expect_100",
        "gone",
        "head",
        "keep_alive",
        "length_left",
        "loop",
        "more_body",
        "protocol",
        "read_limit",
        "received",
        "request_done",
        "response_complete",
        "response_started",
        "scope",
        "transport",
        "write_limit",
    )

    def __init__(
        self, protocol: HttpProtocol, scope: dict[str, Any], *, keep_alive: bool, expect_100: bool
    ) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.loop = protocol.loop
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_100 = expect_100
        self.disconnected = False
        # The request body: what arrived and was not yet handed over, and whether more comes.
        self.body = bytearray()
        self.more_body = True
        self.request_done = False  # the last body message was handed over
        self._waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.length_left = 0
        self.head: bytes | None = None  # a response head not yet written
        # The request guard's limits (see `limit`): none until it sets them.
        self.read_limit: tuple[float, type[BaseException]] | None = None
        self.write_limit: tuple[float, type[BaseException]] | None = None
        self.body_limit: tuple[int, type[BaseException]] | None = None
        self.received = 0
        self.gone: Callable[[], None] | None = None  # see `on_disconnect`

    # --- the parser's side ---------------------------------------------------------------

    def wake(self) -> None:
        """Body bytes arrived, the body ended, the client left or the response completed."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def limit(self, read: tuple[float, type[BaseException]],
              write: tuple[float, type[BaseException]],
              body: tuple[int, type[BaseException]]) -> None:
        """Limits enforced inside `receive` and `send` themselves, so the request guard
        (`gateway.middleware.guard`) needs no wrapper around them. Each is (limit, error):

        - `read`: a `receive` that waits longer than this for body bytes raises the error
          (once the body is complete, `receive` only reports the disconnect, untimed);
        - `write`: a `send` that waits longer than this for the client to read raises it;
        - `body`: a `receive` that would hand over more than this many body bytes in all
          raises it, once (chunked bodies included).

        Offered to the app as `scope["extensions"]["gateway.cycle"]`.
        """
        self.read_limit = read
        self.write_limit = write
        self.body_limit = body

    def flush(self) -> None:
        """Write what the response has sent so far now, rather than when this loop iteration
        ends (a stream's first words, with more of the answer still to be made)."""
        self.protocol.flush()

    def on_disconnect(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` (once, at once) when the client leaves before the response is
        complete; None forgets it. A client already gone is told about at once.

        What a streamed response needs to stop when its client leaves, without a task
        waiting on `receive` for the whole stream. Offered to the app as
        `scope["extensions"]["gateway.cycle"]`.
        """
        self.gone = callback
        if callback is not None and self.disconnected and not self.response_complete:
            self.gone = None
            callback()

    # --- ASGI ----------------------------------------------------------------------------

    async def run(self, app: Any) -> None:
        """Run the app for this request; what it leaves unanswered is answered or closed."""
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:  # the connection must still be answered
            # The type only: messages of unexpected errors may carry upstream data.
            log.error("the application failed while serving a request: %s", type(exc).__name__)
            if self.disconnected or self.response_complete:
                return  # a failure after the answer (a background task) spares the connection
            if not self.response_started or self.head is not None:
                self._answer_500()  # nothing of the response is written yet
            else:
                self.protocol.close()
        else:
            if self.disconnected or self.response_complete:
                return
            if not self.response_started:
                log.error("the application returned without answering the request")
                self._answer_500()
            else:
                log.error("the application returned without completing its response")
                self.protocol.close()
        finally:
            # The scope names this cycle (the guard's limits): without this, every request
            # would leave a reference cycle for the garbage collector.
            self.scope.pop("extensions", None)

    async def receive(self) -> dict[str, Any]:
        """The next piece of the request body; `http.disconnect` once the body is handed over
        and the client leaves or the response completes."""
        if self.expect_100:
            self.expect_100 = False
            if not self.transport.is_closing():
                self.protocol.write(_CONTINUE)
        if not self.disconnected and not self.response_complete:
            self.protocol.flow.resume_reading()
            if self.request_done:
                await self._wait()
            elif self.more_body and not self.body:
                if self.read_limit is None:
                    await self._wait()
                else:
                    await limited(self._wait(), *self.read_limit)
        if self.disconnected or self.response_complete or self.request_done:
            return {"type": "http.disconnect"}
        body = bytes(self.body)
        self.body.clear()
        more = self.more_body
        self.request_done = not more
        if self.body_limit is not None:
            self.received += len(body)
            if self.received > self.body_limit[0]:
                # Raised once; what is read after it (the guard drains the rest before its
                # 413) is neither counted nor timed.
                error = self.body_limit[1]
                self.body_limit = self.read_limit = None
                raise error
        return {"type": "http.request", "body": body, "more_body": more}

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self.loop.create_future()
        await waiter

    async def send(self, message: dict[str, Any]) -> None:
        """Write the response: the head with its first body bytes, then each body message."""
        protocol = self.protocol
        if protocol.flow.write_paused and not self.disconnected:
            if self.write_limit is None:
                await protocol.flow.drain()
            else:
                await limited(protocol.flow.drain(), *self.write_limit)
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected ASGI message 'http.response.start', got {kind!r}")
            self.head = self._render_head(message["status"], message.get("headers", ()))
            self.response_started = True
            self.expect_100 = False
            # The head leaves with the body bytes sent in this loop iteration, or alone when
            # it ends (a stream still waiting for its first chunk).
            protocol.write_head_later(self)
            return
        if self.response_complete or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} in a response")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            data = b""
        elif self.chunked:
            if body:
                data = b"%x\r\n%b\r\n" % (len(body), body)
                if not more:
                    data += b"0\r\n\r\n"
            else:
                data = b"" if more else b"0\r\n\r\n"
        else:
            if len(body) > self.length_left:
                raise RuntimeError("response content longer than its Content-Length")
            self.length_left -= len(body)
            data = body
        head = self.head
        if head is not None:
            self.head = None
            data = head + data if data else head
        if data:
            protocol.write(data)
        if not more:
            if self.length_left and not self.chunked and self.scope["method"] != "HEAD":
                raise RuntimeError("response content shorter than its Content-Length")
            self.response_complete = True
            self.wake()
            if not self.keep_alive:
                protocol.close()
            protocol.response_done(self)

    def _render_head(self, status: int, headers: Any) -> bytes:
        parts = [_STATUS_LINES.get(status) or _status_line(status)]
        length: int | None = None
        chunked = False
        closes = False
        kept = _HEAD_LINES
        for item in (*self.protocol.server_state.default_headers, *headers):
            try:
                found = kept.get(item)
            except TypeError:  # a header given as a list: fine, but not a key
                found = None
            if found is None:
                found = _kept_head_line(item)
            line, kind, number = found
            if kind:
                if kind == _LENGTH:
                    if length is None:
                        if number < 0:
                            raise ValueError("a Content-Length that is not a length")
                        length = number
                elif kind == _CODING:
                    chunked = bool(number)
                elif number:
                    closes = True
            parts.append(line)
        if closes:
            self.keep_alive = False
        elif not self.keep_alive:
            parts.append(b"connection: close\r\n")
        if (
            not chunked
            and length is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        self.chunked = chunked
        self.length_left = length or 0
        parts.append(b"\r\n")
        return b"".join(parts)

    def _answer_500(self) -> None:
        self.response_started = True
        self.head = None
        self.protocol.refuse_with(500, "internal error", "internal_error")


class HttpProtocol(asyncio.Protocol):
    """One client connection (see the module doc)."""

    max_head_bytes: ClassVar[int] = 32 * 1024
    head_timeout: ClassVar[float] = 10.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_running_loop()
        self.server_state = server_state
        self.app_state = app_state
        self.root_path = config.root_path
        self.asgi = {"version": config.asgi_version, "spec_version": "2.3"}
        self.limit_concurrency = config.limit_concurrency
        self.idle_timeout = float(config.timeout_keep_alive)
        self.parser = httptools.HttpRequestParser(self)
        try:  # answer the first of pipelined requests even if a later one is malformed
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # older httptools
            pass
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.flow: FlowControl = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.cycle: Cycle | None = None  # the newest request's cycle
        self.pipeline: deque[Cycle] = deque()  # complete heads waiting for their turn
        # The request being parsed.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_100 = False
        # The head's bounds: bytes counted from the end of one message (or the connection's
        # start) until the next head is complete, and the clock for a head not yet whole.
        self.head_bytes = 0
        self.in_head = True
        self.head_begun = False
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False
        # Bytes written during this loop iteration, sent together when it ends (`flush`), and
        # a response head that waits for its body until then.
        self.flusher = flusher(self.loop)
        self.held: list[bytes] = []
        self.held_bytes = 0
        self.registered = False
        self.waiting_head: Cycle | None = None
        # The keep-alive clock: one timer per connection, checked against `idle_since`.
        self.idle_since: float | None = None
        self.idle_timer: asyncio.TimerHandle | None = None

    # --- connection events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Register the connection; a connection that never sends a head is closed too."""
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.transport = transport
        self.flow = FlowControl(transport)
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """The client left: a response in progress learns it, and every clock stops."""
        self.server_state.connections.discard(self)
        self._cancel_head_timer()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.wake()
                gone, cycle.gone = cycle.gone, None
                if gone is not None:
                    gone()
        self.pipeline.clear()
        self.held = []
        self.waiting_head = None
        if self.flow is not None:
            self.flow.resume_writing()
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        """A half-close: the transport closes once what is being written is written."""

    def pause_writing(self) -> None:
        """The transport's buffer is full: `send` waits."""
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        """Parse what arrived; count head bytes and refuse a head past its limit."""
        if self.refused:
            return
        self.idle_since = None
        counted = self.in_head
        if counted:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrades here: the request is answered as plain HTTP, then the connection
            # closes (what follows the head is not HTTP this parser can read).
            if self.cycle is not None:
                self.cycle.keep_alive = False
            return
        except httptools.HttpParserError:
            self._refuse(400, "the request is not valid HTTP/1.1", "bad_request")
            return
        # Still in the same head after all of `data`: every counted byte is head.
        if counted and self.in_head and self.head_begun and not self.refused:
            if self.head_bytes > self.max_head_bytes:
                self._refuse(
                    431,
                    f"the request head is larger than the limit of {self.max_head_bytes} bytes",
                    "request_header_fields_too_large",
                )
            else:
                # A head that did not arrive whole: its clock runs from now.
                self._arm_head_timer()

    def shutdown(self) -> None:
        """The server is stopping: close if idle, else close after the current response."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.close()
        else:
            cycle.keep_alive = False

    # --- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A new request's first byte."""
        self.url = b""
        self.headers = []
        self.expect_100 = False
        self.head_begun = True

    def on_url(self, url: bytes) -> None:
        """Part of the request target."""
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header line."""
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100 = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """Check the exact head size, then start the request (or queue it behind another)."""
        self._cancel_head_timer()
        self.in_head = self.head_begun = False
        self.head_bytes = 0
        if self.refused:
            return
        size = len(self.url) + sum(len(n) + len(v) + _LINE_OVERHEAD for n, v in self.headers)
        if size > self.max_head_bytes:
            self._refuse(
                431,
                f"the request head is larger than the limit of {self.max_head_bytes} bytes",
                "request_header_fields_too_large",
            )
            return
        parser = self.parser
        version = parser.get_http_version()
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root = self.root_path
        scope = {
            "type": "http",
            "asgi": self.asgi,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": root,
            "path": root + path if root else path,
            "raw_path": root.encode("ascii") + raw_path if root else raw_path,
            "query_string": url.query or b"",
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        cycle = Cycle(
            self,
            scope,
            keep_alive=version != "1.0" and parser.should_keep_alive(),
            expect_100=self.expect_100,
        )
        scope["extensions"] = {"gateway.cycle": cycle}
        current = self.cycle
        self.cycle = cycle
        if current is None or current.response_complete:
            self._start(cycle)
        else:  # pipelined: it runs once the answers before it are written
            self.flow.pause_reading()
            self.pipeline.append(cycle)

    def on_body(self, body: bytes) -> None:
        """Body bytes for the newest request."""
        cycle = self.cycle
        if self.refused or cycle is None or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        """The newest request's body ended; the next bytes start another head."""
        self.in_head = True
        cycle = self.cycle
        if self.refused or cycle is None or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.wake()

    # --- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send `data` when this loop iteration ends, with whatever else is written until then;
        at once past `MAX_HELD_BYTES`, or when this is the only request in flight."""
        self.held.append(data)
        self.held_bytes += len(data)
        if self.held_bytes > MAX_HELD_BYTES or len(self.server_state.tasks) <= 1:
            self.flush()
        elif not self.registered:
            self.registered = True
            self.flusher.add(self)

    def write_head_later(self, cycle: Cycle) -> None:
        """Send `cycle`'s head when this iteration ends unless its body takes it first."""
        self.waiting_head = cycle
        if not self.registered:
            self.registered = True
            self.flusher.add(self)

    def flush(self) -> None:
        """Write what is held, as one write."""
        self.registered = False
        cycle = self.waiting_head
        if cycle is not None:
            self.waiting_head = None
            if cycle.head is not None and not cycle.disconnected:
                self.held.append(cycle.head)
                cycle.head = None
        held = self.held
        if not held:
            return
        self.held = []
        self.held_bytes = 0
        if not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        """Write what is held, then close (the transport sends its buffer before closing)."""
        self.flush()
        self.transport.close()

    def refuse_with(self, status: int, message: str, code: str) -> None:
        """Answer `status` with a JSON error and close the connection."""
        body = orjson.dumps({"error": message, "code": code})
        self.write(_STATUS_LINES[status] + b"content-type: application/json\r\n"
                   b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(body), body))
        self.close()

    # --- requests ------------------------------------------------------------------------

    def _start(self, cycle: Cycle) -> None:
        limit = self.limit_concurrency
        if limit is not None and (
            len(self.server_state.connections) >= limit or len(self.server_state.tasks) >= limit
        ):
            log.warning("over the server's concurrency limit: answering 503")
            cycle.response_started = True
            self.refuse_with(503, "the server is over its concurrency limit",
                             "service_unavailable")
            return
        task = self.loop.create_task(cycle.run(self.app))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_done(self, cycle: Cycle) -> None:
        """`cycle`'s response is written: start the next pipelined request, or wait idle."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._start(self.pipeline.popleft())
            return
        if not self.head_begun:  # no byte of another request yet: the connection is idle
            self.idle_since = self.loop.time()
            if self.idle_timer is None:
                self.idle_timer = self.loop.call_at(
                    self.idle_since + self.idle_timeout, self._idle_check
                )

    def _idle_check(self) -> None:
        self.idle_timer = None
        since = self.idle_since
        if since is None or self.transport.is_closing():
            return
        due = since + self.idle_timeout
        if self.loop.time() >= due:
            self.close()
        else:
            self.idle_timer = self.loop.call_at(due, self._idle_check)

    # --- the head clock and refusals -----------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self.head_timer is None and not self.refused:
            self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or not self.in_head:
            return
        if not self.head_begun and not self._answering():
            # Nothing of a request yet: an idle connection, closed without an answer.
            self.refused = True
            self.transport.close()
            return
        self._refuse(
            408, f"the request head did not arrive within {self.head_timeout:g}s", "request_timeout"
        )

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer `status` with a JSON error and close the connection."""
        self.refused = True
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        if self._answering():
            # A pipelined head went wrong while an earlier answer is still being written: that
            # answer finishes, then the connection closes, and the refused request never runs.
            assert self.cycle is not None
            self.cycle.keep_alive = False
            return
        self.refuse_with(status, message, code)

    def _answering(self) -> bool:
        """Whether an earlier request on this connection is still being answered."""
        return self.cycle is not None and not self.cycle.response_complete


def http_protocol(max_head_bytes: int, head_timeout: float) -> type[HttpProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), with these head limits."""
    return type(
        "HttpProtocol",
        (HttpProtocol,),
        {"max_head_bytes": max_head_bytes, "head_timeout": head_timeout},
    )
