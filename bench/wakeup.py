"""What waking the other core costs on this machine: a floor under latency at 1 concurrent.

`python -m bench.wakeup` bounces one byte between two processes over a socket pair, first
with both on the load core, then with one on each core, and prints the median round trip of
each as JSON. A request through a target at 1 concurrent crosses cores four times (wrk, the
target, the mock, the target, wrk) where the direct run crosses none, and on a virtual
machine whose idle cores halt, every crossing waits for a core to wake: that time is the
machine's, whatever the target does. `idling` says how the idle cores wait (the report
prints it beside the round trips).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.procs import GATEWAY_CORE, LOAD_CORE
from bench.targets import ROOT

ROUND_TRIPS = 5_000
WARM_UP = 500
BUDGET_S = 5.0  # per placement: a slow machine gives fewer round trips, never a longer run
CPUIDLE = Path("/sys/devices/system/cpu/cpuidle")
# How long a virtual machine's core polls for work before it halts (the haltpoll driver's
# governor; the kernel's default is 200,000 ns).
HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def _bounce(here: int, there: int) -> float:
    """The median round trip in microseconds, this process on `here`, its child on `there`."""
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child echoes until the parent closes its end
        try:
            mine.close()
            os.sched_setaffinity(0, {there})
            while data := theirs.recv(64):
                theirs.send(data)
        finally:
            os._exit(0)
    theirs.close()
    try:
        os.sched_setaffinity(0, {here})
        for _ in range(WARM_UP):
            mine.send(b"x")
            mine.recv(64)
        times: list[int] = []
        deadline = time.monotonic() + BUDGET_S
        while len(times) < ROUND_TRIPS and time.monotonic() < deadline:
            start = time.perf_counter_ns()
            mine.send(b"x")
            mine.recv(64)
            times.append(time.perf_counter_ns() - start)
    finally:
        mine.close()
        os.waitpid(pid, 0)
    times.sort()
    return times[len(times) // 2] / 1000


def idling(cpuidle: Path = CPUIDLE, halt_poll: Path = HALT_POLL) -> dict[str, str | int]:
    """The cpuidle driver and governor, and when the governor is haltpoll its longest poll in
    ns (its parameter exists wherever the governor is built, used or not); each only where
    the kernel shows it."""
    found: dict[str, str | int] = {}
    for key, name in (("driver", "current_driver"), ("governor", "current_governor_ro")):
        try:
            found[key] = (cpuidle / name).read_text().strip()
        except OSError:
            pass
    if found.get("governor") == "haltpoll":
        try:
            found["halt_poll_ns"] = int(halt_poll.read_text())
        except (OSError, ValueError):
            pass
    return found


def measure() -> dict[str, float]:
    """Both placements, from a child process (whose cores it sets itself)."""
    done = subprocess.run([sys.executable, "-m", "bench.wakeup"], capture_output=True,
                          text=True, timeout=4 * BUDGET_S + 30, check=True, cwd=ROOT)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    load, gateway = int(LOAD_CORE), int(GATEWAY_CORE)
    print(json.dumps({"same_core_us": round(_bounce(load, load), 1),
                      "cross_core_us": round(_bounce(gateway, load), 1)}))


if __name__ == "__main__":
    main()
