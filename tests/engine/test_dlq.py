"""The dead-letter set of a queue: what lands there, the retry classifier,
the on_dead_letter hook, listing with search, replay and purge."""

from __future__ import annotations

import asyncio

from conveyor import DeadLetteredJob, JobContext, JobState, Queue, Worker
from conveyor.engine.commands.running import finish_jobs
from polling import wait_until


class UpstreamError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status


def retryable(exc: BaseException) -> bool:
    """HTTP 4xx other than 429 will not get better by retrying."""
    return not (isinstance(exc, UpstreamError) and 400 <= exc.status < 500 and exc.status != 429)


async def test_classifier_dead_letters_a_client_error_on_its_first_attempt(queue: Queue) -> None:
    # Given jobs with five attempts each, failing with 404 and with 429
    async def call_upstream(job: JobContext) -> None:
        raise UpstreamError(job.data)

    not_found = await queue.add("fetch", 404, attempts=5, backoff=0)
    throttled = await queue.add("fetch", 429, attempts=3, backoff=0)

    # When a worker with the classifier runs them
    await Worker(queue, call_upstream, retryable=retryable).run(burst=True)

    # Then the 404 was not retried and the 429 used all its attempts
    j404, j429 = await queue.get_job(not_found.id), await queue.get_job(throttled.id)
    assert j404 is not None and j429 is not None
    assert (j404.state, j404.attempts_made) == (JobState.FAILED, 1)
    assert (j429.state, j429.attempts_made) == (JobState.FAILED, 3)
    assert [h["error"] for h in j429.history] == ["UpstreamError: upstream answered 429"] * 3


async def test_on_dead_letter_is_called_once_per_job_across_workers(queue: Queue) -> None:
    # Given 30 jobs that always fail, and three workers sharing one hook log
    async def broken(job: JobContext) -> None:
        raise RuntimeError(f"broken {job.data}")

    await queue.add_bulk([("j", i, {"attempts": 2, "backoff": 0}) for i in range(30)])
    kept_out = await queue.add("j", 99, remove_on_fail=True)
    told: list[DeadLetteredJob] = []

    async def alert(letter: DeadLetteredJob) -> None:
        told.append(letter)

    # When they drain the queue together
    workers = [Worker(queue, broken, concurrency=4, on_dead_letter=alert) for _ in range(3)]
    await asyncio.gather(*(w.run(burst=True) for w in workers))

    # Then every kept job was reported exactly once, with its last error
    ids = [letter.job_id for letter in told]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert kept_out.id not in ids  # removed on failure: not dead-lettered
    assert all(letter.attempt == 2 and letter.error.startswith("RuntimeError: broken") for letter in told)
    assert {letter.queue for letter in told} == {queue.name}


async def test_dead_letters_are_searchable_replayable_and_purgeable(queue: Queue) -> None:
    # Given dead-lettered jobs with two kinds of error
    healed = False

    async def handler(job: JobContext) -> str:
        if not healed:
            raise ValueError("timeout talking to spotify" if job.data % 2 else "bad artist id")
        return "ok"

    jobs = await queue.add_bulk([("sync", i) for i in range(6)])
    await Worker(queue, handler).run(burst=True)

    # When they are listed, searched and paged
    everything = await queue.dead_letters()
    timeouts = await queue.dead_letters(search="SPOTIFY")
    second_page = await queue.dead_letters(search="spotify", start=1, count=2)

    # Then the lists hold the jobs with their errors, newest first
    assert {j.id for j in everything} == {j.id for j in jobs}
    assert [j.data for j in timeouts] == [5, 3, 1]
    assert [j.data for j in second_page] == [3, 1]
    assert all(j.traceback and "ValueError" in j.traceback for j in timeouts)

    # And replaying one runs it again with fresh attempts, purging drops the rest
    healed = True
    assert await queue.retry_failed(timeouts[0].id) == 1
    await Worker(queue, handler).run(burst=True)
    replayed = await queue.get_job(timeouts[0].id)
    assert replayed is not None and (replayed.state, replayed.result) == (JobState.COMPLETED, "ok")
    assert len(replayed.history) == 1  # the failed attempt stays in its history
    assert len(await queue.clean(JobState.FAILED)) == 5
    assert await queue.dead_letters() == []


async def test_a_job_that_stalls_too_often_is_reported_once(queue: Queue) -> None:
    # Given a job claimed by a worker that then died holding it
    job = await queue.add("j", 1)
    k = queue.keys
    await finish_jobs(
        queue.redis, k, now="", claim_count=1, lock_ms=100, worker_id="dead-worker", outcomes=[], call_id=1
    )
    told: list[DeadLetteredJob] = []

    async def alert(letter: DeadLetteredJob) -> None:
        told.append(letter)

    async def never(ctx: JobContext) -> None:
        raise AssertionError("the job must not run again")

    # When two live workers that allow no stalls check for stalled jobs
    workers = [
        Worker(
            queue, never, lock_duration=0.1, stalled_interval=0.05, max_stalled_count=0, on_dead_letter=alert
        )
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]

    async def dead_and_told() -> bool:
        return await queue.get_state(job.id) is JobState.FAILED and bool(told)

    await wait_until(dead_and_told, within=10)
    await asyncio.sleep(0.2)
    await asyncio.gather(*(w.close() for w in workers))
    await asyncio.gather(*tasks)

    # Then it is dead-lettered and the hook heard of it exactly once
    failed = await queue.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert [letter.job_id for letter in told] == [job.id]
    assert "stalled" in told[0].error
