"""Several workers on one port: `python -m gateway` with SERVER_WORKERS above 1.

The parent forks the workers; each runs the same `GatewayServer` a single-process gateway
runs (its own lifespan, `/ready`, drain on SIGTERM) on a listening socket of its own that
the parent bound for it with SO_REUSEPORT, and the kernel spreads new connections over the
workers' sockets by a hash of their addresses.

Why SO_REUSEPORT rather than one socket bound by the parent and shared: with a shared socket
whichever worker is running when connections arrive accepts them, so a worker descheduled at
that moment (two cores, shared with the load) can end up with none of a client's keep-alive
connections for as long as they live; in one of six load runs on a busy two-core machine one
worker took all 64 of wrk's connections. Hashing spreads them whatever the scheduler does.
The parent still does the binding, so a port in use is reported before any worker starts and
`SERVER_PORT=0` gives every worker the same port (a port another process listens on is
refused, even when that one uses SO_REUSEPORT too). It keeps no copy, so a socket dies with
its worker and leaves the port's group at once (connections queued on it but not yet accepted
are reset, as any listener's are when it closes).

Forked rather than spawned (uvicorn's `Multiprocess` spawns, pickling a config our app does
not fit in, and runs a plain `uvicorn.Server`): the app is built once in the parent, so a
configuration error is reported before any worker exists, and the workers share its pages.

When the process may run on exactly as many CPUs as it has workers (taskset, a cpuset,
Kubernetes' static CPU manager), each worker is kept to one of them, the same one for its
replacements; otherwise the workers go where the scheduler puts them. Two workers on two
cores that they share with other busy processes (the bench's wrk and nginx) took 128 µs of
CPU a request kept to one core each, 131 µs left to the scheduler, and served 13,561
against 13,179 requests a second (both side by side, best of five alternating rounds of
4 s, more in 5 of 5; separate bench runs vary by more than that).

The parent only supervises. The first SIGTERM or SIGINT is passed on to every worker as
SIGTERM (each drains as a single gateway would) and the parent exits 0 once all have exited
0; later signals are passed on as they come (a second SIGINT forces the workers out). A
worker that dies on its own is replaced, at once after a long run and with a doubling delay
after short ones. A worker that cannot start before any worker has served stops them all,
with uvicorn's start-up failure status, as a single gateway would exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from gateway.lifecycle import GatewayServer, settle_memory

log = logging.getLogger("gateway")

BACKOFF_BASE = 0.5
"""Seconds before replacing a worker whose predecessor also died young; doubles each time."""
BACKOFF_MAX = 30.0
STABLE_AFTER = 10.0
"""A worker that ran this long had a good run: its replacement starts at once."""
STOP_MARGIN = 10.0
"""Seconds past the drain delay and the grace period before workers still running are killed."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_BLOCKED = {*_STOP_SIGNALS, signal.SIGCHLD}
_PID = struct.Struct("=i")  # what a worker writes to the started pipe


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port_of(host: str, port: int) -> int:
    """`port` (or, for 0, the one picked) once checked that nothing listens on it.

    A plain bind is refused by any listener, also one that would share the port with
    SO_REUSEPORT, such as a gateway already running; the workers' own binds would not be.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` that other workers' sockets may share."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def restart_delay(short_runs: int) -> float:
    """Seconds before replacing a worker whose predecessors in its slot died young this often."""
    if short_runs <= 0:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** min(short_runs - 1, 32))


def worker_cpus(workers: int) -> list[int] | None:
    """The CPU for each worker when this process may run on exactly `workers` CPUs (in
    order: worker positions take them in turn), else None."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        return None
    return allowed if workers > 1 and len(allowed) == workers else None


