"""wrk's per-answer stream check (bench/wrk/post.lua) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import Request, as_result, run_wrk
from bench.mock import STREAM_CHUNKS, stream_events

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("taskset") is None,
                                reason="wrk and taskset are installed by `make bench`")


@contextmanager
def serving(body: bytes) -> Iterator[str]:
    """An HTTP/1.1 keep-alive server answering every POST with `body` as an event stream."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _check(body: bytes) -> tuple[int, int]:
    with serving(body) as url:
        result = run_wrk(Request(url, b"{}"), concurrency=2, seconds=1, core="0",
                         stream_chunks=STREAM_CHUNKS)
    return result.streams_ok, result.streams_bad


def test_intact_streams_pass() -> None:
    good, bad = _check(b"".join(stream_events()))
    assert good > 0
    assert bad == 0


def test_merged_events_fail() -> None:
    events = stream_events()
    merged = [*events[:3], events[3].rstrip(b"\n") + b"\n" + events[4], *events[5:]]
    good, bad = _check(b"".join(merged))
    assert good == 0
    assert bad > 0


def test_dropped_events_fail() -> None:
    events = stream_events()
    good, bad = _check(b"".join(events[:7] + events[8:]))
    assert good == 0
    assert bad > 0


def test_a_run_measures_wrks_own_cpu() -> None:
    """The load's CPU a request (wrk's, here) is what bounds two workers on two cores."""
    with serving(b"".join(stream_events())) as url:
        result = run_wrk(Request(url, b"{}"), concurrency=2, seconds=1, core="0")
    assert result.requests > 0
    assert result.load_cpu_s is not None and 0 < result.load_cpu_s < 5
    assert as_result(result)["load_cpu_us_per_request"] == pytest.approx(
        result.load_cpu_s / result.requests * 1e6)
