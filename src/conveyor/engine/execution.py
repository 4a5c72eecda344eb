"""Running one job: its handler called the way it wants to be called (on
the event loop, in a thread, or in a pool process), and whatever it did
turned into an :class:`Ending`.

Whatever a handler does, its call ends in an Ending: a ``BaseException``
(``SystemExit``, ``KeyboardInterrupt``...) or a ``CancelledError`` the
handler raises itself fails the attempt; the worker's own cancels
(timeout, operator's cancel, hand-back, lease lost) are told apart by the
reason set on the :class:`Run` before the cancel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal

from conveyor.engine.codec import dumps, dumps_payload, loads
from conveyor.engine.dlq import RetryClassifier
from conveyor.engine.job import JobContext, Reporter
from conveyor.engine.middleware import Middleware, Plan, entered, settled
from conveyor.engine.options import RunOptions
from conveyor.engine.procpool import ProcessPool, from_process, serve_job
from conveyor.engine.procpool import describe_error as describe
from conveyor.engine.runner import BackoffFn, Ending, Handler, attempt_entry, failure
from conveyor.engine.threads import HandlerAborted, ThreadRunner
from conveyor.errors import PayloadError, PayloadTooLarge

log = logging.getLogger("conveyor.worker")

Executor = Literal["thread", "process"]


@dataclass(frozen=True, slots=True)
class Target:
    """How the jobs of one name run: ``fn(ctx)`` awaited on the event loop
    (``"async"``), called on a thread (``"thread"``), or the function
    ``module.qualname`` called in a pool process (``"process"``; ``fn`` is
    then only named: the pool process imports it, and calls its
    ``run_in_process(job)`` if it has one)."""

    fn: Callable[..., Any]
    mode: Literal["async", "thread", "process"]

    @property
    def where(self) -> tuple[str, str]:
        return self.fn.__module__, self.fn.__qualname__

    @classmethod
    def of(cls, handler: Callable[..., Any], executor: Executor) -> Target:
        return cls(handler, "async" if inspect.iscoroutinefunction(handler) else executor)


#: How jobs called ``name`` run, or None for the worker's own handler.
Route = Callable[[str], Target | None]


class Run:
    """One job a worker runs: its context, its task, and why the worker
    stopped it (if it did)."""

    __slots__ = ("cancel_reason", "ctx", "hand_back", "lease_lost", "started", "task", "thread")

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.started = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        #: Set by the worker before it cancels the handler: an operator's
        #: cancel, a shutdown handing the job back, a lease taken over.
        self.cancel_reason: str | None = None
        self.hand_back = False
        self.lease_lost = False
        #: A plain handler's thread.
        self.thread: concurrent.futures.Future[Any] | None = None

    @property
    def thread_running(self) -> bool:
        """The handler's thread runs on (a thread cannot be stopped)."""
        return self.thread is not None and not self.thread.done()


