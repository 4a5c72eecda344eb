"""``conveyor demo``: a short workload on a real Redis that shows priorities,
delays, retries with backoff, a discarded job, progress and fencing numbers."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from conveyor import (
    Discard,
    Exponential,
    JobContext,
    JobState,
    Priority,
    Queue,
    Worker,
    connect,
    ping,
)
from conveyor.settings import RedisSettings
from conveyor.testing import RedisServer

console = Console()


async def handle(job: JobContext) -> dict[str, object]:
    kind = job.data["kind"]
    await job.update_progress({"percent": 50, "stage": kind})
    if kind == "flaky" and job.attempt < 3:
        raise ConnectionError(f"upstream timed out (attempt {job.attempt})")
    if kind == "invalid":
        raise Discard("address is not valid")
    await asyncio.sleep(0.02)
    await job.log(f"{kind} done")
    return {"kind": kind, "attempt": job.attempt, "fence": job.fence}


async def workload(url: str | None) -> None:
    redis = connect(url)
    latency = await ping(redis)
    queue = Queue("demo", redis)
    await queue.obliterate(force=True)
    console.print(f"Redis answers in {latency * 1000:.2f} ms")
    await queue.add("email", {"kind": "newsletter"}, priority=Priority.LOW)
    await queue.add("email", {"kind": "password-reset"}, priority=Priority.CRITICAL)
    await queue.add("email", {"kind": "welcome"}, job_id="welcome:ada")
    await queue.add("email", {"kind": "welcome"}, job_id="welcome:ada")  # idempotent: no second job
    await queue.add("email", {"kind": "reminder"}, delay=0.5)
    await queue.add("email", {"kind": "flaky"}, attempts=3, backoff=Exponential(0.1))
    await queue.add("email", {"kind": "invalid"}, attempts=5)
    await queue.add_bulk(
        [("email", {"kind": "bulk", "n": i}, {"remove_on_complete": True}) for i in range(1000)]
    )
    console.print(f"queued: { ({s.value: n for s, n in (await queue.counts()).items()}) }")

    worker = Worker(queue, handle, concurrency=50)
    task = asyncio.create_task(worker.run())
    start = time.perf_counter()
    while True:
        counts = await queue.counts()
        if counts[JobState.WAITING] + counts[JobState.DELAYED] + counts[JobState.ACTIVE] == 0:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    await worker.close()
    await task

    table = Table(title="Jobs, in the order they finished")
    for col in ("id", "name", "state", "attempts", "result / error"):
        table.add_column(col)
    shown = [
        j
        for state in (JobState.COMPLETED, JobState.FAILED)
        for j in await queue.get_jobs(state, 0, 2000)
        if j.data.get("kind") != "bulk"
    ]
    for job in sorted(shown, key=lambda j: j.finished_at or j.created_at):  # type: ignore[arg-type,return-value]
        outcome = str(job.result) if job.state is JobState.COMPLETED else str(job.error)
        attempts = job.attempts_made + (1 if job.state is JobState.COMPLETED else 0)
        table.add_row(job.id, job.name, job.state.value, str(attempts), outcome)
    console.print(table)
    console.print(
        f"1,006 jobs finished in {elapsed:.2f}s: {worker.processed} completed, "
        f"{worker.failed} failed attempts (bulk jobs removed on completion)"
    )
    await redis.aclose()


def run_demo() -> None:
    settings = RedisSettings()
    if settings.is_configured():
        asyncio.run(workload(None))
        return
    data = Path(os.environ.get("CONVEYOR_DATA", ".conveyor/redis"))
    data.mkdir(parents=True, exist_ok=True)
    with RedisServer(data_dir=data, appendonly=True) as server:
        console.print(f"started a private redis-server (AOF on) at {server.url}, data in {data}")
        asyncio.run(workload(server.url))
    console.print("redis-server stopped")
