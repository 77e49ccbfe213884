"""The PNG chart: RPS and p50 latency by concurrency, one line per target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def series(results: dict[str, Any]) -> list[tuple[str, list[int], list[float], list[float]]]:
    """(label, concurrencies, RPS, p50 ms) for the direct baseline and every measured row."""
    sources = [("mock (direct)", results.get("direct") or {}),
               *(results.get("rows") or {}).items()]
    out = []
    for label, row in sources:
        sweep = row.get("sweep") if isinstance(row, dict) else None
        if not sweep:
            continue
        levels = sorted(int(c) for c in sweep)
        out.append((label, levels, [sweep[str(c)]["rps"] for c in levels],
                    [sweep[str(c)]["p50_ms"] for c in levels]))
    return out


def draw(results: dict[str, Any], path: Path) -> None:
    """Write the chart to `path`."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    every_level: set[int] = set()
    for label, levels, rps, p50 in series(results):
        every_level.update(levels)
        style = "--" if label.startswith("mock") else "-"
        left.plot(levels, rps, style, marker="o", label=label)
        right.plot(levels, p50, style, marker="o", label=label)
    for axis, title, unit in ((left, "Throughput (non-stream)", "requests/s"),
                              (right, "Median latency (non-stream)", "p50 ms")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted(every_level), [str(c) for c in sorted(every_level)])
        axis.set_yscale("log")
        axis.set_xlabel("concurrent connections")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize="small")
    fig.suptitle(f"One worker on one core ({results['machine']['cpu']}), "
                 f"{results['plan']} plan, {results['started']}")
    fig.tight_layout(rect=(0, 0.14, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
