"""Faults between workers and Redis, through a TCP proxy: 200 ms of added
latency, connections reset, a stall shorter than the lock, and a blackhole
longer than the lock. Workers reconnect by themselves; only the blackhole
may cost a second run, and only of the jobs its workers held."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis

from conveyor import JobState, Queue
from conveyor.engine.options import JobOptionsDict
from conveyor.testing import RedisServer

from .fault_proxy import FaultProxy
from .processes import completions, event_counts, ledger, spawn_worker, stop_gracefully, wait_until
from .tally import check

pytestmark = pytest.mark.slow

LOCK = 2.0
KEEP: JobOptionsDict = {"remove_on_complete": 100_000}  # count every completion


async def test_latency_resets_stalls_and_a_blackhole_lose_nothing(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given two workers that reach Redis through the proxy, one that reaches
    # it directly (it would see any lock lapse as a stall), 2 s locks, and a
    # steady supply of 0.1 s jobs
    added: list[str] = []
    stop = asyncio.Event()

    async def produce() -> None:
        i = 0
        while not stop.is_set():
            jobs = await queue.add_bulk([("j", i + n, KEEP) for n in range(10)])
            added.extend(j.id for j in jobs)
            i += 10
            await asyncio.sleep(0.1)

    with FaultProxy(redis_server.port) as proxy:
        proxied = [spawn_worker(proxy.url, queue.name, 0.1, 4, LOCK) for _ in range(2)]
        direct = spawn_worker(redis_server.url, queue.name, 0.1, 4, LOCK)
        pids = {str(p.pid) for p in proxied}
        producer = asyncio.create_task(produce())
        try:
            # When 200 ms is added each way for 2 s,
            await asyncio.sleep(0.5)
            proxy.set_latency(0.2)
            await asyncio.sleep(2.0)
            proxy.set_latency(0.0)
            # every connection is reset three times, 0.4 s apart,
            for _ in range(3):
                proxy.cut()
                await asyncio.sleep(0.4)
            # and everything stalls for 0.8 s (less than the lock)
            proxy.stall()
            await asyncio.sleep(0.8)
            proxy.resume()
            await asyncio.sleep(1.0)
            stalled_before_blackhole = await event_counts(redis, queue.name, "stalled")

            # Then a blackhole twice the lock: the direct worker takes over
            # what the proxied ones held
            proxy.stall()
            held = await queue.get_jobs(JobState.ACTIVE, 0, 1000)
            at_risk = {j.id for j in held if (j.worker_id or "").split("-")[0] in pids}
            await asyncio.sleep(2 * LOCK)
            proxy.resume()
            await asyncio.sleep(1.5)
            stop.set()
            await producer

            async def all_done() -> bool:
                failed = await queue.get_jobs(JobState.FAILED, 0, 10)
                assert not failed, [(j.id, j.error) for j in failed]
                return (await queue.counts())[JobState.COMPLETED] == len(added)

            await wait_until(all_done, within=60)
            # and the proxied workers work again after the heal
            late = await queue.add_bulk([("late", n, KEEP) for n in range(60)])
            added.extend(j.id for j in late)
            await wait_until(all_done, within=30)
        finally:
            stop.set()
            stop_gracefully(*proxied, direct)

    results = {j.id: str(j.result) for j in await queue.get_jobs(JobState.COMPLETED, 0, 100_000)}
    assert {results[j.id].split(":")[1] for j in late} & pids
    assert stalled_before_blackhole == {}, "a lock lapsed although no fault outlasted it"
    stalled = await event_counts(redis, queue.name, "stalled")
    assert set(stalled) <= at_risk
    check(
        "TCP proxy: 200 ms latency, 3 resets, 0.8 s stall, 4 s blackhole (2 s locks)",
        faults=6,
        added=added,
        completed=results,
        runs=await ledger(redis, queue.name),
        at_risk=at_risk,
        completions=await completions(redis, queue.name),
        note=f"{len(stalled)} jobs recovered after the blackhole",
    )
