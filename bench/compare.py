"""Node BullMQ beside Conveyor: ``bench/run.py --compare bullmq`` runs the
same measurements through ``bench/bullmq/bench.mjs`` (bullmq and ioredis
pinned in ``bench/bullmq/package.json``, installed with ``npm ci`` on
first use) against the same Redis, each run right after Conveyor's, so
the ratios come from one machine at one time."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "bullmq"


def bullmq_version() -> str:
    """The pinned version, installing the harness's packages first if needed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("--compare bullmq needs Node.js and npm")
    if not (HERE / "node_modules" / "bullmq").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    package = json.loads((HERE / "node_modules" / "bullmq" / "package.json").read_text())
    return str(package["version"])


def bullmq(measure: str, url: str, **options: Any) -> dict[str, Any]:
    """One measurement by Node BullMQ: its JSON answer."""
    done = subprocess.run(
        ["node", str(HERE / "bench.mjs"), measure, url, json.dumps(options)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


class Table:
    """Rows of (measure, Conveyor, BullMQ, ratio, target); the BullMQ
    columns only when comparing."""

    def __init__(self, bullmq_version: str | None) -> None:
        self.bullmq_version = bullmq_version
        self.rows: list[tuple[str, str, str, str, str]] = []
        #: Lines printed under the table (histograms).
        self.notes: list[str] = []

    @property
    def comparing(self) -> bool:
        return self.bullmq_version is not None

    def row(self, name: str, ours: str, theirs: str = "", ratio: str = "", target: str = "") -> None:
        self.rows.append((name, ours, theirs, ratio, target))

    def rates(self, name: str, ours: list[float], theirs: list[float], unit: str, target: str) -> None:
        """Median of the runs, every run listed, and the ratio of medians."""
        mine, other = statistics.median(ours), statistics.median(theirs) if theirs else 0.0
        self.row(
            name,
            f"{mine:,.0f} {unit}",
            f"{other:,.0f} {unit}" if theirs else "",
            f"{mine / other:.2f}x" if theirs else "",
            target,
        )
        self.row("  (all runs)", ", ".join(f"{v:,.0f}" for v in ours), ", ".join(f"{v:,.0f}" for v in theirs))

    def print(self) -> None:
        heads = ("measure", "Conveyor", f"BullMQ {self.bullmq_version}", "ratio", "target")
        cols = [0, 1, 2, 3, 4] if self.comparing else [0, 1, 4]
        widths = {c: max(len(heads[c]), *(len(r[c]) for r in self.rows)) for c in cols}
        line = lambda cells: "  ".join(  # noqa: E731
            cells[c].ljust(widths[c]) if c in (0, 4) else cells[c].rjust(widths[c]) for c in cols
        )
        print(line(heads))
        print("-" * len(line(heads)))
        for r in self.rows:
            print(line(r))
        for note in self.notes:
            print(note)


def summary(samples: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of latencies in arrival order, the first 5%
    (connections warming up) left out."""
    warm = sorted(samples[len(samples) // 20 :])
    cuts = statistics.quantiles(warm, n=100)
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": warm[-1]}


#: Upper bounds (ms) of the latency histogram's bins.
BINS = (0.25, 0.4, 0.5, 0.7, 1.0, 2.0, 5.0, float("inf"))


def histogram(runs: list[list[float]]) -> str:
    """Share of the samples of every run (each without its first 5%) in
    each bin, as ``<=0.25ms 12% | ...``."""
    samples = [x for run in runs for x in run[len(run) // 20 :]]
    counts = [0] * len(BINS)
    for s in samples:
        counts[next(i for i, b in enumerate(BINS) if s <= b)] += 1
    names = [f"<={b:g}ms" if b != float("inf") else f">{BINS[-2]:g}ms" for b in BINS]
    return " | ".join(f"{n} {c / len(samples):.0%}" for n, c in zip(names, counts, strict=True))