class Execution:
    """Calls a worker's handler for each job and says how each call ended.
    A plain handler runs in a thread (``executor="thread"``; twice the
    concurrency of threads, so that threads outliving their jobs take no
    slot from the next ones) or in a pool of ``processes`` (``"process"``).
    ``route(name)`` may choose another target for the jobs of a name (an
    app's plain tasks, each with its executor)."""

    def __init__(
        self,
        handler: Handler,
        *,
        executor: Executor,
        processes: int | None,
        concurrency: int,
        strategies: Mapping[str, BackoffFn],
        retryable: RetryClassifier | None,
        max_result_size: int,
        middleware: tuple[Middleware, ...] = (),
        by_name: Callable[[str], Sequence[Middleware]] | None = None,
        route: Route | None = None,
    ) -> None:
        #: How the worker's own handler runs (a route may choose another).
        self.default = Target.of(handler, executor)
        self.route = route
        self.middleware = middleware
        self.plan = Plan.of(middleware)
        #: The middleware of jobs by their name, inside ``middleware``.
        self.by_name = by_name
        self._plans: dict[str, Plan] = {}
        self.processes = processes
        self.concurrency = concurrency
        self.strategies = strategies
        self.retryable = retryable
        self.max_result_size = max_result_size
        self.threads: ThreadRunner | None = None
        self.procs: ProcessPool | None = None

    def open(self) -> None:
        """Starts the pool the worker's handler runs in (a route's others
        start when first needed)."""
        if self.default.mode == "process":
            self._process_pool()
        elif self.default.mode == "thread":
            self._thread_pool()

    def _thread_pool(self) -> ThreadRunner:
        if self.threads is None:
            self.threads = ThreadRunner(self.concurrency)
        return self.threads

    def _process_pool(self) -> ProcessPool:
        if self.procs is None:
            self.procs = ProcessPool(self.processes or os.cpu_count() or 1)
        return self.procs

    def target(self, name: str) -> Target:
        """How the jobs called ``name`` run."""
        if self.route is not None:
            routed = self.route(name)
            if routed is not None:
                return routed
        return self.default

    def close(self) -> None:
        if self.threads:
            self.threads.close()
        if self.procs:
            self.procs.close()

    async def run(self, run: Run) -> Ending:
        """Calls the handler for ``run`` (within its timeout, inside the
        middleware) and returns how it ended; the caller records it (or
        waits for a thread that outlives the call: see
        :attr:`Run.thread_running`)."""
        ctx = run.ctx
        plan = self.plan if self.by_name is None else self._plan_of(ctx.name)
        result: Any = None
        error: BaseException | None = None
        try:
            if plan.wraps:
                async with AsyncExitStack() as stack:
                    await entered(plan, ctx, stack)
                    result = await self._call(run)
            else:
                result = await self._call(run)
            ending = self.stopped(run) or self.completed(ctx, result)
        except asyncio.CancelledError as exc:
            # the worker's own cancels set a reason first; any other is the
            # handler's own doing (an inner task's cancel raised on), a failure
            error = exc
            ending = self.stopped(run) or self.failed(ctx, exc)
        except BaseException as exc:  # every ending is recorded
            error = exc
            ending = self.stopped(run) or self.failed(ctx, exc)
        if plan.settles:
            # stopped while the hooks ran: the outcome stands, and is recorded
            with contextlib.suppress(asyncio.CancelledError):
                await settled(plan, ctx, ending, result, error)
        return ending

    def _plan_of(self, name: str) -> Plan:
        plan = self._plans.get(name)
        if plan is None:
            assert self.by_name is not None
            own = tuple(self.by_name(name))
            if not own:  # kept only for names with middleware of their own: few
                return self.plan
            plan = self._plans[name] = Plan.of(self.middleware + own)
        return plan

    async def _call(self, run: Run) -> Any:
        """The handler's call, within the job's timeout (a TimeoutError
        saying so when it runs out)."""
        timeout = run.ctx.run.timeout
        target = self.target(run.ctx.name)
        if timeout is None or target.mode == "process":  # the pool times its own calls
            return await self._invoke(run, target)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await self._invoke(run, target)
        except BaseException:
            if deadline.expired():
                raise TimeoutError(f"job timed out after {timeout:g}s") from None
            raise

    async def _invoke(self, run: Run, target: Target) -> Any:
        """Only Exceptions and CancelledError leave: a SystemExit or
        KeyboardInterrupt the handler raises must fail its job, not escape
        the event loop."""
        ctx = run.ctx
        if target.mode == "async":
            try:
                return await target.fn(ctx)
            except (Exception, asyncio.CancelledError):
                raise
            except BaseException as exc:
                raise HandlerAborted(exc) from exc
        if target.mode == "process":
            info = {
                "id": ctx.id,
                "name": ctx.name,
                "data": ctx.data,
                "attempt": ctx.attempt,
                "queue": ctx.queue,
                "attempts": ctx.attempts,
                "fence": ctx.fence,
                "headers": dict(ctx.headers),
            }

            def serve(request: dict[str, Any]) -> Awaitable[dict[str, Any]]:
                return serve_job(ctx, request)

            module, qualname = target.where
            raw = await self._process_pool().call(module, qualname, dumps(info), ctx.run.timeout, serve)
            return from_process(raw)
        run.thread = self._thread_pool().submit(target.fn, ctx)
        return await asyncio.wrap_future(run.thread)

    def stopped(self, run: Run) -> Ending | None:
        """The ending the worker chose when it stopped the handler, if it did."""
        if run.lease_lost:
            return Ending("")  # another worker owns the job now
        if run.cancel_reason is not None:
            return Ending("f", attempt_entry(run.ctx, run.cancel_reason, ""), error=run.cancel_reason)
        if run.hand_back and (run.thread is None or not run.thread.done()):
            return Ending("x")
        return None

    def completed(self, ctx: JobContext, result: Any) -> Ending:
        try:
            return Ending("c", dumps_payload(result, self.max_result_size, "the handler's result"))
        except PayloadTooLarge as exc:
            return self.failed(ctx, exc)
        except PayloadError as exc:
            return self.failed(ctx, PayloadError(f"handler result is not JSON: {exc}"))

    def failed(self, ctx: JobContext, exc: BaseException) -> Ending:
        try:
            return failure(ctx, exc, self.strategies, self.retryable)
        except Exception as bug:  # a backoff strategy that raised, say: fail rather than strand the job
            error = f"{describe(exc)} (and its retry could not be planned: {describe(bug)})"
            return Ending("f", attempt_entry(ctx, error, ""), error=error)

    def thread_ending(self, ctx: JobContext, thread: concurrent.futures.Future[Any]) -> Ending:
        """How a thread that outlived its job's call ended."""
        if thread.cancelled():
            return Ending("x")
        exc = thread.exception()
        if exc is not None:
            return self.failed(ctx, exc)
        return self.completed(ctx, thread.result())


