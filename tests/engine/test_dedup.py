"""Deduplication and debouncing of adds by key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from conveyor import Discard, InvalidJobOptions, JobContext, JobOptionsDict, JobState, Queue, Worker
from timeline import events


async def _run_all(queue: Queue, handler: Any = None) -> None:
    async def ok(job: JobContext) -> str:
        return "done"

    await Worker(queue, handler or ok).run(burst=True)


async def test_adds_meet_the_pending_job_until_it_finishes(queue: Queue) -> None:
    first = await queue.add("sync", {"artist": 1}, dedup_key="artist:1")
    dupes = await asyncio.gather(*(queue.add("sync", {"n": i}, dedup_key="artist:1") for i in range(20)))
    assert {d.id for d in dupes} == {first.id}
    assert all(d.data == {"artist": 1} for d in dupes)
    assert (await queue.counts())[JobState.WAITING] == 1
    other = await queue.add("sync", {"artist": 2}, dedup_key="artist:2")
    assert other.id != first.id

    await _run_all(queue)
    again = await queue.add("sync", {"artist": 1}, dedup_key="artist:1")
    assert again.id not in (first.id, other.id)
    assert again.state is JobState.WAITING
    assert [e.job_id for e in await events(queue) if e.event == "deduplicated"] == [first.id] * 20


async def test_a_failed_or_removed_job_frees_its_key(queue: Queue) -> None:
    async def refuse(job: JobContext) -> None:
        raise Discard("no")

    failed = await queue.add("j", 1, dedup_key="k")
    await _run_all(queue, refuse)
    assert await queue.get_state(failed.id) is JobState.FAILED
    second = await queue.add("j", 2, dedup_key="k")
    assert second.id != failed.id
    await queue.remove(second.id)
    third = await queue.add("j", 3, dedup_key="k")
    assert third.id not in (failed.id, second.id)


async def test_with_a_ttl_adds_meet_the_job_even_after_it_finished(queue: Queue) -> None:
    # a TTL long enough for running the job on a loaded machine (a cluster
    # pass beside other work took over 0.3 s), then a wait for what is left of it
    ttl = 1.5
    added_at = time.monotonic()
    first = await queue.add("j", 1, dedup_key="k", dedup_ttl=ttl)
    await _run_all(queue)
    within = await queue.add("j", 2, dedup_key="k", dedup_ttl=ttl)
    assert within.id == first.id and within.state is JobState.COMPLETED
    await asyncio.sleep(max(0.0, added_at + ttl + 0.05 - time.monotonic()))
    after = await queue.add("j", 3, dedup_key="k", dedup_ttl=ttl)
    assert after.id != first.id and after.data == 3


async def test_debounce_replaces_the_pending_jobs_data_and_delay(queue: Queue) -> None:
    first = await queue.add("reindex", {"edits": 1}, dedup_key="a:1", debounce=True, delay=5)
    assert first.run_at is not None
    second = await queue.add("reindex", {"edits": 2}, dedup_key="a:1", debounce=True, delay=8)
    assert second.id == first.id
    assert second.data == {"edits": 2} and second.state is JobState.DELAYED
    assert second.run_at is not None and second.run_at > first.run_at
    assert second.created_at == first.created_at
    now = await queue.add("reindex", {"edits": 3}, dedup_key="a:1", debounce=True)
    assert now.id == first.id and now.state is JobState.WAITING and now.data == {"edits": 3}
    assert (await queue.counts())[JobState.DELAYED] == 0
    assert [e.event for e in await events(queue) if e.job_id == first.id] == [
        "delayed",
        "debounced",
        "debounced",
    ]


async def test_debounce_after_the_job_started_adds_a_new_one(queue: Queue) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: JobContext) -> None:
        started.set()
        await release.wait()

    first = await queue.add("reindex", 1, dedup_key="a:1", debounce=True)
    worker = Worker(queue, slow)
    task = asyncio.create_task(worker.run())
    await started.wait()
    second = await queue.add("reindex", 2, dedup_key="a:1", debounce=True)
    assert second.id != first.id
    release.set()
    await queue.wait_until_finished(second.id, timeout=5)
    await worker.close()
    await task


async def test_bulk_adds_deduplicate_within_and_across_calls(queue: Queue) -> None:
    jobs = await queue.add_bulk([("j", i, JobOptionsDict(dedup_key="same")) for i in range(5)] + [("j", 9)])
    assert len({j.id for j in jobs[:5]}) == 1 and jobs[5].id != jobs[0].id
    more = await queue.add_bulk([("j", 7, {"dedup_key": "same"})])
    assert more[0].id == jobs[0].id
    assert (await queue.counts())[JobState.WAITING] == 2


@pytest.mark.parametrize(
    "options",
    [
        {"dedup_ttl": 5},
        {"debounce": True},
        {"dedup_key": ""},
        {"dedup_key": "k", "dedup_ttl": 0},
        {"dedup_key": "k", "debounce": "yes"},
        {"dedup_key": 5},
    ],
)
async def test_bad_dedup_options_are_rejected(queue: Queue, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidJobOptions):
        await queue.add("j", 1, **options)
    assert sum((await queue.counts()).values()) == 0
