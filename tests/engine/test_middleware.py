"""Middleware from the user's side: headers stamped on every add and
carried to each run; before, around, after and failed called in order
around the handler, for completions, retries, final failures and
timeouts, never for a job handed back; a hook that raises fails the
attempt (before) or is only logged (after); the app passes its
middleware and a queue's ``retryable`` down to producers and workers."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import pytest
import redis.asyncio as aredis

from conveyor import (
    Conveyor,
    FlowJob,
    FlowProducer,
    InvalidArgument,
    InvalidJobOptions,
    JobContext,
    JobOptionsDict,
    JobState,
    Middleware,
    Queue,
    TaskContext,
    Worker,
)

current_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="")


class Recorder(Middleware):
    """Writes down every call, tagged with its own name."""

    def __init__(self, tag: str, calls: list[tuple[Any, ...]]) -> None:
        self.tag = tag
        self.calls = calls

    def enqueue(self, queue: str, name: str, headers: dict[str, str]) -> None:
        self.calls.append((self.tag, "enqueue", name))
        headers[f"seen-by-{self.tag}"] = "yes"

    async def before(self, job: JobContext) -> None:
        self.calls.append((self.tag, "before", job.id, job.attempt))

    def around(self, job: JobContext) -> AbstractAsyncContextManager[None]:
        return self._around(job)

    @contextlib.asynccontextmanager
    async def _around(self, job: JobContext) -> AsyncIterator[None]:
        self.calls.append((self.tag, "enter", job.id))
        token = current_tenant.set(job.headers.get("tenant", ""))
        try:
            yield
        except BaseException as exc:
            self.calls.append((self.tag, "exit", job.id, type(exc).__name__))
            raise
        else:
            self.calls.append((self.tag, "exit", job.id, None))
        finally:
            current_tenant.reset(token)

    async def after(self, job: JobContext, result: Any) -> None:
        self.calls.append((self.tag, "after", job.id, result))

    async def failed(self, job: JobContext, error: BaseException, retrying: bool) -> None:
        self.calls.append((self.tag, "failed", job.id, type(error).__name__, retrying))


def of(calls: list[tuple[Any, ...]], job_id: str) -> list[tuple[Any, ...]]:
    """The run calls of one job, without its id."""
    return [(c[0], c[1], *c[3:]) for c in calls if len(c) > 2 and c[2] == job_id]


async def test_hooks_run_in_order_around_completions_retries_and_final_failures(queue: Queue) -> None:
    calls: list[tuple[Any, ...]] = []
    chain = [Recorder("a", calls), Recorder("b", calls)]
    producer = Queue(queue.name, queue.redis, middleware=chain)
    ok = await producer.add("ok", {"n": 1}, headers={"tenant": "acme"})
    flaky = await producer.add("flaky", {}, attempts=2, backoff=0)
    assert [c for c in calls if c[1] == "enqueue"] == [("a", "enqueue", "ok"), ("b", "enqueue", "ok")] * 1 + [
        ("a", "enqueue", "flaky"),
        ("b", "enqueue", "flaky"),
    ]
    assert ok.headers == {"tenant": "acme", "seen-by-a": "yes", "seen-by-b": "yes"}

    seen: dict[str, Any] = {}

    async def handler(job: JobContext) -> Any:
        seen[job.id] = (dict(job.headers), current_tenant.get())
        if job.name == "flaky":
            raise RuntimeError("boom")
        return {"n": job.data["n"]}

    await Worker(producer, handler).run(burst=True)  # the queue's middleware by default

    assert seen[ok.id] == ({"tenant": "acme", "seen-by-a": "yes", "seen-by-b": "yes"}, "acme")
    assert of(calls, ok.id) == [
        ("a", "before", 1),
        ("b", "before", 1),
        ("a", "enter"),
        ("b", "enter"),
        ("b", "exit", None),
        ("a", "exit", None),
        ("b", "after", {"n": 1}),
        ("a", "after", {"n": 1}),
    ]
    assert of(calls, flaky.id) == [
        ("a", "before", 1),
        ("b", "before", 1),
        ("a", "enter"),
        ("b", "enter"),
        ("b", "exit", "RuntimeError"),
        ("a", "exit", "RuntimeError"),
        ("b", "failed", "RuntimeError", True),
        ("a", "failed", "RuntimeError", True),
        ("a", "before", 2),
        ("b", "before", 2),
        ("a", "enter"),
        ("b", "enter"),
        ("b", "exit", "RuntimeError"),
        ("a", "exit", "RuntimeError"),
        ("b", "failed", "RuntimeError", False),
        ("a", "failed", "RuntimeError", False),
    ]
    assert await queue.get_state(flaky.id) is JobState.FAILED


async def test_a_timeout_reaches_around_as_a_timeout_error_and_a_thread_sees_the_context(
    queue: Queue,
) -> None:
    calls: list[tuple[Any, ...]] = []
    slow = await queue.add("slow", {}, timeout=0.05, headers={"tenant": "t1"})
    plain = await queue.add("plain", {}, headers={"tenant": "t2"})

    def handler(job: JobContext) -> str:  # a plain handler, on a worker thread
        if job.name == "slow":
            import time

            time.sleep(0.3)
        return current_tenant.get()

    await Worker(queue, handler, middleware=[Recorder("m", calls)]).run(burst=True)
    assert ("m", "exit", "TimeoutError") in of(calls, slow.id)
    assert ("m", "failed", "TimeoutError", False) in of(calls, slow.id)
    assert await queue.wait_until_finished(plain.id, timeout=5) == "t2"  # set by around, read on the thread


async def test_a_job_handed_back_at_shutdown_gets_neither_after_nor_failed(queue: Queue) -> None:
    calls: list[tuple[Any, ...]] = []
    job = await queue.add("long", {})
    started = asyncio.Event()

    async def handler(ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)

    worker = Worker(queue, handler, middleware=[Recorder("m", calls)], shutdown_grace=0)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    await worker.close()
    await running
    assert of(calls, job.id) == [("m", "before", 1), ("m", "enter"), ("m", "exit", "CancelledError")]
    assert await queue.get_state(job.id) is JobState.WAITING


class Refusing(Middleware):
    async def before(self, job: JobContext) -> None:
        raise PermissionError(f"tenant {job.headers.get('tenant')!r} is suspended")


class BrokenAfter(Middleware):
    async def after(self, job: JobContext, result: Any) -> None:
        raise RuntimeError("metrics backend down")

    async def failed(self, job: JobContext, error: BaseException, retrying: bool) -> None:
        raise RuntimeError("metrics backend down")


async def test_a_before_hook_that_raises_fails_the_attempt_and_a_broken_after_hook_is_only_logged(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    refused = await queue.add("refused", {}, headers={"tenant": "suspended"})
    called: list[str] = []

    async def handler(job: JobContext) -> str:
        called.append(job.id)
        return "done"

    await Worker(queue, handler, middleware=[Refusing()]).run(burst=True)
    failed = await queue.get_job(refused.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and "tenant 'suspended' is suspended" in failed.error
    assert called == []  # the handler never ran

    done = await queue.add("done", {})
    with caplog.at_level(logging.ERROR, logger="conveyor.worker"):
        await Worker(queue, handler, middleware=[BrokenAfter()]).run(burst=True)
    assert await queue.get_state(done.id) is JobState.COMPLETED
    assert any("middleware BrokenAfter raised after the run" in r.getMessage() for r in caplog.records)


async def test_headers_are_checked_before_anything_is_written(queue: Queue) -> None:
    bad: list[Any] = [
        ["tenant", "acme"],
        {"tenant": 7},
        {"": "x"},
        {"line\nbreak": "x"},
        {f"h{i}": "x" for i in range(65)},
        {"big": "x" * 20_000},
        {"tenant": "\ud800"},
    ]
    for headers in bad:
        with pytest.raises(InvalidJobOptions, match="header"):
            await queue.add("job", {}, headers=headers)
    with pytest.raises(InvalidJobOptions, match="header"):
        await queue.add_bulk([("job", {}), ("job", {}, cast(JobOptionsDict, {"headers": {"n": 1}}))])
    assert sum((await queue.counts()).values()) == 0
    with pytest.raises(InvalidArgument, match="Middleware instances"):
        Queue("q", queue.redis, middleware=[object()])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match="Middleware instances"):
        Worker(queue, lambda job: None, middleware=["tracing"])  # type: ignore[list-item]


async def test_bulk_adds_and_flows_are_stamped_too(redis: aredis.Redis, queue_name: str) -> None:
    calls: list[tuple[Any, ...]] = []
    stamping = [Recorder("m", calls)]
    queue = Queue(queue_name, redis, middleware=stamping)
    jobs = await queue.add_bulk([("one", {}), ("two", {}, {"headers": {"tenant": "x"}})])
    assert [j.headers for j in jobs] == [{"seen-by-m": "yes"}, {"tenant": "x", "seen-by-m": "yes"}]
    flow = await FlowProducer(redis, middleware=stamping).add(
        FlowJob("parent", queue_name, {}, [FlowJob("child", queue_name, {})])
    )
    parent = await queue.get_job(flow.job.id)
    child = await queue.get_job(flow.children[0].job.id)
    assert parent is not None and parent.headers == {"seen-by-m": "yes"}
    assert child is not None and child.headers == {"seen-by-m": "yes"}


async def test_the_app_hands_its_middleware_and_retryable_to_its_producers_and_workers(
    redis: aredis.Redis, queue_name: str
) -> None:
    calls: list[tuple[Any, ...]] = []
    app = Conveyor(redis, middleware=[Recorder("app", calls)])
    work = app.queue(
        queue_name,
        middleware=[Recorder("queue", calls)],
        retryable=lambda exc: not isinstance(exc, ValueError),
    )

    @work.task(attempts=3, backoff=0)
    async def parse(ctx: TaskContext, text: str) -> int:
        return int(text)

    good = await parse.enqueue("12")
    bad = await parse.enqueue("twelve")
    await app.run_worker(burst=True)

    assert await good.wait_until_finished(timeout=5) == 12
    assert of(calls, good.id)[-2:] == [("queue", "after", 12), ("app", "after", 12)]
    failed = await work.queue.get_job(bad.id)
    # ValueError is not retryable here: one attempt of three, then failed for good
    assert failed is not None and failed.state is JobState.FAILED and failed.attempts_made == 1
    assert ("app", "failed", "ValueError", False) in of(calls, bad.id)
    assert good.headers == {"seen-by-app": "yes", "seen-by-queue": "yes"}

    with pytest.raises(InvalidArgument, match="Middleware instances"):
        Conveyor(middleware=[Recorder])  # type: ignore[list-item]
    settings: dict[str, Any]
    for settings in ({"concurrency": 0}, {"concurrency": True}, {"max_stalled_count": -1}):
        with pytest.raises(InvalidArgument):
            app.queue(f"{queue_name}-{len(app.queues)}", **settings)
    for settings in ({"lock_duration": 0}, {"shutdown_grace": -1}, {"lock_duration": float("nan")}):
        with pytest.raises(InvalidJobOptions):
            app.queue(f"{queue_name}-{len(app.queues)}", **settings)
    with pytest.raises(InvalidArgument, match="retryable must be callable"):
        app.queue(f"{queue_name}-x", retryable=True)  # type: ignore[arg-type]


async def test_a_tasks_own_middleware_and_retryable_apply_to_its_jobs_only(
    redis: aredis.Redis, queue_name: str
) -> None:
    calls: list[tuple[Any, ...]] = []
    app = Conveyor(redis)
    work = app.queue(queue_name, middleware=[Recorder("queue", calls)])

    @work.task(attempts=3, backoff=0, middleware=[Recorder("task", calls)], retryable=lambda exc: False)
    async def strict(ctx: TaskContext, fail: bool) -> str:
        if fail:
            raise ValueError("bad row")
        return "ok"

    @work.task(attempts=3, backoff=0)
    async def lenient(ctx: TaskContext, fail: bool) -> str:
        if fail and ctx.attempt < 2:
            raise ValueError("bad row")
        return "ok"

    done = await strict.enqueue(False)
    refused = await strict.enqueue(True)
    retried = await lenient.enqueue(True)
    assert done.headers == {"seen-by-task": "yes", "seen-by-queue": "yes"}
    assert retried.headers == {"seen-by-queue": "yes"}
    await app.run_worker(burst=True)

    assert [c[:2] for c in of(calls, done.id)] == [
        ("queue", "before"),
        ("task", "before"),
        ("queue", "enter"),
        ("task", "enter"),
        ("task", "exit"),
        ("queue", "exit"),
        ("task", "after"),
        ("queue", "after"),
    ]
    assert {c[0] for c in of(calls, retried.id)} == {"queue"}  # the task's own middleware stays its own
    failed = await work.queue.get_job(refused.id)
    # not retryable for this task: one attempt of three, failed for good, with the error it raised
    assert failed is not None and failed.state is JobState.FAILED and failed.attempts_made == 1
    assert failed.error is not None and "ValueError: bad row" in failed.error
    assert ("task", "failed", "Discard", False) in of(calls, refused.id)
    assert await work.queue.get_state(retried.id) is JobState.COMPLETED  # lenient: retried, then done
    with pytest.raises(InvalidArgument, match="retryable must be callable"):
        work.task(name="x", retryable="no")(strict.fn)  # type: ignore[call-overload]
