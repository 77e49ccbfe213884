"""Graceful shutdown of a real `python -m gateway` process on SIGTERM.

The gateway reports not ready at once while /health stays up, keeps accepting for the drain
delay, then stops accepting; requests and streams already in flight finish whole within the
grace period, and the process exits 0.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.hardening.conftest import generate, sse_payloads
from tests.hardening.process import GatewayProcess, gateway_process
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env

STREAM = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}],
          "stream": True}


class StreamReader(threading.Thread):
    """Reads one streamed generate in the background, noting when each chunk came."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.chunks: list[tuple[float, bytes]] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self.first = threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream("POST", f"{self.url}/llms/openai/generate", json=STREAM,
                              timeout=30) as response:
                self.status = response.status_code
                for chunk in response.iter_raw():
                    self.chunks.append((time.monotonic(), chunk))
                    self.first.set()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.first.set()

    @property
    def body(self) -> str:
        """The whole body read so far."""
        return b"".join(chunk for _, chunk in self.chunks).decode()


def _until(condition: Callable[[], bool], timeout: float) -> float:
    """Poll `condition` until true; return when it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic()


def _refused(gw: GatewayProcess) -> bool:
    """Whether a new connection gets no answer: refused, or reset while the listener closes."""
    try:
        httpx.get(f"{gw.url}/health", timeout=1)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


def test_sigterm_drains_in_flight_work_then_exits_0(
        tmp_path: Path, simulators: dict[str, ProviderSimulator]) -> None:
    openai, anthropic = simulators["openai"], simulators["anthropic"]
    env = gateway_env(simulators) | {"SHUTDOWN_DRAIN_DELAY": "1s",
                                     "SHUTDOWN_GRACE_PERIOD": "20s"}
    with gateway_process(env, tmp_path) as gw:
        whole = sse_payloads(generate(gw.url, "openai", "gpt-4o-mini", stream=True).text)
        openai.chunk_delay = 0.4  # the stream now takes a few seconds
        anthropic.delay = 2.5  # and so does a plain request
        stream = StreamReader(gw.url)
        stream.start()
        plain: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: plain.append(
            generate(gw.url, "anthropic", "claude-sonnet-4-20250514")), daemon=True)
        slow.start()
        assert stream.first.wait(10) and stream.error is None
        _until(lambda: len(anthropic.requests) == 1, 10)

        gw.signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Draining: not ready, but alive and still accepting for the drain delay.
        _until(lambda: httpx.get(f"{gw.url}/ready").status_code == 503, 1)
        ready = httpx.get(f"{gw.url}/ready")
        assert ready.json()["code"] == "shutting_down"
        assert httpx.get(f"{gw.url}/health").status_code == 200
        # Then the listener closes while the stream is still going.
        closed = _until(lambda: _refused(gw), 5)
        assert closed - signalled >= 0.9
        assert stream.is_alive(), "the stream ended before the listener closed"

        stream.join(20)
        slow.join(20)
        assert gw.wait(20) == 0, gw.output()
    assert stream.error is None and stream.status == 200
    assert sse_payloads(stream.body) == whole  # every event, nothing cut short
    assert stream.chunks[-1][0] > closed
    assert plain and plain[0].status_code == 200, plain
    assert "Traceback" not in gw.output()


def test_work_past_the_grace_period_is_cut_and_the_process_still_exits_0(
        tmp_path: Path, simulators: dict[str, ProviderSimulator]) -> None:
    openai = simulators["openai"]
    env = gateway_env(simulators) | {"SHUTDOWN_GRACE_PERIOD": "1s"}
    with gateway_process(env, tmp_path) as gw:
        openai.hang()
        outcome: list[object] = []

        def call() -> None:
            try:
                outcome.append(generate(gw.url, "openai", "gpt-4o-mini").status_code)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        _until(lambda: len(openai.requests) == 1, 10)
        gw.signal(signal.SIGTERM)
        started = time.monotonic()
        assert gw.wait(10) == 0, gw.output()
        assert time.monotonic() - started < 5
        caller.join(10)
    assert outcome and outcome[0] != 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_ends_the_drain_delay(
        tmp_path: Path, sig: signal.Signals) -> None:
    with gateway_process({"SHUTDOWN_DRAIN_DELAY": "30s"}, tmp_path) as gw:
        gw.signal(signal.SIGTERM)
        _until(lambda: httpx.get(f"{gw.url}/ready").status_code == 503, 2)
        gw.signal(sig)
        assert gw.wait(10) == 0, gw.output()
