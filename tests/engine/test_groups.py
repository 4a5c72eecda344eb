"""Groups inside a queue: fair turns between groups, per-group concurrency
and rate limits across workers, and the bookkeeping of grouped jobs."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from conveyor import (
    InvalidJobOptions,
    JobContext,
    JobOptionsDict,
    JobState,
    ManualClock,
    Queue,
    RateLimit,
    Worker,
)
from conveyor.engine.commands.running import finish_jobs
from polling import wait_until
from timeline import events, max_in_window


async def test_a_small_tenant_is_not_starved_by_a_big_one(queue: Queue) -> None:
    await queue.add_bulk([("j", "big", {"group": "big"}) for _ in range(1000)])
    await queue.add_bulk([("j", "small", {"group": "small"}) for _ in range(10)])
    await queue.add_bulk([("j", "plain") for _ in range(5)])  # ungrouped jobs take turns too
    assert (await queue.counts())[JobState.WAITING] == 1015
    order: list[str] = []
    thirty = asyncio.Event()

    async def record(job: JobContext) -> None:
        order.append(job.data)
        if len(order) >= 30:
            thirty.set()

    worker = Worker(queue, record, concurrency=1)
    task = asyncio.create_task(worker.run())
    async with asyncio.timeout(10):
        await thirty.wait()
    await worker.close()
    await task
    # turns go big, small, the five plain jobs, then big and small by turns:
    # the small tenant's ten jobs are done within the first 30 starts
    assert order[:7] == ["big", "small", "plain", "plain", "plain", "plain", "plain"]
    assert order[:30].count("small") == 10


async def test_group_concurrency_holds_across_workers(queue: Queue) -> None:
    await queue.set_group_limits(concurrency=2)
    await queue.add_bulk([("j", i, {"group": g}) for i in range(15) for g in ("a", "b", "c")])
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)

    async def handler(job: JobContext) -> None:
        g = job_group[job.id]
        running[g] += 1
        peak[g] = max(peak[g], running[g])
        await asyncio.sleep(0.005)
        running[g] -= 1

    job_group: dict[str, str] = {}
    for g in ("a", "b", "c"):
        for job in await queue.get_group_jobs(g, 0, 100):
            job_group[job.id] = g
    workers = [Worker(queue, handler, concurrency=5) for _ in range(3)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:

        async def all_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == 45

        await wait_until(all_done, within=20)
    finally:
        await asyncio.gather(*(w.close() for w in workers))
        await asyncio.gather(*tasks)
    assert dict(peak) == {"a": 2, "b": 2, "c": 2}
    assert {g.name: (g.waiting, g.active) for g in await queue.groups()} == {
        "a": (0, 0),
        "b": (0, 0),
        "c": (0, 0),
    }


async def test_group_rate_limit_applies_to_each_group(queue: Queue) -> None:
    await queue.set_group_limits(rate_limit=RateLimit(3, per=0.2))
    jobs = await queue.add_bulk([("j", i, {"group": g}) for i in range(9) for g in ("a", "b")])
    group_of = {j.id: ("a", "b")[i % 2] for i, j in enumerate(jobs)}

    async def handler(job: JobContext) -> None:
        return None

    await asyncio.gather(*(Worker(queue, handler, concurrency=10).run(burst=True) for _ in range(2)))
    assert (await queue.counts())[JobState.COMPLETED] == 18
    starts: dict[str, list[float]] = defaultdict(list)
    for e in await events(queue):
        if e.event == "active" and e.job_id is not None:
            starts[group_of[e.job_id]].append(e.time.timestamp())
    for times in starts.values():
        assert len(times) == 9
        assert max_in_window(sorted(times), 0.2) <= 3
    together = sorted(starts["a"] + starts["b"])
    assert max_in_window(together, 0.2) > 3  # the groups do not share one window


async def test_priorities_hold_within_a_group(queue: Queue) -> None:
    await queue.add("j", "late", group="g", priority=300)
    await queue.add("j", "soon", group="g", priority=10)
    seen: list[Any] = []

    async def handler(job: JobContext) -> None:
        seen.append(job.data)

    await Worker(queue, handler, concurrency=1).run(burst=True)
    assert seen == ["soon", "late"]


async def test_retries_and_stalls_return_to_the_group(queue: Queue) -> None:
    await queue.set_group_limits(concurrency=1)
    flaky = await queue.add("j", "flaky", group="g", attempts=2, backoff=0)
    k = queue.keys
    # a worker that dies holding the group's only slot
    await finish_jobs(
        queue.redis, k, now="", claim_count=1, lock_ms=100, worker_id="dead", outcomes=[], call_id=1
    )
    assert (await queue.groups())[0].active == 1
    second = await queue.add("j", "second", group="g")
    # another worker asks for work: the group is at its limit, so it parks
    await finish_jobs(
        queue.redis, k, now="", claim_count=5, lock_ms=100, worker_id="w2", outcomes=[], call_id=1
    )
    info = (await queue.groups())[0]
    assert (info.waiting, info.active, info.state) == (1, 1, "parked")
    tries: dict[str, int] = defaultdict(int)

    async def handler(job: JobContext) -> str:
        tries[job.id] += 1
        if job.id == flaky.id and tries[job.id] == 1:
            raise RuntimeError("once")
        return "ok"

    worker = Worker(queue, handler, lock_duration=0.2, stalled_interval=0.05)
    task = asyncio.create_task(worker.run())
    await queue.wait_until_finished(flaky.id, timeout=10)
    await queue.wait_until_finished(second.id, timeout=10)
    await worker.close()
    await task
    assert tries[flaky.id] == 2
    info = (await queue.groups())[0]
    assert (info.waiting, info.active, info.state) == (0, 0, "idle")


async def test_grouped_jobs_are_counted_listed_removed_and_drained(queue: Queue) -> None:
    jobs = await queue.add_bulk(
        [("j", i, JobOptionsDict(group="t1")) for i in range(3)] + [("j", 9, JobOptionsDict(group="t2"))]
    )
    await queue.add("j", "plain")
    assert (await queue.counts())[JobState.WAITING] == 5
    assert [j.data for j in await queue.get_group_jobs("t1")] == [0, 1, 2]
    await queue.remove(jobs[1].id)
    assert [(g.name, g.waiting, g.state) for g in await queue.groups()] == [
        ("t1", 2, "ready"),
        ("t2", 1, "ready"),
    ]
    assert await queue.drain() == 4
    assert (await queue.counts())[JobState.WAITING] == 0
    await queue.add("j", "again", group="t1")
    assert await queue.obliterate() == 1
    assert await queue.redis.keys(f"*{queue.name}*") == []


async def test_bad_groups_are_rejected(queue: Queue) -> None:
    for bad in ("", 5, "x" * 300):
        with pytest.raises(InvalidJobOptions):
            await queue.add("j", 1, group=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidJobOptions):
        await queue.set_group_limits(concurrency=0)
    assert (await queue.counts())[JobState.WAITING] == 0


async def test_a_group_rate_log_that_outlives_its_count_still_limits(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    # Given a group that started one job in its window of one a minute,
    # logged, whose count has expired (the keys' expiries are a
    # millisecond apart)
    queue = clocked_queue
    await queue.set_group_limits(rate_limit=RateLimit(1, per=60))
    await queue.add_bulk([("j", i, {"group": "g"}) for i in range(3)])
    log, _ = queue.keys.group_limiter("g")
    now = clock.now_ms()
    await queue.redis.zadd(log, {f"{now}:1:0": now})

    async def claim() -> int:
        reply = await finish_jobs(
            queue.redis,
            queue.keys,
            now=clock.now_ms(),
            claim_count=3,
            lock_ms=60_000,
            worker_id="w",
            outcomes=[],
            call_id=str(clock.now_ms()),
        )
        return len(reply.claimed)

    # Then the group waits out its window, and starts one job after it
    assert await claim() == 0
    clock.advance(60)
    assert await claim() == 1
