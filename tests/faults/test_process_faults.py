"""Real processes, real signals, a real redis-server: SIGKILL of a worker,
SIGTERM under load, and Redis killed and restarted on its AOF."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

from conveyor import ConnectionFailed, JobState, Queue, connect
from conveyor.engine.client.cluster import RedisClient
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import completions, ledger, spans, spawn_worker, stop_gracefully
from .tally import check

pytestmark = pytest.mark.slow


async def test_sigkill_one_of_three_workers_ten_times_loses_nothing(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given 600 jobs of 0.2 s and three worker processes (5 at a time, 1 s
    # locks). A job whose worker dies is retried up to max_stalled times and
    # then failed (the guard against a job that kills every worker); these
    # kills come from outside, and one job can be caught by several of them.
    jobs = await queue.add_bulk([("j", i) for i in range(600)])

    def start() -> subprocess.Popen[str]:
        return spawn_worker(redis_server.url, queue.name, 0.2, 5, 1.0, max_stalled=10)

    workers = [start() for _ in range(3)]
    at_risk: set[str] = set()
    try:
        # When one of them is SIGKILLed mid-job ten times in a row, a fresh
        # one taking its place each time
        for kill in range(10):
            await asyncio.sleep(0.3)
            victim = workers.pop(kill % 3)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            mine = f"{victim.pid}-"
            held = await queue.get_jobs(JobState.ACTIVE, 0, 1000)
            at_risk |= {j.id for j in held if (j.worker_id or "").startswith(mine)}
            workers.insert(kill % 3, start())

        async def all_done() -> bool:
            counts = await queue.counts()
            failed = await queue.get_jobs(JobState.FAILED, 0, 10)
            assert not failed, [(j.id, j.error) for j in failed]
            return counts[JobState.COMPLETED] == 600

        await wait_until(all_done, within=90)
    finally:
        stop_gracefully(*workers)

    # Then every job completed once; only jobs a killed worker held ran twice
    done = await queue.get_jobs(JobState.COMPLETED, 0, 1000)
    assert at_risk, "no kill caught a job in flight"
    assert all(str(j.result).startswith("ok:") for j in done)
    check(
        "SIGKILL one of three workers mid-job, 10 times",
        faults=10,
        added=[j.id for j in jobs],
        completed=[j.id for j in done],
        runs=await ledger(redis, queue.name),
        spans=await spans(redis, queue.name),
        overlap_allowed=at_risk,
        at_risk=at_risk,
        completions=await completions(redis, queue.name),
    )


async def test_sigterm_drains_in_flight_jobs_and_exits_zero(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    jobs = await queue.add_bulk([("j", i) for i in range(100)])
    proc = spawn_worker(redis_server.url, queue.name, 0.3, 20, 5.0)

    async def busy() -> bool:
        return (await queue.counts())[JobState.ACTIVE] == 20

    await wait_until(busy)
    stop_gracefully(proc)

    counts = await queue.counts()
    assert counts[JobState.ACTIVE] == 0
    assert counts[JobState.COMPLETED] + counts[JobState.WAITING] == 100
    assert counts[JobState.COMPLETED] >= 20  # the in-flight ones finished
    effects = await ledger(redis, queue.name)
    assert all(n == 1 for n in effects.values())
    # The rest waits for the next worker: nothing lost, nothing run twice
    follower = spawn_worker(redis_server.url, queue.name, 0.0, 20, 5.0)
    try:

        async def all_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == 100

        await wait_until(all_done)
    finally:
        stop_gracefully(follower)
    check(
        "SIGTERM with 20 jobs in flight (100 queued)",
        faults=1,
        added=[j.id for j in jobs],
        completed=[j.id for j in await queue.get_jobs(JobState.COMPLETED, 0, 200)],
        runs=await ledger(redis, queue.name),
        spans=await spans(redis, queue.name),
        completions=await completions(redis, queue.name),
    )


@pytest.fixture(params=["everysec", "always"])
def aof_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(data_dir=tmp_path, appendonly=True, appendfsync=request.param) as server:
        yield server


@pytest.fixture
async def aof_redis(aof_server: RedisServer) -> AsyncIterator[RedisClient]:
    async with connect(aof_server.url) as client:
        yield client


async def test_redis_killed_and_restarted_on_aof_loses_no_acknowledged_add(
    aof_server: RedisServer, aof_redis: aredis.Redis, queue_name: str
) -> None:
    queue = Queue(queue_name, aof_redis)
    workers = [spawn_worker(aof_server.url, queue_name, 0.01, 10, 5.0) for _ in range(2)]
    acked: list[str] = []
    errors = 0
    stop = asyncio.Event()

    async def produce() -> None:
        nonlocal errors
        i = 0
        while not stop.is_set():
            try:
                job = await queue.add("j", i, job_id=f"job-{i}")
                acked.append(job.id)
                i += 1
            except ConnectionFailed:
                errors += 1
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.002)

    producer = asyncio.create_task(produce())
    try:
        await asyncio.sleep(0.7)
        aof_server.kill()
        before_restart = len(acked)
        await asyncio.sleep(0.5)
        aof_server.start()
        await asyncio.sleep(1.0)
        after_restart = len(acked)
        stop.set()
        await producer

        async def all_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] >= len(acked)

        await wait_until(all_done, within=60)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        exit_codes = [w.wait(timeout=20) for w in workers]

    # adds resumed by themselves (retried through the outage or failed with a typed error)
    assert before_restart > 0 and after_restart > before_restart
    assert exit_codes == [0, 0]
    completed = {j.id for j in await queue.get_jobs(JobState.COMPLETED, 0, 100_000)}
    assert set(acked) <= completed
    counts = await queue.counts()
    assert counts[JobState.WAITING] == counts[JobState.ACTIVE] == 0
    fsync = aof_server.appendfsync
    check(
        f"Redis SIGKILLed and restarted (AOF, appendfsync {fsync}), adds and 2 workers running",
        faults=1,
        added=acked,
        completed=completed,
        runs=await ledger(aof_redis, queue_name),
        spans=await spans(aof_redis, queue_name),
        completions=await completions(aof_redis, queue_name),
        note=f"{errors} adds raised ConnectionFailed during the outage",
    )
