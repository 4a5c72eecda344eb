"""No two names share a key: groups, schedules, dedup keys and names of
every kind map to keys of their own, obliterate takes every key of a queue
and only those, and names the API could not reach are refused."""

from __future__ import annotations

import itertools

import pytest
import redis.asyncio as aredis

from conveyor import (
    CircuitBreaker,
    EventBus,
    InvalidJobOptions,
    InvalidSchedule,
    JobContext,
    JobState,
    Limiter,
    ManualClock,
    ProgressBus,
    Queue,
    RateLimit,
    Scheduler,
    Worker,
)
from conveyor.engine.keys import FAMILIES, QueueKeys


async def test_groups_whose_names_extend_each_other_keep_their_own_limits(queue: Queue) -> None:
    # Given groups "a" and "a:n" (once the count key of "a"), both rate limited
    await queue.set_group_limits(rate_limit=RateLimit(100, per=1.0), concurrency=2)
    jobs = await queue.add_bulk([("j", i, {"group": g}) for i in range(5) for g in ("a", "a:n", "a:n:n")])

    async def ok(job: JobContext) -> int:
        return 1

    # When a worker runs them, then every job completed
    await Worker(queue, ok, concurrency=4).run(burst=True)
    assert [await queue.get_state(j.id) for j in jobs] == [JobState.COMPLETED] * len(jobs)


async def test_schedules_whose_keys_extend_each_other_count_their_own_runs(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    # Given schedules "report" and "report:last" (once the last-run field of "report")
    queue = clocked_queue
    for key in ("report", "report:last", "n:report"):
        await queue.upsert_schedule(key, "r", every=60)
    scheduler = Scheduler([queue])

    # When three ticks go by
    for _ in range(3):
        clock.advance(60)
        assert await scheduler.tick() == 3

    # Then each ran three times, and none ended
    for key in ("report", "report:last", "n:report"):
        schedule = await queue.get_schedule(key)
        assert schedule is not None and schedule.runs == 3 and schedule.next_run is not None, key


async def test_obliterate_takes_every_key_of_the_queue_and_only_those(
    redis: aredis.Redis, queue: Queue
) -> None:
    # Given a queue with a dedup key kept for an hour, groups, a schedule,
    # logs, and an event stream of the same name
    async def logs(job: JobContext) -> None:
        await job.log("done")

    first = await queue.add("j", "first", dedup_key="k", dedup_ttl=3600)
    await queue.add_bulk([("j", i, {"group": f"g{i}"}) for i in range(3)])
    await queue.set_group_limits(rate_limit=RateLimit(10, per=1.0))
    await queue.upsert_schedule("tick", "t", every=60)
    await Worker(queue, logs).run(burst=True)
    bus = EventBus(redis, queue.name)
    await bus.publish("e", {"n": 1})

    # When the queue is obliterated
    await queue.obliterate()

    # Then none of its keys is left, the stream's are
    left = [k.decode() async for k in redis.scan_iter(match=f"{queue.keys.base}*")]
    assert sorted(left) == [bus.keys.stream]
    # and a new add under the dedup key makes a new job, not the old one's id
    again = await queue.add("j", "second", dedup_key="k", dedup_ttl=3600)
    assert again.id == first.id  # ids start over...
    stored = await queue.get_job(again.id)
    assert stored is not None and stored.data == "second"  # ...and this is the new job
    assert await queue.counts() == {**dict.fromkeys(JobState, 0), JobState.WAITING: 1}


async def test_a_queue_named_like_the_progress_namespace_shares_no_key_with_it(
    redis: aredis.Redis, queue_name: str
) -> None:
    queue = Queue(queue_name, redis)
    job = await queue.add("j", 1)
    bus = ProgressBus(redis, namespace=queue_name)  # "progress" and "progress" once
    await bus.report("artist:1", stage="import", percent=10)
    assert [s.subject for s in await bus.active()] == ["artist:1"]
    assert await queue.get_state(job.id) is JobState.WAITING
    await queue.obliterate()
    assert [s.subject for s in await bus.active()] == ["artist:1"]


@pytest.mark.parametrize("name", ["a/b", ".", "..", "", "a b", "a{b}", "tab\there", "x" * 257])
def test_queue_and_stream_names_that_keys_or_urls_cannot_carry_are_refused(
    redis: aredis.Redis, name: str
) -> None:
    with pytest.raises(InvalidJobOptions):
        Queue(name, redis)
    with pytest.raises(InvalidJobOptions):
        EventBus(redis, name)


@pytest.mark.parametrize("name", ["a/b", "..", "", "a b"])
def test_limiter_breaker_and_progress_names_that_keys_or_urls_cannot_carry_are_refused(
    redis: aredis.Redis, name: str
) -> None:
    with pytest.raises(InvalidJobOptions):
        Limiter(redis, name, RateLimit(1))
    with pytest.raises(InvalidJobOptions):
        CircuitBreaker(redis, name)
    with pytest.raises(InvalidJobOptions):
        ProgressBus(redis, namespace=name)


@pytest.mark.parametrize("job_id", ["a/b", ".", "..", "repeat:x:1", "line\nbreak", "42"])
async def test_job_ids_the_api_could_not_reach_or_that_are_reserved_are_refused(
    redis: aredis.Redis, queue: Queue, job_id: str
) -> None:
    with pytest.raises(InvalidJobOptions):
        await queue.add("j", 1, job_id=job_id)
    assert [k async for k in redis.scan_iter(match=f"{queue.keys.base}*")] == []


@pytest.mark.parametrize("key", ["a/b", ".", ".."])
async def test_schedule_keys_the_api_could_not_reach_are_refused(queue: Queue, key: str) -> None:
    with pytest.raises(InvalidSchedule):
        await queue.upsert_schedule(key, "n", every=60)


def test_key_families_never_overlap_each_other_or_the_fixed_keys() -> None:
    keys = QueueKeys("q")
    fixed = [k.removeprefix(keys.base + ":") for k in keys.all_fixed()]
    for a, b in itertools.permutations(FAMILIES, 2):
        assert not a.startswith(b), (a, b)
    for family, suffix in itertools.product(FAMILIES, fixed):
        assert not suffix.startswith(family), (family, suffix)
    # names end a key, so equal keys mean equal names
    names = ["a", "a:n", "a:last", "n:a", "job:a", ""]
    made = [keys.key(f + n) for f in FAMILIES for n in names]
    assert len(made) == len(set(made))
    assert all(keys.owns(k) for k in [*made, *keys.all_fixed()])
    assert not keys.owns(f"{keys.base}:stream") and not keys.owns(f"{keys.base}x:wait")


async def test_limiters_and_breakers_share_no_key_with_queues_named_like_them(
    redis: aredis.Redis, queue_name: str
) -> None:
    limiter = Limiter(redis, queue_name, RateLimit(5))
    breaker = CircuitBreaker(redis, queue_name)
    await limiter.acquire()
    await breaker.exit(False, False)
    before = {k async for k in redis.scan_iter(match=f"*{queue_name}*")}
    for name in (f"limiter:{queue_name}", f"breaker:{queue_name}", queue_name):
        queue = Queue(name, redis)
        await queue.add("j", 1)
        await queue.obliterate()
    assert {k async for k in redis.scan_iter(match=f"*{queue_name}*")} == before
    assert (await breaker.state()).failures == 1
