"""Redis time per job: how many microseconds of Redis's CPU each job
costs, for a bulk add and for a drain: the server's CPU (``INFO cpu``,
user + system, network included) and the time in scripts (``INFO
commandstats``: the usec of EVALSHA, which includes the commands a script
calls; those are also listed under their own names).

    python bench/redis_time.py [--jobs 20000] [--repeats 3]

Runs against a private redis-server on a free port: adds ``--jobs`` no-op
jobs in bulk (chunks of 10,000), then drains them with one worker
(concurrency 100), and reports for each phase the Redis usec per job, in
all and for the commands that took most of it. One Redis core does about
1,000,000 / (usec per job) jobs a second at most.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from conveyor import JobContext, Queue, Worker, connect
from conveyor.testing import RedisServer


async def command_usec(redis: Any) -> dict[str, int]:
    """usec per command so far, and the server's CPU as ``cpu``."""
    stats = await redis.info("commandstats")
    cpu = await redis.info("cpu")
    used = {name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in stats.items()}
    used["cpu"] = int((float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1_000_000)
    return used


def spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}


async def one_run(url: str, n: int) -> tuple[dict[str, int], dict[str, int]]:
    redis = connect(url)
    queue = Queue("bench-redis-time", redis)
    await queue.register()
    start = await command_usec(redis)
    for i in range(0, n, 10_000):
        await queue.add_bulk([("noop", j) for j in range(i, min(n, i + 10_000))])
    added = await command_usec(redis)

    async def noop(job: JobContext) -> None:
        return None

    worker = Worker(queue, noop, concurrency=100)
    await worker.run(burst=True)
    assert worker.processed == n, worker.processed
    drained = await command_usec(redis)
    await queue.obliterate(force=True)
    await redis.aclose()
    return spent(start, added), spent(added, drained)


def report(label: str, runs: list[dict[str, int]], n: int) -> None:
    for what, key in (("Redis CPU", "cpu"), ("scripts", "evalsha")):
        values = [r.get(key, 0) / n for r in runs]
        listed = ", ".join(f"{v:.1f}" for v in values)
        print(f"{label:<9} {what:<10} {statistics.median(values):6.1f} usec/job (runs: {listed})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    adds: list[dict[str, int]] = []
    drains: list[dict[str, int]] = []
    with RedisServer() as server:
        for _ in range(args.repeats):
            add, drain = asyncio.run(one_run(server.url, args.jobs))
            adds.append(add)
            drains.append(drain)
    report("bulk add", adds, args.jobs)
    report("drain", drains, args.jobs)


if __name__ == "__main__":
    main()
