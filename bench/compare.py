"""Interleaved A/B runs: the gateway at a git revision against the working tree and the floor.

`python -m bench.compare [--rev REV] [--stream] [--concurrency N] [--rounds R] [--seconds S]
[--copies C] [--telemetry]` (`make compare REV=...`) checks REV out into a temporary git
worktree, starts its gateway, the working tree's gateway and the Starlette + aiohttp floor
side by side (each pinned to the gateway core, all against one nginx mock; each as `C`
processes alike, 2 by default), then runs wrk against each in turn, round after round, and
prints every run and the medians. With `--telemetry` both gateways
export traces and metrics to the mock, and the working tree runs once more with telemetry
off: what telemetry costs, measured in the same rounds.

Why: on a shared machine requests per second swing by 30 % from one minute to the next, so
two `make bench` runs taken apart cannot show a 5 % change. Rounds taken seconds apart, in
turn, see the same conditions; a change that wins most rounds is real. The working tree is
served from the checkout, REV from its worktree (`python -m gateway` imports the package
of its working directory first); both use this checkout's `.venv`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import Request, run_wrk
from bench.mock import STREAM_CHUNKS, start_mock
from bench.procs import Proc, free_port, wait_ready
from bench.targets import FLOORS, GATEWAY, ROOT, launch_gateway, telemetry_env

ROUTE = next(route for route in GATEWAY.routes if route.path == "/v1/chat/completions")
FLOOR = next(target for target in FLOORS if target.key == "floor-aiohttp")
WARM_UP_S = 1.5
START_TIMEOUT_S = 60.0


@dataclass
class Contender:
    """One setting in the comparison, its servers (`--copies` processes alike) and what each
    run measured, in the order of the runs."""

    name: str
    servers: list[tuple[Proc, Request]] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)


def summary(contenders: list[Contender]) -> list[str]:
    """One line per contender: medians, and the share of rounds it beat the first one in."""
    base = contenders[0]
    lines = []
    for one in contenders:
        line = (f"{one.name:>10}  median {statistics.median(one.rps):8,.0f} RPS  "
                f"{statistics.median(one.cpu_us):6,.0f} µs CPU/request  "
                f"p50 {statistics.median(one.p50_ms):7.3f} ms")
        if one is not base:
            wins = sum(a > b for a, b in zip(one.rps, base.rps, strict=True))
            ratio = statistics.median(one.rps) / statistics.median(base.rps)
            line += f"  {ratio:5.2f}x {base.name}, more RPS in {wins}/{len(one.rps)} runs"
        lines.append(line)
    return lines


def _worktree(rev: str, where: Path) -> Path:
    path = where / "rev"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev],
                   check=True)
    return path


def paired_ratio(out: Mapping[str, Mapping[str, Any]], top: str, bottom: str) -> float | None:
    """The median over rounds of `top`'s RPS (`out[top]["rounds"]`) over `bottom`'s in the
    same round (used by `make bench`).

    For two contenders on the same core: the two runs of a round are seconds apart and see
    the same machine, so their ratio is steadier than the ratio of each one's best run,
    which two unlucky rounds for one side can move by ten points on a shared machine."""
    pairs = [a / b for a, b in zip(out[top]["rounds"], out[bottom]["rounds"], strict=True)
             if a and b]
    return statistics.median(pairs) if pairs else None


def main(argv: list[str]) -> int:
    """Compare and print (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD", help="the git revision to compare against")
    parser.add_argument("--stream", action="store_true", help="streamed requests")
    parser.add_argument("--concurrency", type=int, help="default 64, or 16 with --stream")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument("--copies", type=int, default=2,
                        help="processes per contender, run in turn in every round: one Python "
                             "process runs the same code a few per cent faster or slower than "
                             "another")
    parser.add_argument("--telemetry", action="store_true",
                        help="both gateways export traces and metrics to the mock; the working "
                             "tree also runs without (as `worktree-off`)")
    args = parser.parse_args(argv)
    concurrency = args.concurrency or (16 if args.stream else 64)
    payload = ROUTE.payload(stream=args.stream)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as temp:
        work = Path(temp)
        work.chmod(0o755)  # nginx's worker (another user) reads the stream file under it
        tree = _worktree(args.rev, work)
        mock = start_mock(work, work)
        upstream = mock.sse_url if args.stream else mock.json_url
        telemetry = telemetry_env(mock.json_url) if args.telemetry else {}
        runs: list[tuple[str, Path | None, dict[str, str]]] = [
            (args.rev, tree, telemetry), ("worktree", ROOT, telemetry), ("floor", None, {})]
        if args.telemetry:
            runs.insert(2, ("worktree-off", ROOT, {}))
        contenders = [Contender(name) for name, _, _ in runs]
        try:
            for copy in range(max(1, args.copies)):
                for one, (_, source, extra) in zip(contenders, runs, strict=True):
                    port = free_port()
                    logs = work / f"logs-{one.name}-{copy + 1}"
                    logs.mkdir()
                    proc = (FLOOR.launch(upstream, port, logs, {}) if source is None else
                            launch_gateway(upstream, port, logs, extra, source=source))
                    request = Request(f"http://127.0.0.1:{port}{ROUTE.path}", payload, {})
                    one.servers.append((proc, request))
                    wait_ready(proc, request.url, body=payload, headers={},
                               timeout=START_TIMEOUT_S)
            for one in contenders:
                for _, request in one.servers:
                    run_wrk(request, concurrency=concurrency, seconds=WARM_UP_S)
            for round_no in range(1, args.rounds + 1):
                for copy in range(len(contenders[0].servers)):
                    for one in contenders:
                        proc, request = one.servers[copy]
                        result = run_wrk(request, concurrency=concurrency,
                                         seconds=args.seconds, cpu_of=proc.pid,
                                         stream_chunks=STREAM_CHUNKS if args.stream else None)
                        one.rps.append(result.rps)
                        one.cpu_us.append(result.cpu_us_per_request or 0.0)
                        one.p50_ms.append(result.p50_ms)
                        print(f"round {round_no}: {one.name:>10} #{copy + 1} "
                              f"{result.rps:8,.0f} RPS  "
                              f"{result.cpu_us_per_request or 0:6,.0f} µs CPU/request  "
                              f"p50 {result.p50_ms:7.3f} ms  errors {result.errors}",
                              flush=True)
        finally:
            for one in contenders:
                for proc, _ in one.servers:
                    proc.stop()
            mock.proc.stop()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)
    kind = f"streams, {concurrency} concurrent" if args.stream else f"{concurrency} concurrent"
    if args.telemetry:
        kind += ", telemetry on (off for worktree-off)"
    print(f"\n{ROUTE.path}, {kind}, {args.rounds} rounds of {args.seconds:g}s runs, "
          f"{len(contenders[0].servers)} processes each:")
    print("\n".join(summary(contenders)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
