"""A CPU profile of the gateway under load with py-spy, broken down by component.

Each sample's stack is walked from the innermost frame outwards; the first frame that
belongs to a known component gets the sample (so time in libc or CPython internals counts
for the library that called them). Native frames are included (`--native`), so orjson,
pydantic-core, httptools and uvloop show up as themselves.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Innermost match wins; within one frame, the first entry that matches.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("json (orjson, json)", ("orjson", "json/")),
    ("pydantic validation", ("pydantic",)),
    ("logging (access log)", ("logging/", "gateway/telemetry/logs")),
    ("garbage collector", ("gc_collect", "gcmodule")),
    ("httpx + httpcore (with anyio, sniffio)", ("httpx/", "httpcore/", "anyio/", "sniffio/",
                                                "h11/")),
    ("upstream HTTP client (gateway/client.py)", ("gateway/client.py",)),
    ("HTTP server (gateway/http11.py, uvicorn, httptools)", ("gateway/http11.py", "uvicorn/",
                                                             "httptools")),
    ("middleware (gateway's and Starlette's)", ("gateway/middleware/", "gateway/telemetry/",
                                                "starlette/middleware/",
                                                "starlette/_exception_handler")),
    ("dialect translation", ("gateway/dialects/",)),
    ("gateway handlers (routes, chat, upstream, errors)", ("gateway/", "generated/")),
    ("starlette routing, requests, responses", ("starlette/",)),
    # Other asyncio frames (get_running_loop, current_task, locks) count for their caller.
    ("event loop and transports (uvloop)", ("uvloop", "loop.c", "asyncio/runners",
                                            "asyncio/events", "uv_run", "uv__")),
)
OTHER = "other (interpreter, stdlib, kernel)"


@dataclass
class Profile:
    """Samples per component, and the busiest Python functions (self time)."""

    samples: int
    components: list[tuple[str, int]]
    hottest: list[tuple[str, int]] = field(default_factory=list)
    error: str = ""


def component_of(frames: list[str]) -> str:
    """The component a stack's sample belongs to (innermost known frame)."""
    for frame in reversed(frames):
        for label, needles in COMPONENTS:
            if any(needle in frame for needle in needles):
                return label
    return OTHER


def summarise(raw: str, *, top: int = 12) -> Profile:
    """Group py-spy's collapsed stacks (`frame;frame;... count` per line) by component."""
    by_component: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        by_component[component_of(frames)] += count
        python = [f for f in frames if ".py:" in f]
        if python:
            by_function[python[-1]] += count
    return Profile(samples=total, components=by_component.most_common(),
                   hottest=by_function.most_common(top))


def record(py_spy: Path, pid: int, seconds: float, out: Path, *, core: str,
           rate: int = 100) -> subprocess.Popen[bytes]:
    """Start py-spy on `pid` for `seconds` (pinned to `core`); wait on the returned process."""
    argv = ["taskset", "-c", core, str(py_spy), "record", "--pid", str(pid), "--duration",
            str(max(1, round(seconds))), "--rate", str(rate), "--native", "--format", "raw",
            "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def collect(spy: subprocess.Popen[bytes], out: Path, timeout: float) -> Profile:
    """Wait for py-spy and summarise what it wrote (or say why there is nothing)."""
    try:
        _, err = spy.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if not out.exists():
        return Profile(samples=0, components=[],
                       error=err.decode(errors="replace").strip()[-400:] or "no output")
    return summarise(out.read_text(errors="replace"))
