"""An idle worker's round trips: it claims when the marker says work came,
one call at a time while the queue is near empty, and records an outcome
without claiming again once the queue has run dry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor import Fixed, JobContext, JobState, Queue, Worker
from conveyor.engine import marker as marker_module
from conveyor.engine.client.cluster import dedicated_connection
from conveyor.engine.dispatch import Dispatch
from conveyor.engine.marker import MarkerWatch
from polling import wait_until


def _nth(call: str) -> int:
    """A call id's number within its run ('<run tag>:<n>')."""
    return int(call.rsplit(":", 1)[1])


async def _idle(worker: Worker) -> int:
    """Waits until the running worker found its queue dry (and, but on a
    test clock, has a claim riding behind its block); its calls so far."""
    rides = worker.queue.clock.now_ms() is None

    async def dry() -> bool:
        run = worker._run
        return run is not None and run.dry and not run.inflight and (run.riding > 0 or not rides)

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
    # one claim (behind the marker's block) and one outcome per job; a second
    # claim in flight beside the first, or a claim with each outcome, would
    # find nothing
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


async def test_a_burst_run_ends_when_its_last_outcome_came_while_a_claim_was_out(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last job's outcome is recorded while the second claim sent beside
    the first is still out; that claim comes back dry, and the run still
    ends at once instead of first blocking on the marker for its timeout."""
    real = Dispatch._finish

    async def second_claim_waits_for_the_outcome(
        self: Dispatch, rows: list[Any], want: int, call: str
    ) -> Any:
        reply = await real(self, rows, want, call)
        if _nth(call) == 2:
            # the job's outcome is recorded, and the marker the add set is
            # taken (the watch woke on it): nothing else will wake the run

            async def recorded_and_marker_taken() -> bool:
                return bool(self.ledger.outcomes) and not await queue.redis.exists(queue.keys.marker)

            await wait_until(recorded_and_marker_taken)
        return reply

    monkeypatch.setattr(Dispatch, "_finish", second_claim_waits_for_the_outcome)

    async def handler(job: JobContext) -> str:
        return "done"

    await queue.add("j", 1)
    worker = Worker(
        queue,
        handler,
        concurrency=10,
        block_timeout=120,
        flow_sweep_interval=120,
        stalled_interval=120,
        lock_duration=240,
    )
    await asyncio.wait_for(worker.run(burst=True), 60)
    assert worker.processed == 1
    # two claims, then the outcome with the claim that found the queue dry;
    # it used to go alone, and the run ended only once the marker's block
    # timed out and a fourth call claimed
    assert worker._run is not None and worker._run.finish_calls == 3
    assert (await queue.counts())[JobState.COMPLETED] == 1


async def test_a_marker_watch_stopped_while_it_connects_does_not_block(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() finds no connection to close while the watch is still making
    one; the watch must not then block on the marker for its timeout."""
    connecting = asyncio.Event()
    go_on = asyncio.Event()
    real = dedicated_connection

    sent: list[str] = []

    async def slow_connection(redis: Any, key: str) -> Any:
        connecting.set()
        await go_on.wait()
        conn, release = await real(redis, key)
        send = conn.send_command

        async def recorded(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]))
            return await send(*args, **options)

        monkeypatch.setattr(conn, "send_command", recorded)
        return conn, release

    monkeypatch.setattr(marker_module, "dedicated_connection", slow_connection)
    stopping = False
    woken: list[bool] = []
    watch = MarkerWatch(
        queue.redis, queue.keys.marker, 120, asyncio.Event(), lambda: woken.append(True), lambda: stopping
    )
    task = asyncio.create_task(watch.run())
    watch.idle.set()
    await connecting.wait()
    stopping = True
    stop = asyncio.create_task(watch.stop(task))
    await asyncio.sleep(0)
    go_on.set()
    await asyncio.wait_for(stop, 60)
    assert "BZPOPMIN" not in sent and woken == []


async def test_a_wake_that_comes_while_a_claim_is_out_is_not_lost(
    clocked_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim is out (sent on a timer's wake, say) when a job is added and
    the marker wakes the worker; the claim ran before the add and comes back
    dry. The worker claims again at once: the wake came after the claim was
    sent, and the marker it took is gone, so blocking on it would leave the
    job waiting for the block's timeout. (On a test clock no claim rides
    behind the block: the marker's wake is a wake, as in a burst run.)"""
    queue = clocked_queue
    real = Dispatch._finish
    trace: list[str] = []
    added: list[str] = []

    async def traced(self: Dispatch, rows: list[Any], want: int, call: str) -> Any:
        trace.append(f"send {_nth(call)}")
        reply = await real(self, rows, want, call)
        if _nth(call) == 2:
            # the add comes after this claim ran; its marker wakes the watch
            added.append((await queue.add("j", "late")).id)

            async def marker_taken() -> bool:
                return not await queue.redis.exists(queue.keys.marker)

            await wait_until(marker_taken)
        trace.append(f"back {_nth(call)}")
        return reply

    real_wake = Dispatch.wake_up

    def wake_up(self: Dispatch) -> None:
        trace.append("wake")
        real_wake(self)

    monkeypatch.setattr(Dispatch, "_finish", traced)
    monkeypatch.setattr(Dispatch, "wake_up", wake_up)

    async def handler(job: JobContext) -> None:
        pass

    worker = Worker(queue, handler, concurrency=1)
    task = asyncio.create_task(worker.run())
    await _idle(worker)
    assert worker._run is not None
    worker._run.wake_up()  # as a due delayed job's timer does: claim once more

    async def completed() -> bool:
        return bool(added) and await queue.get_state(added[0]) is JobState.COMPLETED

    await wait_until(completed, within=30)
    await worker.close()
    await task
    back = trace.index("back 2")
    # the claim that takes the job goes straight after the dry one came back
    assert trace[back + 1] == "send 3", trace
