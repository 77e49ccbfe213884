"""The CPython the bench runs its Python targets on: the fastest 3.11 build on the machine.

CPython builds differ in speed by a fifth or more: a plain source build with a shared
libpython (what version managers build by default) is that much slower than a PGO + LTO
build (distribution packages; the official images `deploy/Dockerfile` starts from). The
gateway, the plain-Starlette floors and LiteLLM all run on the one chosen here, so the
ratios between them stay fair, and the figures are those of an interpreter built as one is
deployed. Candidates are the `python3.11` and `python3` executables in the directories of
PATH (and the interpreter running this) that can make a venv; each runs the same pure-Python
workload, and the fastest wins.

`python -m bench.interpreter` prints the chosen executable; `--report` prints every build
and its time as JSON, fastest first (the report's setup section quotes it); `--base` prints
the real executable of the interpreter running it (a venv's base): is a venv current?
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VERSION = (3, 11)  # the version requirements.lock is resolved for

# A few milliseconds of what a gateway does in pure Python: JSON, dicts, strings, small
# objects, generators and coroutines. Prints the best of several runs, in seconds.
_WORKLOAD = r"""
import asyncio, json, sys, time
if sys.version_info[:2] != VERSION:
    raise SystemExit("wrong version")
import ensurepip, venv  # a venv with pip can be made from it
BODY = json.dumps({"model": "m", "max_tokens": 64, "stream": True, "messages": [
    {"role": "user", "content": "Say hello to the benchmark, please, in a few words."}] * 4})
class Event:
    __slots__ = ("kind", "text")
    def __init__(self, kind, text):
        self.kind, self.text = kind, text
def events(body):
    for message in body["messages"]:
        for word in message["content"].split():
            yield Event("text", word.upper())
async def step(body):
    await asyncio.sleep(0)
    return "".join([f"data: {json.dumps({'t': e.text})}\n\n" for e in events(body)])
async def main():
    best = 1e9
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(150):
            body = json.loads(BODY)
            body["extra"] = {k: v for k, v in body.items() if k != "messages"}
            await step(body)
        best = min(best, time.perf_counter() - start)
    print(sys.executable, best)
asyncio.run(main())
""".replace("VERSION", repr(VERSION))


def candidates() -> list[str]:
    """Executables that may be CPython 3.11: on PATH, and the one running this."""
    found = [sys.executable, getattr(sys, "_base_executable", sys.executable)]
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        for name in ("python3.11", "python3"):
            path = Path(folder or ".") / name
            if path.is_file() and os.access(path, os.X_OK):
                found.append(str(path))
    return list(dict.fromkeys(found))


def timings() -> dict[str, float]:
    """Each usable interpreter's real executable and its best workload time (seconds)."""
    out: dict[str, float] = {}
    for path in candidates():
        try:
            done = subprocess.run([path, "-I", "-c", _WORKLOAD], capture_output=True,
                                  text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode != 0:
            continue
        executable, _, seconds = done.stdout.strip().rpartition(" ")
        real = os.path.realpath(executable)
        out[real] = min(out.get(real, float("inf")), float(seconds))
    return out


def describe(path: str) -> str:
    """`CPython 3.11.2, libpython linked in` (or `shared`): a build, without its path."""
    done = subprocess.run([path, "-I", "-c", "import platform; print(platform.python_version())"
                           "; print(any('libpython' in line for line in open('/proc/self/maps')))"],
                          capture_output=True, text=True, timeout=60)
    version, shared = [*done.stdout.split(), "?", "?"][:2]
    return f"CPython {version}, libpython {'shared' if shared == 'True' else 'linked in'}"


def survey(found: dict[str, float] | None = None) -> list[dict[str, object]]:
    """Every usable build (of `found`, else timed now), fastest first: its description and
    workload time (ms)."""
    found = timings() if found is None else found
    return [{"build": describe(path), "workload_ms": round(1000 * seconds, 2)}
            for path, seconds in sorted(found.items(), key=lambda item: item[1])]


def base_of(python: str) -> str:
    """The real executable `python` (a venv's, or a plain one) runs on."""
    done = subprocess.run([python, "-I", "-c", "import os, sys; "
                           "print(os.path.realpath(sys._base_executable))"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


def main(argv: list[str]) -> int:
    if "--base" in argv:  # the real executable this interpreter (or venv) runs on
        print(base_of(sys.executable))
        return 0
    found = timings()
    if not found:
        print(f"no CPython {VERSION[0]}.{VERSION[1]} that can make a venv", file=sys.stderr)
        return 1
    if "--report" in argv:
        print(json.dumps(survey(found)))
    else:
        print(min(found, key=found.__getitem__))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
