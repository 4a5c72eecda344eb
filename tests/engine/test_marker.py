"""The claim that rides behind the marker's block: an idle worker's next
claim is written on the marker's connection right behind its BZPOPMIN, so
Redis runs it the moment the pop returns. Whatever ends the block (an
add, a timer, a stop, a lost connection, a flushed script cache), the
jobs it claims run once and none is left held."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import ResponseError

from conveyor import ConnectionFailed, JobContext, JobState, Queue, Worker
from conveyor.engine import marker as marker_module
from conveyor.engine.commands.running import finished
from conveyor.engine.dispatch import Dispatch
from polling import wait_until


async def _riding(worker: Worker) -> Dispatch:
    """Waits until the running worker blocks with a claim behind the block."""

    async def riding() -> bool:
        run = worker._run
        return run is not None and run.riding > 0 and run.marker._conn_id is not None

    await wait_until(riding)
    assert worker._run is not None
    return worker._run


def _runs(log: list[tuple[str, int]]) -> Any:
    async def handler(job: JobContext) -> None:
        log.append((job.id, job.attempt))

    return handler


def _lose_the_first_claim_reply(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The first reply of a claim behind the block that took jobs is read
    and then lost, as if the connection broke; returns the lost replies."""
    real = marker_module._reply
    dropped: list[bytes] = []

    async def lossy(conn: Any, *, decode: bool) -> Any:
        reply = await real(conn, decode=decode)
        if not decode and not dropped and isinstance(reply, bytes) and finished(reply).claimed:
            dropped.append(reply)
            raise ConnectionError("the connection broke before the reply was read")
        return reply

    monkeypatch.setattr(marker_module, "_reply", lossy)
    return dropped


async def _one_job(
    queue: Queue, before_add: Callable[[Dispatch], Awaitable[None]] | None = None, **options: Any
) -> tuple[str, list[tuple[str, int]]]:
    """A worker made with ``options`` (a block of a minute) blocks with a
    claim behind the block; ``before_add`` runs, one job is added and
    completes, and the worker closes. The job's id and the runs seen."""
    log: list[tuple[str, int]] = []
    worker = Worker(queue, _runs(log), **{"concurrency": 2, "block_timeout": 60, **options})
    task = asyncio.create_task(worker.run())
    run = await _riding(worker)
    if before_add is not None:
        await before_add(run)
    job = await queue.add("j", 1)
    await _completed(queue, job.id)
    await worker.close()
    await task
    return job.id, log


async def _completed(queue: Queue, job_id: str) -> None:
    async def done() -> bool:
        return await queue.get_state(job_id) is JobState.COMPLETED

    await wait_until(done, within=10)


