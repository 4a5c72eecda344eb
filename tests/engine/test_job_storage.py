"""How a waiting job is stored: data split into chunks that keep the job
hash in Redis's compact encoding and put back together byte for byte
wherever it is read, options and priority at their defaults not stored,
and a debounced job's data replaced without leftovers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aredis

from conveyor import JobContext, JobState, ManualClock, Priority, Queue, Worker

# sizes around the chunk (64 bytes) and the largest split data (4,096)
SIZES = [0, 1, 63, 64, 65, 100, 128, 129, 1000, 4095, 4096, 4097, 20_000]


def text_of(size: int) -> str:
    """``size`` bytes of JSON string content, with multi-byte characters
    that chunk boundaries cut through."""
    pattern = "aé€😀"  # 1, 2, 3 and 4 bytes in UTF-8
    out, used = [], 0
    while used < size:
        for ch in pattern:
            width = len(ch.encode())
            if used + width > size:
                ch, width = "a", 1
            out.append(ch)
            used += width
            if used >= size:
                break
    return "".join(out)


@pytest.mark.parametrize("size", SIZES)
async def test_data_of_every_size_is_read_back_as_it_was_added(queue: Queue, size: int) -> None:
    # Given a job whose data is a string of this many bytes (and an object)
    data: Any = {"text": text_of(size), "n": size}
    job = await queue.add("store", data)

    # Then reading it gives the same data, and so does the worker's claim
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.data == data
    seen: list[Any] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.data)

    await Worker(queue, handler).run(burst=True)
    assert seen == [data]


async def test_a_waiting_job_of_a_100_byte_payload_stays_in_the_compact_encoding(
    redis: aredis.Redis, queue: Queue
) -> None:
    job = await queue.add("email", {"p": "x" * 92})  # 100 bytes of JSON
    key = queue.keys.job(job.id)
    assert await redis.object("encoding", key) == b"listpack"
    fields = await redis.hgetall(key)
    # data in two chunks; no options, priority or lifo stored at their
    # defaults; its place in the line (sq)
    assert sorted(fields) == [b"d2", b"data", b"dn", b"name", b"sq", b"st", b"ts"]
    assert fields[b"dn"] == b"2" and len(fields[b"data"]) == 64


async def test_data_longer_than_the_split_limit_is_stored_whole(redis: aredis.Redis, queue: Queue) -> None:
    job = await queue.add("big", "y" * 5000)
    fields = await redis.hgetall(queue.keys.job(job.id))
    assert b"dn" not in fields and len(fields[b"data"]) == 5002


async def test_options_and_priority_at_their_defaults_are_not_stored_but_read_back(
    redis: aredis.Redis, queue: Queue
) -> None:
    plain = await queue.add("plain", 1)
    tuned = await queue.add("tuned", 1, attempts=3, priority=Priority.HIGH, remove_on_complete=5)
    raw_plain = await redis.hgetall(queue.keys.job(plain.id))
    raw_tuned = await redis.hgetall(queue.keys.job(tuned.id))
    assert b"opts" not in raw_plain and b"pr" not in raw_plain
    assert raw_tuned[b"pr"] == b"100" and b'"a":3' in raw_tuned[b"opts"] and b'"rf"' not in raw_tuned[b"opts"]

    got_plain = await queue.get_job(plain.id)
    got_tuned = await queue.get_job(tuned.id)
    assert got_plain is not None and got_tuned is not None
    assert got_plain.priority == Priority.NORMAL and got_tuned.priority == Priority.HIGH
    assert got_plain.options == {"a": 1, "rc": [1000, 86_400_000], "rf": [10_000, 604_800_000]}
    assert got_tuned.options["a"] == 3 and got_tuned.options["rc"][0] == 5
    assert got_tuned.options["rf"] == [10_000, 604_800_000]


@pytest.mark.parametrize(("first", "then"), [(1000, 10), (10, 1000), (300, 130), (5000, 200)])
async def test_debounce_replaces_data_without_leftover_chunks(
    redis: aredis.Redis, queue: Queue, first: int, then: int
) -> None:
    # Given a debounced job with data of one size, replaced by data of another
    await queue.add("edit", "a" * first, dedup_key="doc", debounce=True, delay=60, lifo=True, attempts=4)
    job = await queue.add("edit", "b" * then, dedup_key="doc", debounce=True, delay=60)

    # Then the job holds the new data only, and the new (default) options
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.data == "b" * then and stored.options["a"] == 1
    fields = await redis.hgetall(queue.keys.job(job.id))
    assert b"lifo" not in fields and b"opts" not in fields
    chunks = [f for f in fields if f[:1] == b"d" and f[1:].isdigit()]
    assert len(chunks) == (0 if then <= 64 or then + 2 > 4096 else -(-(then + 2) // 64) - 1)


async def test_a_delayed_lifo_job_keeps_its_place_when_it_comes_due(queue: Queue) -> None:
    # the lifo flag is stored only when set, and read when the job comes due
    await queue.add("job", "fifo")
    await queue.add("job", "front", lifo=True, delay=0.05)
    seen: list[Any] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.data)

    await asyncio.sleep(0.1)
    await Worker(queue, handler, concurrency=1).run(burst=True)
    assert seen == ["front", "fifo"]
    assert (await queue.counts())[JobState.COMPLETED] == 2


async def test_times_and_counts_are_stored_as_exact_integer_text(
    redis: aredis.Redis, queue_name: str
) -> None:
    # a clock past 10^14 ms, where Lua's own number text turns to exponent form
    clock = ManualClock(start_ms=123_456_789_012_345)
    queue = Queue(queue_name, redis, clock=clock)
    later = await queue.add("later", 1, delay=5, priority=Priority.LOW)
    now = await queue.add("now", 2, lifo=True)
    fields = await redis.hgetall(queue.keys.job(later.id))
    assert fields[b"ts"] == b"123456789012345" and fields[b"due"] == b"123456789017345"
    assert fields[b"pr"] == str(int(Priority.LOW)).encode()
    assert (await redis.hget(queue.keys.job(now.id), "lifo")) == b"1"

    async def handler(ctx: JobContext) -> None:
        return None

    await Worker(queue, handler, concurrency=1).run(burst=True)
    done = await redis.hgetall(queue.keys.job(now.id))
    assert done[b"pon"] == done[b"fon"] == b"123456789012345" and done[b"ats"] == b"1"
    assert done[b"tk"][:2] == b"1:"
    assert await redis.pttl(queue.keys.job(now.id)) > 0  # the keep age, as an exact count of ms
    entries: Any = await redis.xrange(queue.keys.events)
    assert {e[b"t"] for _, e in entries} == {b"123456789012345"}
    assert [int(i.split(b"-")[0]) for i, _ in entries] == list(range(1, len(entries) + 1))


@pytest.mark.parametrize("cap", ["nan", "inf", "-inf", "12.5", "many"])
async def test_an_events_cap_written_by_hand_that_is_no_count_is_the_default(
    redis: aredis.Redis, queue: Queue, cap: str
) -> None:
    # set_events_max writes a count; anything else must not fail a transition
    # after its writes (the job stored, its add reported as an error)
    await redis.hset(queue.keys.meta, "events-max", cap)
    jobs = [await queue.add("j", i) for i in range(3)]
    await queue.add_bulk([("j", i) for i in range(3)])

    async def handler(ctx: JobContext) -> None:
        return None

    await Worker(queue, handler, concurrency=4).run(burst=True)
    assert (await queue.counts())[JobState.COMPLETED] == 6
    assert await queue.get_state(jobs[0].id) is JobState.COMPLETED
    assert await redis.xlen(queue.keys.events) > 0
