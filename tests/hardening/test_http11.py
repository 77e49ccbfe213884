"""The gateway's HTTP/1.1 protocol (`gateway.http11`) on the wire: framing, keep-alive,
pipelining, 100-continue, failures, and one write per small response.

Each test serves a small ASGI app with the protocol on 127.0.0.1 and talks raw HTTP to it,
so what is asserted is exactly what a client reads.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from gateway import ir
from gateway.__main__ import server_config
from gateway.chat import LastBatch
from gateway.http11 import HttpProtocol
from gateway.routes.streaming import EventStreamResponse
from generated.settings import Settings
from tests.support.server import RunningServer, serve
from tests.support.streams import TextLines

Scope = dict[str, Any]
Message = dict[str, Any]


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Routes: /echo returns the body read in full; /stream writes three chunks; /fail,
    /fail-early, /fail-late and /fail-after raise before the response starts, after it starts
    but before any of it is written, after its first chunk and after the whole answer;
    /bad-header sets a header value with a line break; /slow-stream waits before its first
    chunk; /wait-disconnect answers only once `receive` reports the client gone;
    /answer-then-block answers, then blocks the loop until the client has read the answer."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/fail":
        raise RuntimeError("boom: sk-secret-value")
    if path == "/fail-after":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        raise RuntimeError("a background task failed")
    if path == "/answer-then-block":
        # Answers, then keeps the event loop busy (as an app's bookkeeping after its answer
        # does) until the client says it has the answer, or 5 s.
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        echo.seen.append(echo.answered.wait(5))  # type: ignore[attr-defined]
        return
    if path == "/wait-disconnect":
        message = await receive()
        echo.seen.append(message["type"])  # type: ignore[attr-defined]
        return
    if path in ("/stream", "/slow-stream", "/fail-early", "/fail-late"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        if path == "/fail-early":
            raise RuntimeError("early")
        if path == "/fail-late":
            await send({"type": "http.response.body", "body": b"data: 0\n\n", "more_body": True})
            raise RuntimeError("late")
        if path == "/slow-stream":
            await asyncio.sleep(0.5)
        for n in range(3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % n,
                        "more_body": True})
            await asyncio.sleep(0)  # each chunk in its own loop iteration, as upstream reads
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"application/json")]
    if path == "/bad-header":
        headers.append((b"x-injected", b"a\r\nset-cookie: x=1"))
    payload = json.dumps({"method": scope["method"], "path": path,
                          "query": scope["query_string"].decode(), "size": len(body),
                          "body": body[:64].decode("latin-1")}).encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


echo.seen = []  # type: ignore[attr-defined]
echo.answered = threading.Event()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve(echo, timeout_keep_alive=1) as running:
        yield running


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_response(sock: socket.socket, buffer: bytearray, *, head_only: bool = False
                  ) -> tuple[bytes, dict[str, str], bytes]:
    """One response (status line, headers, body by Content-Length or chunked) off `sock`;
    bytes after it stay in `buffer`. `head_only` for the answer to a HEAD request."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole head: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    status, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()

    def take(n: int) -> bytes:
        while len(buffer) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a body")
            buffer.extend(chunk)
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    if head_only:
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, take(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while True:
            while b"\r\n" not in buffer:
                buffer.extend(sock.recv(65536))
            size_line, _, rest = bytes(buffer).partition(b"\r\n")
            buffer[:] = rest
            size = int(size_line, 16)
            chunk = take(size + 2)[:-2]
            if size == 0:
                return status, headers, body
            body += chunk
    return status, headers, body


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST %b HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n%b\r\n%b"
            % (path.encode(), len(body), extra, body))


