"""The shared limiter and circuit breaker for upstream calls."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aredis

from conveyor import (
    CircuitBreaker,
    CircuitOpen,
    JobContext,
    JobState,
    Limiter,
    ManualClock,
    Queue,
    RateLimit,
    RateLimited,
    Worker,
)
from timeline import events, max_in_window


async def test_limiter_instances_share_one_window(redis: aredis.Redis, clock: ManualClock) -> None:
    a = Limiter(redis, "api-a", RateLimit(3, per=1.0), clock=clock)
    b = Limiter(redis, "api-a", RateLimit(3, per=1.0), clock=clock)  # another process
    assert [await a.try_acquire(), await b.try_acquire(), await a.try_acquire()] == [0, 0, 0]
    assert await b.try_acquire() == pytest.approx(1.0)
    clock.advance(0.4)
    assert await a.try_acquire() == pytest.approx(0.6)
    clock.advance(0.6)
    assert await b.try_acquire() == 0
    assert await Limiter(redis, "api-b", RateLimit(3), clock=clock).try_acquire() == 0  # its own window


async def test_a_limiter_count_without_its_log_takes_and_records(
    redis: aredis.Redis, clock: ManualClock
) -> None:
    # Given a full window whose log has just expired while its count has not
    limiter = Limiter(redis, "api-d", RateLimit(2, per=60), clock=clock)
    log, count = limiter._keys
    await redis.set(count, 2)
    # Then a call takes a slot, and it is recorded (the old count gave "no
    # room" and, the log being empty, "ask again at 0": taken, unrecorded)
    assert await limiter.try_acquire() == 0
    assert await redis.zcard(log) == 1
    assert await limiter.try_acquire() == 0
    assert await limiter.try_acquire() == pytest.approx(60)


async def test_a_limiter_log_without_its_count_still_limits(redis: aredis.Redis, clock: ManualClock) -> None:
    limiter = Limiter(redis, "api-e", RateLimit(2, per=60), clock=clock)
    log, count = limiter._keys
    now = clock.now_ms()
    await redis.zadd(log, {f"{now}:2:0": now})
    assert await limiter.try_acquire() == pytest.approx(60)
    assert await redis.get(count) == b"2"


async def test_limiter_waits_for_a_slot_and_never_exceeds_the_window(redis: aredis.Redis) -> None:
    limiters = [Limiter(redis, "api-c", RateLimit(5, per=0.2)) for _ in range(3)]
    entered: list[float] = []

    async def call(limiter: Limiter) -> None:
        async with limiter:
            entered.append(time.monotonic())

    await asyncio.gather(*(call(limiters[i % 3]) for i in range(20)))
    entered.sort()
    assert max_in_window(entered, 0.19) <= 5
    assert entered[-1] - entered[0] >= 0.2 * 3 - 0.05


async def test_a_long_wait_raises_rate_limited_instead_of_blocking(redis: aredis.Redis) -> None:
    limiter = Limiter(redis, "api-d", RateLimit(1, per=10.0), max_wait=0.5)
    async with limiter:
        pass
    with pytest.raises(RateLimited) as caught:
        async with limiter:
            pass
    assert caught.value.retry_after == pytest.approx(10.0, abs=0.1)


async def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(ConnectionError):
        async with breaker:
            raise ConnectionError("upstream down")


async def test_breaker_opens_probes_and_closes(redis: aredis.Redis, clock: ManualClock) -> None:
    breaker = CircuitBreaker(redis, "tm", failure_threshold=3, cooldown=10, clock=clock)
    other = CircuitBreaker(redis, "tm", failure_threshold=3, cooldown=10, clock=clock)  # another process
    await _fail(breaker)
    await _fail(other)
    async with breaker:  # a success resets the count
        pass
    assert (await breaker.state()).failures == 0
    for b in (breaker, other, breaker):
        await _fail(b)
    state = await other.state()
    assert state.state == "open" and state.failures == 3
    with pytest.raises(CircuitOpen) as caught:
        async with other:
            pytest.fail("an open breaker let a call through")
    assert caught.value.retry_after == pytest.approx(10.0)

    clock.advance(10)
    probe = breaker.guard()
    await probe.__aenter__()  # the probe is out...
    with pytest.raises(CircuitOpen):  # ...and only one at a time
        await other.call(asyncio.sleep, 0)
    await probe.__aexit__(ConnectionError, ConnectionError("still down"), None)
    assert (await breaker.state()).state == "open"
    with pytest.raises(CircuitOpen):
        await other.call(asyncio.sleep, 0)

    clock.advance(10)

    async def back() -> str:
        return "back"

    assert await other.call(back) == "back"
    assert (await breaker.state()).state == "closed"


async def test_a_lost_probe_expires(redis: aredis.Redis, clock: ManualClock) -> None:
    breaker = CircuitBreaker(redis, "lost", failure_threshold=1, cooldown=5, probe_timeout=2, clock=clock)
    await _fail(breaker)
    clock.advance(5)
    assert await breaker.enter() is True  # a probe whose process then dies
    with pytest.raises(CircuitOpen):
        await breaker.enter()
    clock.advance(2)
    assert await breaker.enter() is True
    assert (await breaker.state()).state == "half-open"


async def test_only_failures_that_say_so_count(redis: aredis.Redis) -> None:
    breaker = CircuitBreaker(
        redis, "picky", failure_threshold=1, is_failure=lambda exc: not isinstance(exc, KeyError)
    )
    for _ in range(3):
        with pytest.raises(KeyError):
            async with breaker:
                raise KeyError("404 is the caller's problem")
    assert (await breaker.state()).state == "closed"
    await breaker.reset()


async def test_an_open_breaker_in_a_handler_holds_the_queue(
    redis: aredis.Redis, queue: Queue, clock: ManualClock
) -> None:
    # the breaker's time moves only when told: it is open, 0.3 s of its
    # cooldown left, however long the worker takes to start
    breaker = CircuitBreaker(redis, f"up-{queue.name}", failure_threshold=1, cooldown=10, clock=clock)
    await _fail(breaker)
    clock.advance(9.7)
    job = await queue.add("call", 1, attempts=1)
    runs = 0

    async def handler(ctx: JobContext) -> str:
        nonlocal runs
        runs += 1
        try:
            async with breaker:
                return "called"
        finally:
            clock.advance(0.3)  # the queue is held that long: then the cooldown is over

    await Worker(queue, handler).run(burst=True)
    done = await queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.attempts_made == 0
    assert runs == 2
    held = [e for e in await events(queue) if e.data.get("reason") == "rate limited"]
    assert len(held) == 1
