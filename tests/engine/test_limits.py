"""Queue-wide limits in one process: the sliding rate window (on a manual
clock), RateLimited holds, global concurrency, and the admin API."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest

from conveyor import (
    InvalidJobOptions,
    JobContext,
    JobState,
    ManualClock,
    Queue,
    RateLimit,
    RateLimited,
    Worker,
)
from conveyor.engine.commands.admin import set_limits
from conveyor.engine.commands.running import finish_jobs
from timeline import events, max_in_window


async def _claim(queue: Queue, count: int) -> tuple[list[str], int]:
    """Claims up to ``count`` jobs as one worker call would: (ids, held until)."""
    reply = await finish_jobs(
        queue.redis,
        queue.keys,
        now=queue.clock.now_ms() or "",
        claim_count=count,
        lock_ms=60_000,
        worker_id="w",
        outcomes=[],
        call_id=uuid4().hex,
    )
    return [row[0] for row in reply.claimed], reply.held_until


async def test_rate_window_slides_and_counts_every_start(clocked_queue: Queue, clock: ManualClock) -> None:
    queue = clocked_queue
    t0 = clock.now_ms()
    await queue.set_rate_limit(RateLimit(3, per=1.0))
    await queue.add_bulk([("j", i) for i in range(10)])

    assert len((await _claim(queue, 2))[0]) == 2
    clock.advance(0.5)
    ids, held = await _claim(queue, 5)
    assert len(ids) == 1 and held == t0 + 1000  # the window is full: ask again when t0 leaves it
    clock.advance(0.499)
    assert await _claim(queue, 5) == ([], t0 + 1000)
    clock.advance(0.001)  # t0 + 1000: the two starts of t0 leave the window
    ids, held = await _claim(queue, 5)
    assert len(ids) == 2 and held == t0 + 1500
    clock.advance(0.5)
    ids, held = await _claim(queue, 1)
    assert len(ids) == 1 and held == t0 + 2000
    assert (await queue.counts())[JobState.ACTIVE] == 6


async def test_rate_limit_in_any_window_with_two_workers(queue: Queue) -> None:
    await queue.set_rate_limit(RateLimit(5, per=0.2))
    await queue.add_bulk([("j", i) for i in range(30)])

    async def handler(job: JobContext) -> None:
        return None

    workers = [Worker(queue, handler, concurrency=10) for _ in range(2)]
    await asyncio.gather(*(w.run(burst=True) for w in workers))

    assert (await queue.counts())[JobState.COMPLETED] == 30
    starts = sorted(e.time.timestamp() for e in await events(queue) if e.event == "active")
    assert len(starts) == 30
    assert max_in_window(starts, 0.2) <= 5
    assert starts[-1] - starts[0] >= 0.2 * (30 // 5 - 1)


async def test_rate_limited_hands_back_without_an_attempt_and_holds_the_queue(queue: Queue) -> None:
    first = await queue.add("call", "upstream", attempts=1)
    others = await queue.add_bulk([("j", i) for i in range(5)])
    runs: dict[str, int] = {}

    async def handler(job: JobContext) -> str:
        runs[job.id] = runs.get(job.id, 0) + 1
        if job.id == first.id and runs[job.id] == 1:
            raise RateLimited(0.3)
        return "ok"

    await Worker(queue, handler, concurrency=1).run(burst=True)

    done = await queue.get_job(first.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.attempts_made == 0 and runs[first.id] == 2  # attempts=1, yet it ran again
    log = await events(queue)
    limited = [e for e in log if e.event == "waiting" and e.data.get("reason") == "rate limited"]
    assert [e.job_id for e in limited] == [first.id]
    until = limited[0].data["until"]
    assert (until - limited[0].time).total_seconds() == pytest.approx(0.3, abs=0.002)
    later = [e for e in log if e.event == "active" and e.time > limited[0].time]
    assert len(later) == 6 and all(e.time >= until for e in later)
    assert later[0].job_id == first.id  # handed back to the front
    assert {e.job_id for e in later} == {first.id} | {j.id for j in others}


async def test_global_concurrency_caps_active_jobs_across_workers(queue: Queue) -> None:
    await queue.set_concurrency(2)
    await queue.add_bulk([("j", i) for i in range(24)])
    running = 0
    peak = 0

    async def handler(job: JobContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    workers = [Worker(queue, handler, concurrency=5) for _ in range(3)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        async with asyncio.timeout(20):
            while (await queue.counts())[JobState.COMPLETED] < 24:
                active = (await queue.counts())[JobState.ACTIVE]
                assert active <= 2
                await asyncio.sleep(0.005)
    finally:
        await asyncio.gather(*(w.close() for w in workers))
        await asyncio.gather(*tasks)
    assert peak == 2


async def test_limits_are_stored_read_back_and_cleared(queue: Queue) -> None:
    limits = await queue.limits()
    assert (limits.rate_limit, limits.concurrency, limits.held_until) == (None, None, None)
    await queue.set_rate_limit(RateLimit(5, per=1.5))
    await queue.set_concurrency(3)
    until = await queue.hold(30)
    limits = await queue.limits()
    assert limits.rate_limit == RateLimit(5, per=1.5)
    assert limits.concurrency == 3
    assert limits.held_until == until and until is not None
    await queue.hold(0)
    await queue.set_rate_limit(None)
    await queue.set_concurrency(None)
    limits = await queue.limits()
    assert (limits.rate_limit, limits.concurrency, limits.held_until) == (None, None, None)


async def test_a_held_queue_starts_nothing_until_the_hold_ends(queue: Queue) -> None:
    await queue.hold(0.3)
    job = await queue.add("j", 1)
    seen: list[Any] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.data)

    worker = Worker(queue, handler)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.15)
    assert seen == [] and await queue.get_state(job.id) is JobState.WAITING
    assert await queue.wait_until_finished(job.id, timeout=5) is None
    await worker.close()
    await task
    assert seen == [1]


@pytest.mark.parametrize(
    "call",
    [
        lambda: RateLimit(0),
        lambda: RateLimit(5, per=0),
        lambda: RateLimit(True),
        lambda: RateLimit(5, per=float("nan")),
    ],
)
def test_bad_rate_limits_are_rejected(call: Any) -> None:
    with pytest.raises(InvalidJobOptions):
        call()


async def test_bad_limits_change_nothing(queue: Queue) -> None:
    await queue.set_concurrency(4)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidJobOptions):
            await queue.set_concurrency(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidJobOptions):
        await queue.hold(-1)
    with pytest.raises(InvalidJobOptions):
        await queue.set_rate_limit((5, 1.0))  # type: ignore[arg-type]
    assert (await queue.limits()).concurrency == 4
    with pytest.raises(ValueError):
        RateLimited(-1)


async def test_a_rate_count_that_outlives_its_log_holds_nothing_up(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    # Given a full window whose log has just expired while its count has
    # not (each key's expiry is rounded to its own millisecond)
    queue = clocked_queue
    await queue.set_rate_limit(RateLimit(5, per=60))
    await queue.add_bulk([("j", i) for i in range(8)])
    await queue.redis.set(queue.keys.limiter_count, 5)
    # When a worker claims
    ids, held = await _claim(queue, 5)
    # Then the window counts as empty: it gets five jobs and the queue is
    # held for the window (not "nothing to do", which ended burst runs
    # with jobs still waiting)
    assert len(ids) == 5
    assert held == clock.now_ms() + 60_000
    assert await queue.redis.get(queue.keys.limiter_count) == b"5"


async def test_a_rate_log_that_outlives_its_count_still_limits(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    # Given five starts in the window, logged, whose count has expired
    queue = clocked_queue
    await queue.set_rate_limit(RateLimit(5, per=60))
    await queue.add_bulk([("j", i) for i in range(8)])
    now = clock.now_ms()
    await queue.redis.zadd(queue.keys.limiter, {f"{now}:5:0": now})
    # When a worker claims, the log is counted again: no room, held until
    # the start leaves the window (not five more starts over the limit)
    assert await _claim(queue, 5) == ([], now + 60_000)
    clock.advance(60)
    ids, _ = await _claim(queue, 5)
    assert len(ids) == 5


BAD_COUNTS = ["nan", "inf", "-inf", "12.5", "-3", "0", "1e3", "many", ""]


@pytest.mark.parametrize("field", ["conc", "rlm", "rld", "gconc", "grlm", "grld", "hold"])
async def test_a_limit_written_by_hand_that_is_no_count_is_unset(queue: Queue, field: str) -> None:
    # set_limits writes whole numbers only; anything else in the meta hash
    # must not make every claim fail (the queue's jobs stranded) nor the
    # limits unreadable: it counts as unset, for the claim and limits() alike
    redis = queue.redis
    await queue.set_rate_limit(RateLimit(1000, per=1))
    await queue.set_group_limits(concurrency=50, rate_limit=RateLimit(1000, per=1))
    await queue.set_concurrency(50)
    ran: list[Any] = []

    async def handler(ctx: JobContext) -> None:
        ran.append(ctx.data)

    for value in BAD_COUNTS:
        await redis.hset(queue.keys.meta, field, value)
        await queue.add_bulk([("j", value), ("j", value, {"group": "g"})])
        await Worker(queue, handler, concurrency=4).run(burst=True)
        limits = await queue.limits()
        rate, group_rate = limits.rate_limit, limits.group_rate_limit
        unset = {
            "conc": limits.concurrency,
            "rlm": rate,
            "rld": rate,
            "gconc": limits.group_concurrency,
            "grlm": group_rate,
            "grld": group_rate,
            "hold": limits.held_until,
        }[field]
        assert unset is None, value
        # set_limits reads the hold back: a bad one is no hold
        assert await set_limits(redis, queue.keys, "", {"conc": "50"}) == 0
    assert ran == [v for v in BAD_COUNTS for _ in range(2)]
    assert (await queue.counts())[JobState.COMPLETED] == 2 * len(BAD_COUNTS)
