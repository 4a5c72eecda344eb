"""Handlers at their worst, in real worker processes: handlers that hold the
event loop far past the lock duration (spinning the CPU, or in a blocking
call), and poison jobs written straight into Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import completions, event_counts, ledger, spans, spawn_worker, stop_gracefully
from .tally import check

pytestmark = pytest.mark.slow

LOCK = 0.5
HELD = 1.5  # three lock durations


async def test_handlers_holding_the_event_loop_past_the_lock_are_not_taken_for_stalled(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given two worker processes with 0.5 s locks (stalled checks every
    # 0.125 s) and jobs that hold the event loop for 1.5 s: half spin the
    # CPU, half sit in a blocking call
    jobs = await queue.add_bulk(
        [("j", {"burn": HELD} if i % 2 else {"block": HELD}) for i in range(12)]
        + [("j", i) for i in range(40)]
    )
    workers = [spawn_worker(redis_server.url, queue.name, 0.01, 2, LOCK) for _ in range(2)]
    try:
        # When they all run
        async def all_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == len(jobs)

        await wait_until(all_done, within=60)
        assert all(w.poll() is None for w in workers)
    finally:
        stop_gracefully(*workers)

    # Then none was declared stalled or run twice: the lease thread renewed
    # their locks while their event loops were held
    assert await event_counts(redis, queue.name, "stalled") == {}
    done = await queue.get_jobs(JobState.COMPLETED, 0, 1000)
    check(
        "Handlers holding the event loop 3x past the lock (CPU spin, blocking call), 2 workers",
        faults=12,
        added=[j.id for j in jobs],
        completed=[j.id for j in done],
        runs=await ledger(redis, queue.name),
        spans=await spans(redis, queue.name),
        completions=await completions(redis, queue.name),
        note=f"12 jobs held their worker's event loop {HELD} s under {LOCK} s locks; 0 declared stalled",
    )


async def test_poison_jobs_are_dead_lettered_and_the_workers_keep_going(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given jobs among which some were damaged in Redis: undecodable data,
    # undecodable options, a missing payload, a missing name
    jobs = await queue.add_bulk([("j", i) for i in range(200)])
    damage: dict[str, Callable[[str], Awaitable[Any]]] = {
        "undecodable data": lambda key: redis.hset(key, "data", b"\xff{not json"),
        "undecodable options": lambda key: redis.hset(key, "opts", b"\x00not-opts"),
        "missing data": lambda key: redis.hdel(key, "data"),
        "missing name": lambda key: redis.hdel(key, "name"),
    }
    poison: dict[str, str] = {}
    for i, (kind, spoil) in enumerate(damage.items()):
        for job in jobs[i * 5 : i * 5 + 5]:
            await spoil(queue.keys.job(job.id))
            poison[job.id] = kind
    workers = [spawn_worker(redis_server.url, queue.name, 0.005, 4, 2.0) for _ in range(2)]
    pids = [w.pid for w in workers]
    try:
        # When two worker processes run them
        async def all_settled() -> bool:
            counts = await queue.counts()
            return counts[JobState.COMPLETED] + counts[JobState.FAILED] == len(jobs)

        await wait_until(all_settled, within=60)
        # the same processes, still running
        assert all(w.poll() is None for w in workers) and [w.pid for w in workers] == pids
    finally:
        stop_gracefully(*workers)

    # Then each damaged job failed with a decode error, without reaching a
    # handler, and every other job completed once
    failed = await queue.get_jobs(JobState.FAILED, 0, 1000)
    assert {j.id for j in failed} == set(poison)
    decoded = [j for j in failed if j.error is not None and "cannot decode job" in j.error]
    assert len(decoded) == len(poison), [(j.id, poison[j.id], j.error) for j in failed]
    runs = await ledger(redis, queue.name)
    assert not set(runs) & set(poison)
    done = await queue.get_jobs(JobState.COMPLETED, 0, 1000)
    check(
        "Poison jobs written into Redis (undecodable payload or options, no payload, no name), 2 workers",
        faults=len(poison),
        added=[j.id for j in jobs],
        completed=[j.id for j in done] + [j.id for j in decoded],
        runs=runs,
        spans=await spans(redis, queue.name),
        completions=await completions(redis, queue.name),
        note=f"{len(poison)} damaged jobs failed with a decode error without reaching a handler; "
        "0 worker restarts",
    )
