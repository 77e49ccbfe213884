"""`python -m gateway` with SERVER_WORKERS=2: two real worker processes on one port.

Which worker served a connection is read from /proc (the process holding the server side of
that TCP connection), so nothing in the API has to reveal a process id.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.supervisor import restart_delay
from tests.hardening.conftest import sse_payloads
from tests.hardening.process import ROOT, GatewayProcess, gateway_process
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env

TWO = {"SERVER_WORKERS": "2"}
PLAIN = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
STREAM = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"stream":true}'


def _until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {timeout}s: {what}"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def workers_of(parent: int) -> set[int]:
    """The running child processes of `parent`, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                found.add(int(entry))
    return found


def server_pid(conn: http.client.HTTPConnection, port: int, candidates: set[int]) -> int | None:
    """Which of `candidates` holds the gateway's end of `conn`'s TCP connection."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(addr.split(":")[1], 16) for addr in fields[1:3])
        if local == port and remote == client_port and fields[3] == "01":  # established
            inode = fields[9]
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


@contextmanager
def one_connection_per_worker(
        gw: GatewayProcess, workers: set[int], attempts: int = 300,
) -> Iterator[dict[int, http.client.HTTPConnection]]:
    """Open connections (each answering GET /health) until every worker holds one."""
    held: dict[int, http.client.HTTPConnection] = {}
    with ExitStack() as stack:
        for _ in range(attempts):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
            stack.callback(conn.close)
            conn.request("GET", "/health")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b'{"message":"OK"}'
            pid = server_pid(conn, gw.port, workers)
            if pid is not None:
                held.setdefault(pid, conn)
            if set(held) == workers:
                break
        assert set(held) == workers, f"served by {set(held)} of {workers}"
        yield held


def two_workers(gw: GatewayProcess) -> set[int]:
    """The two worker pids, once both are up."""
    _until(lambda: len(workers_of(gw.pid)) == 2, 20, "two workers")
    _until(lambda: gw.output().count("is serving") >= 2, 20, "both workers serving")
    return workers_of(gw.pid)


def test_both_workers_answer_on_the_one_port(
        tmp_path: Path, simulators: dict[str, ProviderSimulator]) -> None:
    with gateway_process(gateway_env(simulators) | TWO, tmp_path) as gw:
        workers = two_workers(gw)
        with one_connection_per_worker(gw, workers) as held:
            for conn in held.values():
                conn.request("POST", "/llms/openai/generate", body=PLAIN)
                response = conn.getresponse()
                assert response.status == 200, response.read()
                assert b'"provider":"openai"' in response.read()
        # The memory state backend is per process, and the operator is told so.
        assert "without REDIS_URL" in gw.output()
        gw.signal(signal.SIGTERM)
        assert gw.wait(20) == 0, gw.output()
    assert not any(_running(pid) for pid in workers)
    assert "Traceback" not in gw.output()


def test_sigterm_to_the_parent_drains_every_worker_then_exits_0(
        tmp_path: Path, simulators: dict[str, ProviderSimulator]) -> None:
    openai = simulators["openai"]
    env = gateway_env(simulators) | TWO | {"SHUTDOWN_GRACE_PERIOD": "20s"}
    with gateway_process(env, tmp_path) as gw:
        workers = two_workers(gw)
        whole = sse_payloads(httpx.post(f"{gw.url}/llms/openai/generate", content=STREAM,
                                        timeout=20).text)
        with one_connection_per_worker(gw, workers) as held:
            openai.chunk_delay = 0.3  # each stream now takes a few seconds
            for conn in held.values():
                conn.request("POST", "/llms/openai/generate", body=STREAM)
            _until(lambda: len(openai.requests) >= 3, 10, "both streams upstream")
            gw.signal(signal.SIGTERM)
            # The streams in flight on both workers still finish whole.
            bodies = [conn.getresponse().read().decode() for conn in held.values()]
        assert gw.wait(30) == 0, gw.output()
    assert [sse_payloads(body) for body in bodies] == [whole, whole]
    assert not any(_running(pid) for pid in workers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gw.url}/health", timeout=2)
    assert "Traceback" not in gw.output()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_every_worker_reports_not_ready_and_a_second_signal_ends_the_drain_delay(
        tmp_path: Path, second: signal.Signals) -> None:
    with gateway_process(TWO | {"SHUTDOWN_DRAIN_DELAY": "30s"}, tmp_path) as gw:
        workers = two_workers(gw)
        with one_connection_per_worker(gw, workers) as held:
            gw.signal(signal.SIGTERM)
            for conn in held.values():
                def draining(conn: http.client.HTTPConnection = conn) -> bool:
                    conn.request("GET", "/ready")
                    response = conn.getresponse()
                    body = response.read()
                    return response.status == 503 and b"shutting_down" in body
                _until(draining, 5, "not ready")
        gw.signal(second)
        assert gw.wait(15) == 0, gw.output()
    assert not any(_running(pid) for pid in workers)


def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(
        tmp_path: Path, simulators: dict[str, ProviderSimulator]) -> None:
    with gateway_process(gateway_env(simulators) | TWO, tmp_path) as gw:
        workers = two_workers(gw)
        victim, survivor = sorted(workers)
        outcomes: list[int | str] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                try:
                    outcomes.append(httpx.get(f"{gw.url}/health", timeout=10).status_code)
                except httpx.HTTPError as exc:  # in flight on the worker as it was killed
                    outcomes.append(type(exc).__name__)

        asker = threading.Thread(target=keep_asking, daemon=True)
        asker.start()
        os.kill(victim, signal.SIGKILL)
        _until(lambda: workers_of(gw.pid) - workers, 20, "a replacement")
        replacement = (workers_of(gw.pid) - workers).pop()
        assert workers_of(gw.pid) == {survivor, replacement}
        _until(lambda: gw.output().count("is serving") >= 3, 20, "the replacement serving")
        with one_connection_per_worker(gw, {survivor, replacement}):
            pass
        stop.set()
        asker.join(10)
        # At most the one request the victim was serving is lost; none waiting is.
        assert len(outcomes) - outcomes.count(200) <= 1, outcomes
        assert outcomes[-1] == 200
        assert "exited unexpectedly" in gw.output()
        gw.signal(signal.SIGTERM)
        assert gw.wait(20) == 0, gw.output()


def test_workers_stop_by_themselves_when_the_parent_is_killed(tmp_path: Path) -> None:
    with gateway_process(TWO, tmp_path) as gw:
        workers = two_workers(gw)
        gw.signal(signal.SIGKILL)
        gw.proc.wait(10)
        _until(lambda: not any(_running(pid) for pid in workers), 20, "workers gone")


def test_a_port_held_by_a_running_gateway_is_refused_before_any_worker_starts(
        tmp_path: Path) -> None:
    with gateway_process(TWO, tmp_path) as gw:
        workers = two_workers(gw)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **TWO, "SERVER_HOST": "127.0.0.1",
               "SERVER_PORT": str(gw.port)}
        second = subprocess.run([sys.executable, "-m", "gateway"], cwd=ROOT, env=env,
                                capture_output=True, timeout=30, check=False)
        assert second.returncode == 3
        assert b"cannot listen" in second.stdout and b"is serving" not in second.stdout
        assert workers_of(gw.pid) == workers
        assert httpx.get(f"{gw.url}/ready").status_code == 200


@pytest.mark.parametrize("value", ["0", "abc", "-1"])
def test_a_bad_worker_count_is_a_configuration_error(value: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SERVER_WORKERS": value,
           "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0"}
    proc = subprocess.run([sys.executable, "-m", "gateway"], cwd=ROOT, env=env,
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.startswith("configuration error") and "SERVER_WORKERS" in err
    assert "Traceback" not in err
    assert proc.stdout == b""  # nothing started, nothing logged


@pytest.mark.parametrize(("short_runs", "delay"), [
    (0, 0.0), (1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0),
])
def test_a_worker_dying_young_again_and_again_is_replaced_ever_more_slowly(
        short_runs: int, delay: float) -> None:
    assert restart_delay(short_runs) == delay


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_workers_keep_to_one_cpu_each_when_allowed_exactly_as_many(tmp_path: Path) -> None:
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    with gateway_process(TWO, tmp_path, cpus=cpus) as gw:
        workers = two_workers(gw)
        allowed = [os.sched_getaffinity(pid) for pid in workers]
        assert [len(each) for each in allowed] == [1, 1] and set().union(*allowed) == cpus
        assert os.sched_getaffinity(gw.pid) == cpus  # the parent only supervises: left as it was
        assert f"one on each of CPUs {', '.join(map(str, sorted(cpus)))}" in gw.output()
        # A replacement keeps to the CPU of the worker it replaces.
        victim = min(workers)
        its_cpu = os.sched_getaffinity(victim)
        os.kill(victim, signal.SIGKILL)
        _until(lambda: workers_of(gw.pid) - workers, 20, "a replacement")
        replacement = (workers_of(gw.pid) - workers).pop()
        assert os.sched_getaffinity(replacement) == its_cpu
        gw.signal(signal.SIGTERM)
        assert gw.wait(20) == 0, gw.output()
    # More workers than CPUs: each may run on any of them.
    with gateway_process({"SERVER_WORKERS": "3"}, tmp_path, cpus=cpus) as gw:
        _until(lambda: len(workers_of(gw.pid)) == 3, 20, "three workers")
        assert all(os.sched_getaffinity(pid) == cpus for pid in workers_of(gw.pid))
        assert "one on each of CPUs" not in gw.output()
