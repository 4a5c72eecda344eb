"""The consumer side: a worker claims jobs in batches, runs their handlers
concurrently and reports outcomes, holding each job under a lease."""

from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Literal

from conveyor.engine.clock import clock_arg
from conveyor.engine.cluster import dedicated_connection
from conveyor.engine.codec import dumps, loads, packb, text, unpack_reply
from conveyor.engine.connection import sync_twin
from conveyor.engine.dlq import DeadLetteredJob, DeadLetterHook, RetryClassifier
from conveyor.engine.flows import relay
from conveyor.engine.job import JobContext
from conveyor.engine.lease import LeaseKeeper
from conveyor.engine.options import DEFAULT_KEEP_FAILED, RunOptions
from conveyor.engine.queue import Queue
from conveyor.engine.runner import (
    BackoffFn,
    Ending,
    Handler,
    Row,
    attempt_entry,
    call_handler,
    failure,
)
from conveyor.engine.scripts import outage_event, script
from conveyor.errors import ConnectionFailed, JobNotFound, PayloadError, RedisOutOfMemory, StaleLease

log = logging.getLogger("conveyor.worker")
#: Called after each accepted ``update_progress`` (e.g. ``ProgressBus.bridge()``).
ProgressHook = Callable[[JobContext, Any], Awaitable[None]]
_DEBUG = logging.DEBUG


