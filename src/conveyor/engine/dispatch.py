"""One run of a worker: claiming jobs, starting their handlers, recording
how each ended.

A :class:`Dispatch` is made by :meth:`Worker.run` and lives as long as that
run. It holds what the run holds: the jobs running, those stopped whose
handler thread runs on, their lease tokens, and the outcomes not yet
written. Up to two finish-and-claim calls are in flight, so that Redis
runs one batch's script while this process runs the last batch's handlers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any

from conveyor.engine.client.errors import outage_event
from conveyor.engine.clock import clock_arg
from conveyor.engine.codes import Reply
from conveyor.engine.commands.running import Finished, finish_jobs
from conveyor.engine.dlq import DeadLetteredJob
from conveyor.engine.execution import Run, claimed_run, log_ending, log_start
from conveyor.engine.flows import FlowRelay
from conveyor.engine.host import Host
from conveyor.engine.marker import MarkerWatch
from conveyor.engine.runner import Ending, Row, attempt_entry
from conveyor.engine.sideline import Sideline
from conveyor.errors import ConnectionFailed, RedisOutOfMemory

log = logging.getLogger("conveyor.worker")

#: Seconds a closing worker keeps trying to record outcomes after it has
#: handed its jobs back, before it gives up on an unreachable Redis.
OUTCOME_GRACE = 5.0


class Dispatch:
    """The state and the loop of one :meth:`Worker.run`."""

    def __init__(self, worker: Host) -> None:
        self.worker = worker
        self.queue = worker.queue
        self.execution = worker.execution
        self.concurrency = worker.concurrency
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.stopping = False
        self.marker = MarkerWatch(
            self.queue.redis,
            self.queue.keys.marker,
            worker.block_timeout,
            self.wake,
            self.wake_up,
            lambda: self.stopping,
        )
        self.running: dict[str, Run] = {}
        #: Jobs stopped (timeout, cancel, shutdown) whose handler thread still runs.
        self.overruns: dict[str, Run] = {}
        self.tokens: dict[str, str] = {}
        self.outcomes: list[Row] = []
        self.letters: dict[str, DeadLetteredJob] = {}
        self.sideline = Sideline(self.loop)
        self.calls: set[asyncio.Task[None]] = set()
        self.overrun_deadline: float | None = None
        self.given_up = False
        # The last claim found the queue dry: claim again only when the
        # marker, a due delayed job or a finished job says there may be more.
        self.dry = False
        #: Counts what may mean more work (a wake; in a burst run, an outcome):
        #: a claim that comes back dry leaves ``dry`` unset if it moved since
        #: the claim was sent, for the claim ran before that news.
        self.news = 0
        # The last claim came back short: the queue is near empty, so one
        # claim at a time (a second one in flight would find nothing).
        self.sparse = False
        #: A burst run (set by fetch_loop): it ends once a claim finds nothing.
        self.burst = False
        self.inflight = 0
        self.reserved = 0
        self.failures = 0
        self.backoff = False
        self.drained = False
        self.flows = FlowRelay(self.queue.redis, self.queue.keys, self.queue.clock, worker.id)
        self.error: Exception | None = None
        self.finish_calls = 0

    # -- the loop -----------------------------------------------------------

    async def fetch_loop(self, burst: bool) -> None:
        self.burst = burst
        wake = self.wake
        min_batch = max(1, self.concurrency // 4)
        # Each call claims at most half the slots, so that the second call in
        # flight has slots to fill while the first one's jobs run.
        max_batch = max(1, (self.concurrency + 1) // 2)
        while True:
            if self.error is not None:
                err, self.error = self.error, None
                raise err
            if self.drained and burst and not self.inflight and not self.flows.pending and not self.overruns:
                return
            # threads that outlived their jobs take slots past ``concurrency`` first
            free = (
                self.concurrency
                - len(self.running)
                - self.reserved
                - max(0, len(self.overruns) - self.concurrency)
            )
            want = 0 if self.stopping or self.marker.held or self.dry else min(free, max_batch)
            # a second call in flight only for a batch worth it, and not to
            # claim from a queue the last claim found near empty
            least = 1 if self.inflight == 0 else min_batch if not self.sparse else max_batch + 1
            if (
                self.inflight < 2
                and not self.backoff
                and (
                    (self.outcomes and (self.inflight == 0 or len(self.outcomes) >= min_batch))
                    or want >= least
                )
            ):
                rows, self.outcomes = self.outcomes, []
                self.inflight += 1
                self.reserved += want
                call = asyncio.create_task(self._finish_call(rows, want, burst))
                self.calls.add(call)
                call.add_done_callback(self.calls.discard)
                continue
            if self.stopping and not self.running and self.threads_settled():
                if not self.outcomes and not self.inflight:
                    return
                if self.given_up:
                    self._abandon_outcomes()
                    return
            await wake.wait()
            wake.clear()

    async def _finish_call(self, rows: list[Row], want: int, burst: bool) -> None:
        worker = self.worker
        news = self.news
        try:
            try:
                reply = await self._finish(rows, want)
            except (ConnectionFailed, RedisOutOfMemory) as exc:
                # Redis down or full: the outcomes wait here (the lease
                # keeper keeps their locks) and are sent again.
                self.outcomes[:0] = rows
                self.failures += 1
                if self.failures == 1 or self.failures % 10 == 0:
                    log.warning("worker %s: %s; retrying", worker.id, exc, extra={"event": outage_event(exc)})
                self.backoff = True
                await asyncio.sleep(min(2.0, 0.05 * 2**self.failures))
                self.backoff = False
                return
            if self.failures:
                log.info("worker %s reconnected", worker.id, extra={"event": "reconnected"})
                self.failures = 0
            now, next_due, codes, claimed, held, outbox, grouped = reply
            if outbox:
                self.flows.pending += 1
                self.sideline.start(self.flows.finished(outbox, self._relayed))
            if rows:
                self._settle(rows, codes)
            if claimed:
                self._start_claimed(claimed)
            if want > 0:
                self.sparse = len(claimed) < want
            if held > now:
                # The queue is rate limited or held: ask again when it opens,
                # without blocking on the marker meanwhile.
                self.marker.hold((held - now) / 1000)
            elif want > 0 and len(claimed) < want and not self.stopping:
                # The queue ran dry: block on the marker, and wake for the next
                # delayed job or group turn. Grouped jobs still waiting for a
                # turn keep a burst run going.
                if burst and not claimed and not self.running and not self.outcomes and not grouped:
                    self.drained = self.inflight == 1
                # Unless a wake (or a burst run's outcome) came while the call
                # was out: the claim ran before it, and the marker it woke on
                # is taken, so claim again instead of blocking.
                self.dry = self.news == news
                self.marker.idle.set()
                if next_due >= 0:
                    self.marker.after(max(0, next_due - now) / 1000)
        except Exception as exc:  # a bug or an unexpected Redis error: stop the worker loudly
            self.error = exc
        finally:
            self.inflight -= 1
            self.reserved -= want
            self.wake.set()

    async def _finish(self, rows: list[Row], want: int) -> Finished:
        self.finish_calls += 1
        return await finish_jobs(
            self.queue.redis,
            self.queue.keys,
            now=clock_arg(self.queue.clock),
            claim_count=min(want, 1000),
            lock_ms=self.worker.lock_ms,
            worker_id=self.worker.id,
            outcomes=rows,
            call_id=self.finish_calls,
        )

    def _settle(self, rows: list[Row], codes: list[int]) -> None:
        tokens = self.tokens
        letters = self.letters
        ended = getattr(self.worker.progress_hook, "job_ended", None)
        for row, code in zip(rows, codes, strict=True):
            job_id = str(row[0])
            tokens.pop(job_id, None)
            if ended is not None and code >= 0 and row[2] in ("c", "f"):
                report = ended(self.queue.name, job_id, row[2] == "c")
                if report is not None:
                    self.sideline.progress_end(report, job_id)
            if letters and (letter := letters.pop(job_id, None)) is not None and code >= 0:
                self.notify_dead_letter(letter)
            if code < 0 and log.isEnabledFor(logging.WARNING):
                log.warning(
                    "job %s: outcome rejected (%s)",
                    job_id,
                    "lock superseded" if code == Reply.SUPERSEDED else "job gone",
                    extra={"event": "stale_outcome", "queue": self.queue.name, "job_id": job_id},
                )

    # -- running jobs -------------------------------------------------------

    def _start_claimed(self, claimed: list[list[Any]]) -> None:
        create_task = self.loop.create_task
        told = log.isEnabledFor(logging.INFO)
        for row in claimed:
            run, bad = claimed_run(self.worker, row)
            job_id = run.ctx.id
            self.tokens[job_id] = run.ctx.token
            self.running[job_id] = run
            if bad is not None:
                self.record(
                    run, Ending("f", attempt_entry(run.ctx, f"cannot decode job: {bad}", ""), error=str(bad))
                )
            elif self.stopping:
                # claimed by a call sent before the worker began to stop: its
                # close no longer waits on it, so it goes back to waiting at
                # once (no attempt spent) instead of running past the grace
                self.record(run, Ending("x"))
            else:
                if told:
                    log_start(self.queue.name, run.ctx)
                run.task = create_task(self._execute(run))

    async def _execute(self, run: Run) -> None:
        ending = await self.execution.run(run)
        if run.thread_running:
            self._outlive(run, None if run.hand_back else ending)
        else:
            self.record(run, ending)

    def _outlive(self, run: Run, ending: Ending | None) -> None:
        """The job was stopped but its handler thread runs on: hold the job
        (its lease renewed) until the thread ends, then record ``ending``
        (None: what the thread itself returned or raised)."""
        ctx = run.ctx
        thread = run.thread
        assert thread is not None
        self.running.pop(ctx.id, None)
        self.overruns[ctx.id] = run
        self.wake.set()
        log.warning(
            "job %s: its handler thread is still running (a thread cannot be stopped); "
            "the job stays held until it returns",
            ctx.id,
            extra={"event": "thread_overrun", "queue": self.queue.name, "job_id": ctx.id},
        )

        def on_loop() -> None:
            if self.overruns.pop(ctx.id, None) is None:
                return
            if self.closed.is_set():
                self.tokens.pop(ctx.id, None)  # the worker is gone: let the lease lapse
                return
            if run.lease_lost:
                final = Ending("")
            else:
                final = ending if ending is not None else self.execution.thread_ending(ctx, thread)
            self.record(run, final)

        def ended(_: concurrent.futures.Future[Any]) -> None:  # on the handler's thread
            try:
                self.loop.call_soon_threadsafe(on_loop)
            except RuntimeError:  # the event loop is closed: let the lease lapse
                self.tokens.pop(ctx.id, None)

        thread.add_done_callback(ended)

    def record(self, run: Run, ending: Ending) -> None:
        ctx = run.ctx
        self.running.pop(ctx.id, None)
        # A slot is free: the outcome's call claims for it, unless the queue
        # ran dry since the last claim. Then the marker wakes this worker when
        # work comes (an add, a retry, a freed group or concurrency slot all
        # set it), and a claim with each outcome would find nothing. A burst
        # run claims anyway: it ends on a claim that finds nothing.
        if self.burst:
            self.wake_up()
        kind = ending.kind
        if kind == "":
            self.tokens.pop(ctx.id, None)
            self.wake.set()
            return
        worker = self.worker
        if kind == "c":
            keep = ctx.run.keep_completed
            worker.processed += 1
        else:
            keep = ctx.run.keep_failed
            if kind in ("r", "f"):
                worker.failed += 1
            if kind == "f" and keep[0] != 0 and worker.on_dead_letter is not None:
                self.letters[ctx.id] = DeadLetteredJob(
                    self.queue.name, ctx.id, ctx.name, ending.error, ctx.attempt
                )
        if log.isEnabledFor(logging.INFO if kind != "f" else logging.WARNING):
            log_ending(self.queue.name, run, ending)
        self.outcomes.append([ctx.id, ctx.token, kind, ending.value, ending.delay_ms, keep[0], keep[1]])
        self.wake.set()

    # -- stopping -----------------------------------------------------------

    def hand_back_all(self, thread_grace: float) -> None:
        """Cancels every running handler and hands its job back to waiting;
        a job whose handler thread cannot be stopped stays held until the
        thread ends, for ``thread_grace`` seconds more at most."""
        self.stopping = True
        for run in list(self.running.values()):
            run.hand_back = True
            if run.task:
                run.task.cancel()
        if self.overrun_deadline is None:
            self.overrun_deadline = time.monotonic() + thread_grace
            self.loop.call_later(thread_grace + 0.01, self.wake_up)
            # Redis gone: outcomes that cannot be sent by then are given up
            # (their jobs come back after their lease) rather than retried forever
            self.loop.call_later(OUTCOME_GRACE, self._give_up)
        self.wake.set()

    def threads_settled(self) -> bool:
        """No handler thread to wait for: none outlived its job, or the
        thread grace is over."""
        deadline = self.overrun_deadline
        return not self.overruns or (deadline is not None and time.monotonic() >= deadline)

    def _give_up(self) -> None:
        self.given_up = True
        self.wake.set()

    def _abandon_outcomes(self) -> None:
        """The worker stops while Redis cannot take its outcomes: say which
        jobs will run again, and stop the calls still trying."""
        pending = [str(row[0]) for row in self.outcomes]
        if pending or self.inflight:
            log.error(
                "worker %s: Redis cannot be reached to record %d outcome(s) (jobs %s); "
                "they run again once their lease runs out",
                self.worker.id,
                len(pending),
                ", ".join(pending[:20]) or "in flight",
                extra={"event": "outcomes_abandoned", "queue": self.queue.name},
            )
        self.outcomes = []
        for call in list(self.calls):
            call.cancel()

    async def wind_down(self) -> None:
        """After the loop: timers off, background work awaited."""
        self.marker.cancel_timers()
        await self.sideline.finish()

    # -- waiting for work ---------------------------------------------------

    def wake_up(self) -> None:
        """There may be work (the marker was set, or a delayed job is due)."""
        self.news += 1
        self.dry = False
        self.wake.set()

    def _relayed(self) -> None:
        """A burst run that looked drained asks once more."""
        self.drained = False
        self.wake.set()

    def notify_dead_letter(self, letter: DeadLetteredJob) -> None:
        """Runs the on_dead_letter hook beside the loop (its errors are logged)."""
        hook = self.worker.on_dead_letter
        if hook is not None:
            self.sideline.dead_letter(hook, letter)
