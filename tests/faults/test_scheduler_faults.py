"""Schedulers as real processes: three racing over the same schedule, one
killed mid-run; every tick is enqueued exactly once."""

from __future__ import annotations

import asyncio
import itertools
import signal

import pytest
import redis.asyncio as aredis

from conveyor import JobState, ManualClock, Queue
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import spawn, stop_gracefully

pytestmark = pytest.mark.slow


async def test_three_scheduler_processes_enqueue_each_tick_once(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # missed="all": a scheduler that falls one 50 ms tick behind must still
    # enqueue every tick ("once" would fold them into one, by design)
    await queue.upsert_schedule("tick", "t", every=0.05, missed="all")
    procs = [spawn("scheduler_proc.py", redis_server.url, queue.name, "0.02") for _ in range(3)]
    await asyncio.sleep(1.0)
    procs[0].send_signal(signal.SIGKILL)  # one dies; the others carry on
    await asyncio.sleep(1.0)
    procs[0].wait()
    stop_gracefully(*procs[1:])

    jobs = await queue.get_jobs(JobState.WAITING, 0, 10_000)
    ticks = sorted(int(j.id.rsplit(":", 1)[1]) for j in jobs)
    assert len(ticks) >= 20
    assert len(set(ticks)) == len(ticks)
    assert all(b - a == 50 for a, b in itertools.pairwise(ticks))
    schedule = await queue.get_schedule("tick")
    assert schedule is not None and schedule.runs == len(ticks)


async def test_three_scheduler_processes_enqueue_each_cron_tick_once(
    redis: aredis.Redis, redis_server: RedisServer, queue_name: str
) -> None:
    # the processes read their time from a key this test moves: 20 ticks of
    # a five-minute cron pattern in about a second
    clock_key = f"clock:{queue_name}"
    clock = ManualClock()  # 2023-11-14 22:13:20 UTC
    await redis.set(clock_key, clock.now_ms())
    queue = Queue(queue_name, redis, clock=clock)
    schedule = await queue.upsert_schedule("digest", "digest", cron="*/5 * * * *", tz="Europe/Paris")
    assert schedule.next_run is not None
    first_tick = int(schedule.next_run.timestamp() * 1000)
    procs = [spawn("scheduler_proc.py", redis_server.url, queue_name, "0.01", clock_key) for _ in range(3)]
    try:
        for n in range(20):
            await redis.set(clock_key, first_tick + n * 300_000)

            async def fired(n: int = n) -> bool:
                return (await queue.counts())[JobState.WAITING] == n + 1

            await wait_until(fired, within=10)
            if n == 10:
                procs[0].send_signal(signal.SIGKILL)  # one dies mid-run
        await asyncio.sleep(0.2)  # give a late duplicate every chance to show up
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)

    jobs = await queue.get_jobs(JobState.WAITING, 0, 100)
    assert sorted(j.id for j in jobs) == sorted(
        f"repeat:digest:{first_tick + n * 300_000}" for n in range(20)
    )
