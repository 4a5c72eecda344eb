"""Schedules (repeatable jobs) on a manual clock: cron in a time zone,
intervals, racing schedulers, missed ticks, limits, and bad specs."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import InvalidSchedule, JobState, ManualClock, PayloadError, Queue, Scheduler

# the manual clock starts at 2023-11-14 22:13:20 UTC
START = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def at(hour: int, minute: int, day: int = 14) -> datetime:
    return datetime(2023, 11, day, hour, minute, tzinfo=UTC)


async def job_ids(queue: Queue) -> list[str]:
    jobs = await queue.get_jobs(JobState.WAITING, 0, 1000)
    return sorted(j.id for j in jobs)


async def test_each_cron_tick_is_enqueued_once_by_racing_schedulers(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    queue = clocked_queue
    assert datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC) == START
    schedule = await queue.upsert_schedule("digest", "send-digest", {"kind": "daily"}, cron="*/5 * * * *")
    assert schedule.next_run == at(22, 15)
    schedulers = [Scheduler([queue]) for _ in range(3)]

    assert sum(await asyncio.gather(*(s.tick() for s in schedulers))) == 0  # not due yet
    clock.advance(100)  # 22:15:00
    assert sum(await asyncio.gather(*(s.tick() for s in schedulers))) == 1
    assert sum(await asyncio.gather(*(s.tick() for s in schedulers))) == 0
    clock.advance(300)
    assert sum(await asyncio.gather(*(s.tick() for s in schedulers))) == 1

    ticks = [at(22, 15), at(22, 20)]
    expected = [f"repeat:digest:{int(t.timestamp() * 1000)}" for t in ticks]
    assert await job_ids(queue) == expected
    job = await queue.get_job(expected[0])
    assert job is not None and job.name == "send-digest" and job.data == {"kind": "daily"}
    found = await queue.get_schedule("digest")
    assert found is not None
    assert (found.runs, found.last_run, found.next_run) == (2, at(22, 20), at(22, 25))


async def test_upserting_from_many_processes_keeps_one_schedule_and_its_next_run(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    queue = clocked_queue
    spec: dict[str, Any] = {"cron": "0 * * * *", "attempts": 3}
    results = await asyncio.gather(*(queue.upsert_schedule("hourly", "h", None, **spec) for _ in range(10)))
    assert {r.next_run for r in results} == {at(23, 0)}
    clock.advance(3600)  # a process restarting later upserts the same spec: nothing moves
    again = await queue.upsert_schedule("hourly", "h", None, **spec)
    assert again.next_run == at(23, 0)
    assert len(await queue.get_schedules()) == 1
    changed = await queue.upsert_schedule("hourly", "h", None, cron="30 * * * *")
    assert changed.next_run == at(23, 30)


async def test_cron_runs_in_its_time_zone(clocked_queue: Queue) -> None:
    schedule = await clocked_queue.upsert_schedule("ny", "open", cron="0 9 * * *", tz="America/New_York")
    assert schedule.next_run == at(14, 0, day=15)  # 09:00 EST is 14:00 UTC
    assert schedule.upcoming(2) == [at(14, 0, day=15), at(14, 0, day=16)]
    aliased = await clocked_queue.upsert_schedule("h", "h", cron="@hourly")
    assert aliased.cron == "0 * * * *" and aliased.next_run == at(23, 0)


async def test_interval_ticks_fall_on_multiples_of_the_interval(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    queue = clocked_queue
    schedule = await queue.upsert_schedule("poll", "poll", every=timedelta(minutes=1), priority=5)
    assert schedule.next_run == at(22, 14)
    scheduler = Scheduler([queue])
    for _ in range(3):
        clock.advance(60)
        assert await scheduler.tick() == 1
    jobs = await queue.get_jobs(JobState.WAITING)
    assert sorted(j.id for j in jobs) == [
        f"repeat:poll:{int(at(22, m).timestamp() * 1000)}" for m in (14, 15, 16)
    ]
    assert {j.priority for j in jobs} == {5}


@pytest.mark.parametrize(("missed", "jobs"), [("once", 1), ("all", 10), ("skip", 0)])
async def test_ticks_missed_while_nothing_ran(
    clocked_queue: Queue, clock: ManualClock, missed: str, jobs: int
) -> None:
    queue = clocked_queue
    await queue.upsert_schedule("m", "m", every=60, missed=missed)  # first tick 22:14
    clock.advance(600)  # 22:23:20: ten ticks went by
    assert await Scheduler([queue]).tick() == jobs
    assert len(await job_ids(queue)) == jobs
    schedule = await queue.get_schedule("m")
    assert schedule is not None and schedule.next_run == at(22, 24)


async def test_limit_and_end_at_end_a_schedule(clocked_queue: Queue, clock: ManualClock) -> None:
    queue = clocked_queue
    await queue.upsert_schedule("three", "t", every=60, limit=3)
    await queue.upsert_schedule("until", "u", every=60, end_at=at(22, 15))
    scheduler = Scheduler([queue])
    fired = 0
    for _ in range(6):
        clock.advance(60)
        fired += await scheduler.tick()
    assert fired == 3 + 2
    three = await queue.get_schedule("three")
    until = await queue.get_schedule("until")
    assert three is not None and (three.runs, three.next_run) == (3, None)
    assert until is not None and (until.runs, until.next_run) == (2, None)
    assert three.upcoming() == []


async def test_removed_schedules_stop_and_keep_their_jobs(clocked_queue: Queue, clock: ManualClock) -> None:
    queue = clocked_queue
    await queue.upsert_schedule("r", "r", every=60)
    scheduler = Scheduler([queue])
    clock.advance(60)
    assert await scheduler.tick() == 1
    assert await queue.remove_schedule("r") is True
    assert await queue.remove_schedule("r") is False
    clock.advance(600)
    assert await scheduler.tick() == 0
    assert len(await job_ids(queue)) == 1
    assert await queue.get_schedule("r") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron pattern"),
        ({"cron": "0 0 31 2 *"}, "invalid cron pattern"),
        ({"cron": "every day"}, "invalid cron pattern"),
        ({"cron": "0 * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"cron": "0 * * * *", "every": 60}, "either cron or every"),
        ({}, "either cron or every"),
        ({"every": 0}, "every must be"),
        ({"every": 60, "limit": 0}, "limit must be"),
        ({"every": 60, "start_at": at(23, 0), "end_at": at(22, 0)}, "end_at is before"),
        ({"every": 60, "job_id": "x"}, "job_id"),
        ({"every": 60, "delay": 5}, "delay"),
        ({"every": 60, "attempts": 0}, "attempts"),
        ({"every": 60, "colour": "red"}, "unknown job option"),
    ],
)
async def test_bad_schedules_are_rejected_and_write_nothing(
    queue: Queue, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSchedule, match=message):
        await queue.upsert_schedule("bad", "b", None, **kwargs)
    assert await queue.get_schedules() == []


async def test_schedule_data_must_be_json(queue: Queue) -> None:
    with pytest.raises(PayloadError):
        await queue.upsert_schedule("bad", "b", {"when": object()}, every=60)
    assert await queue.get_schedules() == []


async def test_scheduler_run_fires_ticks_as_they_fall_due(queue: Queue) -> None:
    # missed="all": a scheduler that falls one 50 ms tick behind must still
    # enqueue every tick ("once" would fold them into one, by design)
    await queue.upsert_schedule("fast", "f", every=0.05, missed="all")
    schedulers = [Scheduler([queue], poll=0.02) for _ in range(3)]
    tasks = [asyncio.create_task(s.run()) for s in schedulers]
    await asyncio.sleep(0.6)
    for s in schedulers:
        s.close()
    await asyncio.gather(*tasks)
    ids = await job_ids(queue)
    ticks = sorted(int(i.rsplit(":", 1)[1]) for i in ids)
    assert len(ticks) >= 5
    assert all(b - a == 50 for a, b in itertools.pairwise(ticks))  # no tick lost or doubled
    assert sum(s.fired for s in schedulers) == len(ticks)
