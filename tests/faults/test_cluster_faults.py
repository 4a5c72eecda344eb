"""Redis Cluster failover: three primaries with a replica each, started by
the test. The primary serving the queue's slot is SIGKILLed; the cluster
promotes its replica by itself. Worker processes and a producer connected
with a ``redis+cluster://`` URL find the new primary by reading the slot
table again. The workers keep their ledger on another Redis, which the
failover does not touch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aredis

from conveyor import ConnectionFailed, Durable, JobState, Queue, connect
from conveyor.engine.client.cluster import ClusterClient
from conveyor.testing import RedisClusterNodes, RedisServer
from polling import wait_until

from .processes import DurableProducer, completions, ledger, spans, spawn_worker, stop_gracefully
from .tally import check

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes(3, replicas=1, node_timeout_ms=1000) as started:
        yield started


async def _role(port: int) -> str | None:
    try:
        async with aredis.Redis(port=port, socket_timeout=1) as node:
            return str((await node.info("replication"))["role"])
    except (OSError, aredis.RedisError):
        return None


async def test_workers_and_producers_follow_a_cluster_failover(
    cluster: RedisClusterNodes, redis: aredis.Redis, redis_server: RedisServer, queue_name: str
) -> None:
    # Given two worker processes and a producer whose adds wait for the
    # replica (Durable), all connected with the cluster's URL
    # (the producer's client only adds: it has no read through redis-py
    # that would make it read the slot table again by itself)
    async with connect(cluster.url) as client, connect(cluster.url) as producing:
        assert isinstance(client, ClusterClient)
        durable = Queue(queue_name, producing, durable=Durable(replicas=1, timeout=0.5))
        plain = Queue(queue_name, producing)
        watch = Queue(queue_name, client)
        assert isinstance(producing, ClusterClient)
        await durable.register()
        await plain.register()
        await client.initialize()
        serving = int(client.node_for(durable.keys.events).port)
        old = next(s for s in cluster.servers if s.port == serving)
        (replica,) = cluster.replicas_of[serving]
        workers = [
            spawn_worker(cluster.url, queue_name, 0.02, 10, 2.0, max_stalled=5, books=redis_server.url)
            for _ in range(2)
        ]
        adds = DurableProducer(durable)
        acked = adds.acked
        adds.start()
        try:
            await asyncio.sleep(1.0)
            # When the primary serving the queue's slot is killed
            old.kill()
            killed = time.monotonic()
            before = len(acked)

            async def promoted() -> bool:
                return await _role(replica.port) == "master"

            await wait_until(promoted, within=30)
            switched = time.monotonic() - killed
            # every job started by now may have had its claim or completion
            # written to the dead primary only: it may run twice
            at_risk = set(await ledger(redis, queue_name))
            # while the old primary is still gone (no MOVED reply to follow),
            # plain adds reach the new primary and the workers run them
            after = [f"after-{i}" for i in range(100)]
            for job_id in after:
                while True:
                    try:
                        await plain.add("j", job_id, job_id=job_id)
                        break
                    except ConnectionFailed:
                        adds.outages += 1
                        await asyncio.sleep(0.05)
            acked.extend(after)

            async def followed() -> bool:
                states = await asyncio.gather(*(watch.get_state(j) for j in after))
                return all(state is JobState.COMPLETED for state in states)

            await wait_until(followed, within=30)
            # it comes back empty, and the cluster makes it the new primary's replica
            old.start()

            async def replicating() -> bool:
                return await _role(old.port) == "slave"

            await wait_until(replicating, within=30)
            await adds.settle(watch, past=before)
        finally:
            await adds.stop()
            stop_gracefully(*workers)

        # Then every confirmed add completed; only work begun before the
        # replica was promoted ran twice
        completed = {j.id for j in await watch.get_jobs(JobState.COMPLETED, 0, 100_000)}
        assert not await watch.get_jobs(JobState.FAILED, 0, 10)
        assert int(producing.node_for(durable.keys.events).port) == replica.port
        check(
            "Redis Cluster failover (primary SIGKILLed), durable adds and 2 workers running",
            faults=1,
            added=acked,
            completed=completed,
            runs=await ledger(redis, queue_name),
            spans=await spans(redis, queue_name),
            overlap_allowed=at_risk,
            at_risk=at_risk,
            completions=await completions(client, queue_name),  # type: ignore[arg-type]
            note=(
                f"replica promoted {switched:.1f} s after the kill (node timeout 1 s);"
                f" {adds.unconfirmed} adds waited for a replica, {adds.outages} met the outage;"
                f" {len(at_risk)} jobs had started by the promotion;"
                f" 100 plain adds ran before the old primary came back"
            ),
        )
