"""The upstream HTTP/1.1 client: pooled keep-alive connections on asyncio transports, answers
parsed by httptools (the parser uvicorn uses).

Why not aiohttp's client, used before: on this stack it cost about 130 µs of CPU per request
(8 concurrent requests to a local nginx, one core), half of everything else the gateway does
per request; this client costs about 15 µs for the same exchange. The work is the same —
one write per request, the answer parsed in C, a connection kept for the next request — but
without the per-request machinery a general client carries (a request object, a multidict
of headers, trace signals, a timer context, a stream reader and a payload writer).

What it does, and all it does (the gateway's calls to providers need nothing else):
- HTTP/1.1 over TCP or TLS (`ssl` context given), one request per connection at a time, no
  pipelining, no redirects, no cookies, no proxies.
- A pool of at most `max_connections` connections in all; a request waits for a free one
  (that wait and the connection's set-up together bounded by `connect_timeout`). An idle
  connection is reused for 15 s at most; one the server closed is dropped at once.
- A request sent on a reused connection that closes before any byte of its answer is sent
  once more on a new connection: the server closed an idle connection as the request left.
- Every wait for the answer's head or the next piece of its body is bounded by
  `read_timeout`; nothing bounds the whole, so a long, healthy stream is never cut.
- The body is handed over as it arrives, read by read; a reader that falls behind by more
  than `HIGH_WATER` bytes stops the socket being read until it catches up.
- Requests ask for `identity`; a `gzip` or `deflate` answer sent anyway is decoded, and the
  decoding stops with `BodyTooLarge` past `max_body` bytes (no decompression bombs).
- A connection whose answer was not read to its end is closed, never reused.
- A request is written at once when no other request waits for its answer; otherwise when
  the loop's iteration has run its ready callbacks, together with the other requests sent
  in it (`gateway.flushing`). A server on the same machine (a model server beside the
  gateway, the bench's nginx) is then woken once for them all, not once for each: at 64
  concurrent through one worker, the bench's nginx took 6.5 rather than 18.5 µs of CPU a
  request, and the gateway 123 rather than 138 µs, since the answers come back together too
  (`make compare REV=b009e2b`: 8,274 against 7,372 RPS, more in 5 of 5 rounds). Alone, a
  request is not delayed (`--concurrency 1`: p50 0.266 against 0.274 ms).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from gateway.flushing import flusher
from gateway.timing import alarms, limited

HIGH_WATER = 256 * 1024
"""Bytes of an answer held unread before the connection stops reading."""
KEEPALIVE_SECONDS = 15.0
"""How long an idle connection is kept for reuse."""
USER_AGENT = "llm-gateway"
_BAD_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_NAME = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")


class _HeadParts:
    """Request lines and header lines already checked and written, by what they are made of.

    At most `size` of each are kept (then they start afresh). The values of `volatile`
    headers (trace context: new for every request) are checked each time and never kept.
    """

    def __init__(self, size: int = 1024,
                 volatile: frozenset[str] = frozenset({"traceparent", "tracestate"})) -> None:
        self.size = size
        self.volatile = volatile
        self.starts: dict[tuple[str, str, str], str] = {}
        self.lines: dict[tuple[str, str], tuple[str, str]] = {}
        self.names: dict[str, str] = {}  # valid names, lowered

    def remember(self, kept: dict[Any, Any], key: Any, value: Any) -> Any:
        """`kept[key] = value`, within the size."""
        if len(kept) >= self.size:
            kept.clear()
        kept[key] = value
        return value

    def line(self, name: str, value: str) -> tuple[str, str]:
        """The header line for `name` and `value`, and `name` lowered; ValueError for either
        holding a character that could break the framing."""
        lowered = self.names.get(name)
        if lowered is None:
            if _BAD_NAME.search(name):
                raise ValueError(f"header {name[:40]!r} has a character that cannot be sent")
            lowered = self.remember(self.names, name, name.lower())
        # A printable value is fine, found at a third of a search's cost; tabs and other
        # characters beyond ASCII are not printable, but allowed: the search tells.
        if not value.isprintable() and _BAD_HEADER.search(value):
            raise ValueError(f"header {name[:40]!r} has a character that cannot be sent")
        known = (f"{name}: {value}\r\n", lowered)
        if lowered not in self.volatile:
            self.remember(self.lines, (name, value), known)
        return known


_DECODED = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class ClientFailure(Exception):
    """An exchange that failed below HTTP: nothing in its message comes from the network."""


class ConnectFailure(ClientFailure):
    """No connection could be made (refused, unknown host, TLS refused)."""


class Disconnected(ClientFailure):
    """The connection closed before the answer was complete."""


class BadResponse(ClientFailure):
    """An answer that is not HTTP/1.x, or a body that cannot be decoded."""


class BodyTooLarge(ClientFailure):
    """A compressed body that decodes to more than the request's `max_body`."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed request URL: where to connect and the head line's request target."""

    host: str
    port: int
    tls: bool
    path: str
    host_header: str

    @classmethod
    def of(cls, url: str) -> Target:
        """`url` (already percent-encoded) parsed; ValueError for anything but http(s) URLs
        with a host, or with spaces or control characters."""
        if any(ch <= " " or ch == "\x7f" for ch in url):
            raise ValueError("a URL must not contain spaces or control characters")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("only http and https URLs with a host can be requested")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host_header = parts.netloc.rpartition("@")[2]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, tls, path, host_header)

    @property
    def key(self) -> tuple[str, int, bool]:
        """What connections are pooled by."""
        return (self.host, self.port, self.tls)


class Response:
    """An answer whose head has arrived; its body is read with `readany`/`read_nowait`.

    `release()` or `close()` it when done: a connection goes back to the pool only when its
    answer was read to the end and released.
    """

    __slots__ = (
        "_buffered",
        "_conn",
        "_decoder",
        "_eof",
        "_error",
        "_limit",
        "_made",
        "_paused",
        "_pieces",
        "_waiter",
        "content_length",
        "headers",
        "status",
    )

    def __init__(self, conn: _Connection, status: int, headers: dict[str, str],
                 max_body: int) -> None:
        self._conn = conn
        self.status = status
        self.headers = headers
        length = headers.get("content-length")
        self.content_length = int(length) if length and length.isdigit() else None
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._limit = max_body
        self._made = 0
        encoding = headers.get("content-encoding", "identity").strip().lower()
        self._decoder: Any = None
        if encoding not in ("", "identity"):
            wbits = _DECODED.get(encoding)
            if wbits is None:
                raise BadResponse(f"an answer in an encoding the gateway cannot decode "
                                  f"({encoding[:40]!r})")
            self._decoder = zlib.decompressobj(wbits)
            self.content_length = None  # the decoded length is not known

    # -- fed by the connection

    def _feed(self, data: bytes) -> None:
        if self._decoder is not None:
            data = self._decode(data)
            if not data:
                return
        self._pieces.append(data)
        self._buffered += len(data)
        self._wake()
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._conn.pause()

    def _decode(self, data: bytes) -> bytes:
        try:
            left = self._limit - self._made
            out = self._decoder.decompress(data, left + 1)
        except zlib.error:
            self._fail(BadResponse("an answer whose compressed body cannot be decoded"))
            self._conn.close()
            return b""
        self._made += len(out)
        if self._made > self._limit:
            self._fail(BodyTooLarge("the decoded answer is larger than allowed"))
            self._conn.close()
            return b""
        return out  # type: ignore[no-any-return]

    def _finish(self) -> None:
        if self._decoder is not None and not self._error:
            tail = self._decoder.flush()
            if tail:
                self._pieces.append(tail)
        self._eof = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._eof:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the caller

    def read_nowait(self) -> bytes:
        """What has arrived and was not read yet (b"" if nothing)."""
        pieces = self._pieces
        if not pieces:
            return b""
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            self._conn.resume()
        return data

    def at_eof(self) -> bool:
        """Whether the whole answer has arrived and was read."""
        return self._eof and not self._pieces

    async def readany(self) -> bytes:
        """The next piece of the body (b"" at its end); raises the connection's failure, or
        TimeoutError when nothing came within the read timeout."""
        while not self._pieces:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            waiter = self._waiter = self._conn.loop.create_future()
            await self._conn.wait(waiter)
            self._waiter = None
        return self.read_nowait()

    async def read(self) -> bytes:
        """The whole body."""
        pieces = []
        while chunk := await self.readany():
            pieces.append(chunk)
        return b"".join(pieces)

    def release(self) -> None:
        """Done with the answer: its connection is reused if the answer was read to its end."""
        self._conn.done(self, reusable=self.at_eof() and self._error is None)

    def close(self) -> None:
        """Done with the answer, and its connection closed."""
        self._conn.done(self, reusable=False)


class _Connection(asyncio.Protocol):
    """One connection to one host, carrying one exchange at a time."""

    def __init__(self, client: Client, key: tuple[str, int, bool]) -> None:
        self.client = client
        self.key = key
        self.loop = client.loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.heard = False  # any byte of the current exchange's answer arrived
        self.max_body = 0
        self.head: asyncio.Future[Response] | None = None
        self.response: Response | None = None
        self.keep_alive = False
        self._informational = False
        self._header_list: list[tuple[bytes, bytes]] = []
        self.held: bytes | None = None  # the request, until the loop's iteration ends

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.heard = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._failed(BadResponse("an answer that is not valid HTTP/1.1"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.forget(self)
        response = self.response
        if response is not None and not response._eof and self.head is None \
                and _until_close(response.headers, self.keep_alive):
            response._finish()  # a body delimited by the connection's end
            return
        self._failed(Disconnected("the connection closed before the answer was complete"))

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._header_list = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self._informational = True
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._header_list:
            name = _NAMES.get(raw_name) or _name_of(raw_name)
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.keep_alive = self.parser.should_keep_alive()
        head, self.head = self.head, None
        try:
            response = Response(self, status, headers, self.max_body)
        except BadResponse as exc:
            if head is not None and not head.done():
                head.set_exception(exc)
            self.close()
            return
        self.response = response
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self.response is not None:
            self.response._finish()

    # -- used by the client and the response

    def send(self, data: bytes, max_body: int) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.heard = False
        self.max_body = max_body
        self.response = None
        head = self.head = self.loop.create_future()
        client = self.client
        if client.awaiting:
            self.held = data
            client.flusher.add(self)
        else:
            self.transport.write(data)
        return head

    def flush(self) -> None:
        data, self.held = self.held, None
        if data is not None and not self.closed and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.write(data)

    async def wait(self, waiter: asyncio.Future[Any]) -> Any:
        """`waiter`'s result, failing with TimeoutError after the read timeout; on any
        failure (a cancellation too) the connection is closed: its exchange is broken.

        An alarm that fails the future itself, not `gateway.timing.limited` (which cancels
        the task): this wait happens on every request, and `limited` here cost 10,000 more
        instructions per request (`make instructions`: 646,044 against 656,473)."""
        client = self.client
        slot = client.alarms.set(self.loop.time() + client.read_timeout, waiter, _expire)
        client.awaiting += 1
        try:
            return await waiter
        except BaseException:
            self.close()
            raise
        finally:
            client.awaiting -= 1
            client.alarms.clear(slot, waiter)

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def done(self, response: Response, *, reusable: bool) -> None:
        if self.response is not response:
            return  # released twice
        self.response = None
        # An answer that came before its request was written out (the server did not wait
        # for the body) leaves the rest of that body on the connection: not reusable.
        if reusable and self.keep_alive and not self.closed and self.head is None \
                and self.held is None and self.transport is not None \
                and not self.transport.get_write_buffer_size():
            self.client.put(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client.forget(self)
            if self.transport is not None:
                self.transport.close()

    def _failed(self, error: ClientFailure) -> None:
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_exception(error)
        if self.response is not None:
            self.response._fail(error)


def _until_close(headers: dict[str, str], keep_alive: bool) -> bool:
    """Whether an answer's body is delimited by the end of its connection (no length, not
    chunked)."""
    return not keep_alive and "content-length" not in headers and \
        "chunked" not in headers.get("transfer-encoding", "")


# Answer header names as the answer dicts hold them (decoded, lowered), by their bytes: a
# provider sends the same twenty or so on every answer.
_NAMES: dict[bytes, str] = {}
_NAMES_KEPT = 1024


def _name_of(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_NAMES) >= _NAMES_KEPT:
        _NAMES.clear()
    _NAMES[raw] = name
    return name


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Client:
    """The pool and the request call; use as `async with Client(...) as client:` inside the
    event loop that will use it."""

    def __init__(self, *, max_connections: int, connect_timeout: float, read_timeout: float,
                 ssl_context: ssl.SSLContext | None = None,
                 keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self._ssl = ssl_context
        self.loop = asyncio.get_running_loop()
        self.alarms = alarms(self.loop)
        self.flusher = flusher(self.loop)
        self.awaiting = 0  # requests sent whose answers' heads have not come
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._counted: set[_Connection] = set()
        self._opening = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._head_parts = _HeadParts()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection; requests made after this fail."""
        self._closed = True
        for conn in list(self._counted):
            conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def head_of(self, method: str, target: Target, headers: Iterable[tuple[str, str]],
                body: bytes | None, lines: str = "") -> bytes:
        """The request's head and body as they go on the wire; ValueError for a header that
        could break the framing (a line break or a control character).

        The same request lines and headers come back request after request (a provider's
        URL and key): each is checked and written once, then kept (`_HeadParts`).
        """
        parts = self._head_parts
        key = (method, target.path, target.host_header)
        start = parts.starts.get(key)
        if start is None:
            start = parts.remember(parts.starts, key,
                                   f"{method} {target.path} HTTP/1.1\r\nhost: "
                                   f"{target.host_header}\r\n")
        written = [start, lines] if lines else [start]
        agent = encoding = False
        found = parts.lines.get
        for item in headers:
            known = found(item)
            if known is None:
                known = parts.line(*item)
            line, lowered = known
            agent = agent or lowered == "user-agent"
            encoding = encoding or lowered == "accept-encoding"
            written.append(line)
        if not agent:
            written.append(f"user-agent: {USER_AGENT}\r\n")
        if not encoding:
            written.append("accept-encoding: identity\r\n")
        if body is not None:
            written.append(f"content-length: {len(body)}\r\n")
        written.append("\r\n")
        head = "".join(written).encode("latin-1")
        return head + body if body else head

    async def request(self, method: str, target: Target, headers: Iterable[tuple[str, str]],
                      body: bytes | None = None, *, max_body: int, lines: str = "") -> Response:
        """Send one request and return its answer once the head has arrived.

        `lines` are header lines the caller made and vouches for (each ending in CRLF: trace
        context, new for every request), sent as they are after the request line.
        ValueError for headers that cannot be sent; ConnectFailure, Disconnected,
        BadResponse or TimeoutError when the exchange fails.
        """
        data = self.head_of(method, target, headers, body, lines)
        for attempt in (1, 2):
            conn, reused = await self._acquire(target)
            head = conn.send(data, max_body)
            try:
                return await conn.wait(head)  # type: ignore[no-any-return]
            except Disconnected:
                if attempt == 2 or not reused or conn.heard:
                    raise
        raise AssertionError("unreachable")

    # -- the pool

    async def _acquire(self, target: Target) -> tuple[_Connection, bool]:
        idle = self._idle.get(target.key)
        if idle:
            now = self.loop.time()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < self.keepalive:
                    return conn, True
                conn.close()
        if self._closed:
            raise Disconnected("the client is closed")
        return await limited(self._open(target), self.connect_timeout, TimeoutError), False

    async def _open(self, target: Target) -> _Connection:
        while self.max_connections and len(self._counted) + self._opening >= \
                self.max_connections:
            if not self._close_an_idle_connection():
                waiter = self.loop.create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
            if self._closed:
                raise Disconnected("the client is closed")
            idle = self._idle.get(target.key)
            while idle:  # a connection to this host came free while waiting
                conn = idle.pop()
                if not conn.closed:
                    return conn
        self._opening += 1
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self, target.key), target.host, target.port,
                ssl=self._ssl if target.tls else None,
                server_hostname=target.host if target.tls else None)
        except OSError as exc:  # refused, unreachable, name not found, TLS (SSLError)
            raise ConnectFailure(type(exc).__name__) from None
        finally:
            self._opening -= 1
        self._counted.add(conn)
        if self._closed:
            conn.close()
            raise Disconnected("the client is closed")
        return conn

    def _close_an_idle_connection(self) -> bool:
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                return True
        return False

    def put(self, conn: _Connection) -> None:
        """A connection free for the next request."""
        conn.idle_since = self.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        self._wake_one()

    def forget(self, conn: _Connection) -> None:
        """A connection that closed."""
        if conn in self._counted:
            self._counted.discard(conn)
            idle = self._idle.get(conn.key)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return
