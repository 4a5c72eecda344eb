"""Real processes, real signals, a real redis-server: SIGKILL of a worker,
SIGTERM under load, and Redis killed and restarted on its AOF."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

from conveyor import ConnectionFailed, JobState, Queue, connect
from conveyor.testing import RedisServer

from .processes import ledger, spawn_worker, stop_gracefully, wait_until

pytestmark = pytest.mark.slow


async def test_sigkill_mid_jobs_every_job_completes_and_only_killed_jobs_rerun(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    jobs = await queue.add_bulk([("j", i) for i in range(200)])
    victim = spawn_worker(redis_server.url, queue.name, 0.05, 10, 1.0)

    async def some_done() -> bool:
        return (await queue.counts())[JobState.COMPLETED] >= 40

    await wait_until(some_done)
    in_flight = {j.id for j in await queue.get_jobs(JobState.ACTIVE, 0, 100)}
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    at_risk = in_flight | {j.id for j in await queue.get_jobs(JobState.ACTIVE, 0, 100)}
    survivor = spawn_worker(redis_server.url, queue.name, 0.0, 20, 1.0)
    try:

        async def all_done() -> bool:
            return (await queue.counts())[JobState.COMPLETED] == 200

        await wait_until(all_done)
    finally:
        stop_gracefully(survivor)

    effects = await ledger(redis, queue.name)
    assert set(effects) == {j.id for j in jobs}
    reruns = {job_id for job_id, n in effects.items() if n > 1}
    assert reruns <= at_risk
    assert all(n <= 2 for n in effects.values())
    for job in await queue.get_jobs(JobState.COMPLETED, 0, 200):
        assert job.result == "ok"


async def test_sigterm_drains_in_flight_jobs_and_exits_zero(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    await queue.add_bulk([("j", i) for i in range(100)])
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


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(data_dir=tmp_path, appendonly=True, appendfsync="everysec") as server:
        yield server


@pytest.fixture
async def aof_redis(aof_server: RedisServer) -> AsyncIterator[aredis.Redis]:
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