@dataclass
class _Slot:
    """One worker position: the process filling it now, or when its replacement starts, and
    the CPU every process filling it keeps to (see `worker_cpus`)."""

    cpu: int | None = None
    pid: int | None = None
    started_at: float = 0.0
    short_runs: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs `workers` forked `GatewayServer`s on one port until a stop signal."""

    def __init__(self, config: uvicorn.Config, *, workers: int, drain_delay: float) -> None:
        self.config = config
        self.drain_delay = drain_delay
        cpus = worker_cpus(workers)
        self.slots = [_Slot(cpu) for cpu in cpus] if cpus else [_Slot() for _ in range(workers)]
        self._port = config.port
        self._parent = os.getpid()
        self._received: list[int] = []
        self._stop_deadline: float | None = None
        self._killed = False
        self._served = False
        self._status = 0

    def run(self) -> int:
        """Start every worker, supervise until they have all stopped; the exit status."""
        try:
            self._port = free_port_of(self.config.host, self._port)
            first = reuseport_socket(self.config.host, self._port)
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", self.config.host, self._port, exc)
            return STARTUP_FAILURE
        self._wake_r, self._wake_w = os.pipe()
        self._started_r, self._started_w = os.pipe()
        for fd in (self._wake_r, self._wake_w, self._started_r):
            os.set_blocking(fd, False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _BLOCKED}
        previous_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        settle_memory()  # what the workers inherit stays out of their collections
        pinned = ", ".join(str(slot.cpu) for slot in self.slots if slot.cpu is not None)
        log.info("starting %d workers on port %d%s", len(self.slots), self._port,
                 f", one on each of CPUs {pinned}" if pinned else "")
        try:
            self._spawn(self.slots[0], first)
            for slot in self.slots[1:]:
                self._spawn(slot)
            while self._stop_deadline is None or self._alive():
                self._wait()
                self._handle_signals()
                self._note_started()
                self._reap()
                self._restart_due()
                self._kill_overdue()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (self._wake_r, self._wake_w, self._started_r, self._started_w):
                os.close(fd)
        log.info("all workers stopped")
        return self._status

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGCHLD:  # SIGCHLD only wakes the loop (through the wake-up fd)
            self._received.append(sig)

    def _alive(self) -> list[int]:
        return [slot.pid for slot in self.slots if slot.pid is not None]

    def _wait(self) -> None:
        now = time.monotonic()
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        if self._stop_deadline is not None:
            due.append(self._stop_deadline)
        timeout = min([1.0, *(max(0.0, at - now) for at in due)])
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r, self._started_r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)

    def _handle_signals(self) -> None:
        received, self._received = self._received, []
        for sig in received:
            if self._stop_deadline is None:
                self._stop(f"{signal.Signals(sig).name} received")
            else:
                self._send(sig)

    def _stop(self, why: str, status: int = 0) -> None:
        """Stop for good: no more restarts, and every worker drains."""
        grace = self.config.timeout_graceful_shutdown or 0
        self._stop_deadline = time.monotonic() + self.drain_delay + grace + STOP_MARGIN
        self._status = self._status or status
        log.info("%s: stopping %d workers", why, len(self._alive()))
        for slot in self.slots:
            slot.restart_at = None
        self._send(signal.SIGTERM)

    def _send(self, sig: int) -> None:
        for pid in self._alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _note_started(self) -> None:
        try:
            data = os.read(self._started_r, 4096)
        except BlockingIOError:
            return
        for (pid,) in _PID.iter_unpack(data[: len(data) - len(data) % _PID.size]):
            self._served = True
            log.info("worker %d is serving", pid, extra={"worker_pid": pid})

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                slot.pid = None
                self._exited(slot, pid, os.waitstatus_to_exitcode(status))

    def _exited(self, slot: _Slot, pid: int, code: int) -> None:
        if self._stop_deadline is not None:
            if code != 0:
                log.warning("worker %d exited with status %d while stopping", pid, code,
                            extra={"worker_pid": pid})
                self._status = self._status or 1
            return
        if code == STARTUP_FAILURE and not self._served:
            log.error("worker %d failed to start", pid, extra={"worker_pid": pid})
            self._stop("a worker failed to start", status=STARTUP_FAILURE)
            return
        if time.monotonic() - slot.started_at >= STABLE_AFTER:
            slot.short_runs = 0
        delay = self._later(slot)
        log.warning("worker %d exited unexpectedly (status %d); replacing it in %gs", pid, code,
                    delay, extra={"worker_pid": pid})

    def _later(self, slot: _Slot) -> float:
        """Schedule the slot's next worker after its back-off; the delay."""
        delay = restart_delay(slot.short_runs)
        slot.short_runs += 1
        slot.restart_at = time.monotonic() + delay
        return delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if self._stop_deadline is None and slot.restart_at is not None \
                    and slot.restart_at <= now:
                self._spawn(slot)

    def _kill_overdue(self) -> None:
        if self._stop_deadline is None or self._killed or time.monotonic() < self._stop_deadline:
            return
        self._killed = True
        log.error("workers %s still running past the shutdown grace period: killing them",
                  self._alive())
        self._send(signal.SIGKILL)
        self._status = self._status or 1

    def _spawn(self, slot: _Slot, sock: socket.socket | None = None) -> None:
        """Fork a worker into `slot`, on `sock` or a socket bound for it now."""
        if sock is None:
            try:
                sock = reuseport_socket(self.config.host, self._port)
            except OSError as exc:
                log.error("cannot listen on %s:%s for a worker: %s; retrying in %gs",
                          self.config.host, self._port, exc, self._later(slot))
                return
        # Blocked across the fork, so a stop signal reaches the worker's own handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        try:
            pid = os.fork()
            if pid == 0:
                self._serve_in_worker(sock, slot.cpu)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
            sock.close()  # the worker's alone: it leaves the port's group when the worker dies
        slot.pid, slot.started_at, slot.restart_at = pid, time.monotonic(), None

    def _serve_in_worker(self, sock: socket.socket, cpu: int | None) -> NoReturn:
        """The forked child: serve like a single gateway on `sock` (kept to `cpu` when
        given), then exit."""
        code = 1
        try:
            if cpu is not None:
                try:
                    os.sched_setaffinity(0, {cpu})
                except OSError as exc:  # the CPU was taken away meanwhile: run anywhere
                    log.warning("worker %d cannot keep to CPU %d: %s", os.getpid(), cpu, exc)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (self._wake_r, self._wake_w, self._started_r):
                os.close(fd)
            server = GatewayServer(self.config, drain_delay=self.drain_delay,
                                   on_started=self._tell_started, parent_pid=self._parent)
            for sig in _STOP_SIGNALS:
                signal.signal(sig, server.handle_exit)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
            server.run(sockets=[sock])
            code = 0
        except SystemExit as exc:  # uvicorn's start-up failure exits this way
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d crashed", os.getpid())
        finally:
            with contextlib.suppress(Exception):
                logging.shutdown()  # held access-log lines are written before the exit
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def _tell_started(self) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            os.write(self._started_w, _PID.pack(os.getpid()))

