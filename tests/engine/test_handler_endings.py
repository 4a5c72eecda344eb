"""Whatever a handler does, its job ends recorded and the worker goes on:
pool processes that die or overrun, threads that outlive their timeout or
the shutdown, BaseExceptions, a handler's own CancelledError, oversized
results, progress and log lines, and retry plans that cannot be made."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import pytest

from conveyor import (
    Custom,
    Exponential,
    InvalidJobOptions,
    JobContext,
    JobState,
    PayloadTooLarge,
    ProcessJob,
    Queue,
    Retry,
    Worker,
)
from conveyor.engine.commands.running import RECOVER_STALLED
from conveyor.engine.procpool import describe_error as describe
from polling import wait_until


async def state_of(queue: Queue, job_id: str) -> JobState | None:
    job = await queue.get_job(job_id)
    return None if job is None else job.state


def misbehaves_in_a_process(job: ProcessJob) -> Any:
    if job.data == "exit":
        os._exit(3)
    if job.data == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if job.data == "sys.exit":
        raise SystemExit("leaving")
    if job.data == "sleep":
        time.sleep(60)
    if job.data == "report":
        job.update_progress({"percent": 50})
        job.log(f"attempt {job.attempt} of {job.attempts}", "half way")
        return {"double": "report", "pid": os.getpid()}
    if job.data == "bad report":
        job.log(42)  # type: ignore[arg-type]
    return {"double": job.data * 2, "pid": os.getpid()}


async def test_a_pool_process_that_dies_fails_only_its_job_and_is_replaced(queue: Queue) -> None:
    # Given jobs whose pool process exits, is SIGKILLed or raises SystemExit,
    # among jobs that behave
    exit_job = await queue.add("m", "exit", attempts=1)
    killed = await queue.add("m", "sigkill", attempts=2)
    leaving = await queue.add("m", "sys.exit", attempts=1)
    good = await queue.add_bulk([("m", i) for i in range(8)])

    # When one worker with two pool processes runs them
    worker = Worker(queue, misbehaves_in_a_process, executor="process", processes=2)
    await asyncio.wait_for(worker.run(burst=True), 60)

    # Then each dying process fails its own job with the cause, once per
    # attempt, and every other job completes in a process that was replaced
    died = await queue.get_job(exit_job.id)
    assert died is not None and died.state is JobState.FAILED
    assert died.error == "worker process died: exit code 3"
    sigkilled = await queue.get_job(killed.id)
    assert sigkilled is not None and sigkilled.state is JobState.FAILED
    assert sigkilled.attempts_made == 2
    assert [h["error"] for h in sigkilled.history] == ["worker process died: killed by SIGKILL"] * 2
    left = await queue.get_job(leaving.id)
    assert left is not None and left.state is JobState.FAILED and left.error == "SystemExit: leaving"
    done = [await queue.get_job(j.id) for j in good]
    assert [j.result["double"] for j in done if j and j.state is JobState.COMPLETED] == [
        i * 2 for i in range(8)
    ]


async def test_a_handler_in_a_pool_process_reports_progress_and_logs_through_its_worker(
    queue: Queue,
) -> None:
    # Given a job whose handler, in a pool process, reports progress and
    # log lines, and one whose report is refused
    job = await queue.add("m", "report", attempts=2)
    bad = await queue.add("m", "bad report", attempts=1)

    # When a worker runs them
    worker = Worker(queue, misbehaves_in_a_process, executor="process", processes=1)
    await asyncio.wait_for(worker.run(burst=True), 60)

    # Then the reports were stored on the job by the worker that holds its
    # lease, and a refused report raised in the handler, failing its job
    done = await queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.progress == {"percent": 50}
    assert await queue.get_logs(job.id) == ["attempt 1 of 2", "half way"]
    failed = await queue.get_job(bad.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == "PayloadError: a log line must be a str, not int"


async def test_a_pool_process_past_its_timeout_is_killed_and_the_next_jobs_run(queue: Queue) -> None:
    # Given a job that sleeps a minute under a 0.3 s timeout, and jobs after it
    slow = await queue.add("m", "sleep", timeout=0.3, attempts=1)
    good = await queue.add_bulk([("m", i) for i in range(3)])

    # When a worker with one pool process runs them
    worker = Worker(queue, misbehaves_in_a_process, executor="process", processes=1)
    started = time.monotonic()
    await asyncio.wait_for(worker.run(burst=True), 60)

    # Then the slow job timed out, its process was killed, and the one
    # process left ran the rest
    assert time.monotonic() - started < 30
    timed_out = await queue.get_job(slow.id)
    assert timed_out is not None and timed_out.state is JobState.FAILED
    assert timed_out.error == "TimeoutError: job timed out after 0.3s"
    assert [await state_of(queue, j.id) for j in good] == [JobState.COMPLETED] * 3
    assert worker.execution.procs is not None and worker.execution.procs.kills == 1


class Leave(BaseException):
    """A BaseException of the handler's own."""


