"""Bad input is refused with a typed error before anything is written:
times that are not finite, negative or past ten years, dates before 1970,
NaN and infinities in data and results, malformed bulk items, event ids
that are not ones."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis

from conveyor import (
    Conveyor,
    Discard,
    Event,
    EventBus,
    Exponential,
    Fixed,
    InvalidArgument,
    InvalidJobOptions,
    JobContext,
    JobState,
    KeepJobs,
    PayloadError,
    Queue,
    RateLimit,
    Scheduler,
    TaskContext,
    Worker,
)
from conveyor.engine.events import QueueEvents

BAD_OPTIONS: list[dict[str, Any]] = [
    {"delay": 1e20},
    {"delay": math.inf},
    {"delay": math.nan},
    {"delay": -0.5},
    {"delay": timedelta(days=365 * 11)},
    {"run_at": datetime(1960, 1, 1, tzinfo=UTC)},
    {"run_at": datetime(1969, 12, 31, 23, 59, tzinfo=UTC)},
    {"run_at": datetime.now(UTC) + timedelta(days=365 * 11)},
    {"backoff": 1e308},
    {"backoff": math.inf},
    {"backoff": -1},
    {"timeout": math.inf},
    {"timeout": math.nan},
    {"timeout": 0},
    {"timeout": 1e20},
    {"dedup_key": "k", "dedup_ttl": 1e20},
    {"dedup_key": "k", "dedup_ttl": math.inf},
    {"remove_on_complete": "yes"},
]


async def keys_of(redis: aredis.Redis, queue: Queue) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{queue.keys.prefix}:{{{queue.name}}}*")]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=lambda o: ",".join(f"{k}={v!r}" for k, v in o.items()))
async def test_an_option_out_of_range_is_refused_and_nothing_is_written(
    redis: aredis.Redis, queue: Queue, options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidJobOptions):
        await queue.add("j", 1, **options)
    with pytest.raises(InvalidJobOptions):
        await queue.add_bulk([("ok", 1), ("j", 1, options)])  # type: ignore[list-item]
    assert await keys_of(redis, queue) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: Fixed(math.inf),
        lambda: Exponential(base=1e20),
        lambda: Exponential(base=1, factor=math.nan),
        lambda: Exponential(base=1, max=math.inf),
        lambda: KeepJobs(age=math.inf),
        lambda: RateLimit(5, per=math.inf),
        lambda: RateLimit(5, per=math.nan),
    ],
)
def test_option_objects_refuse_times_that_are_not_finite_or_too_long(make: Any) -> None:
    with pytest.raises(InvalidJobOptions):
        make()


async def test_queue_admin_refuses_bad_times_states_and_counts(redis: aredis.Redis, queue: Queue) -> None:
    await queue.add("j", 1)
    for bad in (math.inf, math.nan, -1, 1e20):
        with pytest.raises(InvalidJobOptions):
            await queue.hold(bad)
        with pytest.raises(InvalidJobOptions):
            await queue.clean("completed", grace=bad)
    with pytest.raises(InvalidJobOptions, match="no job state named 'bogus'"):
        await queue.clean("bogus")
    with pytest.raises(InvalidJobOptions):
        await queue.get_jobs("bogus")
    with pytest.raises(InvalidJobOptions):
        await queue.get_jobs("waiting", -1)
    assert (await queue.limits()).held_until is None
    assert (await queue.counts())[JobState.WAITING] == 1


@pytest.mark.parametrize(
    "data",
    [math.nan, math.inf, -math.inf, {"a": [1.0, {"b": math.nan}]}, [None, math.inf]],
    ids=repr,
)
async def test_nan_and_infinity_in_data_are_refused(redis: aredis.Redis, queue: Queue, data: Any) -> None:
    with pytest.raises(PayloadError, match="NaN and Infinity"):
        await queue.add("j", data)
    assert await keys_of(redis, queue) == []


async def test_none_is_still_data(queue: Queue) -> None:
    job = await queue.add("j", {"a": None, "b": [None, 1.5]})
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.data == {"a": None, "b": [None, 1.5]}


async def test_a_nan_result_fails_the_job_instead_of_storing_null(queue: Queue) -> None:
    async def returns_nan(job: JobContext) -> float:
        return math.nan

    job = await queue.add("j", None)
    await Worker(queue, returns_nan).run(burst=True)
    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and "NaN and Infinity" in failed.error


@pytest.mark.parametrize(
    "items",
    [
        [{"name": "j", "data": 1}],
        ["j"],
        [("j",)],
        [("j", 1, {}, "extra")],
        [("j", 1, ["attempts", 3])],
    ],
    ids=repr,
)
async def test_malformed_bulk_items_are_refused_before_any_is_written(
    redis: aredis.Redis, queue: Queue, items: list[Any]
) -> None:
    with pytest.raises(InvalidJobOptions, match="bulk item"):
        await queue.add_bulk([("fine", 1), *items])
    assert await keys_of(redis, queue) == []


async def test_a_typed_task_refuses_nan_and_infinity_for_a_float(redis: aredis.Redis) -> None:
    app = Conveyor(redis)
    tasks = app.queue("typed-floats")

    @tasks.task()
    async def scale(ctx: TaskContext, factor: float) -> float:
        return factor * 2

    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidJobOptions):
            await scale.enqueue(bad)
    assert (await scale.enqueue(1.5)).data is not None


async def test_event_ids_and_reader_options_that_are_not_ones_are_refused(
    redis: aredis.Redis, queue: Queue, queue_name: str
) -> None:
    for after in ("abc", "1-0", "", "٣"):
        with pytest.raises(InvalidArgument, match="event id"):
            QueueEvents(queue, after=after)
    for count in (0, -1, True, 1.5):
        with pytest.raises(InvalidArgument, match="count"):
            QueueEvents(queue, count=count)  # type: ignore[arg-type]
    for block in (math.inf, math.nan, -1.0):
        with pytest.raises(InvalidJobOptions, match="block"):
            QueueEvents(queue, block=block)


async def test_a_replay_with_one_bad_id_replays_none(redis: aredis.Redis, queue_name: str) -> None:
    # Given a dead letter on an event stream
    bus = EventBus(redis, queue_name)

    async def handle(event: Event[Any]) -> None:
        raise Discard("poison")

    bus.router.add("poison", handle)
    await bus.publish("poison", {"n": 1})
    async with asyncio.timeout(10):
        await bus.consumer("g", block=0.1).run(burst=True)
    letters = await bus.dead_letters()
    assert len(letters) == 1

    # When a replay names it beside an id that is not one, nothing is replayed
    for call in (bus.replay, bus.remove_dead_letters):
        with pytest.raises(InvalidArgument, match="'nope'"):
            await call(letters[0].id, "nope")
    with pytest.raises(InvalidArgument):
        await bus.dead_letter("0-0; DROP")
    assert [d.id for d in await bus.dead_letters()] == [letters[0].id]
    assert (await bus.info()).length == 1  # the poison event only, not replayed


async def test_counts_and_pages_that_are_not_ones_are_refused(queue: Queue) -> None:
    # a limit of 0 or -1 used to read as ZRANGE 0 -1: every delayed job promoted
    await queue.add("later", 1, delay=60)
    await queue.add("later", 2, delay=60)
    for limit in (0, -1, 1.5, True):
        with pytest.raises(InvalidJobOptions, match="limit"):
            await queue.promote(limit=limit)  # type: ignore[arg-type]
        with pytest.raises(InvalidJobOptions, match="limit"):
            await queue.retry_failed(limit=limit)  # type: ignore[arg-type]
    assert (await queue.counts())[JobState.DELAYED] == 2
    for start, count in ((-1, 10), (0, 0), (0, -5), (0.5, 10)):
        with pytest.raises(InvalidJobOptions, match="start"):
            await queue.groups(start=start, count=count)  # type: ignore[arg-type]
        with pytest.raises(InvalidJobOptions, match="start"):
            await queue.get_group_jobs("g", start, count)  # type: ignore[arg-type]
        with pytest.raises(InvalidJobOptions, match="start"):
            await queue.dead_letters(start=start, count=count)  # type: ignore[arg-type]
    for max_len in (-1, math.nan, 1.5, "10"):
        with pytest.raises(InvalidJobOptions, match="max_len"):
            await queue.set_events_max(max_len)  # type: ignore[arg-type]


def test_event_consumer_counts_that_are_not_ints_are_refused(redis: aredis.Redis, queue_name: str) -> None:
    bus = EventBus(redis, queue_name)
    for options in ({"concurrency": 0}, {"concurrency": 1.5}, {"max_deliveries": True}, {"prefetch": -1}):
        with pytest.raises(InvalidArgument):
            bus.consumer("g", **options)


def test_scheduler_poll_and_batch_that_are_not_ones_are_refused(queue: Queue) -> None:
    for poll in (0, -1.0, math.nan, math.inf):
        with pytest.raises(InvalidJobOptions, match="poll"):
            Scheduler([queue], poll=poll)
    for batch in (0, 2.5, False):
        with pytest.raises(InvalidArgument, match="batch"):
            Scheduler([queue], batch=batch)  # type: ignore[arg-type]
