"""A worker process for tests: each job records a side effect (one field
per run in a ledger hash, named by the job id and a token of the run, so
a command resent after a lost reply counts once), its start time and how
many jobs of the queue were running with it, then sleeps; SIGTERM closes
gracefully. ``FAULT_BOOKS_URL`` puts the ledger on another Redis than the
queue's.
A job whose data is ``{"limited": s}`` raises RateLimited(s) the first
time it runs; one whose data is ``{"fail": true}`` raises until the key
``healed:<queue>`` exists; ``{"burn": s}`` spins the CPU for s seconds and
``{"block": s}`` sleeps s seconds, both without yielding the event loop."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from conveyor import JobContext, Queue, RateLimited, Worker, connect
from conveyor.engine.signals import install_signal_handlers
from faults import (
    fault_clock,  # before the rest: it sets this process's clock
    processes,
)


async def main(
    url: str, queue_name: str, sleep: float, concurrency: int, lock: float, max_stalled: int
) -> None:
    queue_redis = connect(url)
    queue = Queue(queue_name, queue_redis)
    books = os.environ.get("FAULT_BOOKS_URL")
    redis = connect(books) if books else queue_redis
    ledger = f"ledger:{queue_name}"

    async def handler(job: JobContext) -> str:
        begun = time.time()
        await redis.hset(ledger, f"{job.id} {uuid.uuid4().hex}", 1)
        runs = await redis.hincrby(f"tries:{queue_name}", job.id, 1)
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
            if isinstance(job.data, dict) and "burn" in job.data:
                end = time.monotonic() + job.data["burn"]
                while time.monotonic() < end:
                    pass
            elif isinstance(job.data, dict) and "block" in job.data:
                time.sleep(job.data["block"])  # noqa: ASYNC251 (holding the event loop is the point)
            await asyncio.sleep(sleep)
        finally:
            await redis.decr(f"running:{queue_name}")
            await redis.rpush(f"spans:{queue_name}", f"{job.id} {begun:.6f} {time.time():.6f} {os.getpid()}")
        return f"ok:{os.getpid()}"

    worker = Worker(
        queue,
        handler,
        concurrency=concurrency,
        lock_duration=lock,
        stalled_interval=lock / 4,
        shutdown_grace=10,
        max_stalled_count=max_stalled,
    )
    install_signal_handlers(worker)
    processes.dump_tasks_on_signal()
    print("ready", flush=True)
    await worker.run()
    await queue_redis.aclose()
    if redis is not queue_redis:
        await redis.aclose()


if __name__ == "__main__":
    fault_clock.apply()
    url, name, sleep, conc, lock, stalls = sys.argv[1:7]
    asyncio.run(main(url, name, float(sleep), int(conc), float(lock), int(stalls)))
