"""Sentinel failover: a primary, a replica and three sentinels started by
the test; worker processes and a producer connect through the sentinels
and follow the new primary by themselves. The workers keep their ledger
on another Redis, which the failover does not touch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aredis

from conveyor import ConnectionFailed, Durable, JobState, Queue, connect
from conveyor.engine.client.channel import Channel, Client
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.errors import describe
from conveyor.engine.client.failover import RECHECK
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import DurableProducer, completions, ledger, spans, spawn_worker, stop_gracefully
from .sentinels import SentinelGroup
from .tally import check

pytestmark = pytest.mark.slow


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    with SentinelGroup() as started:
        yield started


@pytest.fixture
async def via_sentinels(group: SentinelGroup) -> AsyncIterator[RedisClient]:
    async with connect(group.url) as client:
        yield client


async def test_a_sentinel_url_reaches_the_primary(
    group: SentinelGroup, via_sentinels: aredis.Redis, queue_name: str
) -> None:
    queue = Queue(queue_name, via_sentinels)
    job = await queue.add("j", {"n": 1})
    assert await queue.get_state(job.id) is JobState.WAITING
    assert describe(via_sentinels) == f"sentinel service conveyor (primary 127.0.0.1:{group.primary.port})"
    async with connect(group.primary.url) as primary:
        assert await primary.exists(queue.keys.job(job.id)) == 1


async def test_a_server_that_answers_readonly_is_left_for_the_primary(
    group: SentinelGroup, queue_name: str
) -> None:
    # Given a channel whose first address is a replica (as after a
    # failover, before the sentinels name the new primary)
    located = [("127.0.0.1", group.replica.port), ("127.0.0.1", group.primary.port)]

    async def locate() -> tuple[str, int]:
        return located.pop(0) if len(located) > 1 else located[0]

    async with connect(group.primary.url) as client:
        assert isinstance(client, Client)
        client._channel, client._channel_made = Channel(locate=locate), True
        queue = Queue(queue_name, client)
        # When a job is added without an id (a lost reply could not be resent)
        job = await queue.add("j", 1)
        # Then the replica's READONLY did not count as a lost reply: the add
        # went to the primary, once
        assert await queue.get_state(job.id) is JobState.WAITING
        assert (await queue.counts())[JobState.WAITING] == 1
        assert client._channel.port == group.primary.port


async def _new_primary(
    group: SentinelGroup, old: RedisServer, redis: aredis.Redis, queue_name: str
) -> tuple[float, float, set[str]]:
    """Waits until the sentinels name the replica, then until the old
    primary takes no more writes (dead, or demoted to a replica); returns
    the seconds each took, and the jobs that had started by the time every
    client could have heard of the switch (they may run twice: their
    claims or completions may have gone to the old primary)."""
    began = time.monotonic()

    async def named() -> bool:
        return group.primary_port() == group.replica.port

    async def demoted() -> bool:
        if old.process is None or old.process.poll() is not None:
            return True
        try:
            async with connect(old.url) as client:
                return bool((await client.info("replication"))["role"] == "slave")
        except ConnectionFailed:
            return True

    await wait_until(named, within=30)
    switched = time.monotonic() - began
    await asyncio.sleep(RECHECK + 1.0)  # a client that missed the announcement asks by then
    at_risk = set(await ledger(redis, queue_name))
    await wait_until(demoted, within=30)
    return switched, time.monotonic() - began, at_risk


@pytest.mark.parametrize("fault", ["primary SIGKILLed", "manual failover"])
async def test_workers_and_producers_follow_a_failover(
    group: SentinelGroup,
    via_sentinels: aredis.Redis,
    redis: aredis.Redis,
    redis_server: RedisServer,
    queue_name: str,
    fault: str,
) -> None:
    # Given two worker processes and a producer whose adds wait for the
    # replica (Durable), all connected through the sentinels
    durable = Queue(queue_name, via_sentinels, durable=Durable(replicas=1, timeout=0.5))
    workers = [
        spawn_worker(group.url, queue_name, 0.02, 10, 2.0, max_stalled=5, books=redis_server.url)
        for _ in range(2)
    ]
    adds = DurableProducer(durable)
    acked = adds.acked
    adds.start()
    old = group.primary
    try:
        await asyncio.sleep(1.0)
        # When the primary fails
        if fault == "primary SIGKILLed":
            old.kill()
        else:
            group.failover()
        before = len(acked)
        switched, demoted, at_risk = await _new_primary(group, old, redis, queue_name)
        if fault == "primary SIGKILLed":
            # it comes back empty, as the new primary's replica
            old.extra_args += ["--replicaof", "127.0.0.1", str(group.replica.port)]
            old.start()
        await asyncio.sleep(1.0)
        await adds.settle(durable, past=before)
    finally:
        await adds.stop()
        stop_gracefully(*workers)

    # Then every confirmed add completed; only work begun before the
    # failover ran twice
    completed = {j.id for j in await durable.get_jobs(JobState.COMPLETED, 0, 100_000)}
    assert not await durable.get_jobs(JobState.FAILED, 0, 10)
    killed = fault == "primary SIGKILLed"
    old_primary = "the old one dead from the kill" if killed else f"the old one demoted after {demoted:.1f} s"
    check(
        f"Sentinel failover ({fault}), durable adds and 2 workers running",
        faults=1,
        added=acked,
        completed=completed,
        runs=await ledger(redis, queue_name),
        spans=await spans(redis, queue_name),
        overlap_allowed=at_risk,
        at_risk=at_risk,
        completions=await completions(via_sentinels, queue_name),
        note=(
            f"new primary named after {switched:.1f} s, {old_primary};"
            f" {adds.unconfirmed} adds waited for a replica,"
            f" {adds.outages} met the outage; {len(at_risk)} jobs had started by the switch"
        ),
    )
