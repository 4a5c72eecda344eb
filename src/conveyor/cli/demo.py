"""``conveyor demo``: a short workload on a real Redis that shows priorities,
delays, retries with backoff, a discarded job, progress and fencing numbers;
then flow control: a rate-limited queue, an upstream 429, groups taking
turns, a flow whose parent waits for its children, and a schedule."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from conveyor import (
    Discard,
    Exponential,
    FlowJob,
    FlowProducer,
    JobContext,
    JobState,
    Priority,
    Queue,
    RateLimit,
    RateLimited,
    Scheduler,
    Worker,
    connect,
    ping,
)
from conveyor.localredis import configured_or_private_redis

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
    await flow_control(redis)
    await redis.aclose()


async def flow_control(redis: Any) -> None:
    """An artist import in miniature: catalog calls on a queue limited to
    5 starts a second (one answered 429), shows for two accounts taking
    turns, a wrap-up that runs after both, and an hourly trending job."""
    spotify, shows, imports = (Queue(n, redis) for n in ("demo-spotify", "demo-shows", "demo-imports"))
    for q in (spotify, shows, imports):
        await q.obliterate(force=True)
    await spotify.set_rate_limit(RateLimit(5, per=1.0))
    started: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    throttled = False

    async def call(job: JobContext) -> str:
        nonlocal throttled
        account = f" (account {job.data['account']})" if isinstance(job.data, dict) else ""
        started.append((time.perf_counter() - t0, f"{job.queue}:{job.name}{account}"))
        if job.name == "album-3" and not throttled:
            throttled = True
            raise RateLimited(0.5, "upstream answered 429")
        if job.name == "wrap-up":
            children = await job.children()
            return f"{len(children.results)} parts imported"
        return "ok"

    flow = await FlowProducer(redis).add(
        FlowJob(
            "wrap-up",
            imports.name,
            children=[FlowJob(f"album-{i}", spotify.name) for i in range(8)]
            + [FlowJob("shows-page", shows.name, options={"job_id": "shows-a"})],
        )
    )
    await shows.add_bulk(
        [("shows-page", {"account": a}, {"group": a}) for a in ("big",) * 6 + ("small",) * 2]
    )
    await imports.upsert_schedule("trending", "compute-trending", cron="0 * * * *")
    workers = [Worker(q, call, concurrency=4) for q in (spotify, shows, imports)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    result = await imports.wait_until_finished(flow.job.id, 30)
    await asyncio.gather(*(w.close() for w in workers))
    await asyncio.gather(*tasks)
    await Scheduler([imports]).tick()  # nothing due: the next trending run is on the hour

    table = Table(title="Flow control: when each job started (s)")
    table.add_column("t")
    table.add_column("job")
    for at, name in started:
        table.add_row(f"{at:.2f}", name)
    console.print(table)
    trending = await imports.get_schedule("trending")
    console.print(
        f"wrap-up: {result}; spotify never started more than 5 jobs in a second and held "
        f"0.5 s after the 429; next trending run {trending.next_run if trending else '?'}"
    )


def run_demo() -> None:
    data = Path(os.environ.get("CONVEYOR_DATA", ".conveyor/redis"))
    with configured_or_private_redis(data, console.print) as url:
        asyncio.run(workload(url))
