"""Counts past what one Lua call can unpack (about 8,000 values): a script
that failed there would have failed after its first writes, which Redis
does not undo. Each command whose arguments grow with a caller's count is
sent in slices instead."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis

from conveyor import FlowJob, FlowProducer, JobContext, JobState, Queue, Worker
from conveyor.engine.codec import text
from conveyor.engine.commands.events import ack_events
from conveyor.engine.keys import StreamKeys


async def test_a_flow_parent_waits_for_nine_thousand_children(redis: aredis.Redis, queue: Queue) -> None:
    children = [FlowJob(name="child", queue=queue.name, data=i) for i in range(9000)]
    node = await FlowProducer(redis).add(
        FlowJob(name="parent", queue=queue.name, data=None, children=children)
    )

    assert await queue.get_state(node.job.id) is JobState.WAITING_CHILDREN
    assert await redis.scard(queue.keys.deps_prefix + node.job.id) == 9000
    assert (await queue.counts())[JobState.WAITING] == 9000


async def test_a_worker_claiming_ten_thousand_jobs_at_once_runs_each_once(queue: Queue) -> None:
    # Given 10,000 waiting jobs and a worker that may run all of them at once
    # (it claims half its concurrency per call: 5,000 leases, 10,000 values)
    await queue.add_bulk([("j", i) for i in range(10_000)])
    runs: list[int] = []
    release, all_in = asyncio.Event(), asyncio.Event()

    async def handler(ctx: JobContext) -> None:
        runs.append(ctx.data)
        if len(runs) == 10_000:
            all_in.set()  # every job is held at once
        await release.wait()

    worker = Worker(queue, handler, concurrency=10_000)
    task = asyncio.create_task(worker.run(burst=True))
    try:
        await asyncio.wait(
            [task, asyncio.create_task(all_in.wait())], timeout=60, return_when="FIRST_COMPLETED"
        )
        release.set()
        await asyncio.wait_for(task, 60)
    finally:
        await worker.close()

    # Then every job ran once and completed, and none is left behind
    assert sorted(runs) == list(range(10_000))
    assert int(await queue.redis.hget(queue.keys.stats, "completed") or 0) == 10_000
    counts = await queue.counts()
    assert counts[JobState.WAITING] == counts[JobState.ACTIVE] == counts[JobState.FAILED] == 0


async def test_nine_thousand_stream_entries_acknowledged_in_one_call(
    redis: aredis.Redis, queue_name: str
) -> None:
    keys = StreamKeys(queue_name)
    stream = keys.stream
    for start in range(0, 9000, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, start + 1000):
                pipe.xadd(stream, {"n": i})
            await pipe.execute()
    await redis.xgroup_create(stream, "g", id="0")
    read: Any = await redis.xreadgroup("g", "c", {stream: ">"}, count=9000)
    ids = [entry_id for entry_id, _ in read[0][1]]

    acked = await ack_events(redis, keys, "g", [text(i) for i in ids])

    assert acked == 9000
    assert (await redis.xpending(stream, "g"))["pending"] == 0
