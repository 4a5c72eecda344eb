"""Jobs of the default priority wait in a list (the line) and the others in
the wait sorted set: the run order is the one a single sorted set gave,
pages of waiting jobs follow it, and every way out of waiting (claim,
remove, cancel, clean, drain, obliterate, debounce) finds a job in the line."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis

from conveyor import JobContext, JobState, Priority, Queue, Worker


async def run_order(queue: Queue) -> list[Any]:
    seen: list[Any] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.data)

    await Worker(queue, handler, concurrency=1).run(burst=True)
    return seen


async def test_the_line_and_the_sorted_set_run_in_one_order(redis: aredis.Redis, queue: Queue) -> None:
    # Given jobs of three priorities, some at the front of their priority
    await queue.add("j", "normal-1")
    await queue.add("j", "low-1", priority=Priority.LOW)
    await queue.add("j", "high-1", priority=Priority.HIGH)
    await queue.add("j", "normal-front", lifo=True)
    await queue.add_bulk([("j", "normal-2"), ("j", "normal-3"), ("j", "high-2", {"priority": Priority.HIGH})])
    await queue.add_bulk([("j", "normal-bulk-front", {"lifo": True})])
    await queue.add("j", "critical", priority=Priority.CRITICAL)
    expected = [
        "critical",
        "high-1",
        "high-2",
        "normal-bulk-front",
        "normal-front",
        "normal-1",
        "normal-2",
        "normal-3",
        "low-1",
    ]

    # Then default-priority jobs wait in the line, the others in the zset
    assert await redis.llen(queue.keys.line) == 5
    assert await redis.zcard(queue.keys.wait) == 4
    assert (await queue.counts())[JobState.WAITING] == 9

    # and pages of waiting jobs, wherever they cut, list them in run order
    for start, count in [(0, 9), (0, 2), (1, 3), (2, 4), (6, 3), (7, 5), (3, 1), (20, 5)]:
        page = await queue.get_jobs(JobState.WAITING, start, count)
        assert [j.data for j in page] == expected[start : start + count], (start, count)

    # and a worker runs them in that order
    assert await run_order(queue) == expected
    assert await redis.exists(queue.keys.line) == 0


async def test_a_job_handed_back_or_recovered_goes_to_the_front_of_the_line(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(3)])
    started = asyncio.Event()

    async def hold(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = Worker(queue, hold, concurrency=1)
    task = asyncio.create_task(worker.run())
    await started.wait()
    worker.hand_back_all()
    await worker.close(grace=0)
    await task
    # job 0 was handed back: it runs first again, ahead of 1 and 2
    assert await run_order(queue) == [0, 1, 2]


async def test_every_way_out_of_waiting_finds_a_job_in_the_line(redis: aredis.Redis, queue: Queue) -> None:
    jobs = [await queue.add("j", i) for i in range(6)]
    await queue.remove(jobs[1].id)
    assert await queue.get_job(jobs[1].id) is None
    await queue.cancel(jobs[2].id, reason="not needed")
    assert await queue.get_state(jobs[2].id) is JobState.FAILED
    # a debounced job moves to the back of the line, once
    again = await queue.add("j", "again", dedup_key="k", debounce=True)
    await queue.add("j", "again-2", dedup_key="k", debounce=True)
    assert [j.data for j in await queue.get_jobs(JobState.WAITING)] == [0, 3, 4, 5, "again-2"]
    assert again.id == (await queue.get_jobs(JobState.WAITING))[-1].id
    # clean removes old waiting jobs from the line
    cleaned = await queue.clean(JobState.WAITING, grace=0, limit=2)
    assert len(cleaned) == 2
    assert (await queue.counts())[JobState.WAITING] == 3
    assert await redis.llen(queue.keys.line) == 3
    # drain takes the rest
    assert await queue.drain() == 3
    assert await redis.exists(queue.keys.line) == 0
    # obliterate deletes jobs waiting in the line, with their hashes
    later = [await queue.add("j", i) for i in range(3)]
    await queue.obliterate()
    assert not any([await redis.exists(queue.keys.job(j.id)) for j in later])
    assert await redis.exists(queue.keys.line) == 0


async def test_a_job_whose_priority_is_not_the_default_waits_in_the_sorted_set(
    redis: aredis.Redis, queue: Queue
) -> None:
    job = await queue.add("j", 1, priority=Priority.LOW)
    delayed = await queue.add("j", 2, delay=0.01)
    await asyncio.sleep(0.05)
    await queue.promote(delayed.id) if await queue.get_state(delayed.id) is JobState.DELAYED else None
    assert await redis.zscore(queue.keys.wait, job.id) is not None
    assert await run_order(queue) == [2, 1]