def claimed_run(worker: Reporter, row: list[Any]) -> tuple[Run, PayloadError | None]:
    """A job the finish call claimed, as a Run; with the error that makes
    it poison (undecodable data or options, no name), if any."""
    job_id, token, fence, name, raw_data, raw_opts, made, created = row
    try:
        if not isinstance(name, str) or not name:
            raise ValueError("the job has no name")
        data = loads(raw_data)
        run_opts = RunOptions.from_raw(raw_opts)
        bad: PayloadError | None = None
    except (PayloadError, UnicodeEncodeError, KeyError, TypeError, ValueError) as exc:
        data, run_opts, bad = None, RunOptions.from_wire({}), PayloadError(str(exc))
    return Run(JobContext(worker, job_id, name, data, made + 1, fence, token, created, run_opts)), bad


def _fields(queue: str, ctx: JobContext) -> dict[str, Any]:
    return {"queue": queue, "job_id": ctx.id, "job_name": ctx.name, "attempt": ctx.attempt}


def log_start(queue: str, ctx: JobContext) -> None:
    """The line of a job whose handler starts."""
    log.info(
        "job %s (%s) started, attempt %d",
        ctx.id,
        ctx.name,
        ctx.attempt,
        extra={"event": "started", **_fields(queue, ctx)},
    )


def log_ending(queue: str, run: Run, ending: Ending) -> None:
    """The line of a job's ending: completed (with how long it ran),
    retrying, failed, held by a rate limit, or handed back."""
    ctx = run.ctx
    extra = _fields(queue, ctx)
    if ending.kind == "c":
        took = round((time.monotonic() - run.started) * 1000, 1)
        log.info(
            "job %s (%s) completed in %.1f ms",
            ctx.id,
            ctx.name,
            took,
            extra={"event": "completed", "duration_ms": took, **extra},
        )
    elif ending.kind == "r":
        log.info(
            "job %s (%s) failed (%s); retrying in %.3fs",
            ctx.id,
            ctx.name,
            ending.error,
            ending.delay_ms / 1000,
            extra={"event": "retrying", "delay_ms": ending.delay_ms, **extra},
        )
    elif ending.kind == "f":
        log.warning(
            "job %s (%s) failed: %s", ctx.id, ctx.name, ending.error, extra={"event": "failed", **extra}
        )
    elif ending.kind == "l":
        log.info(
            "job %s (%s): %s; queue held for %.3fs",
            ctx.id,
            ctx.name,
            ending.error,
            ending.delay_ms / 1000,
            extra={"event": "rate_limited", "delay_ms": ending.delay_ms, **extra},
        )
    else:
        log.info("job %s (%s) handed back", ctx.id, ctx.name, extra={"event": "handed_back", **extra})