ABORTS: dict[str, BaseException] = {
    "SystemExit": SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt(),
    "GeneratorExit": GeneratorExit(),
    "Leave": Leave("bye"),
}


@pytest.mark.parametrize("kind", ["async", "thread"])
async def test_a_handler_raising_a_base_exception_fails_its_job_and_the_worker_goes_on(
    queue: Queue, kind: str
) -> None:
    # Given jobs whose handler raises each of the BaseException family
    jobs = {name: await queue.add(name, None, attempts=1) for name in ABORTS}
    after = await queue.add("fine", None)

    async def aborts(job: JobContext) -> str:
        if job.name in ABORTS:
            raise ABORTS[job.name]
        return "ok"

    def aborts_in_a_thread(job: JobContext) -> str:
        if job.name in ABORTS:
            raise ABORTS[job.name]
        return "ok"

    # When a worker runs them
    worker = Worker(queue, aborts if kind == "async" else aborts_in_a_thread, concurrency=2)
    await asyncio.wait_for(worker.run(burst=True), 20)

    # Then each failed with what it raised, and the worker ran the next job
    for name, job in jobs.items():
        failed = await queue.get_job(job.id)
        assert failed is not None and failed.state is JobState.FAILED, name
        assert failed.error == describe(ABORTS[name]), name
        assert failed.traceback is not None and "aborts" in failed.traceback
    done = await queue.get_job(after.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == "ok"


async def test_a_cancelled_error_raised_by_the_handler_is_a_failure_with_retries(queue: Queue) -> None:
    # Given a handler that re-raises the cancellation of a task of its own
    async def cancels_itself(job: JobContext) -> None:
        inner = asyncio.get_running_loop().create_future()
        inner.cancel()
        await inner

    job = await queue.add("j", None, attempts=2, backoff=0)

    # When a worker runs it
    await asyncio.wait_for(Worker(queue, cancels_itself).run(burst=True), 20)

    # Then both attempts were used and recorded, as for any failure
    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.attempts_made == 2 and failed.stalled_count == 0
    assert [h["error"] for h in failed.history] == ["CancelledError", "CancelledError"]


async def test_a_handler_raising_timeout_error_itself_is_not_reported_as_the_jobs_timeout(
    queue: Queue,
) -> None:
    async def upstream_timeout(job: JobContext) -> None:
        raise TimeoutError("upstream did not answer")

    job = await queue.add("j", None, timeout=30)
    await asyncio.wait_for(Worker(queue, upstream_timeout).run(burst=True), 20)

    failed = await queue.get_job(job.id)
    assert failed is not None and failed.error == "TimeoutError: upstream did not answer"


async def test_a_thread_past_its_timeout_holds_its_job_but_not_a_slot(queue: Queue) -> None:
    # Given one slot, a plain handler that hangs on its first job under a
    # 0.2 s timeout, and jobs behind it
    release = threading.Event()
    runs: list[str] = []

    def hangs(job: JobContext) -> str:
        runs.append(job.id)
        if job.data == "hang":
            release.wait(30)
        return "ok"

    hung = await queue.add("j", "hang", timeout=0.2, attempts=2, backoff=0)
    others = await queue.add_bulk([("j", i) for i in range(5)])
    worker = Worker(queue, hangs, concurrency=1, lock_duration=0.5, renew_interval=0.05)
    task = asyncio.create_task(worker.run())

    # When the hung job times out, the next jobs are called and complete
    async def others_done() -> bool:
        return all([await state_of(queue, j.id) == JobState.COMPLETED for j in others])

    await wait_until(others_done)
    # while the hung job stays held past several lock durations: no second run
    await asyncio.sleep(1.0)
    assert await state_of(queue, hung.id) is JobState.ACTIVE
    assert runs.count(hung.id) == 1

    # Then once its thread ends, the timeout is recorded and the retry runs
    release.set()

    async def hung_done() -> bool:
        return await state_of(queue, hung.id) == JobState.COMPLETED

    await wait_until(hung_done)
    job = await queue.get_job(hung.id)
    assert job is not None and job.attempts_started == 2
    assert [h["error"] for h in job.history] == ["TimeoutError: job timed out after 0.2s"]
    assert runs.count(hung.id) == 2
    await worker.close()
    await task


async def test_a_thread_that_ends_within_the_thread_grace_records_its_own_outcome(queue: Queue) -> None:
    # Given a plain handler that takes 0.5 s, and a shutdown with no grace
    started = threading.Event()

    def slow(job: JobContext) -> str:
        started.set()
        time.sleep(0.5)
        return "finished"

    job = await queue.add("j", None)
    worker = Worker(queue, slow, shutdown_grace=0, thread_grace=5)
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(started.wait, 10)

    # When the worker closes
    await worker.close()
    await task

    # Then the job was not handed back while its thread ran: it completed
    done = await queue.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == "finished"
    assert worker.hung_threads == 0


async def test_a_hung_thread_at_shutdown_keeps_its_job_until_it_ends(queue: Queue) -> None:
    # Given a plain handler that hangs, under 0.5 s locks
    release = threading.Event()
    started = threading.Event()

    def hangs(job: JobContext) -> str:
        started.set()
        release.wait(30)
        return "late"

    job = await queue.add("j", None)
    worker = Worker(
        queue, hangs, shutdown_grace=0.2, thread_grace=0.3, lock_duration=0.5, renew_interval=0.05
    )
    task = asyncio.create_task(worker.run())
    await asyncio.to_thread(started.wait, 10)

    # When the worker closes, it returns within its graces
    began = time.monotonic()
    await asyncio.wait_for(worker.close(), 5)
    await task
    assert time.monotonic() - began < 3
    assert worker.hung_threads == 1

    # Then the job stays active, its lease renewed, while the thread runs:
    # a stalled check long after the lock duration does not take it back
    await asyncio.sleep(1.2)
    await recover_stalled(queue)
    assert await state_of(queue, job.id) is JobState.ACTIVE

    # and once the thread ends, the lease lapses and the job comes back
    release.set()

    async def back() -> bool:
        await recover_stalled(queue)
        return await state_of(queue, job.id) == JobState.WAITING

    await wait_until(back)


async def recover_stalled(queue: Queue) -> None:
    k = queue.keys
    await RECOVER_STALLED.run(
        queue.redis,
        [k.active, k.wait, k.marker, k.seq, k.failed, k.completed, k.stalled_guard],
        [k.job_prefix, k.logs_prefix, queue.clock.now_ms() or "", 5, 0, -1, 0],
    )


async def test_oversized_results_progress_and_log_lines_are_refused(queue: Queue) -> None:
    # Given a worker with a 1 KiB result limit and a 100-byte log line limit
    seen: dict[str, str] = {}

    async def talks(job: JobContext) -> str:
        if job.name == "result":
            return "x" * 2000
        for name, say in (("log", job.log("y" * 101)), ("progress", job.update_progress("z" * 2000))):
            try:
                await say
            except PayloadTooLarge as exc:
                seen[name] = str(exc)
        await job.log("short")
        return "ok"

    big = await queue.add("result", None)
    chatty = await queue.add("chatty", None)
    worker = Worker(queue, talks, max_result_size=1024, max_log_line=100)
    await asyncio.wait_for(worker.run(burst=True), 20)

    # Then the result failed the job, and the handler was told of the rest
    failed = await queue.get_job(big.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == "PayloadTooLarge: the handler's result is 2002 bytes, over the limit of 1024 bytes"
    assert seen == {
        "log": "a log line is 101 bytes, over the limit of 100 bytes",
        "progress": "progress is 2002 bytes, over the limit of 1024 bytes",
    }
    assert await queue.get_logs(chatty.id) == ["short"]


async def test_retry_plans_that_cannot_be_made_fail_the_job_instead_of_stranding_it(queue: Queue) -> None:
    # Given backoff strategies that raise or answer nonsense, and a handler
    # whose Retry asks for forever
    def raises(attempt: int, exc: BaseException) -> float:
        raise RuntimeError("no plan")

    async def fails(job: JobContext) -> None:
        if job.name == "forever":
            raise Retry(delay=float("inf"))
        raise ValueError("boom")

    raising = await queue.add("j", None, attempts=3, backoff=Custom("raises"))
    nonsense = await queue.add("j", None, attempts=3, backoff=Custom("nan"))
    forever = await queue.add("forever", None, attempts=2, backoff=0)
    steep = await queue.add("j", None, attempts=3, backoff=Exponential(5000, 1000))

    strategies = {"raises": raises, "nan": lambda attempt, exc: float("nan")}
    await asyncio.wait_for(Worker(queue, fails, backoff_strategies=strategies).run(burst=True), 20)

    # Then none is left active
    first = await queue.get_job(raising.id)
    assert first is not None and first.state is JobState.FAILED
    assert first.error == "ValueError: boom (and its retry could not be planned: RuntimeError: no plan)"
    second = await queue.get_job(nonsense.id)
    assert second is not None and second.state is JobState.FAILED
    assert second.error is not None and "gave nan, not seconds" in second.error
    third = await queue.get_job(forever.id)
    assert third is not None and third.state is JobState.FAILED and third.attempts_made == 2
    assert third.error is not None and third.error.startswith("InvalidJobOptions: Retry delay must be")
    fourth = await queue.get_job(steep.id)
    assert fourth is not None and fourth.state is JobState.DELAYED


def test_backoff_and_handler_signals_refuse_non_finite_or_huge_delays() -> None:
    from conveyor import Fixed, RateLimited

    for bad in (float("inf"), float("nan"), -1.0, 1e20):
        with pytest.raises(InvalidJobOptions):
            Fixed(bad)
        with pytest.raises(InvalidJobOptions):
            Retry(delay=bad)
        with pytest.raises(InvalidJobOptions):
            RateLimited(bad)
        with pytest.raises(InvalidJobOptions):
            Exponential(base=bad)
    assert Exponential(1.0, 2.0).delay(5000) == 10 * 365 * 24 * 3600.0
