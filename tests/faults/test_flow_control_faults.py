"""Flow control across real processes: every worker obeys one rate limit,
one RateLimited hold and one concurrency cap kept in Redis; producers share
dedup keys; dead letters replay onto any worker."""

from __future__ import annotations

import subprocess

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue, RateLimit
from conveyor.testing import RedisServer
from polling import wait_until
from timeline import events, max_in_window

from .processes import ledger, spawn, spawn_worker, starts, stop_gracefully

pytestmark = pytest.mark.slow


async def _run_to_completion(queue: Queue, workers: list[subprocess.Popen[str]], total: int) -> None:
    try:

        async def all_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == total

        await wait_until(all_done)
    finally:
        stop_gracefully(*workers)


async def test_rate_limit_holds_in_every_window_across_three_processes(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    await queue.set_rate_limit(RateLimit(10, per=0.25))
    workers = [spawn_worker(redis_server.url, queue.name, 0.0, 8, 5.0) for _ in range(3)]

    async def all_running() -> bool:  # the jobs come once every process waits for them
        return sum(w.alive for w in await queue.workers()) == 3

    try:
        await wait_until(all_running, within=10)
    except AssertionError:
        stop_gracefully(*workers)
        raise
    await queue.add_bulk([("j", i) for i in range(80)])
    await _run_to_completion(queue, workers, 80)

    claimed = sorted(e.time.timestamp() for e in await events(queue) if e.event == "active")
    assert len(claimed) == 80
    assert max_in_window(claimed, 0.25) <= 10
    handler_starts = [t for t, _, _ in await starts(redis, queue.name)]
    assert len(handler_starts) == 80
    # every process worked, and the whole run took as long as the limit demands
    workers_seen = {e.data["worker"] for e in await events(queue) if e.event == "active"}
    assert len(workers_seen) == 3
    assert claimed[-1] - claimed[0] >= 0.25 * (80 // 10 - 1)


async def test_rate_limited_in_one_process_holds_the_queue_in_all(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    workers = [spawn_worker(redis_server.url, queue.name, 0.05, 2, 5.0) for _ in range(3)]
    limited = await queue.add("call", {"limited": 0.5})
    rest = await queue.add_bulk([("j", i) for i in range(30)])
    await _run_to_completion(queue, workers, 31)

    log = await events(queue)
    holds = [e for e in log if e.event == "waiting" and e.data.get("reason") == "rate limited"]
    assert [e.job_id for e in holds] == [limited.id]
    held_at, until = holds[0].time, holds[0].data["until"]
    # no process started anything while the queue was held
    assert not [e for e in log if e.event == "active" and held_at < e.time < until]
    after = [e for e in log if e.event == "active" and e.time >= until]
    assert after and after[0].job_id == limited.id
    job = await queue.get_job(limited.id)
    assert job is not None and job.attempts_made == 0 and job.result.startswith("ok:")
    assert {e.job_id for e in log if e.event == "completed"} == {limited.id} | {j.id for j in rest}


async def test_global_concurrency_is_never_exceeded_across_processes(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    await queue.set_concurrency(3)
    # without the cap, these processes would run six jobs at once
    workers = [spawn_worker(redis_server.url, queue.name, 0.03, 2, 5.0) for _ in range(3)]
    await queue.add_bulk([("j", i) for i in range(60)])
    await _run_to_completion(queue, workers, 60)

    seen = await starts(redis, queue.name)
    assert len(seen) == 60
    assert max(running for _, running, _ in seen) == 3
    workers_seen = {e.data["worker"] for e in await events(queue) if e.event == "active"}
    assert len(workers_seen) >= 2


async def test_dedup_holds_across_producer_processes(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    producers = [
        spawn("producer_proc.py", redis_server.url, queue.name, "artist:42", "50", output=True)
        for _ in range(4)
    ]
    answers = set()
    for proc in producers:
        out, _ = proc.communicate(timeout=30)
        answers.add(out.strip())
    assert len(answers) == 1  # every add of every process got the same job back
    assert (await queue.counts())[JobState.WAITING] == 1


async def test_dead_letters_replay_across_worker_processes(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    workers = [spawn_worker(redis_server.url, queue.name, 0.0, 4, 5.0) for _ in range(2)]
    broken = await queue.add_bulk([("j", {"fail": True}, {"attempts": 2, "backoff": 0}) for _ in range(5)])
    fine = await queue.add_bulk([("j", i) for i in range(20)])

    async def settled() -> bool:
        counts = await queue.counts()
        return counts[JobState.FAILED] == 5 and counts[JobState.COMPLETED] == 20

    try:
        await wait_until(settled)
        letters = await queue.dead_letters(search="upstream is down")
        assert sorted(j.id for j in letters) == sorted(j.id for j in broken)
        assert all(len(j.history) == 2 for j in letters)  # every attempt's error is kept
        await redis.set(f"healed:{queue.name}", 1)
        assert await queue.retry_failed() == 5

        async def replayed() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == 25

        await wait_until(replayed)
    finally:
        stop_gracefully(*workers)
    assert await queue.dead_letters() == []
    runs = await ledger(redis, queue.name)
    assert all(runs[j.id] == 3 for j in broken)  # two failed attempts, then the replay
    assert all(runs[j.id] == 1 for j in fine)
