"""Producer API: adding, ordering, idempotency, bad input, reads and admin."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC
from typing import Any, cast

import pytest
import redis.asyncio as aredis

from conveyor import (
    Discard,
    InvalidJobOptions,
    JobContext,
    JobIsActive,
    JobNotFound,
    JobOptionsDict,
    JobState,
    KeepJobs,
    ManualClock,
    PayloadError,
    PayloadTooLarge,
    Priority,
    Queue,
    QueueNotEmpty,
    Worker,
)


async def run_order(queue: Queue, concurrency: int = 1) -> list[Any]:
    seen: list[Any] = []

    async def handler(job: JobContext) -> None:
        seen.append(job.data)

    await Worker(queue, handler, concurrency=concurrency).run(burst=True)
    return seen


async def key_count(redis: aredis.Redis, queue: Queue) -> int:
    return len([k async for k in redis.scan_iter(match=f"{queue.keys.base}:*")])


async def test_higher_priority_runs_first_and_fifo_within_a_priority(queue: Queue) -> None:
    await queue.add("j", "low-1", priority=Priority.LOW)
    await queue.add("j", "normal-1")
    await queue.add("j", "critical-1", priority=Priority.CRITICAL)
    await queue.add("j", "normal-2")
    await queue.add("j", "low-2", priority=Priority.LOW)
    await queue.add("j", "p5", priority=5)

    assert await run_order(queue) == ["critical-1", "p5", "normal-1", "normal-2", "low-1", "low-2"]


async def test_lifo_jobs_run_newest_first_ahead_of_fifo_jobs(queue: Queue) -> None:
    await queue.add("j", "fifo-1")
    await queue.add("j", "lifo-1", lifo=True)
    await queue.add("j", "lifo-2", lifo=True)

    assert await run_order(queue) == ["lifo-2", "lifo-1", "fifo-1"]


async def test_bulk_add_keeps_order_and_counts(queue: Queue) -> None:
    jobs = await queue.add_bulk([("j", i) for i in range(2500)])

    assert len({j.id for j in jobs}) == 2500
    assert (await queue.counts())[JobState.WAITING] == 2500
    assert await run_order(queue, concurrency=1) == list(range(2500))


async def test_delayed_job_never_starts_before_its_time(clocked_queue: Queue, clock: ManualClock) -> None:
    job = await clocked_queue.add("j", "later", delay=10)
    assert job.state is JobState.DELAYED

    clock.advance(9.999)
    assert await run_order(clocked_queue) == []
    assert await clocked_queue.get_state(job.id) is JobState.DELAYED

    clock.advance(0.001)
    assert await run_order(clocked_queue) == ["later"]


async def test_run_at_schedules_at_an_absolute_time(clocked_queue: Queue, clock: ManualClock) -> None:
    from datetime import datetime

    due = datetime.fromtimestamp((clock.now_ms() + 5000) / 1000, tz=UTC)
    job = await clocked_queue.add("j", "x", run_at=due)
    assert job.state is JobState.DELAYED

    clock.advance(5)
    assert await run_order(clocked_queue) == ["x"]


async def test_adding_an_existing_job_id_returns_it_and_enqueues_nothing(queue: Queue) -> None:
    first = await queue.add("j", {"v": 1}, job_id="welcome:ada")
    second = await queue.add("j", {"v": 2}, job_id="welcome:ada")
    bulk = await queue.add_bulk([("j", {"v": 3}, {"job_id": "welcome:ada"}), ("j", {"v": 4})])

    assert first.id == second.id == bulk[0].id == "welcome:ada"
    assert second.data == {"v": 1}
    assert (await queue.counts())[JobState.WAITING] == 2


async def test_completed_jobs_are_trimmed_to_the_kept_count(clocked_queue: Queue, clock: ManualClock) -> None:
    await clocked_queue.add_bulk([("j", i, {"remove_on_complete": 3}) for i in range(10)])

    async def one_ms_each(job: JobContext) -> None:
        clock.advance(0.001)  # jobs finishing in the same millisecond would tie

    await Worker(clocked_queue, one_ms_each, concurrency=1).run(burst=True)

    done = await clocked_queue.get_jobs(JobState.COMPLETED, 0, 100)
    assert sorted(j.data for j in done) == [7, 8, 9]
    assert await clocked_queue.get_job("1") is None


async def test_remove_on_complete_true_deletes_the_job(queue: Queue) -> None:
    job = await queue.add("j", 1, remove_on_complete=True)
    await run_order(queue)

    assert await queue.get_job(job.id) is None
    assert (await queue.counts())[JobState.COMPLETED] == 0


async def test_completed_jobs_expire_by_age_without_new_jobs_finishing(queue: Queue) -> None:
    job = await queue.add("j", 1, remove_on_complete=KeepJobs(age=0.2))
    await run_order(queue)
    assert await queue.get_job(job.id) is not None

    await asyncio.sleep(0.4)

    assert await queue.get_job(job.id) is None


async def test_failed_jobs_are_kept_by_count(queue: Queue) -> None:
    async def boom(job: JobContext) -> None:
        raise Discard("no")

    await queue.add_bulk([("j", i, {"remove_on_fail": 2}) for i in range(5)])
    await Worker(queue, boom).run(burst=True)

    assert [j.data for j in await queue.get_jobs(JobState.FAILED)] == [4, 3]


@pytest.mark.parametrize(
    ("data", "options", "error"),
    [
        ({"when": object()}, {}, PayloadError),
        ({1, 2}, {}, PayloadError),
        ("x" * (600 * 1024), {}, PayloadTooLarge),
        ("x", {"delay": -1}, InvalidJobOptions),
        ("x", {"delay": math.nan}, InvalidJobOptions),
        ("x", {"colour": "red"}, InvalidJobOptions),
        ("x", {"attempts": 0}, InvalidJobOptions),
        ("x", {"priority": 5000}, InvalidJobOptions),
        ("x", {"priority": "high"}, InvalidJobOptions),
        ("x", {"timeout": -2}, InvalidJobOptions),
        ("x", {"job_id": "123"}, InvalidJobOptions),
        ("x", {"backoff": "fast"}, InvalidJobOptions),
        ("x", {"remove_on_complete": -3}, InvalidJobOptions),
    ],
)
async def test_bad_input_raises_a_typed_error_and_writes_nothing(
    redis: aredis.Redis, queue: Queue, data: Any, options: dict[str, Any], error: type[Exception]
) -> None:
    await queue.add("j", "already-there")
    before = await key_count(redis, queue)

    with pytest.raises(error):
        await queue.add("j", data, **options)
    with pytest.raises(error):
        await queue.add_bulk([("j", "fine"), ("j", data, cast(JobOptionsDict, options))])

    assert await key_count(redis, queue) == before
    assert (await queue.counts())[JobState.WAITING] == 1


async def test_payload_limit_is_configurable(redis: aredis.Redis, queue_name: str) -> None:
    small = Queue(queue_name, redis, max_payload=100)
    with pytest.raises(PayloadTooLarge):
        await small.add("j", "y" * 200)


async def test_counts_and_paged_job_lists(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(7)])
    await queue.add("j", "d", delay=60)

    counts = await queue.counts()
    assert counts[JobState.WAITING] == 7
    assert counts[JobState.DELAYED] == 1
    page = await queue.get_jobs(JobState.WAITING, 2, 3)
    assert [j.data for j in page] == [2, 3, 4]


async def test_logs_and_progress_are_kept_with_the_job(queue: Queue) -> None:
    async def handler(job: JobContext) -> str:
        await job.update_progress({"stage": "fetch", "percent": 50})
        await job.log("fetched 3 pages", "parsed")
        return "ok"

    job = await queue.add("j", None)
    await Worker(queue, handler).run(burst=True)

    assert await queue.get_progress(job.id) == {"stage": "fetch", "percent": 50}
    assert await queue.get_logs(job.id) == ["fetched 3 pages", "parsed"]
    done = await queue.get_job(job.id)
    assert done is not None and done.result == "ok" and done.state is JobState.COMPLETED


async def test_paused_queue_runs_nothing_until_resumed(queue: Queue) -> None:
    await queue.add("j", 1)
    await queue.pause()
    assert await queue.is_paused()
    assert await run_order(queue) == []

    await queue.resume()
    assert await run_order(queue) == [1]


async def test_drain_removes_waiting_and_optionally_delayed(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(5)])
    await queue.add("j", "d", delay=60)

    assert await queue.drain() == 5
    assert (await queue.counts())[JobState.DELAYED] == 1
    assert await queue.drain(delayed=True) == 1


async def test_clean_removes_old_jobs_of_a_state_up_to_a_limit(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    await clocked_queue.add_bulk([("j", i) for i in range(5)])
    await run_order(clocked_queue)
    clock.advance(60)
    await clocked_queue.add("j", "new")
    await run_order(clocked_queue)

    removed = await clocked_queue.clean(JobState.COMPLETED, grace=30, limit=3)

    assert len(removed) == 3
    assert (await clocked_queue.counts())[JobState.COMPLETED] == 3
    with pytest.raises(InvalidJobOptions):
        await clocked_queue.clean(JobState.ACTIVE)


async def test_obliterate_deletes_every_key_of_the_queue(redis: aredis.Redis, queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(20)])
    await run_order(queue)
    await queue.add("j", "w")
    await queue.add("j", "d", delay=30)

    assert await queue.obliterate() == 22
    assert await key_count(redis, queue) == 0


async def test_obliterate_refuses_while_jobs_run(queue: Queue) -> None:
    started = asyncio.Event()

    async def slow(job: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)

    await queue.add("j", 1)
    worker = Worker(queue, slow, shutdown_grace=0)
    task = asyncio.create_task(worker.run())
    await started.wait()
    with pytest.raises(QueueNotEmpty):
        await queue.obliterate()
    await worker.close(grace=0)
    await task


async def test_retry_failed_runs_failed_jobs_again_with_fresh_attempts(queue: Queue) -> None:
    calls: list[int] = []

    async def flaky(job: JobContext) -> None:
        calls.append(job.attempt)
        if len(calls) <= 2:
            raise RuntimeError("down")

    a = await queue.add("j", "a")
    await queue.add("j", "b")
    await Worker(queue, flaky).run(burst=True)
    assert (await queue.counts())[JobState.FAILED] == 2

    assert await queue.retry_failed(a.id) == 1
    assert await queue.retry_failed() == 1
    await Worker(queue, flaky).run(burst=True)

    assert (await queue.counts())[JobState.COMPLETED] == 2
    assert calls == [1, 1, 1, 1]


async def test_promote_makes_a_delayed_job_run_now(queue: Queue) -> None:
    job = await queue.add("j", "x", delay=3600)
    assert await queue.promote(job.id) == 1
    assert await run_order(queue) == ["x"]


async def test_remove_deletes_a_job_but_not_a_running_one(queue: Queue) -> None:
    job = await queue.add("j", "x")
    await queue.remove(job.id)
    assert await queue.get_job(job.id) is None
    with pytest.raises(JobNotFound):
        await queue.remove(job.id)

    started = asyncio.Event()

    async def slow(ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)

    running = await queue.add("j", "y")
    worker = Worker(queue, slow)
    task = asyncio.create_task(worker.run())
    await started.wait()
    with pytest.raises(JobIsActive):
        await queue.remove(running.id)
    await worker.close(grace=0)
    await task
