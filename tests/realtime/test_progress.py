"""The progress bus: persisted status with stage timings, subscriptions
(also from another process), the active list, retention and the job bridge."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aredis

from conveyor import InvalidJobOptions, JobContext, ManualClock, Queue, Worker
from conveyor.realtime.progress import ProgressBus, ProgressStatus
from polling import wait_until
from pubsub import subscribers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bus(redis: aredis.Redis, queue_name: str, clock: ManualClock) -> ProgressBus:
    return ProgressBus(redis, namespace=queue_name, clock=clock)


async def test_report_persists_stage_timings_and_eta(bus: ProgressBus, clock: ManualClock) -> None:
    await bus.report("artist:1", "identity", 0, "starting")
    clock.advance(2)
    await bus.report("artist:1", "shows", 25, "page 1 of 3", pages=3)
    clock.advance(6)
    status = await bus.report("artist:1", "shows", 50, "page 2 of 3", pages=3)

    assert status == await bus.get("artist:1")
    assert (status.stage, status.percent, status.message, status.extra) == (
        "shows",
        50,
        "page 2 of 3",
        {"pages": 3},
    )
    assert [s.name for s in status.stages] == ["identity", "shows"]
    identity, shows = status.stages
    assert identity.ended_at == shows.started_at and shows.ended_at is None
    assert (identity.ended_at - identity.started_at).total_seconds() == 2
    assert status.eta_seconds == 8.0  # 8 s for the first half
    assert not status.finished


async def test_finishing_ends_the_stage_and_leaves_the_active_list(bus: ProgressBus) -> None:
    await bus.report("a", "work", 10)
    await bus.report("b", "work", 10)

    done = await bus.report("a", "done", 100, "all good")

    assert done.finished and done.eta_seconds == 0
    assert done.stages[-1].ended_at is not None
    assert [s.subject for s in await bus.active()] == ["b"]


async def test_side_by_side_reporters_merge_and_never_move_the_bar_back(
    bus: ProgressBus, clock: ManualClock
) -> None:
    await bus.report("import-1", "shows", 40, shows_done=0.6, monotonic=True, merge=True)
    late = await bus.report("import-1", "catalog", 30, catalog_done=0.2, monotonic=True, merge=True)
    assert late.percent == 40  # a reporter that read an older status does not pull the bar back
    assert late.extra == {"shows_done": 0.6, "catalog_done": 0.2}
    replaced = await bus.report("import-1", "catalog", 35, catalog_done=0.3)
    assert (replaced.percent, replaced.extra) == (35, {"catalog_done": 0.3})  # the defaults replace
    await bus.report("import-1", "completed", 100)
    clock.advance(5)
    again = await bus.report("import-1", "initializing", 0, restart=True, monotonic=True, merge=True)
    assert (again.percent, again.extra, [s.name for s in again.stages]) == (0, {}, ["initializing"])
    assert not again.finished and again.started_at == again.updated_at


async def test_statuses_expire_after_the_retention(redis: aredis.Redis, queue_name: str) -> None:
    bus = ProgressBus(redis, namespace=queue_name, retention=0.05)
    await bus.report("short-lived", "work", 10)

    await asyncio.sleep(0.15)

    assert await bus.get("short-lived") is None
    assert await bus.active() == []


async def test_bad_reports_are_rejected(bus: ProgressBus) -> None:
    with pytest.raises(InvalidJobOptions):
        await bus.report("s", "work", 120)
    with pytest.raises(InvalidJobOptions):
        await bus.report("", "work", 1)
    assert await bus.get("s") is None


async def test_subscribe_yields_the_current_status_then_updates_until_finished(bus: ProgressBus) -> None:
    await bus.report("s", "work", 10)
    seen: list[ProgressStatus] = []

    async def follow() -> None:
        async for status in bus.subscribe("s"):
            seen.append(status)
            if status.percent == 10:
                await bus.report("s", "work", 60)  # the subscription is live by now
                await bus.report("s", "done", 100)

    await asyncio.wait_for(follow(), 5)

    assert [s.percent for s in seen] == [10, 60, 100]


async def test_an_opened_subscription_misses_nothing_reported_before_it_is_read(
    redis: aredis.Redis, bus: ProgressBus
) -> None:
    subscription = await bus.open("s", current=False)
    try:
        await bus.report("s", "work", 30)
        await bus.report("s", "done", 100)
        seen = [s.percent async for s in subscription]
    finally:
        await subscription.aclose()
    assert seen == [30, 100]
    assert await subscribers(redis, bus._channel("s")) == 0


async def test_a_subscriber_that_stops_early_leaves_no_subscription(
    redis: aredis.Redis, bus: ProgressBus
) -> None:
    await bus.report("s", "work", 10)

    async with contextlib.aclosing(bus.subscribe("s")) as updates:
        async for status in updates:
            assert status.percent == 10
            break

    assert await subscribers(redis, bus._channel("s")) == 0


def spawn_subscriber(url: str, namespace: str, subject: str) -> subprocess.Popen[str]:
    code = (
        "import asyncio, sys\n"
        "from conveyor import connect\n"
        "from conveyor.realtime.progress import ProgressBus\n"
        "async def main():\n"
        f"    bus = ProgressBus(connect({url!r}), namespace={namespace!r})\n"
        "    print('ready', flush=True)\n"
        f"    async for s in bus.subscribe({subject!r}, current=False):\n"
        "        print(s.stage, s.percent, flush=True)\n"
        "asyncio.run(main())\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    )


async def test_a_subscriber_in_another_process_receives_every_update(
    redis_url: str, redis: aredis.Redis, bus: ProgressBus, queue_name: str
) -> None:
    proc = spawn_subscriber(redis_url, queue_name, "import:9")
    assert proc.stdout is not None
    assert await asyncio.to_thread(proc.stdout.readline) == "ready\n"
    channel = bus._channel("import:9")

    async def subscribed() -> bool:
        return await subscribers(redis, channel) > 0

    await wait_until(subscribed, within=10)

    for pct in (20, 40, 80):
        await bus.report("import:9", "catalog", pct)
    await bus.report("import:9", "done", 100)
    out, _ = await asyncio.to_thread(proc.communicate, timeout=10)

    assert out.split("\n")[:4] == ["catalog 20", "catalog 40", "catalog 80", "done 100"]


async def test_the_bridge_reports_a_jobs_progress_on_the_bus(queue: Queue, bus: ProgressBus) -> None:
    async def handler(job: JobContext) -> None:
        await job.update_progress({"stage": "fetch", "percent": 50, "message": "half", "items": 7})

    job = await queue.add("j", 1)
    await Worker(queue, handler, progress_hook=bus.bridge()).run(burst=True)

    # the job's progress, then its end: a finished job is not left active
    status = await bus.get(f"job:{queue.name}:{job.id}")
    assert status is not None
    assert (status.stage, status.percent, status.finished, status.extra) == (
        "completed",
        100,
        True,
        {"items": 7},
    )
    assert status.job_id == job.id
    assert await bus.active() == []


async def test_the_bridge_ends_a_failed_jobs_progress_at_the_percent_it_reached(
    queue: Queue, bus: ProgressBus
) -> None:
    seen: list[bool] = []

    async def handler(job: JobContext) -> None:
        await job.update_progress({"stage": "fetch", "percent": 40})
        seen.append((await bus.get(f"job:{queue.name}:{job.id}")).finished)  # type: ignore[union-attr]
        raise ValueError("upstream gone")

    job = await queue.add("j", 1, attempts=2, backoff=0)
    await Worker(queue, handler, progress_hook=bus.bridge()).run(burst=True)

    status = await bus.get(f"job:{queue.name}:{job.id}")
    assert status is not None and (status.stage, status.percent, status.finished) == ("failed", 40, True)
    assert seen == [False, False]  # a retry keeps the subject running
    assert await bus.active() == []


async def test_a_reporter_bound_to_a_job_updates_both(queue: Queue, bus: ProgressBus) -> None:
    async def handler(job: JobContext) -> None:
        reporter = bus.reporter("artist:7", job)
        await reporter.report("shows", 30, "page 1")
        await reporter.fail("upstream down")

    job = await queue.add("j", 1)
    await Worker(queue, handler).run(burst=True)

    status = await bus.get("artist:7")
    assert status is not None and status.stage == "failed" and status.percent == 30 and status.finished
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.progress["stage"] == "failed"


async def test_watch_follows_every_subject_under_a_prefix(bus: ProgressBus) -> None:
    feed = bus.watch("import:")
    first = asyncio.ensure_future(anext(feed))
    await asyncio.sleep(0.2)  # the pattern subscription is made
    await bus.report("import:a", "fetching", 10)
    await bus.report("other:x", "fetching", 10)  # not under the prefix
    await bus.report("import:b*", "fetching", 50)  # a glob character in a subject is only a character
    await bus.report("import:a", "completed", 100)
    async with asyncio.timeout(5):
        statuses = [await first, await anext(feed), await anext(feed)]
    await feed.aclose()
    assert [(s.subject, s.stage) for s in statuses] == [
        ("import:a", "fetching"),
        ("import:b*", "fetching"),
        ("import:a", "completed"),
    ]


async def test_a_prefix_with_glob_characters_matches_only_itself(bus: ProgressBus) -> None:
    feed = bus.watch("a*")
    waiting = asyncio.ensure_future(anext(feed))
    await asyncio.sleep(0.2)
    await bus.report("abc", "x", 1)  # would match the pattern a*, not the prefix "a*"
    await bus.report("a*c", "y", 1)
    async with asyncio.timeout(5):
        status = await waiting
    assert status.subject == "a*c"
    await feed.aclose()
