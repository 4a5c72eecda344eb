"""Worker and scheduler processes whose wall clocks are 2 s ahead and 2 s
behind: every time the engine acts on is Redis ``TIME``, so delayed jobs do
not start early, locks do not lapse early, and each schedule tick is
enqueued once and not before it is due."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import (
    completions,
    event_counts,
    ledger,
    spans,
    spawn,
    spawn_worker,
    starts,
    stop_gracefully,
)
from .tally import check

pytestmark = pytest.mark.slow

SKEWS = (2.0, -2.0)


async def test_processes_two_seconds_apart_agree_on_delays_locks_and_ticks(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given two workers (0.8 s jobs under 0.5 s locks) and two schedulers,
    # one of each 2 s ahead and one 2 s behind
    url = redis_server.url
    workers = [spawn_worker(url, queue.name, 0.8, 4, 0.5, skew=s) for s in SKEWS]
    schedulers = [spawn("scheduler_proc.py", url, queue.name, "0.02", skew=s) for s in SKEWS]
    try:
        # When jobs are delayed by 0.3 to 1.4 s and a schedule ticks every 0.25 s
        delayed = [await queue.add("later", n, delay=0.3 + n * 0.1) for n in range(12)]
        await queue.upsert_schedule("tick", "tick", every=0.25, missed="all")
        await asyncio.sleep(3.0)
        await queue.remove_schedule("tick")

        async def all_done() -> bool:
            counts = await queue.counts()
            return counts[JobState.COMPLETED] > len(delayed) and not (
                counts[JobState.WAITING] or counts[JobState.ACTIVE] or counts[JobState.DELAYED]
            )

        await wait_until(all_done, within=30)
    finally:
        stop_gracefully(*workers, *schedulers)

    done = {j.id: j for j in await queue.get_jobs(JobState.COMPLETED, 0, 1000)}
    # Then no delayed job started before it was due, by Redis time
    for job in delayed:
        ran = done[job.id]
        assert ran.run_at is not None and ran.started_at is not None
        assert ran.started_at >= ran.run_at, (job.id, ran.run_at, ran.started_at)
    # no lock lapsed, and each job ran once
    assert await event_counts(redis, queue.name, "stalled") == {}
    runs = await ledger(redis, queue.name)
    assert set(runs.values()) == {1}
    # each tick was enqueued once, 250 ms apart, never before it was due
    ticks = sorted(int(i.rsplit(":", 1)[1]) for i in done if i.startswith("repeat:tick:"))
    assert len(ticks) >= 8
    assert all(b - a == 250 for a, b in itertools.pairwise(ticks))
    for tick in ticks:
        created = done[f"repeat:tick:{tick}"].created_at
        assert created is not None and created.timestamp() * 1000 >= tick
    # and the skews were real: each worker's own clock was 2 s off Redis's
    pids = {int(done[i].result.split(":")[1]) for i in done}
    assert pids == {w.pid for w in workers}
    offsets = set()
    for at, _, job_id in await starts(redis, queue.name):
        started = done[job_id].started_at
        assert started is not None
        offsets.add(round(at - started.timestamp()))
    assert offsets == {2, -2}
    check(
        "Clock skew: workers and schedulers 2 s ahead and 2 s behind",
        faults=4,
        added=[j.id for j in delayed] + [f"repeat:tick:{t}" for t in ticks],
        completed=list(done),
        runs=runs,
        spans=await spans(redis, queue.name),
        completions=await completions(redis, queue.name),
        note=f"{len(delayed)} delayed jobs, {len(ticks)} schedule ticks, 0.8 s jobs under 0.5 s locks",
    )
