"""Plain (``def``) tasks: on a thread or in a pool process, with a blocking
context whose reports reach the job, typed results, the queue's and the
task's executor, and every rule of threads and pool processes kept."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from pydantic import BaseModel

from conveyor import (
    Conveyor,
    InvalidArgument,
    InvalidJobOptions,
    InvalidTask,
    JobState,
    Retry,
    StaleLease,
    SyncTask,
    SyncTaskContext,
    TaskContext,
)


class Thumbnail(BaseModel):
    path: str
    width: int
    pid: int
    thread: str


# Declared at module level: a pool process imports this module and finds
# each task under its function's name.
app = Conveyor()
images = app.queue("plain-images", concurrency=2, executor="process", processes=2)
files = app.queue("plain-files", concurrency=2, lock_duration=0.5)


@images.task(attempts=2)
def resize(ctx: SyncTaskContext, path: str, width: int) -> Thumbnail:
    ctx.progress("resize", 50, f"resizing {path}")
    ctx.log(f"attempt {ctx.attempt} of {ctx.attempts} in {os.getpid()}")
    if path == "retry-once" and ctx.attempt == 1:
        raise Retry("upstream busy", delay=0.01)
    if path == "slow":
        time.sleep(30)
    return Thumbnail(path=path, width=width, pid=os.getpid(), thread=threading.current_thread().name)


@files.task(executor="thread", retryable=lambda exc: not isinstance(exc, PermissionError))
def checksum(ctx: SyncTaskContext, path: str) -> Thumbnail:
    ctx.progress("hashing", 10)
    ctx.log("hashing " + path)
    if path == "forbidden":
        raise PermissionError(path)
    return Thumbnail(path=path, width=0, pid=os.getpid(), thread=threading.current_thread().name)


@images.task
def total(ctx: SyncTaskContext) -> int:
    kids = ctx.children()
    return sum(kids.results.values())


@files.task
def count(ctx: SyncTaskContext, n: int) -> int:
    return n


gate = threading.Event()


@files.task(timeout=0.2)
def overruns(ctx: SyncTaskContext) -> str:
    gate.wait(10)
    return "late"


@files.task
async def on_the_loop(ctx: TaskContext) -> str:
    return "async"


@pytest.fixture
async def plain_app(redis: aredis.Redis) -> AsyncIterator[Conveyor]:
    await app.use_redis(redis)
    for declared in app.queues.values():
        await declared.queue.obliterate(force=True)
    yield app
    for declared in app.queues.values():
        await declared.queue.obliterate(force=True)


async def test_a_plain_task_runs_on_a_thread_and_its_reports_reach_the_job(plain_app: Conveyor) -> None:
    # Given a plain task on the threads of its queue
    job = await checksum.enqueue("a.txt")

    # When a worker runs it
    await plain_app.run_worker(["plain-files"], burst=True)

    # Then it ran on a worker thread of this process, and its blocking
    # progress and log calls were stored before it went on
    result = await job.wait_until_finished(timeout=5)
    assert isinstance(result, Thumbnail)
    assert result.pid == os.getpid() and result.thread.startswith("conveyor-job")
    done = await files.queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.progress == {"stage": "hashing", "percent": 10, "message": ""}
    assert await files.queue.get_logs(job.id) == ["hashing a.txt"]


async def test_a_plain_task_in_a_pool_process_reports_through_the_worker(plain_app: Conveyor) -> None:
    # Given plain tasks of a queue whose executor is "process"; one asks
    # for a retry on its first attempt
    jobs = [await resize.enqueue("a.png", 100), await resize.enqueue("retry-once", 200)]

    # When a worker runs them
    worker = asyncio.create_task(plain_app.run_worker(["plain-images"]))
    try:
        results = [await job.wait_until_finished(timeout=20) for job in jobs]
    finally:
        await plain_app.close()
        await worker

    # Then each ran in another process, its progress and log lines stored
    # through the worker, its result read back typed
    for job, result, width in zip(jobs, results, (100, 200), strict=True):
        assert isinstance(result, Thumbnail) and result.width == width
        assert result.pid != os.getpid()
        done = await images.queue.get_job(job.id)
        assert done is not None and done.progress["stage"] == "resize"
    retried = await images.queue.get_job(jobs[1].id)
    assert retried is not None and retried.attempts_started == 2
    logs = await images.queue.get_logs(jobs[1].id)
    assert [line.split(" in ")[0] for line in logs] == ["attempt 1 of 2", "attempt 2 of 2"]


async def test_a_pool_process_past_the_task_timeout_is_killed(plain_app: Conveyor) -> None:
    # Given a process task that sleeps past its job's timeout
    job = await resize.with_options(timeout=0.5, attempts=1).enqueue("slow", 1)

    # When a worker runs it
    started = time.monotonic()
    await plain_app.run_worker(["plain-images"], burst=True)

    # Then its process was killed at the timeout, and the job failed for it
    assert time.monotonic() - started < 20
    done = await images.queue.get_job(job.id)
    assert done is not None and done.state is JobState.FAILED
    assert done.error is not None and "timed out" in done.error


async def test_retryable_and_bad_arguments_hold_for_plain_tasks(plain_app: Conveyor) -> None:
    # Given a failure the task's retryable refuses, and arguments checked at add
    job = await checksum.with_options(attempts=3).enqueue("forbidden")
    with pytest.raises(InvalidJobOptions, match="path"):
        await checksum.enqueue(42)  # type: ignore[arg-type]

    # When a worker runs it
    await plain_app.run_worker(["plain-files"], burst=True)

    # Then it failed at once, without its other attempts
    done = await files.queue.get_job(job.id)
    assert done is not None and done.state is JobState.FAILED and done.attempts_made == 1
    assert done.error is not None and "PermissionError" in done.error


async def test_a_thread_past_its_timeout_keeps_its_job_held_until_it_returns(plain_app: Conveyor) -> None:
    # Given a plain task that blocks past its 0.2 s timeout, with a 0.5 s lease
    gate.clear()
    job = await overruns.with_options(attempts=1).enqueue()
    worker = asyncio.create_task(plain_app.run_worker(["plain-files"]))
    try:
        # When its timeout has passed several leases ago
        await asyncio.sleep(1.5)

        # Then the job is still held by its worker (no other can start it)
        held = await files.queue.get_job(job.id)
        assert held is not None and held.state is JobState.ACTIVE and held.attempts_started == 1

        # and once the thread returns, the timeout is recorded
        gate.set()
        for _ in range(100):
            done = await files.queue.get_job(job.id)
            if done is not None and done.state is JobState.FAILED:
                break
            await asyncio.sleep(0.05)
        assert done is not None and done.state is JobState.FAILED
        assert done.error is not None and "timed out" in done.error
    finally:
        gate.set()
        await plain_app.close()
        await worker


async def test_async_and_plain_tasks_share_a_queue(plain_app: Conveyor) -> None:
    job = await on_the_loop.enqueue()
    plain = await checksum.enqueue("b.txt")
    await plain_app.run_worker(["plain-files"], burst=True)
    assert await job.wait_until_finished(timeout=5) == "async"
    assert (await plain.wait_until_finished(timeout=5)).path == "b.txt"


async def test_a_plain_parent_reads_its_childrens_results(plain_app: Conveyor) -> None:
    # Given a flow: a parent task in a pool process over children on threads
    flow = total.node(children=[count.node({"n": n}) for n in (1, 2, 3)])
    node = await plain_app.add_flow(flow)

    # When workers of both queues run it
    worker = asyncio.create_task(plain_app.run_worker(["plain-images", "plain-files"]))
    try:
        result = await total.get_job(node.job.id)
        assert result is not None
        summed = await result.wait_until_finished(timeout=20)
    finally:
        await plain_app.close()
        await worker

    # Then the parent, in its process, read its children's results through its worker
    assert summed == 6


def test_declarations_that_could_not_run_are_refused() -> None:
    local = Conveyor()
    queue = local.queue("declarations")

    # an async def runs on the loop: an executor would be ignored
    with pytest.raises(InvalidTask, match="executor is for plain def tasks"):

        @queue.task(executor="process")
        async def on_loop(ctx: TaskContext) -> None: ...

    # a pool process could not import a function defined in a function
    with pytest.raises(InvalidTask, match="module level"):

        @queue.task(executor="process")
        def nested(ctx: SyncTaskContext) -> None: ...

    # a plain def takes the SyncTaskContext, an async def the TaskContext
    with pytest.raises(InvalidTask, match="must take a SyncTaskContext"):

        @queue.task  # type: ignore[arg-type]
        def wrong_context(ctx: TaskContext) -> None: ...

    with pytest.raises(InvalidTask, match="must take a TaskContext"):

        @queue.task
        async def wrong_async_context(ctx: SyncTaskContext) -> None: ...

    with pytest.raises(InvalidArgument, match="executor must be"):
        local.queue("bad-executor", executor="fork")  # type: ignore[arg-type]

    # the worker's timings are checked where the queue is declared
    for timing in ("lock_duration", "stalled_interval"):
        for bad in (0, -1.0, float("nan")):
            with pytest.raises(InvalidArgument, match=timing):
                settings: dict[str, Any] = {timing: bad}
                local.queue(f"bad-{timing}-{bad}", **settings)
    assert local.queue("checked", stalled_interval=0.5).worker().stalled_interval == 0.5
    assert local.queue("half-the-lock", lock_duration=4.0).worker().stalled_interval == 2.0


async def test_a_process_task_not_found_under_its_name_fails_with_the_reason(
    redis: aredis.Redis, queue_name: str
) -> None:
    # Given a process task registered without the decorator's name binding
    local = Conveyor(redis)
    queue = local.queue(queue_name, executor="process", processes=1)
    renamed = queue.task(name="renamed")(_unbound)
    job = await renamed.with_options(attempts=1).enqueue(3)

    # When a worker runs it
    await local.run_worker(burst=True)

    # Then the job fails saying why, before any process starts
    done = await queue.queue.get_job(job.id)
    assert done is not None and done.state is JobState.FAILED
    assert done.error is not None and "declare it with @queue.task" in done.error


def _unbound(ctx: SyncTaskContext, n: int) -> int:
    return n


def test_a_plain_task_is_called_directly_with_a_test_context() -> None:
    ctx = SyncTaskContext.for_testing(job_id="j1", queue="plain-files")
    result = checksum(ctx, "c.txt")
    assert result.path == "c.txt"
    assert ctx.recorded.progress == [{"stage": "hashing", "percent": 10, "message": ""}]
    assert ctx.recorded.logs == ["hashing c.txt"]


async def test_eager_mode_runs_plain_tasks_inline() -> None:
    eager = Conveyor(eager=True)
    queue = eager.queue("eager-plain")
    seen: list[str] = []

    @queue.task(attempts=2)
    def flaky(ctx: SyncTaskContext, n: int) -> int:
        seen.append(threading.current_thread().name)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt")
        return n * 2

    job = await flaky.enqueue(21)
    assert job.state is JobState.COMPLETED and job.result == 42 and job.attempts_made == 2
    assert threading.main_thread().name not in seen  # off the event loop, as a worker runs it


async def test_a_blocking_report_from_the_event_loop_is_refused(plain_app: Conveyor) -> None:
    # A SyncTaskContext waits for the loop: called on the loop it would
    # wait for ever, so it raises instead.
    from conveyor.tasks.blocking import ThreadJob

    job = await checksum.enqueue("d.txt")
    claimed: list[Any] = []

    async def grab(ctx: Any) -> None:
        claimed.append(ctx)

    worker = files.worker()
    worker.execution.default = type(worker.execution.default)(grab, "async")
    worker.execution.route = None
    await worker.run(burst=True)
    with pytest.raises(RuntimeError, match="blocks"):
        ThreadJob(claimed[0], asyncio.get_running_loop()).log("x")
    assert job.id == claimed[0].id


async def test_a_report_after_the_lease_was_taken_over_raises_stale_lease(plain_app: Conveyor) -> None:
    assert issubclass(StaleLease, Exception)  # the process side maps it by name
    from conveyor.engine.procpool import serve_job

    class Lost:
        async def update_progress(self, progress: Any) -> None:
            raise StaleLease("job 1: lock held by another worker")

    answer = await serve_job(Lost(), {"op": "progress", "value": 1})
    assert answer == {"error": "StaleLease", "message": "job 1: lock held by another worker"}


def test_the_decorator_types_plain_tasks() -> None:
    assert isinstance(checksum, SyncTask) and checksum.executor == "thread"
    assert isinstance(resize, SyncTask) and resize.executor == "process"
