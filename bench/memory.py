"""Memory benchmark: Redis memory per waiting job, structure by structure.

    python bench/memory.py [--jobs 100000] [--payloads 20,100,1000] [--single 20000]

Runs against a private redis-server on a free port. For each payload size
it adds ``--jobs`` jobs in bulk (chunks of 10,000) to an empty queue, with
queue events on (the default), and reports ``used_memory`` growth per job
and its parts: the job hashes (with their share of Redis's keyspace), the
wait sorted set (jobs of other priorities), the line (a list: jobs of the
default priority) and the events stream. ``--single`` adds that many one at a time as well, where each add
writes its own events entry. The encoding of a sample job hash is shown:
``listpack`` is Redis's compact form, ``hashtable`` the large one.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from conveyor import Queue, connect
from conveyor.testing import RedisServer

CHUNK = 10_000


def payload(size: int) -> dict[str, str]:
    """A job's data of ``size`` bytes of JSON."""
    return {"p": "x" * max(0, size - 8)}


async def measure(url: str, n: int, size: int, bulk: bool) -> dict[str, Any]:
    redis = connect(url)
    queue = Queue(f"mem-{size}-{'bulk' if bulk else 'single'}", redis)
    await queue.add("warm", payload(size))  # the queue's own keys exist before the measure
    await redis.execute_command("MEMORY", "PURGE")
    before = int((await redis.info("memory"))["used_memory"])
    data = payload(size)
    if bulk:
        for i in range(0, n, CHUNK):
            await queue.add_bulk([("job", data)] * min(CHUNK, n - i))
    else:
        for _ in range(n):
            await queue.add("job", data)
    after = int((await redis.info("memory"))["used_memory"])
    k = queue.keys
    wait = int(await redis.memory_usage(k.wait, samples=0) or 0)
    line_key = getattr(k, "line", None)  # (an older release has no line)
    line = int(await redis.memory_usage(line_key, samples=0) or 0) if line_key else 0
    events = int(await redis.memory_usage(k.events, samples=0) or 0)
    sample = k.job(str(n // 2))
    encoding = (await redis.object("encoding", sample)).decode()
    fields = await redis.hlen(sample)
    await queue.obliterate(force=True)
    await redis.aclose()
    total = after - before
    # the wait set and the stream existed (small) before: count their growth
    hashes = total - wait - line - events
    return {
        "per_job": total / n,
        "hash": hashes / n,
        "wait": wait / n,
        "line": line / n,
        "events": events / n,
        "encoding": f"{encoding}, {fields} fields",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--payloads", default="20,100,1000", help="comma-separated JSON payload sizes, bytes")
    parser.add_argument("--single", type=int, default=20_000, help="jobs added one at a time (0: skip)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.payloads.split(",") if s]
    print(f"{'case':<34} {'per job':>9} {'hash+key':>9} {'wait':>7} {'line':>7} {'events':>7}  job hash")
    with RedisServer() as server:
        cases = [(size, True, args.jobs) for size in sizes]
        if args.single:
            cases += [(size, False, args.single) for size in sizes]
        for size, bulk, n in cases:
            got = asyncio.run(measure(server.url, n, size, bulk))
            label = f"{n:,} jobs, {size} B, {'bulk' if bulk else 'one by one'}"
            print(
                f"{label:<34} {got['per_job']:>8.0f}B {got['hash']:>8.0f}B {got['wait']:>6.0f}B "
                f"{got.get('line', 0):>6.0f}B {got['events']:>6.0f}B  {got['encoding']}"
            )


if __name__ == "__main__":
    main()
