"""Consumer API: retries, backoff, timeouts, sync handlers, fencing, cancel,
graceful shutdown and stall detection."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any
from uuid import uuid4

import msgpack
import pytest
import redis.asyncio as aredis

from conveyor import (
    Custom,
    Discard,
    Exponential,
    Fixed,
    JobContext,
    JobState,
    ManualClock,
    ProcessJob,
    Queue,
    Retry,
    StaleLease,
    Worker,
)
from conveyor.engine.commands.running import RECOVER_STALLED, finish_jobs
from polling import wait_until


async def wait_for_state(queue: Queue, job_id: str, state: JobState) -> None:
    async def reached() -> bool:
        return await queue.get_state(job_id) is state

    await wait_until(reached)


async def test_failed_job_retries_with_fixed_backoff_then_succeeds(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    attempts: list[int] = []

    async def flaky(job: JobContext) -> str:
        attempts.append(job.attempt)
        if job.attempt < 3:
            raise ConnectionError("upstream down")
        return "ok"

    job = await clocked_queue.add("j", None, attempts=3, backoff=Fixed(5))
    worker = Worker(clocked_queue, flaky)

    await worker.run(burst=True)
    retrying = await clocked_queue.get_job(job.id)
    assert retrying is not None and retrying.state is JobState.DELAYED
    assert retrying.run_at is not None and retrying.started_at is not None
    assert (retrying.run_at - retrying.started_at).total_seconds() == 5

    clock.advance(4.9)
    await worker.run(burst=True)
    assert attempts == [1]
    clock.advance(0.1)
    await worker.run(burst=True)
    clock.advance(5)
    await worker.run(burst=True)

    done = await clocked_queue.get_job(job.id)
    assert attempts == [1, 2, 3]
    assert done is not None and done.state is JobState.COMPLETED and done.result == "ok"
    assert done.attempts_made == 2
    assert [h["error"] for h in done.history] == ["ConnectionError: upstream down"] * 2


def test_exponential_backoff_grows_and_jitter_stays_within_half() -> None:
    exp = Exponential(base=1, factor=2, max=10)
    assert [exp.delay(a) for a in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    jittered = Exponential(base=4, jitter=True)
    assert all(2 <= jittered.delay(1) <= 4 for _ in range(100))


async def test_custom_backoff_strategy_comes_from_the_worker(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    async def fail(job: JobContext) -> None:
        raise ValueError("bad")

    def strategy(attempt: int, error: BaseException) -> float | None:
        return 7.0 if isinstance(error, ValueError) else None

    job = await clocked_queue.add("j", None, attempts=2, backoff=Custom("seven"))
    await Worker(clocked_queue, fail, backoff_strategies={"seven": strategy}).run(burst=True)

    delayed = await clocked_queue.get_job(job.id)
    assert delayed is not None and delayed.run_at is not None and delayed.started_at is not None
    assert (delayed.run_at - delayed.started_at).total_seconds() == 7


async def test_exhausted_attempts_fail_with_error_traceback_and_history(queue: Queue) -> None:
    async def fail(job: JobContext) -> None:
        raise RuntimeError(f"attempt {job.attempt} broke")

    job = await queue.add("j", None, attempts=3)
    await Worker(queue, fail).run(burst=True)

    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == "RuntimeError: attempt 3 broke"
    assert failed.traceback is not None and "raise RuntimeError" in failed.traceback
    assert [h["attempt"] for h in failed.history] == [1, 2, 3]
    assert failed.attempts_made == 3


async def test_discard_fails_at_once_without_retries(queue: Queue) -> None:
    calls = 0

    async def discard(job: JobContext) -> None:
        nonlocal calls
        calls += 1
        raise Discard("bad input")

    job = await queue.add("j", None, attempts=5)
    await Worker(queue, discard).run(burst=True)

    failed = await queue.get_job(job.id)
    assert calls == 1
    assert failed is not None and failed.state is JobState.FAILED and failed.error == "Discard: bad input"


async def test_retry_signal_sets_its_own_delay(clocked_queue: Queue) -> None:
    async def later(job: JobContext) -> None:
        raise Retry("not yet", delay=30)

    job = await clocked_queue.add("j", None, attempts=2, backoff=Fixed(1))
    await Worker(clocked_queue, later).run(burst=True)

    delayed = await clocked_queue.get_job(job.id)
    assert delayed is not None and delayed.run_at is not None and delayed.started_at is not None
    assert (delayed.run_at - delayed.started_at).total_seconds() == 30


async def test_job_timeout_fails_the_attempt(queue: Queue) -> None:
    async def slow(job: JobContext) -> None:
        await asyncio.sleep(10)

    job = await queue.add("j", None, timeout=0.05)
    await Worker(queue, slow).run(burst=True)

    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == "TimeoutError: job timed out after 0.05s"


async def test_sync_handler_runs_in_a_thread_not_on_the_event_loop(queue: Queue) -> None:
    threads: list[str] = []

    def blocking(job: JobContext) -> int:
        threads.append(threading.current_thread().name)
        time.sleep(0.01)
        return int(job.data) * 2

    jobs = await queue.add_bulk([("j", i) for i in range(4)])
    await Worker(queue, blocking, concurrency=4).run(burst=True)

    assert all(name.startswith("conveyor-job") for name in threads)
    results = [(await queue.get_job(j.id)) for j in jobs]
    assert [r.result for r in results if r] == [0, 2, 4, 6]


async def test_non_json_result_fails_the_job_clearly(queue: Queue) -> None:
    async def weird(job: JobContext) -> object:
        return object()

    job = await queue.add("j", None, attempts=3)
    await Worker(queue, weird).run(burst=True)

    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and "handler result is not JSON" in failed.error
    assert failed.attempts_made == 1


async def test_undecodable_payload_fails_the_job_and_the_worker_keeps_going(
    redis: aredis.Redis, queue: Queue
) -> None:
    bad = await queue.add("j", "placeholder")
    await redis.hset(queue.keys.job(bad.id), "data", b"\xff{not json")
    good = await queue.add("j", "fine")
    seen: list[Any] = []

    async def handler(job: JobContext) -> None:
        seen.append(job.data)

    await Worker(queue, handler).run(burst=True)

    failed = await queue.get_job(bad.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and "cannot decode job" in failed.error
    assert seen == ["fine"]
    assert await queue.get_state(good.id) is JobState.COMPLETED


async def _claim(
    queue: Queue, worker_id: str, lock_ms: int = 1000, call: str | None = None
) -> tuple[str, str]:
    reply = await finish_jobs(
        queue.redis,
        queue.keys,
        now=queue.clock.now_ms() or "",
        claim_count=1,
        lock_ms=lock_ms,
        worker_id=worker_id,
        outcomes=[],
        call_id=call or uuid4().hex,
    )
    job_id, token = reply.claimed[0][0], reply.claimed[0][1]
    return job_id, token


async def _finish(queue: Queue, job_id: str, token: str, kind: str = "c") -> int:
    row = [job_id, token, kind, b'"r"' if kind == "c" else b'{"error":"x"}', 0, -1, 0]
    reply = await finish_jobs(
        queue.redis,
        queue.keys,
        now=queue.clock.now_ms() or "",
        claim_count=0,
        lock_ms=1000,
        worker_id="w",
        outcomes=[row],
        call_id=uuid4().hex,
    )
    return int(reply.codes[0])


async def test_a_resent_claim_gets_the_same_jobs_back(queue: Queue) -> None:
    # Given a claim whose reply was lost (the worker never saw its job)
    first, second = await queue.add("j", 1), await queue.add("j", 2)
    job_id, token = await _claim(queue, "w1", call="7")
    assert job_id == first.id
    # When the worker sends the same call again, it gets the same job under
    # the same token, and nothing more is claimed
    assert await _claim(queue, "w1", call="7") == (job_id, token)
    assert (await queue.counts())[JobState.ACTIVE] == 1
    # Then its next call claims the next job, and a resend of a call whose
    # job is no longer held under its token returns nothing of it
    next_id, next_token = await _claim(queue, "w1", call="8")
    assert next_id == second.id
    assert await _finish(queue, next_id, next_token) == 1
    with pytest.raises(IndexError):
        await _claim(queue, "w1", call="8")


async def test_a_resent_claim_finds_its_jobs_after_a_later_claim_of_the_worker(queue: Queue) -> None:
    # Given two claims of one worker out at once (a ride behind the marker's
    # block and a claim of its fetch loop), both answered, the first reply lost
    a, b, c = [await queue.add("j", i) for i in range(3)]
    first = await _claim(queue, "w1", call="r:1")
    second = await _claim(queue, "w1", call="r:2")
    assert (first[0], second[0]) == (a.id, b.id)
    # When the first is sent again, it gets its own job back, not a new one
    assert await _claim(queue, "w1", call="r:1") == first
    assert await _claim(queue, "w1", call="r:2") == second
    assert (await queue.counts())[JobState.ACTIVE] == 2
    assert await queue.get_state(c.id) is JobState.WAITING


async def test_a_worker_keeps_the_claims_records_of_its_last_16_calls(queue: Queue) -> None:
    ids = [(await queue.add("j", i)).id for i in range(20)]
    claimed = [await _claim(queue, "w1", lock_ms=60_000, call=f"t:{n}") for n in range(1, 21)]
    assert [job_id for job_id, _ in claimed] == ids
    fields = set(await queue.redis.hkeys(queue.keys.claims))
    assert fields == {f"w1|t:{n}".encode() for n in range(5, 21)}
    # a resend of the oldest kept call still gets its own job back
    assert await _claim(queue, "w1", lock_ms=60_000, call="t:5") == claimed[4]
    assert (await queue.counts())[JobState.ACTIVE] == 20


async def test_recover_stalled_prunes_lapsed_claims_records_of_every_shape(queue: Queue) -> None:
    # one field per call now; older versions wrote one field per worker,
    # holding a bare record or a list of them
    now = int((await queue.redis.time())[0]) * 1000
    old, live = now - 1000, now + 60_000
    await queue.redis.hset(
        queue.keys.claims,
        mapping={
            "w1": msgpack.packb(["7", ["1"], old]),
            "w2": msgpack.packb([["7", ["1"], old], ["8", ["2"], old]]),
            "w3|r:1": msgpack.packb(["r:1", ["3"], old]),
            "w4": msgpack.packb([["7", ["4"], old], ["8", ["5"], live]]),
            "w5|r:2": msgpack.packb(["r:2", ["6"], live]),
        },
    )
    await _recover_stalled(queue)
    assert sorted(await queue.redis.hkeys(queue.keys.claims)) == [b"w4", b"w5|r:2"]


# How versions before the per-call fields pruned the claims hash: each field
# one bare record, pruned once its valid-until (its third item) passed.
_OLDER_PRUNING = """
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if cmsgpack.unpack(all[i + 1])[3] <= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return redis.call('HLEN', KEYS[1])
"""


async def test_a_claims_record_reads_as_the_bare_record_older_versions_prune(queue: Queue) -> None:
    # workers of an older version, still running in a rolling upgrade,
    # prune the records this version writes
    await queue.add("j", 1)
    await _claim(queue, "w1", lock_ms=5000, call="r:1")
    now = int((await queue.redis.time())[0]) * 1000
    assert await queue.redis.eval(_OLDER_PRUNING, 1, queue.keys.claims, now) == 1
    assert await queue.redis.eval(_OLDER_PRUNING, 1, queue.keys.claims, now + 10_000) == 0


async def test_claim_records_expire_with_the_lock_and_are_pruned(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    queue = clocked_queue
    await queue.add_bulk([("j", 1), ("j", 2)])
    job_id, _ = await _claim(queue, "w1", lock_ms=1000, call="1")
    assert await queue.redis.hexists(queue.keys.claims, "w1|1")
    # past the lock, a resend is a new claim (the old job's lease lapsed)
    clock.advance(2)
    assert (await _claim(queue, "w1", lock_ms=1000, call="1"))[0] != job_id
    clock.advance(2)
    await _recover_stalled(queue)
    assert not await queue.redis.exists(queue.keys.claims)


async def _recover_stalled(queue: Queue, max_stalled: int = 5) -> None:
    k = queue.keys
    await RECOVER_STALLED.run(
        queue.redis,
        [k.active, k.wait, k.marker, k.seq, k.failed, k.completed, k.stalled_guard],
        [k.job_prefix, k.logs_prefix, queue.clock.now_ms() or "", max_stalled, 0, -1, 0],
    )


async def test_stale_lock_token_cannot_complete_or_fail_a_job(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    job = await clocked_queue.add("j", None)
    _, token_a = await _claim(clocked_queue, "worker-a")
    clock.advance(2)  # worker A's lease runs out
    await _recover_stalled(clocked_queue)
    _, token_b = await _claim(clocked_queue, "worker-b")

    assert await _finish(clocked_queue, job.id, token_a, "c") == -2
    assert await _finish(clocked_queue, job.id, token_a, "f") == -2
    assert await clocked_queue.get_state(job.id) is JobState.ACTIVE

    assert await _finish(clocked_queue, job.id, token_b, "c") == 1
    assert await _finish(clocked_queue, job.id, token_b, "c") == 0  # a resend changes nothing
    done = await clocked_queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.stalled_count == 1
    assert int(token_b.split(":")[0]) > int(token_a.split(":")[0])  # fencing number grows


async def test_stale_worker_progress_and_log_raise_stale_lease(queue: Queue) -> None:
    first_started = asyncio.Event()
    release = asyncio.Event()
    errors: list[BaseException] = []

    async def handler(job: JobContext) -> None:
        if job.fence == 1:
            first_started.set()
            await release.wait()
            for call in (job.update_progress(50), job.log("late")):
                try:
                    await call
                except StaleLease as exc:
                    errors.append(exc)

    job = await queue.add("j", None)
    worker = Worker(queue, handler, lock_duration=60)
    task = asyncio.create_task(worker.run())
    await first_started.wait()
    # Another worker takes the job over: simulate an expired lease.
    await queue.redis.hset(queue.keys.job(job.id), "tk", "2:other")
    release.set()
    await asyncio.sleep(0.05)
    await worker.close(grace=1)
    await task

    assert len(errors) == 2
    assert await queue.get_logs(job.id) == []


async def test_cancel_stops_a_running_job_from_another_handle(redis: aredis.Redis, queue: Queue) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def long(job: JobContext) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = await queue.add("j", None, attempts=3)
    worker = Worker(queue, long, lock_duration=0.4)
    task = asyncio.create_task(worker.run())
    await started.wait()

    assert await Queue(queue.name, redis).cancel(job.id) is True
    await asyncio.wait_for(cancelled.wait(), 5)

    await wait_for_state(queue, job.id, JobState.FAILED)
    await worker.close()
    await task
    done = await queue.get_job(job.id)
    assert done is not None and done.error == "cancelled" and done.attempts_made == 1


async def test_cancelling_a_waiting_job_fails_it_at_once(queue: Queue) -> None:
    job = await queue.add("j", None)
    assert await queue.cancel(job.id, "not needed") is True
    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED and failed.error == "not needed"


async def test_close_lets_short_jobs_finish_and_hands_long_ones_back(queue: Queue) -> None:
    started = 0
    all_started = asyncio.Event()

    async def handler(job: JobContext) -> str:
        nonlocal started
        started += 1
        if started == 4:
            all_started.set()
        await asyncio.sleep(0.05 if job.data == "short" else 30)
        return "done"

    await queue.add_bulk([("j", "short"), ("j", "short"), ("j", "long"), ("j", "long")])
    worker = Worker(queue, handler, concurrency=4)
    task = asyncio.create_task(worker.run())
    await all_started.wait()

    await worker.close(grace=0.5)
    await task

    counts = await queue.counts()
    assert counts[JobState.COMPLETED] == 2
    assert counts[JobState.WAITING] == 2
    assert counts[JobState.ACTIVE] == 0
    for job in await queue.get_jobs(JobState.WAITING):
        assert job.attempts_made == 0


async def test_a_close_while_the_worker_starts_stops_it(queue: Queue) -> None:
    # A SIGTERM can land right after launch, while run() still waits on
    # its first round trip to Redis: the close must not be lost.
    await queue.add("j", 1)
    ran: list[str] = []

    async def handler(job: JobContext) -> None:
        ran.append(job.id)

    worker = Worker(Queue(queue.name, queue.redis), handler)  # a fresh handle registers first
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0)  # run() is inside its first await
    await asyncio.wait_for(worker.close(), 5)
    await asyncio.wait_for(task, 5)
    assert ran == []
    assert (await queue.counts())[JobState.WAITING] == 1

    # closed before run() was even called (its task created, not yet started)
    early = Worker(queue, handler)
    task = asyncio.create_task(early.run())
    await asyncio.wait_for(early.close(), 5)
    await asyncio.wait_for(task, 5)
    assert ran == [] and (await queue.counts())[JobState.WAITING] == 1
    await asyncio.wait_for(early.run(burst=True), 5)  # the close stopped that run only
    assert len(ran) == 1


async def test_job_of_a_dead_worker_is_recovered_after_its_lease(queue: Queue) -> None:
    job = await queue.add("j", "x")
    await _claim(queue, "dead-worker", lock_ms=200)  # claimed, never renewed
    ran: list[int] = []

    async def handler(ctx: JobContext) -> None:
        ran.append(ctx.fence)

    worker = Worker(queue, handler, lock_duration=0.2, stalled_interval=0.05)
    task = asyncio.create_task(worker.run())

    await wait_for_state(queue, job.id, JobState.COMPLETED)
    await worker.close()
    await task
    done = await queue.get_job(job.id)
    assert ran == [2]
    assert done is not None and done.stalled_count == 1


async def test_job_stalling_too_often_fails(queue: Queue) -> None:
    job = await queue.add("j", "x")
    for _ in range(2):
        await _claim(queue, "dead", lock_ms=1)
        await asyncio.sleep(0.01)
        await _recover_stalled(queue, max_stalled=1)

    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == "stalled more than 1 times"


@pytest.mark.parametrize("kind", ["blocks-event-loop", "burns-cpu"])
async def test_handler_that_starves_the_event_loop_is_not_declared_stalled(
    redis: aredis.Redis, queue: Queue, kind: str
) -> None:
    runs: list[int] = []

    hog_started = asyncio.Event()

    async def hog(job: JobContext) -> None:
        runs.append(job.fence)
        hog_started.set()
        end = time.monotonic() + 1.2  # three times the lock duration
        if kind == "blocks-event-loop":
            time.sleep(1.2)  # noqa: ASYNC251 (the point of the test)
        else:
            while time.monotonic() < end:
                sum(range(1000))

    async def thief(job: JobContext) -> None:
        runs.append(-job.fence)

    job = await queue.add("j", None)
    hogger = Worker(queue, hog, lock_duration=0.4, stalled_interval=0.1)
    other = Worker(Queue(queue.name, redis), thief, lock_duration=0.4, stalled_interval=0.1)
    tasks = [asyncio.create_task(hogger.run())]

    await hog_started.wait()  # the hogger has the job
    tasks.append(asyncio.create_task(other.run()))
    await wait_for_state(queue, job.id, JobState.COMPLETED)
    await asyncio.gather(hogger.close(), other.close())
    await asyncio.gather(*tasks)

    done = await queue.get_job(job.id)
    assert runs == [1]
    assert done is not None and done.stalled_count == 0


@pytest.mark.parametrize("delay", [0.0, 0.2])
async def test_idle_worker_starts_a_new_or_delayed_job_when_due(queue: Queue, delay: float) -> None:
    got = asyncio.Event()

    async def handler(job: JobContext) -> None:
        got.set()

    worker = Worker(queue, handler, block_timeout=5)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)  # let it go idle on the marker
    await queue.add("j", None, delay=delay)
    await asyncio.wait_for(got.wait(), delay + 1.0)  # well before the 5 s block timeout
    await worker.close()
    await task


async def test_idle_worker_waits_on_the_marker_instead_of_polling(redis: aredis.Redis, queue: Queue) -> None:
    # Given a worker that found its queue empty
    done = asyncio.Event()

    async def handler(job: JobContext) -> None:
        done.set()

    worker = Worker(queue, handler, block_timeout=5)
    task = asyncio.create_task(worker.run())
    await queue.add("first", None)
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0.1)
    # When it stays idle for half a second
    await redis.config_resetstat()
    await asyncio.sleep(0.5)
    # Then it looked at the wait list at most once (it used to ask in a
    # tight loop, thousands of times a second), and still takes a new job
    claims = (await redis.info("commandstats")).get("cmdstat_zpopmin", {}).get("calls", 0)
    assert claims <= 1
    done.clear()
    await queue.add("second", None)
    await asyncio.wait_for(done.wait(), 1.0)
    await worker.close()
    await task


def square_in_a_process(job: ProcessJob) -> dict[str, int]:
    if job.data == "discard":
        raise Discard("not worth retrying")
    if job.data == "boom":
        raise ValueError("boom")
    return {"square": job.data * job.data, "pid": os.getpid()}


async def test_process_executor_runs_handlers_in_other_processes(queue: Queue) -> None:
    jobs = await queue.add_bulk([("square", i) for i in range(6)])

    await Worker(queue, square_in_a_process, executor="process", processes=2).run(burst=True)

    results = [(await queue.get_job(j.id)) for j in jobs]
    assert [r.result["square"] for r in results if r] == [0, 1, 4, 9, 16, 25]
    assert all(r.result["pid"] != os.getpid() for r in results if r)


async def test_process_executor_reports_the_childs_error_and_honours_discard(queue: Queue) -> None:
    boom = await queue.add("square", "boom", attempts=1)
    discard = await queue.add("square", "discard", attempts=3)

    await Worker(queue, square_in_a_process, executor="process", processes=1).run(burst=True)

    failed = await queue.get_job(boom.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == "ValueError: boom"
    assert failed.traceback is not None and "square_in_a_process" in failed.traceback
    discarded = await queue.get_job(discard.id)
    assert discarded is not None and discarded.state is JobState.FAILED
    assert discarded.attempts_made == 1
    assert discarded.error == "Discard: not worth retrying"


async def test_workers_report_themselves_while_running_and_leave_on_close(queue: Queue) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: JobContext) -> None:
        started.set()
        await release.wait()

    job = await queue.add("j", 1)
    worker = Worker(queue, slow, concurrency=3, renew_interval=0.05, name="w-report")
    task = asyncio.create_task(worker.run())
    await started.wait()

    async def reported() -> bool:  # at its next renewal
        return [w.jobs for w in await queue.workers()] == [[job.id]]

    await wait_until(reported, within=5)
    (info,) = await queue.workers()
    assert (info.id, info.concurrency, info.alive, info.jobs) == ("w-report", 3, True, [job.id])
    assert info.pid == os.getpid()
    release.set()
    await worker.close()
    await task
    assert await queue.workers() == []


@pytest.mark.single_node("kills a Redis of its own")
async def test_a_close_completes_when_redis_is_already_gone() -> None:
    # Given a worker running a job on a Redis that is then SIGKILLed
    from conveyor import connect
    from conveyor.engine.worker import OUTCOME_GRACE
    from conveyor.testing import RedisServer

    started = asyncio.Event()

    async def slow(job: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)

    with RedisServer() as server:
        async with connect(server.url) as redis:
            queue = Queue("gone", redis)
            await queue.add("j", None)
            worker = Worker(queue, slow, shutdown_grace=0.2, lock_duration=1.0)
            task = asyncio.create_task(worker.run())
            await asyncio.wait_for(started.wait(), 10)
            server.kill()

            # When it closes, it gives up on the outcome it cannot send and stops
            began = time.monotonic()
            await asyncio.wait_for(worker.close(), OUTCOME_GRACE + 10)
            await asyncio.wait_for(task, 5)
            assert time.monotonic() - began < OUTCOME_GRACE + 5


async def test_completed_jobs_are_counted_into_wait_and_run_buckets(
    clocked_queue: Queue, clock: ManualClock
) -> None:
    await clocked_queue.add("j", 0.7)  # waits 30 ms, runs 700 ms
    clock.advance(0.03)

    async def run_for(job: JobContext) -> None:
        clock.advance(job.data)

    await Worker(clocked_queue, run_for).run(burst=True)
    await clocked_queue.add("j", 400)  # waits 0 ms, runs 400 s: past the last bound
    await Worker(clocked_queue, run_for).run(burst=True)
    raw = await clocked_queue.redis.hgetall(clocked_queue.keys.stats)
    stats = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
    # buckets: ≤5, 10, 25, 50 (4), 100, 250, 500, 1000 (8), ... 300000 (14), over (15)
    assert stats == {
        "completed": 2,
        "w:4": 1,
        "w:1": 1,
        "w:sum": 30,
        "r:8": 1,
        "r:15": 1,
        "r:sum": 400_700,
    }
