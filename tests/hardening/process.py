"""`python -m gateway` as a real process, its output captured to a file for later reading.

Output goes to a file, not a pipe: a long run logs a line per request, and a full pipe would
block the gateway on its own logging.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProcess:
    """A running gateway process: its URL, process handle and captured output."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id, for /proc readings and signals."""
        return self.proc.pid

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the process."""
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit status, waiting at most `timeout` seconds (then the process is killed)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the gateway did not exit in {timeout}s:\n{self.output()}")


@contextmanager
def gateway_process(env: Mapping[str, str], tmp_path: Path, startup_timeout: float = 20,
                    cpus: set[int] | None = None) -> Iterator[GatewayProcess]:
    """Start `python -m gateway` with `env` (no inherited *_API_KEY), allowed on `cpus`
    when given, and wait for /ready."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env |= {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), **env,
                 "PYTHONPATH": str(ROOT)}
    log_path = tmp_path / f"gateway-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=full_env,
                                stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=(lambda: os.sched_setaffinity(0, cpus))
                                if cpus else None)
    running = GatewayProcess(url=f"http://127.0.0.1:{port}", port=port, proc=proc,
                             log_path=log_path)
    try:
        _wait_ready(running, startup_timeout)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(gw: GatewayProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{gw.url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if gw.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the gateway did not start:\n{gw.output()}")
        time.sleep(0.05)
