"""Redis at ``maxmemory`` with ``noeviction``: adds raise RedisOutOfMemory
and write nothing, not even in part; a worker waits instead of failing;
everything recovers once memory is freed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue, RedisOutOfMemory, connect
from conveyor.engine.client.cluster import RedisClient
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import completions, ledger, spans, spawn_worker, stop_gracefully
from .tally import check

pytestmark = pytest.mark.slow


@pytest.fixture
def small_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def small(small_server: RedisServer) -> AsyncIterator[RedisClient]:
    async with connect(small_server.url) as client:
        yield client


async def job_keys(redis: aredis.Redis, queue: Queue) -> set[str]:
    return {k.decode() async for k in redis.scan_iter(match=f"{queue.keys.job_prefix}*", count=1000)}


async def test_full_redis_refuses_adds_whole_and_recovers_when_freed(
    small_server: RedisServer, small: aredis.Redis
) -> None:
    # Given Redis capped at 300 kB over what it uses, with noeviction
    queue = Queue("full", small)
    await queue.add("j", "first", job_id="first")
    used = int((await small.info("memory"))["used_memory"])
    await small.config_set("maxmemory-policy", "noeviction")
    await small.config_set("maxmemory", used + 300_000)

    # When jobs are added until Redis is full
    acked = ["first"]
    with pytest.raises(RedisOutOfMemory, match="maxmemory"):
        for i in range(100_000):
            await queue.add("j", {"n": i, "pad": "x" * 500}, job_id=f"job-{i}")
            acked.append(f"job-{i}")
    assert len(acked) > 100
    # Then the refused add and a refused bulk add wrote nothing: every job
    # key belongs to an acknowledged job, and the counts match
    with pytest.raises(RedisOutOfMemory):
        await queue.add_bulk([("j", {"bulk": i}) for i in range(50)])
    keys = await job_keys(small, queue)
    assert keys == {queue.keys.job(job_id) for job_id in acked}
    assert (await queue.counts())[JobState.WAITING] == len(acked)

    # A worker started while Redis is full waits instead of failing
    worker = spawn_worker(small_server.url, queue.name, 0.0, 10, 2.0)
    try:
        await asyncio.sleep(1.0)
        assert worker.poll() is None
        assert (await queue.counts())[JobState.FAILED] == 0

        # Once memory is freed, everything acknowledged completes
        await small.config_set("maxmemory", 0)

        async def all_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == len(acked)

        await wait_until(all_done, within=60)
        after = await queue.add("j", "after")
        assert after.id
    finally:
        stop_gracefully(worker)

    done = [j.id for j in await queue.get_jobs(JobState.COMPLETED, 0, 100_000)]
    check(
        "Redis at maxmemory (noeviction) while adding, then freed",
        faults=1,
        added=acked,
        completed=done,
        runs=await ledger(small, queue.name),
        spans=await spans(small, queue.name),
        completions=await completions(small, queue.name),
        note="adds past the limit raised RedisOutOfMemory and wrote nothing",
    )
