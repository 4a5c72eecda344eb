"""A worker process for tests: each job records a side effect (a counter
per job id in a ledger hash) and sleeps; SIGTERM closes gracefully."""

from __future__ import annotations

import asyncio
import sys

from conveyor import JobContext, Queue, Worker, connect
from conveyor.engine.worker import install_signal_handlers


async def main(url: str, queue_name: str, sleep: float, concurrency: int, lock: float) -> None:
    redis = connect(url)
    queue = Queue(queue_name, redis)
    ledger = f"ledger:{queue_name}"

    async def handler(job: JobContext) -> str:
        await redis.hincrby(ledger, job.id, 1)
        await asyncio.sleep(sleep)
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
