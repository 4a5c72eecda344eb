"""Faults between workers and Redis, through a TCP proxy: 200 ms of added
latency, connections reset, a stall shorter than the lock, and a blackhole
longer than the lock. Workers reconnect by themselves; only the blackhole
may cost a second run, and only of the jobs its workers held."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aredis

from conveyor import Event, EventBus, EventRouter, JobState, Queue, Worker, connect
from conveyor.engine.options import JobOptionsDict
from conveyor.testing import RedisServer
from polling import wait_until

from .fault_proxy import FaultProxy
from .processes import completions, event_counts, ledger, spans, spawn_worker, stop_gracefully
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
        spans=await spans(redis, queue.name),
        overlap_allowed=at_risk,
        at_risk=at_risk,
        completions=await completions(redis, queue.name),
        note=f"{len(stalled)} jobs recovered after the blackhole",
    )


@pytest.mark.single_node("reaches the test server through a proxy")
async def test_a_job_claimed_as_the_worker_closes_goes_back_to_waiting_at_once(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given a worker whose replies from Redis come 1 s late, with a handler
    # that would run for a minute
    started = asyncio.Event()

    async def handler(job: object) -> None:
        started.set()
        await asyncio.sleep(60)

    with FaultProxy(redis_server.port) as proxy:
        async with connect(proxy.url) as proxied:
            worker = Worker(Queue(queue.name, proxied), handler, shutdown_grace=30, block_timeout=0.2)
            running = asyncio.create_task(worker.run())
            await wait_until(lambda: _has_workers(queue), within=10)
            proxy.set_latency(0.5)
            # When a job is claimed in Redis, and the worker begins to close
            # before the claim's reply reaches it
            job = await queue.add("long", 1)

            async def claimed() -> bool:
                return await queue.get_state(job.id) is JobState.ACTIVE

            await wait_until(claimed, within=10)
            closing = asyncio.create_task(worker.close())
            # Then the job is not run: it goes back to waiting, no attempt
            # spent, and the close does not wait for it
            await asyncio.wait_for(asyncio.gather(closing, running), 20)
    assert not started.is_set()
    assert await queue.get_state(job.id) is JobState.WAITING
    fetched = await queue.get_job(job.id)
    assert fetched is not None and fetched.attempts_made == 0


async def _has_workers(queue: Queue) -> bool:
    return bool(await queue.workers())


@pytest.mark.single_node("reaches the test server through a proxy")
async def test_events_read_by_a_read_cut_short_by_the_stop_are_released_at_once(
    redis: aredis.Redis, redis_server: RedisServer
) -> None:
    # Given a consumer whose replies from Redis come 0.5 s late, and others
    # that claim entries only after 30 s untouched
    bus = EventBus(redis, f"bus-{uuid.uuid4().hex[:10]}")
    handled: list[str] = []
    router = EventRouter()

    @router.on("ping")
    async def handle(event: Event[Any]) -> None:
        handled.append(event.consumer)

    with FaultProxy(redis_server.port) as proxy:
        async with connect(proxy.url) as proxied:
            late = EventBus(proxied, bus.name).consumer("g", router=router, block=1.0, claim_idle=30)
            running = asyncio.create_task(late.run())
            await wait_until(lambda: _group_exists(bus), within=10)
            proxy.set_latency(0.5)
            # When an entry is delivered to it in Redis, and it stops before
            # the read's reply reaches it
            await bus.publish("ping", {})

            async def delivered() -> bool:
                return len(await bus.pending("g", consumer=late.name)) == 1

            await wait_until(delivered, within=10)
            await asyncio.wait_for(late.close(), 20)
            await running
    # Then the entry was not handled by it, and another consumer takes it
    # at once, not after the 30 s it would otherwise wait untouched
    assert handled == []
    other = bus.consumer("g", router=router, block=0.1, claim_idle=30, claim_interval=0.05)
    taker = asyncio.create_task(other.run())

    async def taken() -> bool:
        return handled == [other.name]

    await wait_until(taken, within=10)
    await other.close()
    await taker


async def _group_exists(bus: EventBus) -> bool:
    return bool(await bus.groups())
