"""How the kernel splits wrk's connections between two workers, and what each split serves.

`python -m bench.split [RUNS]` starts the nginx mock, `python -m gateway` with
`SERVER_WORKERS=2` allowed on both cores and the same with one worker on core 0, as
`make bench` does for its workers' comparison, then runs wrk at 64 concurrent against one
worker and two in turn, RUNS times (3 s each; default 12). Every run opens new connections,
which SO_REUSEPORT hands to the workers by a hash of their addresses, so every run of the two
splits them anew. For each round it prints a JSON line: how many connections the worker on
core 0 (which has its core alone) and the other worker (sharing core 1 with wrk and nginx)
held a second into the run, the two workers' RPS and the one worker's; then one line with
the rounds sorted by the first count.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path

from bench.load import Request, run_wrk
from bench.mock import start_mock
from bench.procs import GATEWAY_CORE, connections_held, tree_pids
from bench.run import route_url, start_workers
from bench.targets import GATEWAY

SECONDS = 3.0
PROBE_AFTER_S = 1.0  # into a run: every connection is open by then


def _count_into(seen: dict[int, int], pids: list[int], port: int) -> None:
    seen.update(connections_held(pids, port))


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-split-") as name:
        work = Path(name)
        work.chmod(0o755)  # nginx's worker (another user) reads the stream file under it
        mock = start_mock(work, work)
        started = [mock.proc]
        try:
            one_port, one = start_workers(1, mock.json_url, work)
            started.append(one)
            port, two = start_workers(2, mock.json_url, work)
            started.append(two)
            _rounds(runs, one_port, port, [pid for pid in tree_pids(two.pid) if pid != two.pid])
        finally:
            for proc in reversed(started):
                proc.stop()


def _rounds(runs: int, one_port: int, port: int, workers: list[int]) -> None:
    alone = next(pid for pid in workers
                 if os.sched_getaffinity(pid) == {int(GATEWAY_CORE)})
    route = GATEWAY.routes[0]
    single = Request(route_url(one_port, route), route.payload(stream=False))
    request = Request(route_url(port, route), route.payload(stream=False))
    for warm in (single, request):
        run_wrk(warm, concurrency=64, seconds=2)
    rows: list[tuple[int, int, float, float]] = []
    for _ in range(runs):
        one_rps = run_wrk(single, concurrency=64, seconds=SECONDS).rps
        seen: dict[int, int] = {}
        probe = threading.Timer(PROBE_AFTER_S, _count_into, (seen, workers, port))
        probe.start()
        result = run_wrk(request, concurrency=64, seconds=SECONDS)
        probe.join()
        on_alone = seen.get(alone, 0)
        others = sum(seen.values()) - on_alone
        rows.append((on_alone, others, result.rps, one_rps))
        print(json.dumps({"core_0_worker": on_alone, "other_worker": others,
                          "rps": round(result.rps), "one_worker_rps": round(one_rps)}),
              flush=True)
    print(json.dumps({"by_split": [[a, b, round(rps), round(one_rps)]
                                   for a, b, rps, one_rps in sorted(rows)]}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
