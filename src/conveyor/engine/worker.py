"""The consumer side: a worker claims jobs in batches, runs their handlers
concurrently and reports outcomes, holding each job under a lease."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from conveyor.engine import preflight
from conveyor.engine.client.connection import sync_twin
from conveyor.engine.client.errors import describe
from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD, dumps
from conveyor.engine.dispatch import OUTCOME_GRACE, Dispatch
from conveyor.engine.dlq import DeadLetteredJob, DeadLetterHook, RetryClassifier
from conveyor.engine.execution import Execution, Executor, Route
from conveyor.engine.job import ProgressHook
from conveyor.engine.lease import LeaseKeeper
from conveyor.engine.middleware import Middleware, check_middleware
from conveyor.engine.options import DEFAULT_KEEP_FAILED
from conveyor.engine.queue import Queue
from conveyor.engine.runner import BackoffFn, Handler
from conveyor.engine.worker_options import DEFAULT_MAX_LOG_LINE, WorkerOptions
from conveyor.errors import RedisOutOfMemory

log = logging.getLogger("conveyor.worker")
__all__ = ["OUTCOME_GRACE", "ProgressHook", "Worker"]


class Worker:
    """Runs ``handler`` for the jobs of ``queue``, ``concurrency`` at a time.

    Handlers are ``async def`` functions taking a :class:`JobContext`; plain
    functions run in a thread pool (``executor="thread"``) or, for CPU-bound
    work, in a process pool (``executor="process"``; the handler must then
    be a module-level function and gets a ProcessJob).

    Each job is held under a lease of ``lock_duration`` seconds, renewed from
    a separate thread. A job whose lease runs out (worker killed, frozen or
    cut off from Redis) goes back to waiting, or fails after
    ``max_stalled_count`` stalls. No I/O happens in the constructor.

    Whatever a handler does, its job ends recorded and the worker goes on:
    a ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``...) or a
    ``CancelledError`` the handler raises itself fails the attempt; a pool
    process that dies fails the job it ran; a result over
    ``max_result_size`` bytes fails it too. A thread cannot be stopped: a
    plain handler still running at its timeout, cancel or shutdown keeps
    its job held (the lease renewed) until it returns, without taking a
    slot from the jobs that come next; at shutdown the worker waits
    ``thread_grace`` seconds past ``shutdown_grace`` for such threads, then
    stops with their leases kept until they end (see :attr:`hung_threads`).

    ``middleware`` (default: the queue's) runs code of your own around each
    run: see :class:`~conveyor.engine.middleware.Middleware`;
    ``task_middleware(name)`` adds the middleware of jobs called ``name``,
    inside it; ``route(name)`` may run the jobs called ``name`` some other
    way (a :class:`~conveyor.engine.execution.Target`; None: ``handler``).
    """

    def __init__(
        self,
        queue: Queue,
        handler: Handler,
        *,
        concurrency: int = 10,
        lock_duration: float = 10.0,
        renew_interval: float | None = None,
        stalled_interval: float | None = None,
        max_stalled_count: int = 1,
        shutdown_grace: float = 30.0,
        executor: Executor = "thread",
        processes: int | None = None,
        backoff_strategies: Mapping[str, BackoffFn] | None = None,
        block_timeout: float = 2.0,
        name: str | None = None,
        progress_hook: ProgressHook | None = None,
        retryable: RetryClassifier | None = None,
        on_dead_letter: DeadLetterHook | None = None,
        flow_sweep_interval: float = 5.0,
        thread_grace: float = 5.0,
        max_result_size: int = DEFAULT_MAX_PAYLOAD,
        max_log_line: int = DEFAULT_MAX_LOG_LINE,
        allow_eviction: bool | None = None,
        middleware: Sequence[Middleware] | None = None,
        task_middleware: Callable[[str], Sequence[Middleware]] | None = None,
        route: Route | None = None,
    ) -> None:
        options = WorkerOptions(
            concurrency=concurrency,
            lock_duration=lock_duration,
            renew_interval=renew_interval,
            stalled_interval=stalled_interval,
            max_stalled_count=max_stalled_count,
            shutdown_grace=shutdown_grace,
            executor=executor,
            processes=processes,
            block_timeout=block_timeout,
            flow_sweep_interval=flow_sweep_interval,
            thread_grace=thread_grace,
            max_result_size=max_result_size,
            max_log_line=max_log_line,
            allow_eviction=allow_eviction,
            retryable=retryable,
            on_dead_letter=on_dead_letter,
        )
        #: This worker's settings, checked.
        self.options = options
        self.queue = queue
        self.handler = handler
        self.concurrency = options.concurrency
        self.lock_ms = options.lock_ms
        self.renew_interval = options.renew_every
        self.stalled_interval = options.stalled_every
        self.max_stalled_count = options.max_stalled_count
        self.shutdown_grace = options.shutdown_grace
        self.block_timeout = options.block_timeout
        self.flow_sweep_interval = options.flow_sweep_interval
        self.id = name or f"{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self.execution = Execution(
            handler,
            executor=executor,
            processes=processes,
            concurrency=concurrency,
            strategies=dict(backoff_strategies or {}),
            retryable=retryable,
            max_result_size=max_result_size,
            middleware=queue.middleware if middleware is None else check_middleware(middleware),
            by_name=task_middleware,
            route=route,
        )
        self.thread_grace = options.thread_grace
        self.max_result_size = options.max_result_size
        self.max_log_line = options.max_log_line
        #: Start on a Redis that may evict keys (None: CONVEYOR_ALLOW_EVICTION).
        self.allow_eviction = options.allow_eviction
        #: Called after each accepted ``update_progress``.
        self.progress_hook = progress_hook
        self.on_dead_letter = options.on_dead_letter
        #: The current (or last) run's state, made by :meth:`run`.
        self._run: Dispatch | None = None
        self._close_first = False
        self.processed = 0
        self.failed = 0
        self._started_ms = 0

    @classmethod
    def from_options(
        cls,
        queue: Queue,
        handler: Handler,
        options: WorkerOptions,
        *,
        name: str | None = None,
        progress_hook: ProgressHook | None = None,
        middleware: Sequence[Middleware] | None = None,
        task_middleware: Callable[[str], Sequence[Middleware]] | None = None,
        route: Route | None = None,
    ) -> Worker:
        """A worker with settings declared once (an app's queue declares
        them for every worker it starts)."""
        settings: dict[str, Any] = {f.name: getattr(options, f.name) for f in fields(options)}
        return cls(
            queue,
            handler,
            **settings,
            name=name,
            progress_hook=progress_hook,
            middleware=middleware,
            task_middleware=task_middleware,
            route=route,
        )

    # -- public -----------------------------------------------------------

    async def run(self, *, burst: bool = False) -> None:
        """Works until :meth:`close` is called, or with ``burst`` until
        nothing is waiting or running (delayed jobs not yet due stay)."""
        # Set up before the first await, so that a close() arriving while the
        # worker starts (a SIGTERM right after launch) stops it.
        run = self._run = Dispatch(self)
        if self._close_first:  # closed before it ran: stop at once
            self._close_first = False
            run.stopping = True
        try:
            try:
                await self.queue.register()
            except RedisOutOfMemory as exc:  # the registry only lists queues: work anyway
                log.warning("worker %s: %s", self.id, exc, extra={"event": "redis_full"})
            await preflight.guard(self.queue.redis, f"worker {self.id}", self.allow_eviction)
        except BaseException:
            run.closed.set()
            raise
        self.execution.open()
        keep_count, keep_age = DEFAULT_KEEP_FAILED.to_wire()
        lease = LeaseKeeper(
            sync_twin(self.queue.redis),
            self.queue.keys,
            run.ledger.tokens,
            self._lease_report,
            clock=self.queue.clock,
            lock_ms=self.lock_ms,
            renew_interval=self.renew_interval,
            stalled_interval=self.stalled_interval,
            max_stalled=self.max_stalled_count,
            failed_keep=(keep_count, keep_age),
            stalled_out=self._stalled_out,
            worker_id=self.id,
            beat=self._beat_info,
        )
        self._started_ms = int(time.time() * 1000)
        run.renew_soon = lease.renew_soon
        lease.start()
        redis_at = describe(self.queue.redis)
        log.info(
            "worker %s started on queue %s (%d at a time, Redis at %s)",
            self.id,
            self.queue.name,
            self.concurrency,
            redis_at,
            extra={
                "event": "worker_started",
                "queue": self.queue.name,
                "worker_id": self.id,
                "concurrency": self.concurrency,
                "redis": redis_at,
            },
        )
        try:
            async with asyncio.TaskGroup() as tg:
                marker = tg.create_task(run.marker.run())
                sweep = tg.create_task(run.flows.sweep(self.flow_sweep_interval, lambda: run.stopping))
                try:
                    await run.fetch_loop(burst)
                finally:
                    run.looping = False
                    run.stopping = True
                    sweep.cancel()
                    await run.marker.stop(marker)
        finally:
            run.marker.cancel_timers()
            await run.sideline.finish()  # background work of the run
            hung = len(run.threads.runs)
            if hung:
                log.error(
                    "worker %s: %d handler thread(s) still running past the shutdown grace; "
                    "their jobs stay held until each thread ends",
                    self.id,
                    hung,
                    extra={"event": "hung_threads", "queue": self.queue.name, "count": hung},
                )
            # with hung threads, the lease thread keeps their jobs until they end
            lease.stop(linger=hung > 0)
            self.execution.close()
            run.closed.set()
            log.info(
                "worker %s stopped",
                self.id,
                extra={"event": "worker_stopped", "queue": self.queue.name, "worker_id": self.id},
            )

    async def close(self, grace: float | None = None) -> None:
        """Stops claiming, lets running jobs finish for up to ``grace``
        seconds (default: ``shutdown_grace``), then hands the rest back to
        waiting without spending an attempt. Returns once stopped."""
        run = self._run
        if run is None:  # not started yet: the run that starts next stops at once
            self._close_first = True
            return
        grace = self.shutdown_grace if grace is None else grace
        run.stopping = True
        run.wake.set()
        if run.running or run.threads.runs:
            pending = [r.task for r in run.running.values() if r.task]
            threads = [asyncio.wrap_future(r.thread) for r in run.threads.runs.values() if r.thread]
            if (pending or threads) and grace > 0:
                await asyncio.wait([*pending, *threads], timeout=grace)
        run.hand_back_all(self.thread_grace)
        await run.closed.wait()

    def hand_back_all(self) -> None:
        """Cancels every running handler and hands its job back to waiting;
        a job whose handler thread cannot be stopped stays held until the
        thread ends, for ``thread_grace`` seconds more at most."""
        if self._run is not None:
            self._run.hand_back_all(self.thread_grace)

    @property
    def hung_threads(self) -> int:
        """Handler threads still running whose jobs were stopped (timed out,
        cancelled, or handed back at shutdown). After :meth:`run` returns,
        a process that must exit while some still run can only exit hard
        (``os._exit``); their jobs then come back after their lease."""
        if self._run is None:
            return 0
        return sum(1 for run in self._run.threads.runs.values() if run.thread_running)

    # -- from the lease thread ----------------------------------------------

    def _beat_info(self) -> str:
        """What this worker tells readers."""
        info = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "concurrency": self.concurrency,
            "started": self._started_ms,
            "jobs": list(self._run.ledger.tokens) if self._run else [],
            "processed": self.processed,
            "failed": self.failed,
        }
        return dumps(info).decode()

    def _stalled_out(self, ids: list[str], error: str) -> None:
        """Jobs the lease thread failed for stalling too often."""
        run = self._run
        if self.on_dead_letter is not None and run is not None and not run.loop.is_closed():
            for job_id in ids:
                letter = DeadLetteredJob(self.queue.name, job_id, None, error, 0)
                run.loop.call_soon_threadsafe(run.ledger.notify_dead_letter, letter)

    def _lease_report(self, lost: list[str], cancels: dict[str, str]) -> None:
        """Leases lost and cancels asked for: hop onto the event loop."""
        run = self._run
        if run is not None and not run.loop.is_closed():
            run.loop.call_soon_threadsafe(self._apply_lease_report, run, lost, cancels)

    def _apply_lease_report(self, run: Dispatch, lost: list[str], cancels: dict[str, str]) -> None:
        for job_id in lost:
            if (overrun := run.threads.runs.get(job_id)) is not None:
                overrun.lease_lost = True
            job = run.running.get(job_id)
            if job and job.task:
                job.lease_lost = True
                log.warning(
                    "job %s: lease lost to another worker; cancelling the handler",
                    job_id,
                    extra={"event": "lease_lost", "queue": self.queue.name, "job_id": job_id},
                )
                job.task.cancel()
        for job_id, reason in cancels.items():
            job = run.running.get(job_id)
            if job and job.task and job.cancel_reason is None:
                job.cancel_reason = reason
                job.task.cancel()
