"""Queue events: transitions in order, resuming, gaps, and waiting for a
job's result from another connection or process."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis

from conveyor import (
    JobContext,
    JobFailed,
    JobNotFound,
    JobState,
    Queue,
    QueueEvent,
    QueueEvents,
    Retry,
    Worker,
)
from faults.processes import spawn_worker


async def collect(queue: Queue, after: str = "0", until: int | None = None) -> list[QueueEvent]:
    """Every event after ``after`` that is already in the stream (or the
    first ``until`` ones)."""
    seen: list[QueueEvent] = []
    events = QueueEvents(queue, after=after, block=0.05)
    newest = await events.position()
    if until is None and newest <= int(after):
        return seen
    async for event in events:
        seen.append(event)
        if (until is not None and len(seen) >= until) or (until is None and int(event.id) >= newest):
            events.close()
    return seen


def story(events: list[QueueEvent], job_id: str) -> list[str]:
    return [e.event for e in events if e.job_id == job_id]


async def test_a_jobs_transitions_are_recorded_in_order(queue: Queue) -> None:
    async def flaky(job: JobContext) -> dict[str, int]:
        await job.update_progress({"step": job.attempt})
        if job.attempt == 1:
            raise Retry("not yet", delay=0)
        return {"tries": job.attempt}

    job = await queue.add("j", 1, attempts=2)
    await Worker(queue, flaky).run(burst=True)

    events = await collect(queue)
    assert story(events, job.id) == [
        "added",
        "active",
        "progress",
        "retrying",
        "active",
        "progress",
        "completed",
    ]
    retrying = next(e for e in events if e.event == "retrying")
    assert retrying.data["error"] == "Retry: not yet" and retrying.data["attempt"] == 1
    assert events[-1].data["result"] == {"tries": 2}
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))


async def test_batch_transitions_yield_one_event_per_job(queue: Queue) -> None:
    jobs = await queue.add_bulk([("j", i) for i in range(5)] + [("j", 9, {"delay": 60})])

    events = await collect(queue)

    assert [(e.event, e.job_id) for e in events] == [("added", j.id) for j in jobs[:5]] + [
        ("delayed", jobs[5].id)
    ]
    assert events[-1].data["due"] is not None


async def test_removed_failed_and_retried_jobs_are_recorded(queue: Queue) -> None:
    doomed = await queue.add("j", 1)
    cancelled = await queue.add("j", 2)
    await queue.remove(doomed.id)
    await queue.cancel(cancelled.id, "no longer needed")
    await queue.retry_failed()

    events = await collect(queue)

    assert story(events, doomed.id) == ["added", "removed"]
    assert story(events, cancelled.id) == ["added", "failed", "dead-lettered", "waiting"]
    failed = next(e for e in events if e.event == "failed")
    assert failed.data["error"] == "no longer needed"


async def test_a_job_kept_after_its_last_attempt_is_dead_lettered(queue: Queue) -> None:
    # Given one job kept after failing (the default) and one removed on failure
    async def broken(job: JobContext) -> None:
        raise ValueError(f"bad record {job.data}")

    kept = await queue.add("j", 1, attempts=2, backoff=0)
    dropped = await queue.add("j", 2, remove_on_fail=True)

    # When both run out of attempts
    await Worker(queue, broken).run(burst=True)

    # Then the kept one is reported dead-lettered after failing, with the
    # error and attempt; the removed one only failed
    events = await collect(queue)
    assert story(events, kept.id) == ["added", "active", "retrying", "active", "failed", "dead-lettered"]
    assert story(events, dropped.id) == ["added", "active", "failed"]
    letter = next(e for e in events if e.event == "dead-lettered")
    started = letter.data.pop("started")
    assert letter.data == {"error": "ValueError: bad record 1", "attempt": 2, "name": "j"}
    assert started is not None and started <= letter.time  # when its last attempt began


async def test_resuming_after_an_event_id_misses_nothing(queue: Queue) -> None:
    for i in range(3):
        await queue.add("j", i)
    first = await collect(queue)
    for i in range(3, 6):
        await queue.add("j", i)

    resumed = await collect(queue, after=first[1].id)

    assert [e.id for e in resumed] == ["3", "4", "5", "6"]


async def test_resuming_in_the_middle_of_a_batch_skips_only_what_was_seen(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(4)])

    resumed = await collect(queue, after="2")

    assert [(e.id, e.job_id) for e in resumed] == [("3", "3"), ("4", "4")]


async def test_a_reader_is_told_how_many_events_the_cap_dropped(queue: Queue) -> None:
    await queue.set_events_max(10)
    for i in range(400):
        await queue.add("j", i)

    resumed = await collect(queue, after="5")

    gap = resumed[0]
    assert gap.event == "gap" and gap.job_id is None
    missed = gap.data["missed"]
    assert missed > 0
    assert [int(e.id) for e in resumed[1:]] == list(range(6 + missed, 401))


async def test_a_new_reader_sees_only_new_events(queue: Queue) -> None:
    old = await queue.add("j", "old")
    events = QueueEvents(queue, block=0.05)
    seen: list[QueueEvent] = []

    async def read() -> None:
        async for event in events:
            seen.append(event)
            events.close()

    reader = asyncio.create_task(read())
    new: list[str] = []
    while not reader.done():  # the reader starts at some add; keep adding until it sees one
        new.append((await queue.add("j", "new")).id)
        await asyncio.sleep(0.02)
    await reader

    assert len(seen) == 1 and seen[0].event == "added"
    assert seen[0].job_id in new and seen[0].job_id != old.id


async def test_wait_until_finished_returns_the_result(queue: Queue) -> None:
    async def double(job: JobContext) -> int:
        return int(job.data) * 2

    job = await queue.add("j", 21, remove_on_complete=True)
    worker = asyncio.create_task(Worker(queue, double).run(burst=True))

    assert await job.wait_until_finished(timeout=5) == 42
    await worker


async def test_wait_until_finished_on_a_finished_job_returns_at_once(queue: Queue) -> None:
    async def echo(job: JobContext) -> str:
        return "done"

    job = await queue.add("j", 1)
    await Worker(queue, echo).run(burst=True)

    assert await queue.wait_until_finished(job.id, timeout=1) == "done"


async def test_wait_until_finished_raises_the_jobs_failure(queue: Queue) -> None:
    async def broken(job: JobContext) -> None:
        raise ValueError("bad input")

    job = await queue.add("j", 1, attempts=1)
    worker = asyncio.create_task(Worker(queue, broken).run(burst=True))

    with pytest.raises(JobFailed, match="bad input") as info:
        await job.wait_until_finished(timeout=5)
    assert info.value.traceback is not None and "broken" in info.value.traceback
    await worker


async def test_wait_until_finished_times_out_and_knows_missing_jobs(queue: Queue) -> None:
    job = await queue.add("j", 1)

    with pytest.raises(TimeoutError):
        await job.wait_until_finished(timeout=0.2)
    with pytest.raises(JobNotFound):
        await queue.wait_until_finished("no-such-job", timeout=1)


async def test_events_from_a_worker_process_arrive_in_order(
    redis_url: str, redis: aredis.Redis, queue: Queue
) -> None:
    jobs = await queue.add_bulk([("j", i) for i in range(50)])
    proc = spawn_worker(redis_url, queue.name, 0, 5, 5)  # no sleep, 5 at a time, 5 s lease
    try:
        assert str(await jobs[-1].wait_until_finished(timeout=20)).startswith("ok:")
        await asyncio.gather(*(j.wait_until_finished(timeout=20) for j in jobs))
    finally:
        proc.terminate()
        proc.wait(10)

    events = await collect(queue)
    for job in jobs:
        assert story(events, job.id) == ["added", "active", "completed"]
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert (await queue.counts())[JobState.COMPLETED] == 50
    await redis.delete(f"ledger:{queue.name}", f"tries:{queue.name}")


async def test_a_reader_with_an_end_stops_there_without_events(queue: Queue) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader = QueueEvents(queue, block=5.0, until=started + 0.3)
    assert [event async for event in reader] == []  # nothing happened: it ends at its time, not the block's
    assert loop.time() - started < 2.0
