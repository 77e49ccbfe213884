"""Run an ASGI app on uvicorn on 127.0.0.1 and an ephemeral port, in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from gateway.http11 import HttpProtocol


@dataclass
class RunningServer:
    """A live server: its base URL and the uvicorn server object."""

    url: str
    port: int
    server: uvicorn.Server


@contextlib.contextmanager
def serve(app: Any, *, ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
          **config: Any) -> Iterator[RunningServer]:
    """Serve `app` until the block exits; the socket is bound before the block starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # uvloop and the gateway's own HTTP protocol, as in production (with the stdlib loop,
    # replies here wait ~40 ms on delayed ACKs).
    config.setdefault("http", HttpProtocol)
    cfg = uvicorn.Config(app, log_level="warning", lifespan="on", loop="auto",
                         ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                         timeout_graceful_shutdown=2, **config)
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    scheme = "https" if ssl_certfile else "http"
    try:
        yield RunningServer(url=f"{scheme}://127.0.0.1:{port}", port=port, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
