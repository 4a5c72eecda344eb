"""Durable adds: a queue made with ``durable=Durable(...)`` returns from an
add only once a replica confirmed it (Redis WAIT), and says so when none
did in time. A primary and a replica are started by the test."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aredis

from conveyor import Durable, InvalidJobOptions, JobState, NotReplicated, Queue, connect
from conveyor.engine.client.cluster import RedisClient
from conveyor.testing import RedisServer
from polling import wait_until


@pytest.fixture
def replica(redis_server: RedisServer) -> Iterator[RedisServer]:
    # full syncs start at once rather than after Redis's default 5 s delay
    with redis.Redis.from_url(redis_server.url) as primary:
        primary.config_set("repl-diskless-sync-delay", 0)
    with RedisServer(extra_args=["--replicaof", "127.0.0.1", str(redis_server.port)]) as server:
        yield server


@pytest.fixture
async def replica_client(replica: RedisServer) -> AsyncIterator[RedisClient]:
    async with connect(replica.url) as client:

        async def linked() -> bool:
            info = await client.info("replication")
            return info.get("master_link_status") == "up"

        await wait_until(linked, within=10)
        yield client


@pytest.mark.single_node("the replica follows the single test server")
async def test_a_durable_add_returns_once_the_replica_has_the_job(
    redis: aredis.Redis, replica_client: aredis.Redis, queue_name: str
) -> None:
    queue = Queue(queue_name, redis, durable=Durable(replicas=1, timeout=2.0))
    job = await queue.add("j", {"n": 1})
    # the replica holds it the moment the add returns
    assert await replica_client.hget(queue.keys.job(job.id), "st") == b"waiting"
    # bulk adds wait once per chunk, each on its own connection
    jobs = await queue.add_bulk([("j", i) for i in range(1500)])
    last = queue.keys.job(jobs[-1].id)
    assert await replica_client.exists(last) == 1
    assert await replica_client.llen(queue.keys.line) == 1501


@pytest.mark.single_node("the replica follows the single test server")
async def test_a_durable_add_says_when_no_replica_confirmed_it(
    redis: aredis.Redis, replica: RedisServer, replica_client: aredis.Redis, queue_name: str
) -> None:
    durable = Queue(queue_name, redis, durable=Durable(replicas=1, timeout=0.2))
    plain = Queue(queue_name, redis)
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)  # the replica stops reading
    try:
        with pytest.raises(NotReplicated) as caught:
            await durable.add("j", "unconfirmed", job_id="u-1")
        assert (caught.value.acked, caught.value.wanted) == (0, 1)
        # the job was added on the primary; adding it again is safe
        assert [j.id for j in caught.value.jobs] == ["u-1"]
        assert await plain.get_state("u-1") is JobState.WAITING
        with pytest.raises(NotReplicated) as bulk:
            await durable.add_bulk([("j", i, {"job_id": f"b-{i}"}) for i in range(3)])
        assert [j.id for j in bulk.value.jobs] == ["b-0", "b-1", "b-2"]
        # adds that do not ask for durability do not wait
        assert (await plain.add("j", "fast")).id
    finally:
        replica.process.send_signal(signal.SIGCONT)
    # once the replica catches up, the same add (same id) is confirmed; the
    # catching up takes what it takes on a loaded machine, so this add waits longer
    patient = Queue(queue_name, redis, durable=Durable(replicas=1, timeout=10))
    again = await patient.add("j", "unconfirmed", job_id="u-1")
    assert again.id == "u-1"
    assert (await plain.counts())[JobState.WAITING] == 5


async def test_durable_without_a_replica_raises_and_bad_settings_are_refused(queue: Queue) -> None:
    lonely = Queue(queue.name, queue.redis, durable=Durable(replicas=1, timeout=0.05))
    with pytest.raises(NotReplicated):
        await lonely.add("j", 1)
    for bad in ({"replicas": 0}, {"timeout": 0}):
        with pytest.raises(InvalidJobOptions):
            Durable(**bad)