def test_fixed_length_and_chunked_requests_and_responses(server: RunningServer) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(post("/echo?x=1", b'{"a": 1}'))
    status, headers, body = read_response(sock, buffer)
    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body) == {"method": "POST", "path": "/echo", "query": "x=1", "size": 8,
                                "body": '{"a": 1}'}
    assert "connection" not in headers  # kept alive
    sock.sendall(b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    _, _, body = read_response(sock, buffer)
    assert json.loads(body)["body"] == "abcdefg"
    sock.sendall(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
    _, headers, body = read_response(sock, buffer)
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    sock.sendall(b"HEAD /echo HTTP/1.1\r\nhost: t\r\n\r\n")
    _, headers, _ = read_response(sock, buffer, head_only=True)
    assert int(headers["content-length"]) > 0
    sock.sendall(b"GET /echo HTTP/1.1\r\nhost: t\r\n\r\n")  # the HEAD left no body behind
    status, _, body = read_response(sock, buffer)
    assert status == b"HTTP/1.1 200 OK" and json.loads(body)["method"] == "GET"
    sock.close()


def test_a_large_body_arrives_whole(server: RunningServer) -> None:
    """Past the read buffer's high-water mark reading pauses, and resumes as the app reads."""
    sock, buffer = connect(server), bytearray()
    payload = bytes(range(256)) * 4096  # 1 MiB
    sock.sendall(post("/echo", payload))
    _, _, body = read_response(sock, buffer)
    assert json.loads(body)["size"] == len(payload)
    sock.close()


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(post("/echo?n=1", b"one") + b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n"
                 + post("/echo?n=3", b"three"))
    answers = [read_response(sock, buffer) for _ in range(3)]
    assert json.loads(answers[0][2])["query"] == "n=1"
    assert answers[1][2] == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert json.loads(answers[2][2])["body"] == "three"
    sock.close()


def test_expect_100_continue_is_answered_before_the_body_is_sent(
        server: RunningServer) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(post("/echo", b"", b"expect: 100-continue\r\n").replace(
        b"content-length: 0", b"content-length: 5"))
    assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(b"hello")
    _, _, body = read_response(sock, buffer)
    assert json.loads(body)["body"] == "hello"
    sock.close()


def test_http_1_0_and_connection_close_close_after_the_answer(server: RunningServer) -> None:
    for request in (b"GET /echo HTTP/1.0\r\n\r\n",
                    b"GET /echo HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"):
        sock, buffer = connect(server), bytearray()
        sock.sendall(request)
        _, headers, body = read_response(sock, buffer)
        assert headers["connection"] == "close" and json.loads(body)["path"] == "/echo"
        assert closed(sock)
        sock.close()


def test_an_idle_connection_closes_after_the_keep_alive_time_and_a_busy_one_does_not(
        server: RunningServer) -> None:
    busy, buffer = connect(server), bytearray()
    started = time.monotonic()
    while time.monotonic() - started < 2.5:  # 2.5 keep-alive periods, a request every 0.3 s
        busy.sendall(post("/echo", b"x"))
        assert read_response(busy, buffer)[0] == b"HTTP/1.1 200 OK"
        time.sleep(0.3)
    idle = connect(server)
    idle.sendall(post("/echo", b"x"))
    read_response(idle, bytearray())
    began = time.monotonic()
    assert closed(idle)
    assert 0.5 < time.monotonic() - began < 5
    busy.close()
    idle.close()


def test_a_malformed_request_gets_a_json_400_and_the_connection_closes(
        server: RunningServer) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: nope\r\n\r\n")
    status, headers, body = read_response(sock, buffer)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "bad_request"
    assert closed(sock)
    sock.close()


@pytest.mark.parametrize("path", ["/fail", "/fail-early"])
def test_an_app_failing_before_its_answer_is_written_gets_a_json_500_without_details(
        server: RunningServer, caplog: pytest.LogCaptureFixture, path: str) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(post(path, b""))
    status, _, body = read_response(sock, buffer)
    assert status == b"HTTP/1.1 500 Internal Server Error"
    assert json.loads(body) == {"error": "internal error", "code": "internal_error"}
    assert closed(sock)
    assert "sk-secret-value" not in caplog.text and "boom" not in caplog.text
    assert "RuntimeError" in caplog.text
    sock.close()


def test_an_app_failing_mid_response_leaves_a_cut_stream_not_a_complete_one(
        server: RunningServer) -> None:
    sock = connect(server)
    sock.sendall(b"GET /fail-late HTTP/1.1\r\nhost: t\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"data: 0\n\n\r\n")
    sock.close()


def test_a_failure_after_the_answer_keeps_the_connection(server: RunningServer) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(post("/fail-after", b""))
    assert read_response(sock, buffer, head_only=True)[0] == b"HTTP/1.1 204 No Content"
    sock.sendall(post("/echo", b"next"))
    assert json.loads(read_response(sock, buffer)[2])["body"] == "next"
    sock.close()


def test_a_header_value_with_a_line_break_is_never_written(server: RunningServer) -> None:
    sock, buffer = connect(server), bytearray()
    sock.sendall(b"GET /bad-header HTTP/1.1\r\nhost: t\r\n\r\n")
    status, headers, _ = read_response(sock, buffer)
    assert status == b"HTTP/1.1 500 Internal Server Error" and "set-cookie" not in headers
    sock.close()


def test_a_streams_head_is_not_held_back_for_a_slow_first_chunk(server: RunningServer) -> None:
    sock = connect(server)
    sock.sendall(b"GET /slow-stream HTTP/1.1\r\nhost: t\r\n\r\n")
    sock.settimeout(0.4)  # the first chunk comes after 0.5 s
    head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
    sock.settimeout(10)
    assert b"data: 0" in sock.recv(65536)
    sock.close()


def test_the_only_request_in_flight_is_answered_before_the_app_has_finished(
        server: RunningServer) -> None:
    echo.seen.clear()  # type: ignore[attr-defined]
    echo.answered.clear()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while server.server.server_state.tasks and time.monotonic() < deadline:
        time.sleep(0.01)  # the requests of earlier tests have all finished: this one is alone
    sock, buffer = connect(server), bytearray()
    sock.sendall(b"GET /answer-then-block HTTP/1.1\r\nhost: t\r\n\r\n")
    status, _, _ = read_response(sock, buffer)
    echo.answered.set()  # type: ignore[attr-defined]
    assert status == b"HTTP/1.1 204 No Content"
    deadline = time.monotonic() + 10
    while not echo.seen and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.02)
    # The app was still running (the loop blocked) when the client read its answer.
    assert echo.seen == [True]  # type: ignore[attr-defined]
    sock.close()


def test_receive_reports_the_client_leaving(server: RunningServer) -> None:
    echo.seen.clear()  # type: ignore[attr-defined]
    sock = connect(server)
    sock.sendall(post("/wait-disconnect", b"x"))
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + 5
    while not echo.seen and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.02)
    assert echo.seen == ["http.disconnect"]  # type: ignore[attr-defined]


# --- one write per response, seen at the transport -----------------------------------------


class Recorder(asyncio.Transport):
    """A transport that records each write it is given."""

    latest: Recorder

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol(app: Any, state: ServerState) -> HttpProtocol:
    """The gateway's protocol for one connection to `app`, as its server configures it."""
    protocol_class = server_config(Settings.from_env({})).http
    assert isinstance(protocol_class, type) and issubclass(protocol_class, HttpProtocol)
    config = uvicorn.Config(app=app, loop="asyncio", timeout_keep_alive=5)
    config.load()
    return protocol_class(config=config, server_state=state, app_state={})


def _writes_for(request: bytes, app: Any = echo, *, others: int = 0) -> list[bytes]:
    """The writes the protocol makes answering `request`, with `others` more requests in
    flight on the server (whose writes are held to the end of each loop iteration)."""
    async def main() -> list[bytes]:
        state = ServerState()
        state.tasks.update(asyncio.get_running_loop().create_future() for _ in range(others))
        protocol = _protocol(app, state)
        transport = Recorder.latest = Recorder()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(20):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    return asyncio.run(main())


@pytest.mark.parametrize("others", [0, 3])
def test_a_fixed_length_response_is_one_write(others: int) -> None:
    writes = _writes_for(post("/echo", b"hi"), others=others)
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b'"body": "hi"}')


