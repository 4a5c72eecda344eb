"""A worker process whose handlers misbehave on a job's first run, in the
way ``MODE`` names; every run records a span (``spans:<queue>``: job id,
start, end, pid) and a ledger field, so the test counts runs and overlaps.

- ``process``: ``executor="process"``; data ``{"die": "exit"}`` calls
  ``os._exit(3)`` and ``{"die": "kill"}`` SIGKILLs its own pool process.
- ``thread``: a plain handler; data ``{"hang": s}`` blocks its thread for s
  seconds (past the job's timeout).
- ``abort``: an async handler; data ``{"raise": name}`` raises SystemExit,
  KeyboardInterrupt, GeneratorExit or its own CancelledError.

SIGTERM closes gracefully; a worker left with handler threads it cannot
stop exits hard (as ``conveyor worker`` does)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from typing import Any

import redis as sync_redis

from conveyor import JobContext, ProcessJob, Queue, Worker, connect
from conveyor.engine.signals import install_signal_handlers
from faults import processes

LEDGER_URL = "FAULT_BOOKS_URL"


def _books() -> sync_redis.Redis:
    return sync_redis.Redis.from_url(os.environ[LEDGER_URL])


def _record(books: sync_redis.Redis, queue: str, job_id: str) -> tuple[int, float]:
    """Records the start of a run; returns (which run of the job, start)."""
    books.hset(f"ledger:{queue}", f"{job_id} {uuid.uuid4().hex}", 1)
    return int(books.hincrby(f"tries:{queue}", job_id, 1)), time.time()


def _span(books: sync_redis.Redis, queue: str, job_id: str, start: float) -> None:
    books.rpush(f"spans:{queue}", f"{job_id} {start:.6f} {time.time():.6f} {os.getpid()}")


def in_a_pool_process(job: ProcessJob) -> str:
    books = _books()
    run, start = _record(books, job.queue, job.id)
    data: Any = job.data
    if run == 1 and isinstance(data, dict) and "die" in data:
        _span(books, job.queue, job.id, start)
        if data["die"] == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.005)
    _span(books, job.queue, job.id, start)
    return "ok"


def main(url: str, queue_name: str, mode: str) -> None:
    asyncio.run(_main(url, queue_name, mode))


async def _main(url: str, queue_name: str, mode: str) -> None:
    redis = connect(url)
    queue = Queue(queue_name, redis)
    books = _books()

    def in_a_thread(job: JobContext) -> str:
        run, start = _record(books, queue_name, job.id)
        data: Any = job.data
        if run == 1 and isinstance(data, dict) and "hang" in data:
            time.sleep(data["hang"])
        else:
            time.sleep(0.005)
        _span(books, queue_name, job.id, start)
        return "ok"

    async def aborting(job: JobContext) -> str:
        run, start = _record(books, queue_name, job.id)
        data: Any = job.data
        try:
            if run == 1 and isinstance(data, dict) and "raise" in data:
                kind = data["raise"]
                if kind == "CancelledError":
                    inner = asyncio.get_running_loop().create_future()
                    inner.cancel()
                    await inner
                raise {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt}.get(
                    kind, GeneratorExit
                )()
            await asyncio.sleep(0.005)
            return "ok"
        finally:
            _span(books, queue_name, job.id, start)

    handler: Any = {"process": in_a_pool_process, "thread": in_a_thread, "abort": aborting}[mode]
    worker = Worker(
        queue,
        handler,
        concurrency=4,
        executor="process" if mode == "process" else "thread",
        processes=2,
        lock_duration=1.0,
        stalled_interval=0.25,
        shutdown_grace=0.5,
        thread_grace=0.5,
    )
    install_signal_handlers(worker)
    processes.dump_tasks_on_signal()
    print("ready", flush=True)
    await worker.run()
    await redis.aclose()
    if worker.hung_threads:
        os._exit(0)  # a thread cannot be stopped: its job comes back after the lease


if __name__ == "__main__":
    main(*sys.argv[1:4])
