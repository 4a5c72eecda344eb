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
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

from conveyor.engine.client.errors import outage_event
from conveyor.engine.clock import clock_arg
from conveyor.engine.commands.running import Finished, claim_command, finish_jobs, finished
from conveyor.engine.execution import Run, claimed_run, log_start
from conveyor.engine.flows import FlowRelay
from conveyor.engine.host import Host
from conveyor.engine.ledger import Ledger
from conveyor.engine.marker import MarkerWatch, Ride
from conveyor.engine.overruns import Overruns
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
        #: Each call claims at most half the slots, so that the second call
        #: in flight has slots to fill while the first one's jobs run.
        self.max_batch = max(1, (self.concurrency + 1) // 2)
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
            self._ride,
        )
        self.running: dict[str, Run] = {}
        self.sideline = Sideline(self.loop)
        self.ledger = Ledger(worker, self.queue.name, self.sideline, self.wake)
        #: Jobs stopped (timeout, cancel, shutdown) whose handler thread still runs.
        self.threads = Overruns(
            self.loop,
            self.execution,
            self.queue.name,
            record=self.record,
            let_lapse=lambda job_id: self.ledger.tokens.pop(job_id, None),
            closed=self.closed,
        )
        self.calls: set[asyncio.Task[None]] = set()
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
        #: Claims riding behind the marker's block (0 or 1), their slots reserved.
        self.riding = 0
        #: Claims sent again after their reply was lost: no other claim goes
        #: out meanwhile, for it would replace their record in Redis.
        self.resending = 0
        #: fetch_loop runs (the worker sets it false after): a lost ride is sent again.
        self.looping = True
        self.reserved = 0
        self.failures = 0
        self.backoff = False
        self.drained = False
        self.flows = FlowRelay(self.queue.redis, self.queue.keys, self.queue.clock, worker.id)
        self.error: Exception | None = None
        self.finish_calls, self.tag = 0, os.urandom(4).hex()  # call ids: '<tag>:<n>', new per run
        #: Asks the lease keeper to renew now (the worker sets it).
        self.renew_soon: Callable[[], None] = lambda: None

    # -- the loop -----------------------------------------------------------

    async def fetch_loop(self, burst: bool) -> None:
        self.burst = burst
        wake = self.wake
        min_batch = max(1, self.concurrency // 4)
        max_batch = self.max_batch
        overruns = self.threads.runs
        while True:
            if self.error is not None:
                err, self.error = self.error, None
                raise err
            if self.drained and burst and not self.inflight and not self.flows.pending and not overruns:
                return
            idle = self.stopping or self.marker.held or self.dry or self.resending
            want = 0 if idle else min(self._free(), max_batch)
            # a second call in flight only for a batch worth it, and not to
            # claim from a queue the last claim found near empty
            least = 1 if self.inflight == 0 else min_batch if not self.sparse else max_batch + 1
            if (
                self.inflight < 2
                and not self.backoff
                and (
                    (self.ledger.outcomes and (self.inflight == 0 or len(self.ledger.outcomes) >= min_batch))
                    or want >= least
                )
            ):
                rows, self.ledger.outcomes = self.ledger.outcomes, []
                self.inflight += 1
                self.reserved += want
                self._spawn(self._finish_call(rows, want, burst))
                continue
            if self.stopping and self.riding:
                self.marker.end_block(stopping=True)  # its claim runs, and its jobs go back
            if self.stopping and not self.running and self.threads.settled():
                if not self.ledger.outcomes and not self.inflight and not self.riding:
                    return
                if self.ledger.given_up:  # Redis cannot take the outcomes: say so, stop the calls
                    self.ledger.abandon(self.inflight)
                    for call in list(self.calls):
                        call.cancel()
                    return
            await wake.wait()
            wake.clear()

    def _free(self) -> int:
        """Slots free: threads that outlived their jobs take slots past ``concurrency`` first."""
        return (
            self.concurrency
            - len(self.running)
            - self.reserved
            - max(0, len(self.threads.runs) - self.concurrency)
        )

    def _call_id(self) -> str:
        self.finish_calls += 1
        return f"{self.tag}:{self.finish_calls}"

    def _spawn(self, call: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(call)
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _finish_call(self, rows: list[Row], want: int, burst: bool, call_id: str | None = None) -> None:
        """One finish-and-claim call; ``call_id`` given: a ride's whose reply
        was lost, sent again (see :meth:`_rode`, which counts it resending)."""
        news = self.news
        lost = call_id is not None
        call_id = call_id or self._call_id()
        try:
            while True:
                try:
                    reply = await self._finish(rows, want, call_id)
                    break
                except (ConnectionFailed, RedisOutOfMemory) as exc:
                    # Redis down or full. Outcomes alone wait here (the lease
                    # keeper keeps their locks) and go in a later call. A
                    # claim may have run with its reply lost: the same call
                    # goes again, and no other claim meanwhile (under its
                    # call id it gets back the jobs it claimed, and its
                    # outcomes, applied already, answer 0).
                    if want == 0 or self.ledger.given_up:
                        self.ledger.outcomes[:0] = rows
                        await self._back_off(exc)
                        return
                    if not lost:
                        lost = True
                        self.resending += 1
                    await self._back_off(exc)
            if self.failures:
                log.info("worker %s reconnected", self.worker.id, extra={"event": "reconnected"})
                self.failures = 0
            self._apply(rows, want, reply, news, burst, early=lost)
        except Exception as exc:  # a bug or an unexpected Redis error: stop the worker loudly
            self.error = exc
        finally:
            if lost:
                self.resending -= 1
            self.inflight -= 1
            self.reserved -= want
            self.wake.set()

    async def _back_off(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 10 == 0:
            log.warning("worker %s: %s; retrying", self.worker.id, exc, extra={"event": outage_event(exc)})
        self.backoff = True
        await asyncio.sleep(min(2.0, 0.05 * 2**self.failures))
        self.backoff = False

    def _apply(
        self, rows: list[Row], want: int, reply: Finished, news: int, burst: bool, *, early: bool = False
    ) -> None:
        """A finish-and-claim call's reply: outcomes settled, claimed jobs
        started, and the marker watched if the queue ran dry (``news``: the
        wakes counted when the call was sent). ``early``: the claim ran
        before this worker could know (behind the marker's block, or a lost
        reply), so its jobs' leases are renewed now, not an interval later."""
        now, next_due, codes, claimed, held, outbox, grouped = reply
        if outbox:
            self.flows.pending += 1
            self.sideline.start(self.flows.finished(outbox, self._relayed))
        if rows:
            self.ledger.settle(rows, codes)
        if claimed:
            self._start_claimed(claimed)
            if early:
                self.renew_soon()
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
            if burst and not claimed and not self.running and not self.ledger.outcomes and not grouped:
                self.drained = self.inflight == 1
            # Unless a wake (or a burst run's outcome) came while the call
            # was out: the claim ran before it, and the marker it woke on
            # is taken, so claim again instead of blocking.
            self.dry = self.news == news
            self.marker.idle.set()
            if next_due >= 0:
                self.marker.after(max(0, next_due - now) / 1000)

    async def _finish(self, rows: list[Row], want: int, call_id: str) -> Finished:
        return await finish_jobs(
            self.queue.redis,
            self.queue.keys,
            now=clock_arg(self.queue.clock),
            claim_count=want,
            lock_ms=self.worker.lock_ms,
            worker_id=self.worker.id,
            outcomes=rows,
            call_id=call_id,
        )

    # -- a claim riding behind the marker's block ----------------------------

    def _ride(self) -> Ride | None:
        """A claim of the free slots for the marker watch to write behind its
        block (see conveyor.engine.marker), the slots reserved until it
        lands. None in a burst run (it ends on a claim that finds nothing),
        on a test clock (the claim runs later than it is written: only
        Redis's own time is right then), or with no slot free."""
        if (
            self.burst
            or self.stopping
            or self.marker.held
            or self.resending
            or self.queue.clock.now_ms() is not None
        ):
            return None
        want = min(self._free(), self.max_batch)
        if want <= 0:
            return None
        call_id = self._call_id()
        self.reserved += want
        self.riding += 1
        news = self.news
        command = claim_command(
            self.queue.keys,
            claim_count=want,
            lock_ms=self.worker.lock_ms,
            worker_id=self.worker.id,
            call_id=call_id,
        )
        return Ride(command, lambda reply: self._rode(reply, want, news, call_id))

    def _rode(self, reply: Any, want: int, news: int, call_id: str) -> None:
        self.riding -= 1
        # the marker moved (or a timer ended the block, or the reply is an
        # error): more may wait, unless the claim comes back short
        self.dry = False
        if isinstance(reply, BaseException):
            # The reply is lost (or NOSCRIPT, READONLY), and the claim may
            # have run: the same call again, until Redis answers, gets back
            # the jobs it claimed (or claims now). It keeps the slots.
            if self.looping:
                # resending from now: no other claim goes out (its record lasts 16 calls)
                self.inflight, self.resending = self.inflight + 1, self.resending + 1
                self._spawn(self._finish_call([], want, False, call_id))
            else:
                self.reserved -= want
            return
        try:
            self._apply([], want, finished(reply), news, False, early=True)
        except Exception as exc:  # a bug or an unexpected reply: stop the worker loudly
            self.error = exc
        finally:
            self.reserved -= want
            self.wake.set()

    # -- running jobs -------------------------------------------------------

    def _start_claimed(self, claimed: list[list[Any]]) -> None:
        create_task = self.loop.create_task
        told = log.isEnabledFor(logging.INFO)
        for row in claimed:
            run, bad = claimed_run(self.worker, row)
            job_id = run.ctx.id
            self.ledger.tokens[job_id] = run.ctx.token
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
        if run.thread_running:  # stopped, its thread runs on: held until the thread ends
            self.running.pop(run.ctx.id, None)
            self.threads.hold(run, None if run.hand_back else ending)
            self.wake.set()
        else:
            self.record(run, ending)

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
        if ending.kind == "":
            self.ledger.tokens.pop(run.ctx.id, None)
        else:
            self.ledger.owe(run, ending)
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
        if self.threads.grace(thread_grace):
            self.loop.call_later(thread_grace + 0.01, self.wake_up)
            # Redis gone: outcomes that cannot be sent by then are given up
            # (their jobs come back after their lease) rather than retried forever
            self.loop.call_later(OUTCOME_GRACE, self.ledger.give_up)
        self.wake.set()

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
