"""The request guard's read, write and body limits, on both ways it enforces them.

Served by the gateway's own protocol the limits are handed to it (`gateway.cycle`) and
enforced inside its `receive` and `send`; under any other server the guard wraps `receive`
and `send` itself. Each test runs a small app behind the guard on both (the gateway's
protocol, and uvicorn's httptools protocol) and talks raw HTTP to it.
"""

from __future__ import annotations

import gc
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.http11 import Cycle, HttpProtocol
from gateway.middleware.guard import RequestGuardMiddleware
from tests.support.server import RunningServer, serve

CHUNK = b"z" * 65536
CHUNKS = 400  # 26 MB: far more than the socket buffers hold
seen: dict[str, Any] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, then answers /big with CHUNKS chunks and anything else with the
    body's length."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] != "/big":
        answer = b"%d" % size
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(answer))]})
        await send({"type": "http.response.body", "body": answer})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    seen["stalled"] = False
    try:
        for _ in range(CHUNKS):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except Exception as exc:
        seen["stalled"] = type(exc).__name__
        raise


GUARDED = RequestGuardMiddleware(app, limit=0, max_bytes=1000, read_timeout=0.5,
                                 write_timeout=0.5)


@pytest.fixture(scope="module", params=[HttpProtocol, "httptools"],
                ids=["gateway-protocol", "uvicorn-httptools"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(GUARDED, http=request.param) as running:
        yield running


def connect(server: RunningServer, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    return sock


def read_all(sock: socket.socket, deadline_s: float = 5.0) -> bytes:
    data = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            piece = sock.recv(1 << 20)
        except (ConnectionResetError, TimeoutError):
            break
        if not piece:
            break
        data += piece
    return data


def test_a_body_within_the_limits_is_served(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n"
                     b"connection: close\r\n\r\nhello")
        assert read_all(sock).endswith(b"\r\n\r\n5")


def test_a_trickling_body_gets_408(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\nonly ten..")
        started = time.monotonic()
        reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert 0.4 < time.monotonic() - started < 4
        body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        assert body["code"] == "request_timeout", body


def test_a_chunked_body_over_the_limit_gets_413(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n" +
                     b"200\r\n" + b"a" * 512 + b"\r\n" * 1 +
                     b"200\r\n" + b"b" * 512 + b"\r\n0\r\n\r\n")
        reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 413"), reply


def test_a_client_that_stops_reading_is_cut_off(server: RunningServer) -> None:
    with connect(server, rcvbuf=65536) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nhost: t\r\n\r\n")
        time.sleep(2.0)  # not reading: the server's writes stall past the write timeout
        got = read_all(sock)
    assert got.startswith(b"HTTP/1.1 200")
    assert len(got) < CHUNKS * len(CHUNK)  # cut off, not completed
    assert seen["stalled"] == "_StalledReader"


def test_requests_leave_no_reference_cycles_behind() -> None:
    """On the gateway's protocol, a finished request is freed by reference counting alone:
    with the collector off, none of its cycles stays behind (a cycle per request grows
    memory between collections)."""
    gc.collect()
    gc.disable()
    try:
        with serve(GUARDED) as server, connect(server) as sock:
            for _ in range(50):
                sock.sendall(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi")
                assert sock.recv(65536).endswith(b"\r\n\r\n2")
        left = sum(type(o) is Cycle for o in gc.get_objects())
    finally:
        gc.enable()
    assert left <= 2, left