async def _answer_then_count_writes(scope: Scope, receive: Any, send: Any) -> None:
    """Answers, then notes how many writes had been made before it yields to the loop."""
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
    _writes_seen.append(len(Recorder.latest.writes))


_writes_seen: list[int] = []


@pytest.mark.parametrize(("others", "written_before_the_app_ends"), [(0, 1), (3, 0)])
def test_an_answer_is_written_at_once_only_when_no_other_request_is_in_flight(
        others: int, written_before_the_app_ends: int) -> None:
    _writes_seen.clear()
    writes = _writes_for(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n", _answer_then_count_writes,
                         others=others)
    assert _writes_seen == [written_before_the_app_ends]
    assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\nok")


@pytest.mark.parametrize("others", [0, 3])
def test_a_streams_head_leaves_with_its_first_chunk_then_one_write_per_iteration(
        others: int) -> None:
    writes = _writes_for(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n", others=others)
    assert len(writes) == 4
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\n9\r\ndata: 0\n\n\r\n")
    assert writes[1:] == [b"9\r\ndata: 1\n\n\r\n", b"9\r\ndata: 2\n\n\r\n", b"0\r\n\r\n"]


async def _first_words_then_the_rest(scope: Scope, receive: Any, send: Any) -> None:
    """A stream whose batches are all ready at once, as when one upstream read held them.
    Notes, as the rest is made, how many writes there were and whether the loop has been
    round since the first words (`_first_words_then_the_rest.seen`)."""
    loop = asyncio.get_running_loop()

    async def batches() -> AsyncGenerator[list[ir.StreamEvent], None]:
        went_round: list[bool] = []
        loop.call_soon(went_round.append, True)
        yield [ir.TextDelta("first")]
        _first_words_then_the_rest.seen = (  # type: ignore[attr-defined]
            len(Recorder.latest.writes), bool(went_round))
        yield LastBatch([ir.TextDelta("second"), ir.TextDelta("third")])

    await receive()
    await EventStreamResponse(batches(), TextLines())(scope, receive, send)


@pytest.mark.parametrize("others", [0, 3])
def test_a_streams_first_batch_is_written_before_the_next_one_is_made(others: int) -> None:
    writes = _writes_for(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n",
                         _first_words_then_the_rest, others=others)
    # The first words were written when the rest began to be made, at once: the loop had not
    # gone round (a stream's first words cost no extra loop iteration).
    assert _first_words_then_the_rest.seen == (1, False)  # type: ignore[attr-defined]
    assert len(writes) == 2
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    first = b"data: first\n\n"
    rest = b"data: second\n\ndata: third\n\ndata: [DONE]\n\n"
    assert writes[0].endswith(b"\r\n\r\n%x\r\n%b\r\n" % (len(first), first))
    assert writes[1] == b"%x\r\n%b\r\n0\r\n\r\n" % (len(rest), rest)


def test_on_disconnect_tells_of_a_client_leaving_and_of_one_already_gone() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        cycle = scope["extensions"]["gateway.cycle"]
        await receive()
        cycle.on_disconnect(lambda: calls.append("left"))
        while (await receive())["type"] != "http.disconnect":
            pass
        cycle.on_disconnect(lambda: calls.append("already gone"))

    async def main() -> None:
        state = ServerState()
        protocol = _protocol(app, state)
        protocol.connection_made(Recorder())
        protocol.data_received(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        assert calls == []
        protocol.connection_lost(None)
        assert calls == ["left"]  # told at once, from connection_lost
        await asyncio.gather(*state.tasks)

    asyncio.run(main())
    assert calls == ["left", "already gone"]


def _reference_head(status: int, headers: list[Any], method: str, keep_alive: bool
                    ) -> tuple[bytes, bool, int, bool]:
    """How a response head was rendered before header lines were kept (the oracle): the
    head, chunked, the length left, and whether the connection stays open."""
    import re

    bad_name = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
    bad_value = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
    parts = [b"HTTP/1.1 %d \r\n" % status]  # the phrase left out
    names, values, length, chunked, closes = [], [], None, False, False
    for name, value in headers:
        name = bytes(name).lower()
        names.append(name)
        values.append(bytes(value))
        if name == b"content-length":
            if length is None:
                length = int(value)
        elif name == b"transfer-encoding":
            chunked = bytes(value).lower() == b"chunked"
        elif name == b"connection" and b"close" in bytes(value).lower():
            closes = True
        parts.append(b"%b: %b\r\n" % (name, bytes(value)))
    if bad_name.search(b"".join(names)) or bad_value.search(b"".join(values)):
        raise RuntimeError("invalid header")
    if closes:
        keep_alive = False
    elif not keep_alive:
        parts.append(b"connection: close\r\n")
    if not chunked and length is None and method != "HEAD" and status not in (204, 304):
        chunked = True
        parts.append(b"transfer-encoding: chunked\r\n")
    parts.append(b"\r\n")
    return b"".join(parts), chunked, length or 0, keep_alive


def test_kept_header_lines_render_every_head_as_before() -> None:
    from random import Random
    from types import SimpleNamespace

    from gateway.http11 import Cycle

    rng = Random(22)
    names = [b"content-type", b"Content-Length", b"transfer-encoding", b"Connection",
             b"x-request-id", b"X-Cache", b"date", b"bad name", b"bad:name", b"retry-after"]
    values = [b"application/json", b"12", b"7", b"chunked", b"gzip", b"close", b"keep-alive",
              b"Close", b"MISS", b"a\r\nb", b"tab\tok", b"\x7f", b"caf\xc3\xa9", b""]
    for _ in range(1500):
        headers: list[Any] = []
        for _ in range(rng.randint(0, 6)):
            name, value = rng.choice(names), rng.choice(values)
            if name.lower() == b"content-length" and rng.random() < 0.9:
                value = b"%d" % rng.randint(0, 99)
            shape = rng.random()
            headers.append([name, value] if shape < 0.1 else
                           (bytearray(name), value) if shape < 0.15 else (name, value))
        status = rng.choice([200, 204, 304, 404, 500])
        method = rng.choice(["GET", "POST", "HEAD"])
        keep_alive = rng.random() < 0.8
        try:
            expected: Any = _reference_head(status, headers, method, keep_alive)
        except (RuntimeError, ValueError):
            expected = "refused"
        for _ in range(2):  # the second time from kept lines
            cycle = SimpleNamespace(protocol=SimpleNamespace(
                server_state=SimpleNamespace(default_headers=[])), keep_alive=keep_alive,
                scope={"method": method})
            try:
                head = Cycle._render_head(cycle, status, headers)  # type: ignore[arg-type]
            except (RuntimeError, ValueError):
                assert expected == "refused", headers
                continue
            phrase_at = len(b"HTTP/1.1 %d " % status)
            head = head[:phrase_at] + head[head.index(b"\r\n"):]  # without the phrase
            assert (head, cycle.chunked, cycle.length_left, cycle.keep_alive) == expected, \
                headers
