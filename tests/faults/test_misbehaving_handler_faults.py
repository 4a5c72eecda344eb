"""Handlers that misbehave, in real worker processes: pool processes that
exit or are SIGKILLed, threads that outlive their timeout or the shutdown,
handlers raising the BaseException family or their own CancelledError.
Each job ends recorded, the workers keep running, and no job runs twice at
once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from typing import Any

import pytest
import redis.asyncio as aredis

from conveyor import Job, JobState, Queue
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import completions, ledger, spans, spawn, stop_gracefully
from .tally import check

pytestmark = pytest.mark.slow


def spawn_misbehaving(url: str, queue: str, mode: str) -> subprocess.Popen[str]:
    return spawn("misbehaving_proc.py", url, queue, mode, books=url)


async def settled(queue: Queue, total: int) -> bool:
    counts = await queue.counts()
    return counts[JobState.COMPLETED] + counts[JobState.FAILED] == total


async def run_scenario(
    redis_server: RedisServer, queue: Queue, mode: str, faulty: list[object], plain: int
) -> tuple[list[str], list[str]]:
    """Adds the faulty jobs (2 attempts each) among ``plain`` good ones and
    runs two worker processes until every job has settled; the processes
    must be the ones started. Returns (faulty ids, all ids)."""
    bad = await queue.add_bulk(
        [("j", data, {"attempts": 2, "backoff": 0, "timeout": 0.3}) for data in faulty]
    )
    good = await queue.add_bulk([("j", i, {"attempts": 2}) for i in range(plain)])
    workers = [spawn_misbehaving(redis_server.url, queue.name, mode) for _ in range(2)]
    pids = [w.pid for w in workers]
    try:
        await wait_until(lambda: settled(queue, len(bad) + len(good)), within=90)
        assert all(w.poll() is None for w in workers) and [w.pid for w in workers] == pids
    finally:
        stop_gracefully(*workers)
    return [j.id for j in bad], [j.id for j in bad + good]


async def completed_all(queue: Queue, added: list[str]) -> list[Job]:
    """Every added job, completed (asserted)."""
    done = await queue.get_jobs(JobState.COMPLETED, 0, 1000)
    assert {j.id for j in done} == set(added)
    return done


async def record(
    redis: aredis.Redis,
    queue: Queue,
    title: str,
    *,
    bad: list[str],
    added: list[str],
    done: list[Job],
    note: str,
) -> None:
    """The scenario's row of the tally, from what Redis and the ledger hold."""
    check(
        title,
        faults=len(bad),
        added=added,
        completed=[j.id for j in done],
        runs=await ledger(redis, queue.name),
        at_risk=bad,
        completions=await completions(redis, queue.name),
        spans=await spans(redis, queue.name),
        note=note,
    )


async def test_pool_processes_that_exit_or_are_killed_fail_one_attempt_each(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given 10 jobs whose pool process dies on their first run (5 by
    # os._exit, 5 by SIGKILL) among 90 that behave, two attempts each
    faulty: list[Any] = [{"die": "exit"}] * 5 + [{"die": "kill"}] * 5
    bad, added = await run_scenario(redis_server, queue, "process", faulty, 90)

    # Then every job completed; each dead process cost its job one attempt,
    # recorded with the cause
    done = await completed_all(queue, added)
    causes = sorted(h["error"] for j in done if j.id in bad for h in j.history)
    assert causes == ["worker process died: exit code 3"] * 5 + ["worker process died: killed by SIGKILL"] * 5
    await record(
        redis,
        queue,
        "Pool processes (executor='process') dying mid-job: os._exit 5 times, SIGKILL 5 times, 2 workers",
        bad=bad,
        added=added,
        done=done,
        note="each death failed one attempt with its exit code or signal; 0 worker restarts",
    )


async def test_threads_past_their_timeout_hold_their_jobs_and_no_slot(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given 8 plain handlers that block 1.5 s past a 0.3 s timeout on their
    # first run, among 80 jobs that behave
    bad, added = await run_scenario(redis_server, queue, "thread", [{"hang": 1.5}] * 8, 80)

    # Then each timed out once and its retry ran only after its thread ended
    done = await completed_all(queue, added)
    causes = [h["error"] for j in done if j.id in bad for h in j.history]
    assert causes == ["TimeoutError: job timed out after 0.3s"] * 8
    await record(
        redis,
        queue,
        "Thread handlers 1.5 s past a 0.3 s timeout, 2 workers of 4 slots",
        bad=bad,
        added=added,
        done=done,
        note="each timed out once; its job held until its thread returned, then retried",
    )


async def test_handlers_raising_base_exceptions_or_their_own_cancel_fail_one_attempt(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given 12 jobs whose handler raises SystemExit, KeyboardInterrupt,
    # GeneratorExit or its own CancelledError on the first run
    kinds = ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "CancelledError"]
    bad, added = await run_scenario(redis_server, queue, "abort", [{"raise": k} for k in kinds * 3], 80)

    # Then each failed one attempt with what it raised and then completed,
    # and neither worker process exited
    done = await completed_all(queue, added)
    causes = sorted(h["error"] for j in done if j.id in bad for h in j.history)
    assert causes == sorted(kinds * 3)
    await record(
        redis,
        queue,
        "Handlers raising SystemExit, KeyboardInterrupt, GeneratorExit or their own CancelledError",
        bad=bad,
        added=added,
        done=done,
        note="each failed one attempt with what it raised; 0 worker restarts",
    )


async def test_a_shutdown_with_hung_threads_hands_their_jobs_on_only_after_exit(
    redis: aredis.Redis, redis_server: RedisServer, queue: Queue
) -> None:
    # Given a worker whose 4 plain handlers hang for 20 s
    hung = await queue.add_bulk([("j", {"hang": 20}) for _ in range(4)])
    first = spawn_misbehaving(redis_server.url, queue.name, "thread")

    async def all_started() -> bool:
        return len(await ledger(redis, queue.name)) == len(hung)

    await wait_until(all_started, within=30)

    # When it gets SIGTERM (0.5 s grace, 0.5 s more for threads)
    asked = time.monotonic()
    first.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(first.wait, 15)
    exited = time.time()
    stop_took = time.monotonic() - asked

    # Then it exited within its graces and a few seconds; the jobs stayed
    # held until it did, and a second worker ran them after that
    assert code == 0 and stop_took < 5
    second = spawn_misbehaving(redis_server.url, queue.name, "thread")
    try:
        await wait_until(lambda: settled(queue, len(hung)), within=30)
    finally:
        stop_gracefully(second)
    done = await queue.get_jobs(JobState.COMPLETED, 0, 1000)
    reruns = await spans(redis, queue.name)
    assert all(start > exited for runs in reruns.values() for start, _ in runs)
    check(
        "Shutdown with 4 thread handlers hung for 20 s (grace 0.5 s + 0.5 s for threads)",
        faults=len(hung),
        added=[j.id for j in hung],
        completed=[j.id for j in done],
        runs=await ledger(redis, queue.name),
        at_risk=[j.id for j in hung],
        completions=await completions(redis, queue.name),
        spans=reruns,
        note=f"the worker exited {stop_took:.1f} s after SIGTERM, its jobs held until then; "
        "a second worker ran them after their lease",
    )
