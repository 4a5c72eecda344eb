"""Schedulers as real processes: three racing over the same schedule, one
killed mid-run; every tick is enqueued exactly once."""

from __future__ import annotations

import asyncio
import itertools
import signal

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue
from conveyor.testing import RedisServer

from .processes import spawn

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
    for proc in procs[1:]:
        proc.send_signal(signal.SIGTERM)
    procs[0].wait()
    for proc in procs[1:]:
        assert proc.wait(timeout=15) == 0

    jobs = await queue.get_jobs(JobState.WAITING, 0, 10_000)
    ticks = sorted(int(j.id.rsplit(":", 1)[1]) for j in jobs)
    assert len(ticks) >= 20
    assert len(set(ticks)) == len(ticks)
    assert all(b - a == 50 for a, b in itertools.pairwise(ticks))
    schedule = await queue.get_schedule("tick")
    assert schedule is not None and schedule.runs == len(ticks)
