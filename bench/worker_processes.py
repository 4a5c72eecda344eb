"""Drain rate with 1 and 2 worker processes (``conveyor worker
--processes N``), with the workers' CPU per job and Redis's share of a core.

    python bench/worker_processes.py [--jobs 40000] [--runs 3] [--counts 1,2]
                                      [--spin-us 0] [--log-level warning]
                                      [--loops uvloop,asyncio]

Against a private redis-server on a free port. For each run the queue is
filled while paused, the supervised workers start and register, and the
clock runs from ``resume`` until no job waits or runs. Runs of each
process count are interleaved (1, 2, 1, 2...), so the machine's drift hits
all alike; the median and every run are printed. ``--spin-us`` makes
each job hold the CPU that long (CPU-bound handlers); ``--loops`` runs the
workers on uvloop, asyncio's own loop (``CONVEYOR_UVLOOP=off``), or both,
interleaved too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from conveyor import JobState, Queue, connect
from conveyor.testing import RedisServer

HERE = Path(__file__).resolve().parent
QUEUE = "bench-processes"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def redis_cpu(redis: object) -> float:
    info = await redis.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def one_run(
    url: str, jobs: int, processes: int, concurrency: int, spin_us: int, log_level: str, loop: str = "uvloop"
) -> dict[str, float]:
    async with connect(url) as redis:
        queue = Queue(QUEUE, redis)
        await queue.obliterate(force=True)
        await queue.pause()
        for start in range(0, jobs, 10_000):
            await queue.add_bulk([("noop", i) for i in range(start, min(jobs, start + 10_000))])
        env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(HERE), "BENCH_SPIN_US": str(spin_us)}
        env["CONVEYOR_UVLOOP"] = "on" if loop == "uvloop" else "off"
        supervisor = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "conveyor", "worker", "noop_handlers:HANDLERS"],
            *[f"--processes={processes}", f"--concurrency={concurrency}", f"--log-level={log_level}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                pids = [w.pid for w in await queue.workers() if w.alive]
                if len(pids) >= processes:
                    break
                await asyncio.sleep(0.05)
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            redis_before = await redis_cpu(redis)
            started = time.perf_counter()
            await queue.resume()
            while True:
                counts = await queue.counts()  # completed jobs beyond the kept 1,000 are removed
                if counts[JobState.WAITING] == counts[JobState.ACTIVE] == 0:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            worker_cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
            redis_used = await redis_cpu(redis) - redis_before
        finally:
            supervisor.send_signal(signal.SIGTERM)
            await asyncio.wait_for(supervisor.wait(), 60)
        await queue.obliterate(force=True)
    return {
        "rate": jobs / elapsed,
        "worker_us_per_job": worker_cpu / jobs * 1e6,
        "redis_share": redis_used / elapsed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--counts", default="1,2")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--spin-us", type=int, default=0)
    parser.add_argument("--log-level", default="warning", help="the workers' (info: a line per job step)")
    parser.add_argument("--loops", default="uvloop", help="uvloop, asyncio, or both (comma-separated)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    loops = args.loops.split(",")
    results: dict[tuple[int, str], list[dict[str, float]]] = {(c, lp): [] for c in counts for lp in loops}
    with RedisServer() as server:
        for _ in range(args.runs):
            for count, loop in results:
                results[count, loop].append(
                    await one_run(
                        server.url, args.jobs, count, args.concurrency, args.spin_us, args.log_level, loop
                    )
                )
    work = f"jobs holding the CPU {args.spin_us} µs each" if args.spin_us else "no-op jobs"
    print(
        f"{args.jobs} {work}, concurrency {args.concurrency} per process, {os.cpu_count()} cores, "
        f"workers logging at {args.log_level}"
    )
    print("| processes | loop | drain (jobs/s), median | runs | worker CPU per job | Redis CPU, of a core |")
    print("|---|---|---|---|---|---|")
    for (count, loop), runs in results.items():
        rates = [r["rate"] for r in runs]
        print(
            f"| {count} | {loop} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} "
            f"| {statistics.median(r['worker_us_per_job'] for r in runs):.0f} µs "
            f"| {statistics.median(r['redis_share'] for r in runs):.0%} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
