"""Flows across real worker processes: parents run only after all their
children, even when a worker of the children's queue is killed mid-job."""

from __future__ import annotations

import signal

import pytest
import redis.asyncio as aredis

from conveyor import FlowJob, FlowProducer, JobState, Queue
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import spawn_worker, stop_gracefully

pytestmark = pytest.mark.slow


async def test_parents_run_after_all_children_across_processes(
    redis: aredis.Redis, redis_server: RedisServer, queue_name: str
) -> None:
    parents = Queue(f"{queue_name}-parents", redis)
    children = Queue(f"{queue_name}-children", redis)
    producer = FlowProducer(redis)
    flows = [
        await producer.add(
            FlowJob(
                "wrap-up",
                parents.name,
                i,
                children=[FlowJob("part", children.name, (i, n)) for n in range(3)],
            )
        )
        for i in range(20)
    ]
    url = redis_server.url
    victim = spawn_worker(url, children.name, 0.05, 4, 1.0)
    others = [spawn_worker(url, children.name, 0.02, 4, 1.0), spawn_worker(url, parents.name, 0.0, 4, 1.0)]

    async def some_children_done() -> bool:
        return (await children.counts())[JobState.COMPLETED] >= 10

    await wait_until(some_children_done)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    try:

        async def parents_done() -> bool:
            return (await parents.counts())[JobState.COMPLETED] == 20

        await wait_until(parents_done)
    finally:
        stop_gracefully(*others)

    for flow in flows:
        parent = await parents.get_job(flow.job.id)
        assert parent is not None and parent.started_at is not None
        kids = await parents.get_children(flow.job.id)
        assert sorted(kids.results) == sorted(c.job.id for c in flow.children)
        for node in flow.children:
            child = await children.get_job(node.job.id)
            assert child is not None and child.state is JobState.COMPLETED
            assert child.finished_at is not None and child.finished_at <= parent.started_at