class _Running:
    __slots__ = ("cancel_reason", "ctx", "hand_back", "task")

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None
        self.cancel_reason: str | None = None
        self.hand_back = False


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
        executor: Literal["thread", "process"] = "thread",
        processes: int | None = None,
        backoff_strategies: Mapping[str, BackoffFn] | None = None,
        block_timeout: float = 2.0,
        name: str | None = None,
        progress_hook: ProgressHook | None = None,
        retryable: RetryClassifier | None = None,
        on_dead_letter: DeadLetterHook | None = None,
        flow_sweep_interval: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if lock_duration <= 0:
            raise ValueError("lock_duration must be > 0")
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.lock_ms = int(lock_duration * 1000)
        self.renew_interval = renew_interval or min(lock_duration / 4, 1.0)
        self.stalled_interval = stalled_interval or max(0.1, lock_duration / 2)
        self.max_stalled_count = max_stalled_count
        self.shutdown_grace = shutdown_grace
        self.block_timeout = block_timeout
        self.flow_sweep_interval = flow_sweep_interval
        self.id = name or f"{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self._finish_calls = 0
        self._is_async = inspect.iscoroutinefunction(handler)
        self._executor_kind = executor
        self._processes = processes
        self._executor: Executor | None = None
        self._strategies = dict(backoff_strategies or {})
        self._progress_hook = progress_hook
        self._retryable = retryable
        self._on_dead_letter = on_dead_letter
        self._letters: dict[str, DeadLetteredJob] = {}
        self._hooks: set[asyncio.Task[None]] = set()
        self._running: dict[str, _Running] = {}
        self._tokens: dict[str, str] = {}
        self._outcomes: list[Row] = []
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._stopping = False
        self._closed: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._hold_timer: asyncio.TimerHandle | None = None
        self._held = False
        # The last claim found the queue dry: claim again only when the
        # marker, a due delayed job or a finished job says there may be more.
        self._dry = False
        self._lease: LeaseKeeper | None = None
        self._loop_ref: asyncio.AbstractEventLoop | None = None
        self._inflight = 0
        self._reserved = 0
        self._failures = 0
        self._backoff = False
        self._drained = False
        self._relaying = 0
        self._error: Exception | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._block_conn: Any = None
        self.processed = 0
        self.failed = 0
        self._started_ms = 0

    # -- public -----------------------------------------------------------

    async def run(self, *, burst: bool = False) -> None:
        """Works until :meth:`close` is called, or with ``burst`` until
        nothing is waiting or running (delayed jobs not yet due stay)."""
        # Set up before the first await, so that a close() arriving while the
        # worker starts (a SIGTERM right after launch) stops it.
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closed = asyncio.Event()
        self._stopping = False
        self._drained = False
        self._dry = False
        self._loop_ref = asyncio.get_running_loop()
        try:
            await self.queue.register()
        except RedisOutOfMemory as exc:  # the registry only lists queues: work anyway
            log.warning("worker %s: %s", self.id, exc, extra={"event": "redis_full"})
        except BaseException:
            self._closed.set()
            raise
        if not self._is_async:
            if self._executor_kind == "process":
                # spawn, not fork: forking a process that runs threads and an
                # event loop can deadlock the child (and warns from 3.12 on).
                self._executor = ProcessPoolExecutor(
                    max_workers=self._processes or os.cpu_count(),
                    mp_context=multiprocessing.get_context("spawn"),
                )
            else:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="conveyor-job")
        keys = self.queue.keys
        self._lease = LeaseKeeper(
            sync_twin(self.queue.redis),
            keys,
            self._tokens,
            self._lease_report,
            clock=self.queue.clock,
            lock_ms=self.lock_ms,
            renew_interval=self.renew_interval,
            stalled_interval=self.stalled_interval,
            max_stalled=self.max_stalled_count,
            failed_keep=tuple(DEFAULT_KEEP_FAILED.to_wire()),  # type: ignore[arg-type]
            stalled_out=self._stalled_out,
            worker_id=self.id,
            beat=self._beat_info,
        )
        self._started_ms = int(time.time() * 1000)
        self._lease.start()
        log.info("worker %s started on queue %s", self.id, self.queue.name, extra={"event": "worker_started"})
        try:
            async with asyncio.TaskGroup() as tg:
                marker = tg.create_task(self._marker_loop())
                sweep = tg.create_task(self._sweep_loop())
                try:
                    await self._fetch_loop(burst)
                finally:
                    self._stopping = True
                    sweep.cancel()
                    await self._stop_marker(marker)
        finally:
            for timer in (self._timer, self._hold_timer):
                if timer:
                    timer.cancel()
            self._lease.stop()
            if self._hooks:
                await asyncio.gather(*self._hooks, return_exceptions=True)
            if self._executor:
                self._executor.shutdown(wait=False, cancel_futures=True)
            self._closed.set()
            log.info("worker %s stopped", self.id, extra={"event": "worker_stopped"})

    async def close(self, grace: float | None = None) -> None:
        """Stops claiming, lets running jobs finish for up to ``grace``
        seconds (default: ``shutdown_grace``), then hands the rest back to
        waiting without spending an attempt. Returns once stopped."""
        if self._wake is None or self._closed is None:
            return
        grace = self.shutdown_grace if grace is None else grace
        self._stopping = True
        self._wake.set()
        if self._running:
            pending = [r.task for r in self._running.values() if r.task]
            if pending and grace > 0:
                await asyncio.wait(pending, timeout=grace)
        self.hand_back_all()
        await self._closed.wait()

    def hand_back_all(self) -> None:
        """Cancels every running handler and hands its job back to waiting."""
        self._stopping = True
        for run in list(self._running.values()):
            run.hand_back = True
            if run.task:
                run.task.cancel()
        if self._wake:
            self._wake.set()

    # -- fetch loop ---------------------------------------------------------

    async def _fetch_loop(self, burst: bool) -> None:
        """Keeps up to two finish-and-claim calls in flight, so that Redis
        runs one batch's script while this process runs the last batch's
        handlers."""
        assert self._wake is not None and self._idle is not None
        wake = self._wake
        min_batch = max(1, self.concurrency // 4)
        # Each call claims at most half the slots, so that the second call in
        # flight has slots to fill while the first one's jobs run.
        max_batch = max(1, (self.concurrency + 1) // 2)
        while True:
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            if self._drained and burst and not self._inflight and not self._relaying:
                return
            free = self.concurrency - len(self._running) - self._reserved
            want = 0 if self._stopping or self._held or self._dry else min(free, max_batch)
            if (
                self._inflight < 2
                and not self._backoff
                and (
                    (self._outcomes and (self._inflight == 0 or len(self._outcomes) >= min_batch))
                    or want >= (1 if self._inflight == 0 else min_batch)
                )
            ):
                rows, self._outcomes = self._outcomes, []
                self._inflight += 1
                self._reserved += want
                self._calls.add(asyncio.create_task(self._finish_call(rows, want, burst)))
                continue
            if self._stopping and not self._running and not self._outcomes and not self._inflight:
                return
            await wake.wait()
            wake.clear()

    async def _finish_call(self, rows: list[Row], want: int, burst: bool) -> None:
        assert self._wake is not None and self._idle is not None
        try:
            try:
                reply = await self._finish(rows, want)
            except (ConnectionFailed, RedisOutOfMemory) as exc:
                # Redis down or full: the outcomes wait here (the lease
                # keeper keeps their locks) and are sent again.
                self._outcomes[:0] = rows
                self._failures += 1
                if self._failures == 1 or self._failures % 10 == 0:
                    log.warning("worker %s: %s; retrying", self.id, exc, extra={"event": outage_event(exc)})
                self._backoff = True
                await asyncio.sleep(min(2.0, 0.05 * 2**self._failures))
                self._backoff = False
                return
            if self._failures:
                log.info("worker %s reconnected", self.id, extra={"event": "reconnected"})
                self._failures = 0
            now, next_due, codes, claimed, held, outbox, grouped = unpack_reply(reply)
            if outbox:
                self._relaying += 1
                self._background(self._relay_finished(outbox))
            if rows:
                self._settle([str(row[0]) for row in rows], codes)
            if claimed:
                self._start_claimed(claimed)
            if held > now:
                # The queue is rate limited or held: ask again when it opens,
                # without blocking on the marker meanwhile.
                self._hold((held - now) / 1000)
            elif want > 0 and len(claimed) < want and not self._stopping:
                # The queue ran dry: block on the marker, and wake for the next
                # delayed job or group turn. Grouped jobs still waiting for a
                # turn keep a burst run going.
                if burst and not claimed and not self._running and not self._outcomes and not grouped:
                    self._drained = self._inflight == 1
                self._dry = True
                self._idle.set()
                if next_due >= 0:
                    self._arm_timer(max(0, next_due - now) / 1000)
        except Exception as exc:  # a bug or an unexpected Redis error: stop the worker loudly
            self._error = exc
        finally:
            self._inflight -= 1
            self._reserved -= want
            self._calls.discard(asyncio.current_task())  # type: ignore[arg-type,unused-ignore]
            self._wake.set()

    async def _finish(self, rows: list[Row], want: int) -> Any:
        k = self.queue.keys
        self._finish_calls += 1
        args: list[Any] = [
            k.job_prefix,
            k.logs_prefix,
            clock_arg(self.queue.clock),
            min(want, 1000),
            self.lock_ms,
            self.id,
            packb(rows),
            self._finish_calls,
        ]
        return await script("finish_jobs").run(self.queue.redis, k.finish, args)

    def _settle(self, ids: list[str], codes: list[int]) -> None:
        tokens = self._tokens
        letters = self._letters
        for job_id, code in zip(ids, codes, strict=True):
            tokens.pop(job_id, None)
            if letters and (letter := letters.pop(job_id, None)) is not None and code >= 0:
                self._notify_dead_letter(letter)
            if code < 0 and log.isEnabledFor(logging.WARNING):
                log.warning(
                    "job %s: outcome rejected (%s)",
                    job_id,
                    "lock superseded" if code == -2 else "job gone",
                    extra={"event": "stale_outcome", "queue": self.queue.name, "job_id": job_id},
                )

    def _start_claimed(self, claimed: list[list[Any]]) -> None:
        loop_create = asyncio.get_running_loop().create_task
        running = self._running
        tokens = self._tokens
        debug = log.isEnabledFor(_DEBUG)
        for job_id, token, fence, name, raw_data, raw_opts, made, created in claimed:
            tokens[job_id] = token
            try:
                if not isinstance(name, str) or not name:
                    raise ValueError("the job has no name")
                data = loads(raw_data)
                run_opts = RunOptions.from_raw(raw_opts)
                bad: PayloadError | None = None
            except (PayloadError, UnicodeEncodeError, KeyError, TypeError, ValueError) as exc:
                data, run_opts, bad = None, RunOptions.from_wire({}), PayloadError(str(exc))
            ctx = JobContext(self, job_id, name, data, made + 1, fence, token, created, run_opts)
            run = _Running(ctx)
            running[job_id] = run
            if bad is not None:
                self._record(
                    run, Ending("f", attempt_entry(ctx, f"cannot decode job: {bad}", ""), error=str(bad))
                )
                continue
            if debug:
                log.debug(
                    "job %s active",
                    job_id,
                    extra={"event": "active", "queue": self.queue.name, "job_id": job_id},
                )
            run.task = loop_create(self._execute(run))

    async def _execute(self, run: _Running) -> None:
        ctx = run.ctx
        try:
            timeout = ctx.run.timeout
            if timeout is None:
                result = await call_handler(
                    self.handler, self._is_async, ctx, self._executor, self._executor_kind == "process"
                )
            else:
                async with asyncio.timeout(timeout):
                    result = await call_handler(
                        self.handler, self._is_async, ctx, self._executor, self._executor_kind == "process"
                    )
            try:
                ending = Ending("c", dumps(result))
            except PayloadError as exc:
                ending = failure(
                    ctx, PayloadError(f"handler result is not JSON: {exc}"), self._strategies, self._retryable
                )
        except asyncio.CancelledError:
            if run.hand_back:
                ending = Ending("x")
            elif run.cancel_reason is not None:
                reason = run.cancel_reason
                ending = Ending("f", attempt_entry(ctx, reason, ""), error=reason)
            else:
                ending = Ending("")  # lease lost: another worker owns the job now
        except TimeoutError as timeout_error:
            error: BaseException = timeout_error
            if ctx.run.timeout is not None:
                error = TimeoutError(f"job timed out after {ctx.run.timeout:g}s")
            ending = failure(ctx, error, self._strategies, self._retryable)
        except Exception as exc:
            ending = failure(ctx, exc, self._strategies, self._retryable)
        self._record(run, ending)

    def _record(self, run: _Running, ending: Ending) -> None:
        ctx = run.ctx
        self._running.pop(ctx.id, None)
        self._dry = False  # a slot is free: the outcome's call claims for it
        kind = ending.kind
        if kind == "":
            self._tokens.pop(ctx.id, None)
            self._wake.set()  # type: ignore[union-attr]
            return
        if kind == "c":
            keep = ctx.run.keep_completed
            self.processed += 1
        else:
            keep = ctx.run.keep_failed
            if kind in ("r", "f"):
                self.failed += 1
            if kind == "f" and keep[0] != 0 and self._on_dead_letter is not None:
                self._letters[ctx.id] = DeadLetteredJob(
                    self.queue.name, ctx.id, ctx.name, ending.error, ctx.attempt
                )
            self._log_ending(ctx, ending)
        self._outcomes.append([ctx.id, ctx.token, kind, ending.value, ending.delay_ms, keep[0], keep[1]])
        self._wake.set()  # type: ignore[union-attr]

    def _log_ending(self, ctx: JobContext, ending: Ending) -> None:
        extra = {"queue": self.queue.name, "job_id": ctx.id, "attempt": ctx.attempt}
        if ending.kind == "r":
            log.info(
                "job %s failed (%s); retrying in %.3fs",
                ctx.id,
                ending.error,
                ending.delay_ms / 1000,
                extra={"event": "retrying", **extra},
            )
        elif ending.kind == "f":
            log.warning("job %s failed: %s", ctx.id, ending.error, extra={"event": "failed", **extra})
        elif ending.kind == "l":
            log.info(
                "job %s: %s; queue held for %.3fs",
                ctx.id,
                ending.error,
                ending.delay_ms / 1000,
                extra={"event": "rate_limited", **extra},
            )
        else:
            log.info("job %s handed back", ctx.id, extra={"event": "handed_back", **extra})

    # -- waiting for work -------------------------------------------------

    def _hold(self, delay: float) -> None:
        self._held = True
        if self._hold_timer:
            self._hold_timer.cancel()
        self._hold_timer = asyncio.get_running_loop().call_later(delay, self._release_hold)

    def _release_hold(self) -> None:
        self._held = False
        self._hold_timer = None
        if self._wake:
            self._wake.set()

    def _arm_timer(self, delay: float) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake_up)

    def _wake_up(self) -> None:
        """There may be work (the marker was set, or a delayed job is due)."""
        self._dry = False
        assert self._wake is not None
        self._wake.set()

    async def _marker_loop(self) -> None:
        """Blocks on the queue's marker while the worker is idle, on a
        connection of its own (closed to stop it: redis-py lets a blocking
        command run to its timeout even when the task is cancelled)."""
        assert self._idle is not None
        idle = self._idle
        marker = self.queue.keys.marker
        failures = 0
        conn: Any = None
        release: Any = None
        try:
            while not self._stopping:
                await idle.wait()
                idle.clear()
                if self._stopping:
                    break
                try:
                    if conn is None:
                        conn, release = await dedicated_connection(self.queue.redis, marker)
                    self._block_conn = conn
                    await conn.send_command("BZPOPMIN", marker, self.block_timeout)
                    await conn.read_response()
                    failures = 0
                except Exception:
                    if conn is not None:
                        # on a cluster, the slot may be served elsewhere now
                        await conn.disconnect()
                        await release(conn)
                        conn = None
                    if self._stopping:
                        break
                    failures += 1
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                self._wake_up()  # the marker, or the block timed out: look again
        finally:
            self._block_conn = None
            if conn is not None:
                await conn.disconnect()
                await release(conn)

    async def _stop_marker(self, task: asyncio.Task[None]) -> None:
        assert self._idle is not None
        self._idle.set()
        conn = self._block_conn
        if conn is not None:
            await conn.disconnect()
        await task

    # -- leases, progress ---------------------------------------------------

    def _notify_dead_letter(self, letter: DeadLetteredJob) -> None:
        """Runs the on_dead_letter hook in the background (its errors are logged)."""
        hook = self._on_dead_letter
        if hook is None:
            return

        async def call() -> None:
            try:
                await hook(letter)
            except Exception:
                log.exception("on_dead_letter hook failed for job %s", letter.job_id)

        self._background(call())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs ``work`` beside the fetch loop; the worker waits for it on the way out."""
        task = asyncio.get_running_loop().create_task(work)
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    async def _relay_finished(self, ids: list[Any]) -> None:
        """Relays one reply's finished children. A parent this wakes may be
        waiting now, so a burst run that looked drained asks once more."""
        try:
            await self._relay(ids)
        finally:
            self._relaying -= 1
            self._drained = False
            if self._wake:
                self._wake.set()

    async def _relay(self, ids: list[Any] | None) -> None:
        """Tells the flow parents of children that finished (None: the sweep
        of entries a crashed worker left behind)."""
        try:
            await relay(
                self.queue.redis,
                self.queue.keys,
                None if ids is None else [text(i) for i in ids],
                self.queue.clock,
            )
        except Exception as exc:  # the sweep tries again
            log.warning("worker %s: relaying to flow parents failed: %s", self.id, exc)

    async def _sweep_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.flow_sweep_interval)
            if not self._stopping:
                await self._relay(None)

    def _beat_info(self) -> str:
        """What this worker tells readers (called from the lease thread)."""
        info = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "concurrency": self.concurrency,
            "started": self._started_ms,
            "jobs": list(self._tokens),
            "processed": self.processed,
            "failed": self.failed,
        }
        return dumps(info).decode()

    def _stalled_out(self, ids: list[str], error: str) -> None:
        """Called from the lease thread for jobs it failed for stalling too often."""
        loop = self._loop_ref
        if self._on_dead_letter is not None and loop is not None and not loop.is_closed():
            for job_id in ids:
                letter = DeadLetteredJob(self.queue.name, job_id, None, error, 0)
                loop.call_soon_threadsafe(self._notify_dead_letter, letter)

    def _lease_report(self, lost: list[str], cancels: dict[str, str]) -> None:
        """Called from the lease thread: hop onto the event loop."""
        loop = self._loop_ref
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._apply_lease_report, lost, cancels)

    def _apply_lease_report(self, lost: list[str], cancels: dict[str, str]) -> None:
        for job_id in lost:
            run = self._running.get(job_id)
            if run and run.task:
                log.warning(
                    "job %s: lease lost to another worker; cancelling the handler",
                    job_id,
                    extra={"event": "lease_lost", "queue": self.queue.name, "job_id": job_id},
                )
                run.task.cancel()
        for job_id, reason in cancels.items():
            run = self._running.get(job_id)
            if run and run.task and run.cancel_reason is None:
                run.cancel_reason = reason
                run.task.cancel()

    async def _report(self, ctx: JobContext, progress: Any, lines: tuple[str, ...]) -> None:
        k = self.queue.keys
        keep = ctx.run.keep_logs
        code = await script("update_progress").run(
            self.queue.redis,
            [k.job(ctx.id), k.logs(ctx.id), k.events],
            [
                ctx.token,
                dumps(progress) if progress is not None else "",
                keep,
                ctx.id,
                clock_arg(self.queue.clock),
                *lines,
            ],
        )
        if code == -2:
            raise StaleLease(f"job {ctx.id}: lock held by another worker")
        if code == -1:
            raise JobNotFound(ctx.id)
        if progress is not None and self._progress_hook is not None:
            await self._progress_hook(ctx, progress)


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM/SIGINT close the worker gracefully; a second signal hands
    running jobs back at once."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if worker._stopping:
            worker.hand_back_all()
        else:
            closing.add(loop.create_task(worker.close()))

    closing: set[asyncio.Task[None]] = set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
