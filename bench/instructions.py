"""Instructions per request under callgrind: a cost measure that other load cannot disturb.

`python -m bench.instructions [--stream] [--floor] PATH MODEL [COUNT]` starts the nginx mock
and the gateway (or the Starlette + aiohttp floor) under `valgrind --tool=callgrind`, warms
it up, zeroes the counters, sends COUNT requests (8 at a time), dumps the counters and
prints the user-space instructions per request. The same code, inputs and environment give
the same count to within about 0.1 %, whatever else the machine is doing, so two versions
can be compared on a busy machine where RPS and CPU time swing by 30 %. It does not count
the kernel's work (system calls), and valgrind runs the target about 50 times slower:
compare versions with it, and quote `make bench` for speed.

Run it with the bench's Python (it needs aiohttp): `make bench-tools` first, then
`bench/.peers/venv/bin/python -m bench.instructions /v1/chat/completions openai/bench-model`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.mock import MODEL, start_mock
from bench.procs import free_port
from bench.targets import BENCH_PYTHON, GATEWAY_PYTHON, ROOT, gateway_env, telemetry_env

WARM_UP = 300
CONCURRENCY = 8
START_TIMEOUT_S = 240.0


def total_instructions(dump: Path) -> int:
    """The instruction count of one callgrind dump (its `summary:` line)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise ValueError(f"{dump} has no summary line")


async def _send(url: str, body: bytes, count: int) -> None:
    """`count` POSTs of `body`, CONCURRENCY at a time; every answer must be 200."""
    import aiohttp  # the bench's environment has it; the project's does not

    left = count
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, data=body,
                                        headers={"content-type": "application/json"}) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"HTTP {answer.status}: {await answer.text()}")
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _wait_up(url: str, body: bytes, proc: subprocess.Popen[bytes]) -> None:
    import aiohttp

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the target exited while starting")
        try:
            await _send(url, body, 1)
            return
        except (aiohttp.ClientError, RuntimeError):
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the target did not answer within {START_TIMEOUT_S:.0f}s")


def measure(path: str, model: str, count: int, *, stream: bool, floor: bool,
            telemetry: bool = False, keep: Path | None = None) -> tuple[float, float]:
    """Instructions per request of `count` requests to `path` (see the module doc): on every
    thread, and on the main one (the event loop's)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (Debian package valgrind)")
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    work.chmod(0o755)  # nginx's worker (another user) reads the stream file under it
    try:
        mock = start_mock(work, work)
        port = free_port()
        upstream = mock.sse_url if stream else mock.json_url
        if floor:
            argv = [str(BENCH_PYTHON), "-m", "bench.floors", "aiohttp", str(port), upstream]
        else:
            argv = [str(GATEWAY_PYTHON), "-m", "gateway"]
        out = work / "callgrind.out"
        # Telemetry as the bench's telemetry run has it: traces and metrics sent to the mock.
        extra = telemetry_env(mock.json_url) if telemetry else {}
        with (work / "target.log").open("wb") as log:
            proc = subprocess.Popen(
                [valgrind, "--tool=callgrind", "--separate-threads=yes",
                 f"--callgrind-out-file={out}", *argv],
                env=gateway_env(upstream, port, extra), cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            body = json.dumps({"model": model, "stream": stream, "max_tokens": 64,
                               "messages": [{"role": "user", "content": "Say hello."}]}).encode()
            url = f"http://127.0.0.1:{port}{path}"
            asyncio.run(_wait_up(url, body, proc))
            asyncio.run(_send(url, body, WARM_UP))
            subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True,
                           capture_output=True, timeout=60)
            asyncio.run(_send(url, body, count))
            subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True,
                           capture_output=True, timeout=120)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
            mock.proc.stop()
        # One dump per thread: callgrind.out.1-01 is the main thread's.
        dumps = sorted(work.glob("callgrind.out.1-*"))
        if not dumps:
            raise RuntimeError("callgrind wrote no dump")
        counts = [total_instructions(dump) for dump in dumps]
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for dump in dumps:
                shutil.copy(dump, keep / dump.name)
        return sum(counts) / count, counts[0] / count
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Print the instructions per request of the given route."""
    parser = argparse.ArgumentParser(prog="python -m bench.instructions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default="/v1/chat/completions")
    parser.add_argument("model", nargs="?", default=f"openai/{MODEL}")
    parser.add_argument("count", nargs="?", type=int, default=500)
    parser.add_argument("--stream", action="store_true", help="streamed requests")
    parser.add_argument("--floor", action="store_true",
                        help="the Starlette + aiohttp floor instead of the gateway")
    parser.add_argument("--telemetry", action="store_true",
                        help="the gateway with telemetry on, exporting OTLP to the mock (the "
                             "exporters' threads run on timers, and valgrind's slowness gives "
                             "their work more weight per request than it has at full speed: "
                             "read the event loop thread's figure)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="copy callgrind's dumps (one a thread) to DIR, for callgrind_annotate")
    args = parser.parse_args(argv)
    every, main_thread = measure(args.path, args.model, args.count, stream=args.stream,
                                 floor=args.floor, telemetry=args.telemetry, keep=args.keep)
    what = "floor" if args.floor else "gateway with telemetry" if args.telemetry else "gateway"
    print(f"{what} {args.path} {'stream' if args.stream else 'whole'}: "
          f"{every:,.0f} instructions per request ({args.count} requests), "
          f"{main_thread:,.0f} of them on the event loop's thread")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
