"""Where enqueue-to-start time goes, one idle worker, jobs added at a
steady rate by another process (as ``bench/run.py --only latency``):
split at the moments Redis starts the add and the claim riding behind
the worker's blocking pop (read from ``MONITOR``), the worker reading
the pop's reply, and the ride's. ``MONITOR`` slows Redis down, so the
total comes out above the plain benchmark's; the shares are the point.

    python bench/latency_split.py [--rate 200] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from conveyor import JobContext, Queue, Worker, connect
from conveyor.collector import tune_collector
from conveyor.engine import dispatch, marker
from conveyor.testing import RedisServer
from run import _produce, run

_LINE = re.compile(r"^(\d+)\.(\d+) \[\d+ [^\]]+\] (.*)$")
_SENT = re.compile(r'\\"sent\\":(\d+)')
STEPS = ("sent -> Redis runs the add", "add -> Redis runs the claim", "claim -> pop reply read",
         "pop -> ride reply read", "ride -> handler", "total")  # fmt: skip


def _instrument() -> tuple[list[int], list[int]]:
    """Times (ns) at which the worker read each pop's reply and each ride's."""
    popped: list[int] = []
    rode: list[int] = []
    reply, landed = marker._reply, dispatch.Dispatch._rode

    async def timed_reply(conn: Any, *, decode: bool) -> Any:
        got = await reply(conn, decode=decode)
        if decode:
            popped.append(time.time_ns())
        return got

    def timed_rode(self: dispatch.Dispatch, *args: Any) -> None:
        rode.append(time.time_ns())
        landed(self, *args)

    marker._reply = timed_reply  # type: ignore[assignment]
    dispatch.Dispatch._rode = timed_rode  # type: ignore[method-assign]
    return popped, rode


def _redis_starts(monitor_log: str) -> dict[int, tuple[int, int]]:
    """Per job (its ``sent``): when Redis began its add and the claim after it (ns)."""
    starts: dict[int, tuple[int, int]] = {}
    add: tuple[int, int] | None = None
    for line in monitor_log.splitlines():
        m = _LINE.match(line)
        if m is None or not m.group(3).startswith('"EVALSHA"'):
            continue
        at = (int(m.group(1)) * 1_000_000 + int(m.group(2))) * 1000
        sent = _SENT.search(m.group(3))
        if sent is not None:
            add = (int(sent.group(1)), at)
        elif add is not None and m.group(3).split()[2] == '"11"':  # the claim's 11 keys
            starts[add[0]] = (add[1], at)
            add = None
    return starts


async def _measure(url: str, rate: int, seconds: float) -> dict[int, tuple[int, int, int]]:
    """Per job (its ``sent``): when the worker read the pop's reply, the
    ride's, and when the handler started (ns)."""
    popped, rode = _instrument()
    seen: dict[int, tuple[int, int, int]] = {}

    async def handler(job: JobContext) -> None:
        seen[job.data["sent"]] = (popped[-1], rode[-1], time.time_ns())

    redis = connect(url)
    worker = Worker(Queue("bench-latency", redis), handler, concurrency=50)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)
    producer = mp.get_context("spawn").Process(target=_produce, args=(url, rate, seconds))
    producer.start()
    while producer.is_alive():  # noqa: ASYNC110 (a process, not an event)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await worker.close()
    await task
    await redis.aclose()
    return seen


def _split(
    starts: dict[int, tuple[int, int]], seen: dict[int, tuple[int, int, int]]
) -> list[tuple[float, ...]]:
    """Per job, the time (ms) of each step of STEPS."""
    rows = []
    for sent, (add, claim) in starts.items():
        if sent in seen:
            marks = (sent, add, claim, *seen[sent])
            steps = [(b - a) / 1e6 for a, b in itertools.pairwise(marks)]
            rows.append((*steps, (marks[-1] - sent) / 1e6))
    return rows[len(rows) // 20 :]  # connections warming


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    tune_collector()
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "monitor.log"
        with log.open("w") as out:
            monitor = subprocess.Popen(["redis-cli", "-p", str(server.port), "monitor"], stdout=out)
            time.sleep(0.3)
            seen = run(_measure(server.url, args.rate, args.seconds))
            monitor.terminate()
            monitor.wait()
        rows = _split(_redis_starts(log.read_text()), seen)
    n = len(rows)
    print(f"{n} jobs at {args.rate}/s, ms (MONITOR on: Redis slower than in the plain benchmark)")
    for i, step in enumerate(STEPS):
        xs = sorted(r[i] for r in rows)
        print(f"{step:<30} p50 {xs[n // 2]:6.3f}  p95 {xs[int(n * 0.95)]:6.3f}  p99 {xs[int(n * 0.99)]:6.3f}")


if __name__ == "__main__":
    main()
