"""Peers beside Conveyor: ``bench/run.py --compare bullmq,huey`` runs the
same measurements through each peer's harness against the same Redis,
each run right after Conveyor's, so the ratios come from one machine at
one time.

- Node BullMQ: ``bench/bullmq/bench.mjs`` (bullmq and ioredis pinned in
  ``bench/bullmq/package.json``, installed with ``npm ci`` on first use);
  drain, one-by-one and bulk adds, latency, memory.
- huey: ``bench/huey/bench.py`` (huey pinned in
  ``bench/huey/requirements.txt``, installed into ``bench/huey/lib`` with
  pip on first use); one-by-one adds and latency, the two measures where
  a synchronous queue is Conveyor's closest rival.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).parent
PIP = (sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade")


@dataclass(frozen=True)
class Peer:
    """One peer engine: its name, pinned version, the measures its harness
    runs, and the command that runs one."""

    name: str
    version: str
    measures: frozenset[str]
    command: tuple[str, ...]
    env: Mapping[str, str]

    def run(self, measure: str, url: str, **options: Any) -> dict[str, Any]:
        """One measurement: the harness's JSON answer."""
        done = subprocess.run(
            [*self.command, measure, url, json.dumps(options)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **self.env},
        )
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer


def bullmq() -> Peer:
    """Node BullMQ, installing the harness's packages first if needed."""
    here = BENCH / "bullmq"
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("--compare bullmq needs Node.js and npm")
    if not (here / "node_modules" / "bullmq").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=here, check=True)
    package = json.loads((here / "node_modules" / "bullmq" / "package.json").read_text())
    measures = frozenset({"drain", "single", "bulk", "latency", "memory"})
    return Peer("BullMQ", str(package["version"]), measures, ("node", str(here / "bench.mjs")), {})


def huey() -> Peer:
    """huey, installed into ``bench/huey/lib`` first if needed; it runs on
    this interpreter, beside the redis-py Conveyor uses."""
    here = BENCH / "huey"
    lib = here / "lib"
    pinned = (here / "requirements.txt").read_text().split("==")[1].strip()
    if not list(lib.glob(f"huey-{pinned}.dist-info")):
        subprocess.run(
            [*PIP, "--target", str(lib), "-r", str(here / "requirements.txt")],
            check=True,
        )
    command = (sys.executable, str(here / "bench.py"))
    return Peer("huey", pinned, frozenset({"single", "latency"}), command, {"PYTHONPATH": str(lib)})


PEERS = {"bullmq": bullmq, "huey": huey}


class Table:
    """Rows of the measure, Conveyor's figure, each peer's figure and
    ratio, and the target; peer columns only for the peers compared."""

    def __init__(self, peers: list[Peer]) -> None:
        self.peers = peers
        self.rows: list[tuple[str, str, dict[str, tuple[str, str]], str]] = []
        #: Lines printed under the table (histograms).
        self.notes: list[str] = []

    def peers_for(self, measure: str) -> list[Peer]:
        return [p for p in self.peers if measure in p.measures]

    def row(
        self, name: str, ours: str, theirs: Mapping[str, tuple[str, str]] | None = None, target: str = ""
    ) -> None:
        """``theirs`` maps a peer's name to its figure and the ratio."""
        self.rows.append((name, ours, dict(theirs or {}), target))

    def rates(
        self, name: str, ours: list[float], theirs: Mapping[str, list[float]], unit: str, target: str
    ) -> None:
        """Median of the runs, every run listed, and the ratio of medians."""
        mine = statistics.median(ours)
        self.row(
            name,
            f"{mine:,.0f} {unit}",
            {
                peer: (f"{statistics.median(v):,.0f} {unit}", f"{mine / statistics.median(v):.2f}x")
                for peer, v in theirs.items()
                if v
            },
            target,
        )
        self.row(
            "  (all runs)",
            ", ".join(f"{v:,.0f}" for v in ours),
            {peer: (", ".join(f"{x:,.0f}" for x in v), "") for peer, v in theirs.items() if v},
        )

    def print(self) -> None:
        heads = ["measure", "Conveyor"]
        for p in self.peers:
            heads += [f"{p.name} {p.version}", "ratio"]
        heads.append("target")
        cells = [heads]
        for name, ours, theirs, target in self.rows:
            line = [name, ours]
            for p in self.peers:
                line += list(theirs.get(p.name, ("", "")))
            cells.append([*line, target])
        widths = [max(len(r[c]) for r in cells) for c in range(len(heads))]
        last = len(heads) - 1

        def text(r: list[str]) -> str:
            return "  ".join(
                v.ljust(w) if c in (0, last) else v.rjust(w)
                for c, (v, w) in enumerate(zip(r, widths, strict=True))
            )

        print(text(heads))
        print("-" * len(text(heads)))
        for r in cells[1:]:
            print(text(r))
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
