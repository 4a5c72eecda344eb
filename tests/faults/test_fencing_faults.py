"""A worker frozen (SIGSTOP) past its lock and thawed (SIGCONT) after
another worker took its job over and completed it: the late completion is
refused, the job keeps the other worker's result, and the frozen worker goes
on working."""

from __future__ import annotations

import signal

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import completions, ledger, spans, spawn_worker, stop_gracefully
from .tally import check

pytestmark = pytest.mark.slow


async def test_worker_frozen_past_its_lock_cannot_complete_the_job_it_lost(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given a worker running a 1.5 s job under a 0.5 s lock
    frozen = spawn_worker(redis_server.url, queue.name, 1.5, 1, 0.5)
    other = None
    try:
        job = await queue.add("j", "slow")

        async def started() -> bool:
            return (await ledger(redis, queue.name)).get(job.id) == 1

        await wait_until(started)
        # When it freezes, another worker recovers the job once the lock
        # lapses and completes it
        frozen.send_signal(signal.SIGSTOP)
        other = spawn_worker(redis_server.url, queue.name, 0.1, 1, 0.5)

        async def completed() -> bool:
            return await queue.get_state(job.id) is JobState.COMPLETED

        await wait_until(completed, within=20)
        taken_over = await queue.get_job(job.id)
        assert taken_over is not None and taken_over.result == f"ok:{other.pid}"
        # and the frozen worker then thaws and finishes its own run
        frozen.send_signal(signal.SIGCONT)

        async def late_run_over() -> bool:
            return int(await redis.get(f"running:{queue.name}") or 0) == 0

        await wait_until(late_run_over)
        # Then its completion was refused: the result is the other's, the
        # queue accepted one completion
        final = await queue.get_job(job.id)
        assert final is not None and final.result == f"ok:{other.pid}"
        # and the thawed worker still works: it takes the next jobs
        more = await queue.add_bulk([("j", i) for i in range(10)])

        async def rest_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == 11

        await wait_until(rest_done)
    finally:
        if frozen.poll() is None:
            frozen.send_signal(signal.SIGCONT)
        stop_gracefully(frozen, *([other] if other else []))

    runs = await ledger(redis, queue.name)
    assert runs[job.id] == 2  # it did run twice: the frozen run was in flight
    check(
        "SIGSTOP a worker past its lock, SIGCONT after another completed its job",
        faults=1,
        added=[job.id, *(j.id for j in more)],
        completed=[j.id for j in await queue.get_jobs(JobState.COMPLETED, 0, 100)],
        runs=runs,
        spans=await spans(redis, queue.name),
        overlap_allowed=[job.id],
        at_risk=[job.id],
        completions=await completions(redis, queue.name),
        note="the thawed worker's completion refused (stale lock token)",
    )
