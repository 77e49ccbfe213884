"""Processes under test: start them pinned to a core, wait until they answer, measure, stop.

Only processes this harness started are ever signalled, by their own process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
GATEWAY_CORE = "0"
LOAD_CORE = "1"
_ESTABLISHED = "01"  # /proc/net/tcp's state column


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small, reproducible environment: nothing from the caller's shell leaks into targets."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TERM") if key in os.environ}
    env.update(extra or {})
    return env


@dataclass
class Proc:
    """A started process (the leader of its own process group) and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The leader's process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the leader still runs."""
        return self.popen.poll() is None

    def tail(self, limit: int = 2000) -> str:
        """The end of its output, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group, then SIGKILL it if it has not exited within `grace` seconds."""
        if self.popen.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
        # Children that outlived the leader (workers) still belong to its group.
        _signal_group(self.pid, signal.SIGKILL)
        _trim_log(self.log)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _trim_log(path: Path, keep: int = 64 * 1024) -> None:
    """Keep only the end of a log: access logs under load would otherwise fill the disk."""
    try:
        size = path.stat().st_size
        if size > keep:
            with path.open("rb") as fh:
                fh.seek(size - keep)
                tail = fh.read()
            path.write_bytes(b"[... trimmed ...]\n" + tail)
    except OSError:
        pass


def start(name: str, argv: Sequence[str], *, core: str, env: Mapping[str, str],
          log_dir: Path, cwd: Path | None = None) -> Proc:
    """Start `argv` pinned to `core` with taskset, in its own process group."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(["taskset", "-c", core, *argv], env=dict(env), stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd=cwd)
    return Proc(name=name, popen=popen, log=log)


def wait_ready(proc: Proc, url: str, *, body: bytes | None, headers: Mapping[str, str],
               timeout: float) -> None:
    """Poll `url` (POST `body` when given) until it answers 200, or raise with the log's tail."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
            try:
                if body is None:
                    response = client.get(url, headers=dict(headers))
                else:
                    response = client.post(url, content=body, headers=dict(headers))
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.25)
    raise RuntimeError(f"{proc.name} not ready after {timeout:.0f}s ({last}): {proc.tail()}")


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_mb(root: int) -> float:
    """Resident memory of the process tree in MB (VmRSS summed; shared pages count per process)."""
    total = 0
    for pid in tree_pids(root):
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * PAGE_BYTES
    return total / 1e6


def cpu_seconds(root: int) -> float:
    """User plus system CPU time of the process tree so far (threads included)."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def connections_held(pids: Iterable[int], port: int) -> dict[int, int]:
    """How many established TCP connections on local `port` (IPv4) each process holds."""
    inodes: set[str] = set()
    with open("/proc/net/tcp") as table:
        next(table)  # the column names
        for line in table:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == _ESTABLISHED:
                inodes.add(fields[9])
    counts: dict[int, int] = {}
    for pid in pids:
        count = 0
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                count += 1
        counts[pid] = count
    return counts