async def test_a_job_added_to_an_idle_worker_is_claimed_by_the_ride(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    rode: list[str] = []
    real = Dispatch._rode

    def rode_traced(self: Dispatch, reply: Any, want: int, news: int, call_id: str) -> None:
        if isinstance(reply, bytes):
            rode.extend(str(row[0]) for row in finished(reply).claimed)
        real(self, reply, want, news, call_id)

    monkeypatch.setattr(Dispatch, "_rode", rode_traced)
    log: list[tuple[str, int]] = []
    worker = Worker(queue, _runs(log), concurrency=4, block_timeout=60)
    task = asyncio.create_task(worker.run())
    await _riding(worker)
    jobs = []
    for i in range(5):
        jobs.append(job := await queue.add("j", i))
        await _completed(queue, job.id)
        await _riding(worker)
    await worker.close()
    await task
    # each job came back in the reply of the claim behind the block
    assert rode == [job.id for job in jobs]
    assert log == [(job.id, 1) for job in jobs]


async def test_a_ride_that_comes_back_full_leaves_the_worker_claiming(queue: Queue) -> None:
    log: list[tuple[str, int]] = []
    # two slots: a ride claims one job, and the rest wait for the worker
    worker = Worker(queue, _runs(log), concurrency=2, block_timeout=60)
    task = asyncio.create_task(worker.run())
    await _riding(worker)
    jobs = await queue.add_bulk([("j", i) for i in range(20)])
    for job in jobs:
        await _completed(queue, job.id)
    await worker.close()
    await task
    assert sorted(log) == sorted((job.id, 1) for job in jobs)


async def test_a_delayed_job_falling_due_ends_the_block(queue: Queue) -> None:
    log: list[tuple[str, int]] = []
    # the block alone would last a minute: the job's timer ends it
    worker = Worker(queue, _runs(log), concurrency=1, block_timeout=60)
    task = asyncio.create_task(worker.run())
    await _riding(worker)
    job = await queue.add("j", None, delay=0.2)
    await _completed(queue, job.id)
    await worker.close()
    await task
    assert log == [(job.id, 1)]


async def test_a_worker_stopped_while_a_claim_rides_leaves_no_job_held(queue: Queue) -> None:
    log: list[tuple[str, int]] = []
    added = []
    for i in range(10):
        worker = Worker(queue, _runs(log), concurrency=4, block_timeout=60)
        task = asyncio.create_task(worker.run())
        await _riding(worker)
        if i % 2:
            # an add racing the stop: the ride may claim it as it ends
            added.append((await queue.add("j", i)).id)
        await asyncio.wait_for(worker.close(), 10)
        await task
        assert worker._run is not None and worker._run.riding == 0
        counts = await queue.counts()
        assert counts[JobState.ACTIVE] == 0, i
    # each job ran once or waits for the next worker
    for job_id in added:
        assert await queue.get_state(job_id) in (JobState.COMPLETED, JobState.WAITING)
    assert len(log) == len({job_id for job_id, _ in log})


async def test_a_ride_whose_reply_is_lost_gets_its_jobs_back(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = _lose_the_first_claim_reply(monkeypatch)
    # a lease of a minute: only the resend can bring the job back in time
    job_id, log = await _one_job(queue, lock_duration=60)
    assert dropped, "the claim's reply was never dropped"
    # the claim ran; sent again under its call id, it returned the same job,
    # still under its first attempt's lease
    assert log == [(job_id, 1)]


async def test_a_lost_ride_is_sent_again_until_redis_answers(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = _lose_the_first_claim_reply(monkeypatch)
    real_finish = Dispatch._finish
    resends: list[str] = []

    async def down_twice(self: Dispatch, rows: list[Any], want: int, call: str) -> Any:
        if dropped and want and len(resends) < 3:
            resends.append(call)
            if len(resends) < 3:  # Redis still unreachable
                raise ConnectionFailed("Redis is unreachable")
        return await real_finish(self, rows, want, call)

    monkeypatch.setattr(Dispatch, "_finish", down_twice)
    job_id, log = await _one_job(queue, lock_duration=60)
    # the same call three times, the last answered: the same job, first attempt
    assert len(resends) == 3 and len(set(resends)) == 1
    assert log == [(job_id, 1)]


async def test_a_ride_answered_noscript_is_sent_again(queue: Queue) -> None:
    async def flush(run: Dispatch) -> None:
        await queue.redis.script_flush()  # a restart or a failover: the ride's EVALSHA is unknown

    job_id, log = await _one_job(queue, flush)
    assert log == [(job_id, 1)]


def _noting_rides(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ride's landing (its raw reply, or the error), in order."""
    landed: list[Any] = []
    real = Dispatch._rode

    def noted(self: Dispatch, reply: Any, *args: Any) -> None:
        landed.append(reply)
        real(self, reply, *args)

    monkeypatch.setattr(Dispatch, "_rode", noted)
    return landed


async def _riding_quietly(worker: Worker) -> Dispatch:
    """Waits until the worker blocks with a ride and nothing else is due to
    wake its marker watch."""
    run = await _riding(worker)

    async def quiet() -> bool:
        return not run.marker.idle.is_set() and not run.inflight

    await wait_until(quiet)
    return run


async def test_a_ride_answered_noscript_leaves_the_worker_claiming_and_riding(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ride answered NOSCRIPT (a restart, a failover: READONLY is the
    # same) and the call that made good its claim took as many jobs as it
    # asked for: the worker must not stay "dry", blocked on nothing, with
    # every later job left waiting. That call also loads the ride's script
    # (claim_jobs), so the rides after it find it.
    landed = _noting_rides(monkeypatch)
    log: list[tuple[str, int]] = []
    worker = Worker(queue, _runs(log), concurrency=1, block_timeout=60)
    task = asyncio.create_task(worker.run())
    await _riding_quietly(worker)
    await queue.redis.script_flush()
    ids = []
    for n in range(3):
        job = await queue.add("j", n)
        await _completed(queue, job.id)
        ids.append(job.id)
    await worker.close()
    await task
    assert log == [(job_id, 1) for job_id in ids]
    # the first ride lost its claim, the next two brought jobs 2 and 3 (and
    # the last one, ended by close(), brought nothing)
    assert [type(r).__name__ for r in landed][:3] == ["NoScriptError", "bytes", "bytes"]
    assert not any(isinstance(r, BaseException) for r in landed[1:])


@pytest.mark.parametrize("seed", range(3))
async def test_rides_under_random_flushes_and_kills_run_every_job_once(queue: Queue, seed: int) -> None:
    # adds one by one and in threes, the script cache flushed and the
    # marker's connection killed at random moments, whatever a ride is
    # doing then: every job runs, once, on its first attempt, claimed once
    # (none left to wait out its lease after a lost reply)
    rng = random.Random(seed)
    log: list[tuple[str, int]] = []
    worker = Worker(queue, _runs(log), concurrency=3, block_timeout=60)
    task = asyncio.create_task(worker.run())
    run = await _riding(worker)
    added: list[str] = []
    for _ in range(60):
        roll = rng.random()
        if roll < 0.45:
            added.append((await queue.add("j", len(added))).id)
        elif roll < 0.6:
            added += [job.id for job in await queue.add_bulk([("j", len(added) + i) for i in range(3)])]
        elif roll < 0.8:
            await queue.redis.script_flush()
        elif run.marker._conn_id is not None:
            with contextlib.suppress(ResponseError):  # already gone
                await queue.redis.execute_command("CLIENT", "KILL", "ID", run.marker._conn_id)
        await asyncio.sleep(rng.random() * 0.01)

    async def all_ran() -> bool:
        return len(log) >= len(added) and not (await queue.counts())[JobState.ACTIVE]

    await wait_until(all_ran, within=20)
    await worker.close()
    await task
    assert sorted(log) == sorted((job_id, 1) for job_id in added)
    started = [await queue.redis.hget(queue.keys.job(job_id), "ats") for job_id in added]
    assert set(started) == {b"1"}


async def test_a_marker_connection_killed_under_a_ride_is_made_again(queue: Queue) -> None:
    async def kill(run: Dispatch) -> None:
        first_id = run.marker._conn_id
        assert first_id is not None
        await queue.redis.execute_command("CLIENT", "KILL", "ID", first_id)

        async def reconnected() -> bool:
            return run.riding > 0 and run.marker._conn_id not in (None, first_id)

        await wait_until(reconnected, within=10)

    job_id, log = await _one_job(queue, kill)
    assert log == [(job_id, 1)]


async def test_jobs_a_ride_claimed_have_their_leases_renewed_at_once(queue: Queue) -> None:
    # A ride's claim ran when the pop returned, before the worker heard of
    # it: its leases are renewed as its reply lands, not an interval later
    release = asyncio.Event()

    async def held(job: JobContext) -> None:
        await release.wait()

    worker = Worker(queue, held, concurrency=2, block_timeout=60, lock_duration=30, renew_interval=60)
    task = asyncio.create_task(worker.run())
    await _riding(worker)
    assert worker._run is not None
    keeper: Any = worker._run.renew_soon.__self__  # type: ignore[attr-defined]  # the lease keeper
    assert keeper.renewals == 0
    job = await queue.add("j", 1)

    async def renewed() -> bool:
        return bool(keeper.renewals >= 1)

    await wait_until(renewed, within=10)  # the regular renewal would come after 60 s
    release.set()
    await _completed(queue, job.id)
    await worker.close()
    await task
