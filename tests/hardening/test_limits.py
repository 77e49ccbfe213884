"""Limits on what a client may send and hold: head size and time, body size, concurrency.

The head limits live in the HTTP protocol that `python -m gateway` configures, so they are
tested against a real gateway process; the others against the app served in-process.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.__main__ import server_config
from gateway.auth import Principal
from gateway.http11 import HttpProtocol
from gateway.middleware.guard import RequestGuardMiddleware
from generated.settings import Settings
from tests.hardening.conftest import generate
from tests.hardening.process import GatewayProcess, gateway_process
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import serve

HEAD_LIMIT = 2048
HEAD_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def gateway_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway process with a small head limit and a short head timeout."""
    env = {"MAX_HEADER_BYTES": str(HEAD_LIMIT), "SERVER_HEADER_TIMEOUT": f"{HEAD_TIMEOUT:g}s"}
    with gateway_process(env, tmp_path_factory.mktemp("limits")) as gw:
        yield gw


def _connect(gw: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (bounded by the socket timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_server_config_installs_the_head_guard() -> None:
    config = server_config(Settings.from_env({"MAX_HEADER_BYTES": "4096",
                                              "SERVER_HEADER_TIMEOUT": "3s",
                                              "SHUTDOWN_GRACE_PERIOD": "7s"}))
    assert isinstance(config.http, type) and issubclass(config.http, HttpProtocol)
    assert (config.http.max_head_bytes, config.http.head_timeout) == (4096, 3.0)
    assert config.h11_max_incomplete_event_size == 4096
    assert config.timeout_graceful_shutdown == 7


def test_a_head_over_the_limit_gets_431(gateway_proc: GatewayProcess) -> None:
    ok = httpx.get(f"{gateway_proc.url}/health", headers={"x-pad": "a" * (HEAD_LIMIT // 2)})
    assert ok.status_code == 200
    r = httpx.get(f"{gateway_proc.url}/health", headers={"x-pad": "a" * HEAD_LIMIT})
    assert r.status_code == 431
    assert r.json()["code"] == "request_header_fields_too_large"
    assert r.headers["connection"] == "close"


def test_an_endless_header_is_refused_while_it_arrives(gateway_proc: GatewayProcess) -> None:
    """A header that never ends is cut after about the limit, not buffered without bound."""
    with _connect(gateway_proc) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent = 0
        try:
            for _ in range(1000):  # at most 16 MB
                sock.sendall(b"a" * 16384)
                sent += 16384
        except OSError:
            pass  # the server closed the connection: what should happen
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert sent < 8 * 1024 * 1024


def test_a_client_trickling_its_head_gets_408(gateway_proc: GatewayProcess) -> None:
    with _connect(gateway_proc) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        reply = b""
        try:
            for n in range(40):  # one header line every 0.1 s: never done in time
                sock.sendall(b"X-Slow-%d: 1\r\n" % n)
                time.sleep(0.1)
        except OSError:
            pass
        sock.settimeout(5)
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"code":"request_timeout"' in reply
    assert time.monotonic() - started < HEAD_TIMEOUT + 3


def test_a_silent_connection_is_closed(gateway_proc: GatewayProcess) -> None:
    with _connect(gateway_proc) as sock:
        started = time.monotonic()
        sock.settimeout(HEAD_TIMEOUT + 5)
        assert sock.recv(100) == b""  # closed without a word
    assert time.monotonic() - started < HEAD_TIMEOUT + 3


def test_an_idle_keep_alive_connection_is_not_cut_by_the_head_clock(
        gateway_proc: GatewayProcess) -> None:
    """Between requests the idle timeout applies, not the head timeout."""
    with _connect(gateway_proc) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while not reply.endswith(b'{"message":"OK"}'):
                chunk = sock.recv(4096)
                assert chunk, f"the connection was closed: {reply!r}"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200")
            time.sleep(HEAD_TIMEOUT * 1.5)


def test_conflicting_length_headers_are_refused(gateway_proc: GatewayProcess) -> None:
    """Content-Length with Transfer-Encoding (request smuggling) never reaches the app."""
    with _connect(gateway_proc) as sock:
        sock.sendall(b"POST /llms/openai/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n4\r\n{}{}\r\n0\r\n\r\n")
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]


# --- request bodies ----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/llms/openai/generate", "/v1/chat/completions",
                                  "/v1/messages"])
def test_a_chunked_body_is_refused_while_it_arrives(
        simulators: dict[str, ProviderSimulator], path: str) -> None:
    """No Content-Length: the 413 comes once the limit is passed, before the body ends."""
    env = gateway_env(simulators) | {"MAX_REQUEST_BODY_BYTES": "4096"}
    with run_gateway(env) as gw, socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(8):  # 8 KiB of an unfinished body; the last chunk is never sent
            sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"payload_too_large" in reply or b"request_too_large" in reply, reply[:400]
    assert simulators["openai"].requests == []


# --- concurrency per client ----------------------------------------------------------------

def test_a_client_over_its_concurrency_limit_gets_429(
        simulators: dict[str, ProviderSimulator]) -> None:
    sim = simulators["openai"]
    env = gateway_env(simulators) | {"MAX_CONCURRENT_REQUESTS_PER_CLIENT": "2"}
    with run_gateway(env) as gw:
        sim.hang(times=2)
        held = [threading.Thread(target=generate, args=(gw.url, "openai", "gpt-4o-mini"))
                for _ in range(2)]
        for thread in held:
            thread.start()
        _wait_for(lambda: len(sim.requests) == 2)
        native = generate(gw.url, "openai", "gpt-4o-mini")
        assert native.status_code == 429 and native.headers["retry-after"] == "1"
        assert native.json()["code"] == "too_many_requests"
        chat = httpx.post(f"{gw.url}/v1/chat/completions", json={})
        assert chat.status_code == 429 and chat.json()["error"]["type"] == "rate_limit_error"
        message = httpx.post(f"{gw.url}/v1/messages", json={})
        assert message.status_code == 429 and message.json()["type"] == "error"
        # Probes are never limited.
        assert httpx.get(f"{gw.url}/health").status_code == 200
        assert httpx.get(f"{gw.url}/ready").status_code == 200
        sim.reset()  # releases the two held requests
        for thread in held:
            thread.join(timeout=15)
        assert generate(gw.url, "openai", "gpt-4o-mini").status_code == 200


def test_a_stream_counts_until_it_ends(simulators: dict[str, ProviderSimulator]) -> None:
    sim = simulators["openai"]
    sim.chunk_delay = 0.3
    env = gateway_env(simulators) | {"MAX_CONCURRENT_REQUESTS_PER_CLIENT": "1"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "stream": True}
    with run_gateway(env) as gw, httpx.stream("POST", f"{gw.url}/llms/openai/generate",
                                              json=body, timeout=20) as stream:
        chunks = stream.iter_raw()
        assert next(chunks)
        assert generate(gw.url, "openai", "gpt-4o-mini").status_code == 429
        assert b"".join(chunks).endswith(b"data: [DONE]\n\n")
        sim.chunk_delay = 0
        assert generate(gw.url, "openai", "gpt-4o-mini").status_code == 200


def test_the_limit_is_per_authenticated_subject() -> None:
    """Behind auth, two callers on one address each get their own allowance."""
    release = threading.Event()

    async def slow(request: Request) -> Response:
        while not release.is_set():
            await anyio.sleep(0.01)
        return Response(b"done")

    app = Starlette(routes=[Route("/work", slow)])
    limited = RequestGuardMiddleware(app, limit=1, max_bytes=1 << 20, read_timeout=30,
                                     write_timeout=30)

    async def fake_auth(scope: Scope, receive: Receive, send: Send) -> None:
        """Stands in for AuthMiddleware: the subject comes from a header."""
        subject = dict(scope.get("headers", [])).get(b"x-subject", b"").decode()
        scope.setdefault("state", {})["auth"] = Principal(subject, frozenset(), {})
        await limited(scope, receive, send)

    with serve(fake_auth) as server:
        url = f"{server.url}/work"
        alice = threading.Thread(target=httpx.get, args=(url,),
                                 kwargs={"headers": {"x-subject": "alice"}, "timeout": 10})
        alice.start()
        _wait_for(lambda: limited.in_flight.get("sub:alice") == 1)
        assert httpx.get(url, headers={"x-subject": "alice"}).status_code == 429
        bob = threading.Thread(target=httpx.get, args=(url,),
                               kwargs={"headers": {"x-subject": "bob"}, "timeout": 10})
        bob.start()
        _wait_for(lambda: limited.in_flight.get("sub:bob") == 1)
        release.set()
        alice.join(timeout=10)
        bob.join(timeout=10)
    assert limited.in_flight == {}


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_pipelined_head_that_stalls_gets_408_after_the_answer_before_it(
        gateway_proc: GatewayProcess) -> None:
    with _connect(gateway_proc) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n")
        reply = _read_all(sock)
    first, _, rest = reply.partition(b'{"message":"OK"}')
    assert first.startswith(b"HTTP/1.1 200"), reply[:300]
    assert rest.startswith(b"HTTP/1.1 408"), reply[:300]
