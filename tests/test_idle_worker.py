"""An idle worker's round trips: it claims when the marker says work came,
one call at a time while the queue is near empty, and records an outcome
without claiming again once the queue has run dry."""

from __future__ import annotations

import asyncio

from conveyor import Fixed, JobContext, JobState, Queue, Worker
from faults.processes import wait_until


async def _idle(worker: Worker) -> int:
    """Waits until the running worker found its queue dry; its calls so far."""

    async def dry() -> bool:
        run = worker._run
        return run is not None and run.dry and not run.inflight

    await wait_until(dry)
    assert worker._run is not None
    return worker._run.finish_calls


async def test_a_job_added_to_an_idle_worker_costs_one_claim_and_one_outcome_call(queue: Queue) -> None:
    ran = asyncio.Event()

    async def handler(job: JobContext) -> None:
        ran.set()

    worker = Worker(queue, handler, concurrency=10)
    task = asyncio.create_task(worker.run())
    before = await _idle(worker)
    for i in range(20):
        ran.clear()
        job = await queue.add("j", i)
        await ran.wait()

        async def completed(job_id: str = job.id) -> bool:
            return await queue.get_state(job_id) is JobState.COMPLETED

        await wait_until(completed)
    calls = await _idle(worker) - before
    await worker.close()
    await task
    assert worker.processed == 20
    # one claim (woken by the marker) and one outcome per job; a second claim
    # in flight beside the first, or a claim with each outcome, would find nothing
    assert calls == 40


async def test_an_idle_worker_runs_a_retry_it_recorded_without_claiming(queue: Queue) -> None:
    attempts: list[int] = []

    async def flaky(job: JobContext) -> None:
        attempts.append(job.attempt)
        if job.attempt == 1:
            raise ConnectionError("upstream down")

    worker = Worker(queue, flaky)
    task = asyncio.create_task(worker.run())
    await _idle(worker)
    job = await queue.add("j", None, attempts=2, backoff=Fixed(0.05))

    async def completed() -> bool:
        return await queue.get_state(job.id) is JobState.COMPLETED

    await wait_until(completed, within=10)
    await worker.close()
    await task
    assert attempts == [1, 2]


async def test_an_idle_worker_under_a_concurrency_limit_takes_the_job_a_finish_let_through(
    queue: Queue,
) -> None:
    await queue.set_concurrency(1)
    release = asyncio.Event()
    order: list[int] = []

    async def handler(job: JobContext) -> None:
        order.append(job.data)
        if job.data == 0:
            await release.wait()

    worker = Worker(queue, handler, concurrency=5)
    task = asyncio.create_task(worker.run())
    await _idle(worker)
    await queue.add("j", 0)

    async def started() -> bool:
        return order == [0]

    await wait_until(started)
    await queue.add("j", 1)  # held back by the limit: the claim comes back short
    await asyncio.sleep(0.1)
    assert order == [0]
    release.set()

    async def both() -> bool:
        return order == [0, 1]

    await wait_until(both, within=10)
    await worker.close()
    await task
