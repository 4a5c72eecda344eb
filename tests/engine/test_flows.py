"""Flows: parents that run after their children (on other queues, nested),
failure policies, removal, and the crash-safe handoff between queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.exceptions import NoScriptError

from conveyor import (
    Discard,
    FlowJob,
    FlowProducer,
    InvalidJobOptions,
    JobContext,
    JobIsActive,
    JobState,
    ManualClock,
    PayloadError,
    Queue,
    Worker,
)
from conveyor.engine.client.scripts import LOADS
from conveyor.engine.commands.running import finish_jobs
from conveyor.engine.flows import relay
from polling import wait_until


@pytest.fixture
def names(queue_name: str) -> dict[str, str]:
    return {q: f"{queue_name}-{q}" for q in ("import", "tm", "spotify")}


@asynccontextmanager
async def workers(queues: list[Queue], handler: Callable[[JobContext], Any]) -> AsyncIterator[None]:
    running = [Worker(q, handler, flow_sweep_interval=0.05) for q in queues]
    tasks = [asyncio.create_task(w.run()) for w in running]
    try:
        yield
    finally:
        await asyncio.gather(*(w.close() for w in running))
        await asyncio.gather(*tasks)


async def handle(job: JobContext) -> Any:
    if job.name == "wrap-up":
        children = await job.children()
        return {"results": children.results, "failures": children.failures}
    if job.data == "fail":
        raise Discard(f"{job.name} broke")
    return f"{job.name} done"


def artist_import(names: dict[str, str], **child: Any) -> FlowJob:
    return FlowJob(
        "wrap-up",
        names["import"],
        {"artist": 7},
        children=[
            FlowJob("shows", names["tm"], "ok", options={"job_id": "shows-7"}, **child),
            FlowJob("catalog", names["spotify"], "ok", options={"job_id": "catalog-7"}),
        ],
        options={"job_id": "import-7"},
    )


async def test_the_parent_runs_after_every_child_and_reads_their_results(
    redis: aredis.Redis, names: dict[str, str]
) -> None:
    queues = {k: Queue(v, redis) for k, v in names.items()}
    node = await FlowProducer(redis).add(artist_import(names))
    assert node.job.state is JobState.WAITING_CHILDREN and len(node.children) == 2
    assert await queues["import"].get_state("import-7") is JobState.WAITING_CHILDREN
    shows = await queues["tm"].get_job("shows-7")
    assert shows is not None and shows.parent == (names["import"], "import-7")

    async with workers(list(queues.values()), handle):
        result = await queues["import"].wait_until_finished("import-7", timeout=10)
    assert result == {"results": {"shows-7": "shows done", "catalog-7": "catalog done"}, "failures": {}}
    parent = await queues["import"].get_job("import-7")
    assert parent is not None and parent.started_at is not None
    for q, child_id in (("tm", "shows-7"), ("spotify", "catalog-7")):
        child = await queues[q].get_job(child_id)
        assert child is not None and child.finished_at is not None
        assert child.finished_at <= parent.started_at


async def test_nested_flows_run_from_the_leaves_up(redis: aredis.Redis, names: dict[str, str]) -> None:
    queue = Queue(names["import"], redis)
    order: list[str] = []

    async def record(job: JobContext) -> str:
        order.append(job.name)
        return job.name

    flow = FlowJob(
        "root",
        queue.name,
        children=[
            FlowJob("middle", queue.name, children=[FlowJob("leaf", queue.name), FlowJob("leaf", queue.name)])
        ],
    )
    root = await FlowProducer(redis).add(flow)
    async with workers([queue], record):
        await queue.wait_until_finished(root.job.id, timeout=10)
    assert order == ["leaf", "leaf", "middle", "root"]
    children = await queue.get_children(root.job.id)
    assert children.results == {root.children[0].job.id: "middle"} and children.pending == []


async def test_fail_parent_on_failure_fails_the_parent_and_its_parent(
    redis: aredis.Redis, names: dict[str, str]
) -> None:
    queue = Queue(names["import"], redis)
    flow = FlowJob(
        "top",
        queue.name,
        children=[
            FlowJob(
                "mid",
                queue.name,
                fail_parent_on_failure=True,
                children=[FlowJob("bad", queue.name, "fail", fail_parent_on_failure=True)],
            ),
            FlowJob("fine", queue.name, "ok"),
        ],
    )
    top = await FlowProducer(redis).add(flow)
    async with workers([queue], handle):

        async def parent_failed() -> bool:
            return await queue.get_state(top.job.id) is JobState.FAILED

        await wait_until(parent_failed, within=10)
    mid = await queue.get_job(top.children[0].job.id)
    parent = await queue.get_job(top.job.id)
    assert mid is not None and mid.state is JobState.FAILED
    assert mid.error is not None and "bad broke" in mid.error
    assert parent is not None and parent.state is JobState.FAILED
    assert parent.error is not None and "mid" in parent.error


async def test_an_ignored_failure_lets_the_parent_run_and_see_the_error(
    redis: aredis.Redis, names: dict[str, str]
) -> None:
    queues = [Queue(v, redis) for v in names.values()]
    flow = artist_import(names, ignore_dependency_on_failure=True)
    flow.children[0].data = "fail"
    await FlowProducer(redis).add(flow)
    async with workers(queues, handle):
        result = await queues[0].wait_until_finished("import-7", timeout=10)
    assert result["results"] == {"catalog-7": "catalog done"}
    assert "shows broke" in result["failures"]["shows-7"]


async def test_by_default_a_failed_child_holds_the_parent_until_retried(
    redis: aredis.Redis, names: dict[str, str]
) -> None:
    queues = {k: Queue(v, redis) for k, v in names.items()}
    flow = artist_import(names)
    flow.children[0].data = "fail"
    await FlowProducer(redis).add(flow)
    async with workers(list(queues.values()), handle):

        async def child_failed() -> bool:
            return await queues["tm"].get_state("shows-7") is JobState.FAILED

        await wait_until(child_failed, within=10)
        await asyncio.sleep(0.2)
        assert await queues["import"].get_state("import-7") is JobState.WAITING_CHILDREN
        assert (await queues["import"].get_children("import-7")).pending == ["shows-7"]
        await redis.hset(queues["tm"].keys.job("shows-7"), "data", b'"ok"')  # fixed upstream
        assert await queues["tm"].retry_failed("shows-7") == 1
        result = await queues["import"].wait_until_finished("import-7", timeout=10)
    assert result["results"]["shows-7"] == "shows done"


async def test_removing_a_parent_removes_its_pending_children(
    redis: aredis.Redis, names: dict[str, str]
) -> None:
    queues = {k: Queue(v, redis) for k, v in names.items()}
    await FlowProducer(redis).add(artist_import(names))
    await queues["import"].remove("import-7")
    for q, job_id in (("import", "import-7"), ("tm", "shows-7"), ("spotify", "catalog-7")):
        assert await queues[q].get_job(job_id) is None
    assert await redis.exists(queues["import"].keys.deps_prefix + "import-7") == 0


async def test_a_parent_with_a_running_child_is_not_removed(
    redis: aredis.Redis, names: dict[str, str]
) -> None:
    queues = {k: Queue(v, redis) for k, v in names.items()}
    await FlowProducer(redis).add(artist_import(names))
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: JobContext) -> None:
        started.set()
        await release.wait()

    async with workers([queues["tm"]], slow):
        await started.wait()
        with pytest.raises(JobIsActive):
            await queues["import"].remove("import-7")
        release.set()
    assert await queues["spotify"].get_job("catalog-7") is not None
    assert await queues["import"].get_state("import-7") is JobState.WAITING_CHILDREN


async def test_a_handoff_lost_in_a_crash_is_relayed_by_the_sweep_once(
    redis: aredis.Redis, names: dict[str, str], clock: ManualClock
) -> None:
    parent_q = Queue(names["import"], redis, clock=clock)
    child_q = Queue(names["tm"], redis, clock=clock)
    flow = FlowJob(
        "wrap-up", parent_q.name, children=[FlowJob("shows", child_q.name, options={"job_id": "c1"})]
    )
    await FlowProducer(redis, clock=clock).add(flow)
    # a worker completes the child, then dies before relaying it
    k = child_q.keys
    now = clock.now_ms()
    claimed = await finish_jobs(
        redis, k, now=now, claim_count=1, lock_ms=5000, worker_id="w", outcomes=[], call_id=1
    )
    token = claimed.claimed[0][1]
    row = ["c1", token, "c", b'"shows done"', 0, -1, 0]
    reply = await finish_jobs(
        redis, k, now=now, claim_count=0, lock_ms=5000, worker_id="w", outcomes=[row], call_id=2
    )
    assert reply.relay == ["c1"]
    parent_id = (await parent_q.get_jobs(JobState.WAITING_CHILDREN))[0].id
    assert await redis.hexists(k.outbox, "c1")

    assert await relay(redis, k, None, clock) == 0  # the sweep leaves fresh entries to their worker
    clock.advance(3)
    entry = await redis.hget(k.outbox, "c1")
    assert await relay(redis, k, None, clock) == 1
    assert await parent_q.get_state(parent_id) is JobState.WAITING
    await redis.hset(k.outbox, "c1", entry)  # delivered twice: counted once
    assert await relay(redis, k, ["c1"], clock) == 1
    assert (await parent_q.counts())[JobState.WAITING] == 1
    assert (await parent_q.get_children(parent_id)).results == {"c1": "shows done"}


async def test_adding_a_flow_again_changes_nothing(redis: aredis.Redis, names: dict[str, str]) -> None:
    producer = FlowProducer(redis)
    await producer.add(artist_import(names))
    await producer.add(artist_import(names))
    assert (await Queue(names["tm"], redis).counts())[JobState.WAITING] == 1
    assert (await Queue(names["import"], redis).get_children("import-7")).pending == ["catalog-7", "shows-7"]


async def test_a_burst_run_also_runs_the_parents_its_children_wake(
    redis: aredis.Redis, queue_name: str
) -> None:
    # The child's completion reaches its parent after the reply that settled
    # it, so a burst worker must not stop in between (it did, now and then).
    queue = Queue(queue_name, redis)
    for round_ in range(20):
        await FlowProducer(redis).add(
            FlowJob(
                "wrap-up",
                queue_name,
                options={"job_id": f"p{round_}"},
                children=[FlowJob("shows", queue_name)],
            )
        )
        await Worker(queue, handle).run(burst=True)
        assert (await queue.get_job(f"p{round_}")).state is JobState.COMPLETED  # type: ignore[union-attr]


def _flushing_after_loads(monkeypatch: pytest.MonkeyPatch, redis: aredis.Redis, times: int) -> list[int]:
    """Each of the next ``times`` script loads is followed by a flush of
    the script cache, as if another client flushed it between the load and
    the EXEC; the loads seen."""
    loads: list[int] = []
    cls: Any = type(redis)
    real = cls.script_load

    async def script_load(self: Any, source: str) -> Any:
        sha = await real(self, source)
        loads.append(1)
        if len(loads) <= times:
            await self.script_flush()
        return sha

    monkeypatch.setattr(cls, "script_load", script_load)
    return loads


async def test_a_flow_is_added_after_its_script_is_flushed_again_after_each_load(
    redis: aredis.Redis, names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis.script_flush()
    loads = _flushing_after_loads(monkeypatch, redis, LOADS - 1)
    node = await FlowProducer(redis).add(artist_import(names))
    assert len(loads) == LOADS
    assert node.job.state is JobState.WAITING_CHILDREN
    assert await Queue(names["import"], redis).get_state("import-7") is JobState.WAITING_CHILDREN
    assert (await Queue(names["tm"], redis).counts())[JobState.WAITING] == 1


async def test_a_script_cache_that_keeps_being_flushed_fails_the_flow_and_writes_nothing(
    redis: aredis.Redis, names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis.script_flush()
    loads = _flushing_after_loads(monkeypatch, redis, LOADS + 5)
    flow = FlowJob("wrap-up", names["import"], children=[FlowJob("shows", names["import"])])
    with pytest.raises(NoScriptError):
        await FlowProducer(redis).add(flow)
    assert len(loads) == LOADS  # then the last EXEC, unloaded, fails
    counts = await Queue(names["import"], redis).counts()
    assert counts == {state: 0 for state in counts}


@pytest.mark.parametrize(
    ("flow", "error"),
    [
        (FlowJob("p", "q1", options={"delay": 5}, children=[FlowJob("c", "q2")]), InvalidJobOptions),
        (
            FlowJob(
                "p",
                "q1",
                children=[FlowJob("c", "q2", fail_parent_on_failure=True, ignore_dependency_on_failure=True)],
            ),
            InvalidJobOptions,
        ),
        (FlowJob("p", "q1", children=[FlowJob("c", "q2", options={"attempts": 0})]), InvalidJobOptions),
        (FlowJob("p", "q1", children=[FlowJob("c", "q2", data=object())]), PayloadError),
        (FlowJob("p", "q {bad}"), InvalidJobOptions),
    ],
)
async def test_bad_flows_write_nothing(redis: aredis.Redis, flow: FlowJob, error: type[Exception]) -> None:
    before = await redis.dbsize()
    with pytest.raises(error):
        await FlowProducer(redis).add(flow)
    assert await redis.dbsize() == before
