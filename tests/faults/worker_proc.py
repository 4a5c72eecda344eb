"""A worker process for tests: each job records a side effect (a counter
per job id in a ledger hash), its start time and how many jobs of the
queue were running with it, then sleeps; SIGTERM closes gracefully.
A job whose data is ``{"limited": s}`` raises RateLimited(s) the first
time it runs; one whose data is ``{"fail": true}`` raises until the key
``healed:<queue>`` exists."""

from __future__ import annotations

import asyncio
import sys
import time

from conveyor import JobContext, Queue, RateLimited, Worker, connect
from conveyor.engine.worker import install_signal_handlers


async def main(url: str, queue_name: str, sleep: float, concurrency: int, lock: float) -> None:
    redis = connect(url)
    queue = Queue(queue_name, redis)
    ledger = f"ledger:{queue_name}"

    async def handler(job: JobContext) -> str:
        runs = await redis.hincrby(ledger, job.id, 1)
        running = await redis.incr(f"running:{queue_name}")
        try:
            await redis.rpush(f"starts:{queue_name}", f"{time.time():.6f} {running} {job.id}")
            if isinstance(job.data, dict) and "limited" in job.data and runs == 1:
                raise RateLimited(job.data["limited"])
            if (
                isinstance(job.data, dict)
                and job.data.get("fail")
                and not await redis.exists(f"healed:{queue_name}")
            ):
                raise RuntimeError("upstream is down")
            await asyncio.sleep(sleep)
        finally:
            await redis.decr(f"running:{queue_name}")
        return "ok"

    worker = Worker(
        queue,
        handler,
        concurrency=concurrency,
        lock_duration=lock,
        stalled_interval=lock / 4,
        shutdown_grace=10,
    )
    install_signal_handlers(worker)
    print("ready", flush=True)
    await worker.run()
    await redis.aclose()


if __name__ == "__main__":
    url, name, sleep, conc, lock = sys.argv[1:6]
    asyncio.run(main(url, name, float(sleep), int(conc), float(lock)))
