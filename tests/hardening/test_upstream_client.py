"""The upstream HTTP/1.1 client (`gateway.client`) against scripted servers on 127.0.0.1.

Each test starts a small asyncio server that reads requests and answers with exact bytes
(or misbehaves on purpose), so what is asserted is what the client makes of real wire
traffic: framing, connection reuse, the pool limit, timeouts, flow control, decoding and
failures. Every test runs on both asyncio's loop and uvloop (the server's loop).
"""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import gateway.client as client_module
from gateway.client import (
    HIGH_WATER,
    BadResponse,
    BodyTooLarge,
    Client,
    ConnectFailure,
    Disconnected,
    Target,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[pytest.param(("asyncio", {}), id="asyncio"),
                        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


Handler = Callable[["Conn"], Awaitable[None]]


@dataclass
class Conn:
    """One accepted connection, with helpers to read a request and write raw bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int

    async def request(self) -> bytes:
        """The next request's head and body (by its Content-Length); b"" at the end."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head + await self.reader.readexactly(length)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@dataclass
class Script:
    """A server whose every connection runs `handler`; counts connections and requests."""

    handler: Handler
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/v1/x") -> Target:
        return Target.of(f"http://127.0.0.1:{self.port}{path}")


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[Script]:
    script = Script(handler)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        try:
            await handler(Conn(reader, writer, script.connections))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    async with server:
        yield script


def ok(body: bytes = b'{"ok":true}', *, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra +
            b"content-length: %d\r\n\r\n" % len(body) + body)


def client(**kwargs: Any) -> Client:
    settings: dict[str, Any] = {"max_connections": 8, "connect_timeout": 2.0,
                                "read_timeout": 2.0, **kwargs}
    return Client(**settings)


async def get(http: Client, target: Target, body: bytes | None = None,
              headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, bytes]:
    answer = await http.request("POST" if body is not None else "GET", target, headers, body,
                                max_body=1 << 20)
    content = await answer.read()
    answer.release()
    return answer.status, content


async def serve_ok(conn: Conn, script_requests: list[bytes] | None = None) -> None:
    while request := await conn.request():
        if script_requests is not None:
            script_requests.append(request)
        await conn.send(ok())


async def test_the_request_on_the_wire_and_keep_alive_reuse() -> None:
    seen: list[bytes] = []
    async with scripted(lambda conn: serve_ok(conn, seen)) as script, client() as http:
        target = script.url("/v1/chat?a=1")
        for _ in range(3):
            assert await get(http, target, b'{"q":1}', (("authorization", "Bearer k"),)) == \
                (200, b'{"ok":true}')
    assert script.connections == 1  # one connection carried all three
    assert seen[0] == (f"POST /v1/chat?a=1 HTTP/1.1\r\nhost: 127.0.0.1:{script.port}\r\n"
                       "authorization: Bearer k\r\nuser-agent: llm-gateway\r\n"
                       "accept-encoding: identity\r\ncontent-length: 7\r\n\r\n"
                       '{"q":1}').encode()


async def test_chunked_and_until_close_bodies() -> None:
    async def chunked(conn: Conn) -> None:
        await conn.request()
        if conn.number == 1:
            await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
            await serve_ok(conn)
        else:  # HTTP/1.0 style: no length, the body ends with the connection
            await conn.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")

    async with scripted(chunked) as script, client() as http:
        assert await get(http, script.url()) == (200, b"hello world")
        assert await get(http, script.url()) == (200, b'{"ok":true}')  # reused
        assert script.connections == 1
        # Two at once: the second needs a connection of its own.
        first = await http.request("GET", script.url(), (), max_body=1 << 20)
        assert await get(http, script.url()) == (200, b"until the end")
        assert await first.read() == b'{"ok":true}'
        first.release()


async def test_a_half_read_answer_closes_its_connection() -> None:
    async def big(conn: Conn) -> None:
        while await conn.request():
            answer = ok(b"x" * 100_000)
            await conn.send(answer[:1000])
            await asyncio.sleep(0.05)
            await conn.send(answer[1000:])

    async with scripted(big) as script, client() as http:
        answer = await http.request("GET", script.url(), (), max_body=1 << 20)
        assert len(await answer.readany()) > 0 and not answer.at_eof()
        answer.release()  # not read to its end: never reused
        status, content = await get(http, script.url())
        assert (status, len(content)) == (200, 100_000)
    assert script.connections == 2


async def test_a_reused_connection_closed_by_the_server_is_retried_once() -> None:
    async def closes_after_one(conn: Conn) -> None:
        await conn.request()
        await conn.send(ok())
        await conn.request()  # the next request is read, then the connection just closes

    async with scripted(closes_after_one) as script, client() as http:
        assert await get(http, script.url()) == (200, b'{"ok":true}')
        await asyncio.sleep(0)
        # The idle connection looked fine; it closes on the request: sent again, once.
        assert await get(http, script.url(), b"{}") == (200, b'{"ok":true}')
        assert script.connections == 2
        # A reused connection that closes after part of its answer is not retried either.
        async with scripted(cut_in_the_second_head) as cut:
            assert await get(http, cut.url()) == (200, b'{"ok":true}')
            with pytest.raises(Disconnected):
                await get(http, cut.url())
            assert cut.connections == 1
        # A new connection that closes without an answer is not retried.
        async with scripted(lambda conn: conn.request()) as silent:  # type: ignore[arg-type,return-value]
            with pytest.raises(Disconnected):
                await get(http, silent.url())
            assert silent.connections == 1


async def cut_in_the_second_head(conn: Conn) -> None:
    await conn.request()
    await conn.send(ok())
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-")


async def test_read_timeouts_bound_each_wait() -> None:
    async def stalls(conn: Conn) -> None:
        await conn.request()
        if conn.number == 2:
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        await asyncio.sleep(5)

    async with scripted(stalls) as script, client(read_timeout=0.2) as http:
        with pytest.raises(TimeoutError):  # no head
            await http.request("GET", script.url(), (), max_body=100)
        answer = await http.request("GET", script.url(), (), max_body=100)
        assert await answer.readany() == b"half"
        with pytest.raises(TimeoutError):  # the rest of the body never comes
            await answer.readany()
        answer.close()


async def test_the_pool_limit_waits_within_the_connect_timeout() -> None:
    release = asyncio.Event()

    async def held(conn: Conn) -> None:
        while await conn.request():
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
            await release.wait()
            await conn.send(b"ok")

    async with scripted(held) as script, client(max_connections=1, connect_timeout=0.3) as http:
        first = await http.request("GET", script.url(), (), max_body=100)
        with pytest.raises(TimeoutError):  # the one connection is busy
            await http.request("GET", script.url(), (), max_body=100)
        waiting = asyncio.ensure_future(get(http, script.url()))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        release.set()
        assert await first.read() == b"ok"
        first.release()
        assert await waiting == (200, b"ok")  # it took the freed connection
        assert script.connections == 1


async def test_a_slow_reader_stops_the_socket_being_read() -> None:
    sent = asyncio.Event()
    total = 8 * 1024 * 1024

    async def flood(conn: Conn) -> None:
        await conn.request()
        conn.writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        for _ in range(total // 65536):
            conn.writer.write(b"y" * 65536)
        sent.set()
        await conn.writer.drain()

    async with scripted(flood) as script, client() as http:
        answer = await http.request("GET", script.url(), (), max_body=total)
        await sent.wait()
        await asyncio.sleep(0.3)  # the client reads nothing meanwhile
        held = len(answer.read_nowait())
        assert held <= HIGH_WATER + 512 * 1024, held  # not the 8 MiB the server pushed
        rest = await answer.read()
        assert held + len(rest) == total
        answer.release()


async def test_compressed_answers_are_decoded_within_the_limit() -> None:
    body = b'{"text":"' + b"a" * 5000 + b'"}'
    bomb = zlib.compress(b"0" * (64 << 20))

    answers = [ok(gzip.compress(body), extra=b"content-encoding: gzip\r\n"),
               ok(bomb, extra=b"content-encoding: deflate\r\n"),
               ok(b"nope", extra=b"content-encoding: br\r\n")]

    async def compressed(conn: Conn) -> None:
        while await conn.request():
            await conn.send(answers.pop(0))

    async with scripted(compressed) as script, client() as http:
        assert await get(http, script.url()) == (200, body)
        tracemalloc.start()
        try:
            answer = await http.request("GET", script.url(), (), max_body=1 << 20)
            with pytest.raises(BodyTooLarge):
                await answer.read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        answer.close()
        assert peak < 8 << 20  # decoded a little past the limit, not the 64 MiB
        assert len(bomb) < 1 << 20  # what came over the wire was under the limit
        with pytest.raises(BadResponse):
            await http.request("GET", script.url(), (), max_body=1 << 20)


async def test_informational_answers_are_skipped() -> None:
    async def hints(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n" + ok())

    async with scripted(hints) as script, client() as http:
        assert await get(http, script.url()) == (200, b'{"ok":true}')


async def test_failures_are_the_clients_own_errors() -> None:
    async def broken(conn: Conn) -> None:
        await conn.request()
        if conn.number == 1:
            await conn.send(b"NOT HTTP AT ALL\r\n\r\n")
        else:
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")

    async with scripted(broken) as script, client() as http:
        with pytest.raises(BadResponse):
            await get(http, script.url())
        answer = await http.request("GET", script.url(), (), max_body=1000)
        with pytest.raises(Disconnected):
            await answer.read()  # cut after 7 of 100 bytes: never a short success
        answer.close()
        port = script.port
    async with client() as http:
        with pytest.raises(ConnectFailure):  # nothing listens there any more
            await get(http, Target.of(f"http://127.0.0.1:{port}/"))


async def test_headers_that_would_break_the_framing_are_refused() -> None:
    async with scripted(serve_ok) as script, client() as http:
        for name, value in (("x-key", "a\r\nx-injected: 1"), ("bad name", "v"),
                            ("x-key", "a\nb"), ("x-key", "\x00")):
            with pytest.raises(ValueError):
                await get(http, script.url(), None, ((name, value),))
        assert script.connections == 0  # nothing was sent


async def test_kept_header_lines_change_nothing_on_the_wire() -> None:
    """Header lines are checked and written once, then kept: a value sent before does not
    let a bad value of the same header through, trace context is written anew for every
    request, and tabs and characters beyond ASCII pass as before."""
    seen: list[bytes] = []
    async with scripted(lambda conn: serve_ok(conn, seen)) as script, client() as http:
        target = script.url("/x")
        for parent in ("00-" + "1" * 32 + "-" + "2" * 16 + "-01",
                       "00-" + "3" * 32 + "-" + "4" * 16 + "-01"):
            await get(http, target, None, (("traceparent", parent), ("x-key", "a\tb\xe9"),
                                           ("User-Agent", "mine")))
        for name, value in (("x-key", "a\r\nx-injected: 1"), ("traceparent", "a\nb"),
                            ("User-Agent", "mine\x7f")):
            with pytest.raises(ValueError):
                await get(http, target, None, ((name, value),))
    assert len(seen) == 2
    for request, parent in zip(seen, ("1" * 32, "3" * 32), strict=True):
        head = request.decode("latin-1")
        assert f"traceparent: 00-{parent}-" in head
        assert "x-key: a\tb\xe9\r\n" in head
        assert "User-Agent: mine\r\n" in head and "llm-gateway" not in head


def test_targets() -> None:
    target = Target.of("https://user@api.example.com/v1/models?page=2")
    assert (target.host, target.port, target.tls, target.path, target.host_header) == \
        ("api.example.com", 443, True, "/v1/models?page=2", "api.example.com")
    assert Target.of("http://[::1]:8080").path == "/"
    assert Target.of("http://[::1]:8080").host_header == "[::1]:8080"
    for bad in ("ftp://x/", "http:///nohost", "http://x/a b", "http://x/\r\n"):
        with pytest.raises(ValueError):
            Target.of(bad)


async def test_an_answer_before_its_body_was_sent_does_not_reuse_the_connection() -> None:
    async def early(conn: Conn) -> None:
        await conn.reader.readuntil(b"\r\n\r\n")  # the head only: the body stays unread
        if conn.number == 1:
            await conn.send(ok())
            # Then it reads on: a request sent after the unsent rest of the body would be
            # answered here.
            seen = b""
            while b"GET /v1/x" not in seen:
                piece = await conn.reader.read(1 << 20)
                if not piece:
                    return
                seen = (seen + piece)[-4096:]
            await conn.send(ok(b"the same connection"))
        else:
            await conn.send(ok(b"second"))

    async with scripted(early) as script, client() as http:
        answer = await http.request("POST", script.url(), (), b"b" * (16 << 20),
                                    max_body=1 << 20)
        assert await answer.read() == b'{"ok":true}'
        answer.release()  # complete, but 16 MiB of its request are still unsent
        assert await get(http, script.url()) == (200, b"second")
        assert script.connections == 2


async def test_answer_header_names_are_lowered_and_repeats_joined_every_time() -> None:
    extra = (b"X-RateLimit-Remaining: 5\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
             b"X-Cafe: \xe9t\xe9\r\n")

    async def serve(conn: Conn) -> None:
        while await conn.request():
            await conn.send(ok(extra=extra))

    async with scripted(serve) as script, client() as http:
        for _ in range(3):  # the names are kept after the first answer: the same each time
            answer = await http.request("GET", script.url(), (), max_body=1 << 20)
            await answer.read()
            answer.release()
            assert answer.headers == {"content-type": "application/json",
                                      "x-ratelimit-remaining": "5",
                                      "set-cookie": "a=1, b=2", "x-cafe": "\xe9t\xe9",
                                      "content-length": "11"}


class _WriteLog:
    """A connection's transport, with each write noted (uvloop's transports take no new
    attributes, so the log wraps the transport rather than patching it)."""

    def __init__(self, transport: asyncio.BaseTransport, log: list[bytes]) -> None:
        self._transport = transport
        self._log = log

    def write(self, data: bytes) -> None:
        self._log.append(data)
        self._transport.write(data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def test_requests_sent_while_others_wait_leave_together_when_the_iteration_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[bytes] = []
    made = client_module._Connection.connection_made
    monkeypatch.setattr(client_module._Connection, "connection_made",
                        lambda conn, transport: made(conn, _WriteLog(transport, written)))

    def paths() -> list[bytes]:
        return [request.split(b" ", 2)[1] for request in written]

    async with scripted(serve_ok) as script, client() as http:
        answers = await asyncio.gather(*(get(http, script.url("/warm")) for _ in range(3)))
        assert answers == [(200, b'{"ok":true}')] * 3 and script.connections == 3
        written.clear()
        sent = [asyncio.ensure_future(get(http, script.url(f"/{n}"))) for n in range(3)]
        await asyncio.sleep(0)  # the three take their first steps, then this goes on
        # The first was alone and went at once; the others are held while it waits...
        assert paths() == [b"/0"]
        await asyncio.sleep(0)
        # ...and leave together once the iteration's ready callbacks have run.
        assert paths() == [b"/0", b"/1", b"/2"]
        assert await asyncio.gather(*sent) == [(200, b'{"ok":true}')] * 3
        assert script.connections == 3  # each on a pooled connection, each reusable after
        written.clear()
        alone = asyncio.ensure_future(get(http, script.url("/alone")))
        await asyncio.sleep(0)
        assert paths() == [b"/alone"]  # none waits now: at once again
        assert await alone == (200, b'{"ok":true}')
