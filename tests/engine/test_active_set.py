"""The active set (a lease per running job) is widened to Redis's skiplist
encoding by a claim that would grow it past a few dozen leases, with a
member that is added and removed within the claim: readers only ever see
leases, a small set keeps the compact encoding, and a member that was
somehow left behind is dropped by the stalled check."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from conveyor import JobState, Queue
from conveyor.engine.commands.running import RECOVER_STALLED, finish_jobs

#: The widening member (see lua/includes/wide_set.lua).
PROBE = "repeat:" + "~" * 64 + ":"


async def _claim(queue: Queue, count: int) -> list[Any]:
    reply = await finish_jobs(
        queue.redis,
        queue.keys,
        now="",
        claim_count=count,
        lock_ms=60_000,
        worker_id="w",
        outcomes=[],
        call_id=uuid4().hex,
    )
    return list(reply.claimed)


async def _encoding(queue: Queue) -> str:
    raw = await queue.redis.object("encoding", queue.keys.active)
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def _members(queue: Queue) -> list[str]:
    raw: Any = await queue.redis.zrange(queue.keys.active, 0, -1)
    return [m.decode() for m in raw]


async def test_a_large_claim_leaves_a_skiplist_holding_only_leases(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(100)])
    claimed = await _claim(queue, 50)
    assert len(claimed) == 50
    assert await _encoding(queue) == "skiplist"
    assert sorted(await _members(queue)) == sorted(row[0] for row in claimed)
    assert (await queue.counts())[JobState.ACTIVE] == 50

    # finishing every job empties (deletes) the set, as before
    rows = [[row[0], row[1], "c", b"1", 0, -1, 0] for row in claimed]
    await finish_jobs(
        queue.redis,
        queue.keys,
        now="",
        claim_count=0,
        lock_ms=60_000,
        worker_id="w",
        outcomes=rows,
        call_id=uuid4().hex,
    )
    assert not await queue.redis.exists(queue.keys.active)
    assert (await queue.counts())[JobState.COMPLETED] == 50


async def test_a_small_claim_keeps_the_compact_encoding(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(10)])
    assert len(await _claim(queue, 5)) == 5
    assert await _encoding(queue) == "listpack"
    assert len(await _members(queue)) == 5


async def test_claims_that_grow_a_compact_set_past_the_threshold_widen_it(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(60)])
    first = await _claim(queue, 20)
    assert await _encoding(queue) == "listpack"
    second = await _claim(queue, 20)
    assert await _encoding(queue) == "skiplist"
    assert sorted(await _members(queue)) == sorted(row[0] for row in first + second)


async def test_a_widening_member_left_behind_is_dropped_by_the_stalled_check(queue: Queue) -> None:
    await queue.add_bulk([("j", i) for i in range(3)])
    claimed = await _claim(queue, 3)
    await queue.redis.zadd(queue.keys.active, {PROBE: 0})
    k = queue.keys
    reply = await RECOVER_STALLED.run(
        queue.redis,
        [k.active, k.wait, k.marker, k.seq, k.failed, k.completed, k.stalled_guard],
        [k.job_prefix, k.logs_prefix, "", 5, 0, -1, 0],
    )
    assert [x for x in reply if x] == []  # nothing requeued, nothing failed
    assert sorted(await _members(queue)) == sorted(row[0] for row in claimed)
    counts = await queue.counts()
    assert counts[JobState.ACTIVE] == 3 and counts[JobState.WAITING] == 0
