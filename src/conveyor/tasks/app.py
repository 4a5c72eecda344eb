"""The high-level app object: queues, their typed tasks and schedules, in
one place that the CLI can load (``conveyor worker myapp:app``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.connection import connect
from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD
from conveyor.engine.dlq import DeadLetterHook, RetryClassifier
from conveyor.engine.execution import Executor
from conveyor.engine.flows import FlowJob, FlowNode, FlowProducer
from conveyor.engine.keys import DEFAULT_PREFIX
from conveyor.engine.limits import RateLimit
from conveyor.engine.middleware import Middleware, check_middleware
from conveyor.engine.scheduler import Scheduler
from conveyor.engine.schedules import build_spec
from conveyor.engine.states import JobState
from conveyor.engine.worker import Worker
from conveyor.engine.worker_options import WorkerOptions
from conveyor.errors import ConveyorError, InvalidArgument
from conveyor.realtime.progress import ProgressBus
from conveyor.tasks.queue import TaskQueue
from conveyor.tasks.task import BaseTask, BoundTask

#: Job options a schedule cannot carry: each tick's job gets its own id and time.
_NOT_FOR_SCHEDULES = ("job_id", "delay", "run_at")


@dataclass(frozen=True, slots=True)
class _ScheduleEntry:
    """A declared schedule: its task, the job data, and the timing keywords
    of ``Queue.upsert_schedule`` (cron, every, tz, missed, limit, start_at,
    end_at) as checked at declaration."""

    task: BaseTask[Any, Any]
    data: dict[str, Any]
    timing: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


class Conveyor:
    """An app: declare queues and tasks at import time, then run workers
    (``conveyor worker module:app`` or :meth:`run_worker`) and enqueue from
    anywhere with ``await task.enqueue(...)``.

    ``redis`` is a client, a URL, or None for the environment's settings
    (``REDIS_URL``, ``REDIS_HOST``...). No I/O happens until the first
    command; :meth:`aclose` closes a client the app created itself.
    """

    def __init__(
        self,
        redis: RedisClient | str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        progress_namespace: str = "progress",
        middleware: Sequence[Middleware] = (),
        eager: bool = False,
    ) -> None:
        #: Runs around every job of the app's queues (see Middleware).
        self.middleware = check_middleware(middleware)
        #: Tests only: ``enqueue`` runs the task inline and returns the
        #: finished job, without Redis (see conveyor.tasks.recording).
        self.eager = eager
        self._client = None if redis is None or isinstance(redis, str) else redis
        self._url = redis if isinstance(redis, str) else None
        self._owns_client = self._client is None
        self.prefix = prefix
        self.progress_namespace = progress_namespace
        self.queues: dict[str, TaskQueue] = {}
        self.schedules: dict[str, _ScheduleEntry] = {}
        self._progress: ProgressBus | None = None
        self._workers: list[Worker] = []
        self._scheduler: Scheduler | None = None
        #: Runs (run_worker, run_scheduler) in progress, and a close asked of them.
        self._runs = 0
        self._closing = False

    @property
    def redis(self) -> RedisClient:
        if self._client is None:
            self._client = connect(self._url)
        return self._client

    @property
    def progress(self) -> ProgressBus:
        """The progress bus that task progress is published on."""
        if self._progress is None:
            self._progress = ProgressBus(self.redis, namespace=self.progress_namespace)
        return self._progress

    def use(self, *middleware: Middleware) -> None:
        """Adds middleware to the app and to every queue declared so far
        (after their own), for the adds and workers that come next."""
        added = check_middleware(middleware)
        self.middleware += added
        for declared in self.queues.values():
            declared.use(added)

    def queue(
        self,
        name: str,
        *,
        concurrency: int = 10,
        rate_limit: RateLimit | None = None,
        global_concurrency: int | None = None,
        lock_duration: float = 10.0,
        stalled_interval: float | None = None,
        max_stalled_count: int = 1,
        shutdown_grace: float = 30.0,
        on_dead_letter: DeadLetterHook | None = None,
        retryable: RetryClassifier | None = None,
        middleware: Sequence[Middleware] = (),
        executor: Executor = "thread",
        processes: int | None = None,
    ) -> TaskQueue:
        """Declares a queue. ``concurrency`` is each worker process's jobs at
        a time; ``rate_limit`` and ``global_concurrency`` hold for all
        workers together and are set in Redis when workers start. A job
        whose worker died runs again ``lock_duration`` seconds later, found
        by a check every ``stalled_interval`` (default: half that).
        ``retryable(exc)`` returning False makes a failure final;
        ``middleware`` runs after the app's own around this queue's jobs.
        ``executor`` says where its plain (``def``) tasks run: on threads
        or in a pool of ``processes`` (default: one per core)."""
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"a queue needs a non-empty name, not {name!r}")
        if name in self.queues:
            raise InvalidArgument(f"queue {name!r} is declared twice")
        settings = WorkerOptions(
            concurrency=concurrency,
            lock_duration=lock_duration,
            stalled_interval=stalled_interval,
            max_stalled_count=max_stalled_count,
            shutdown_grace=shutdown_grace,
            executor=executor,
            processes=processes,
            retryable=retryable,
            on_dead_letter=on_dead_letter,
        )
        declared = TaskQueue(
            self,
            name,
            rate_limit=rate_limit,
            global_concurrency=global_concurrency,
            worker=settings,
            middleware=self.middleware + check_middleware(middleware),
        )
        self.queues[name] = declared
        return declared

    async def add_flow(self, flow: FlowJob) -> FlowNode:
        """Adds a flow built from :meth:`Task.node` (a parent runs after its
        children). Adding it again with the same job ids changes nothing."""
        return await FlowProducer(self.redis, prefix=self.prefix, middleware=self.middleware).add(flow)

    def schedule(
        self,
        when: str | float | timedelta,
        task: BaseTask[Any, Any] | BoundTask[Any, Any],
        *,
        key: str,
        kwargs: dict[str, Any] | None = None,
        tz: str = "UTC",
        missed: str = "once",
        limit: int | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        """Runs ``task`` with ``kwargs`` on a cron pattern (a string: five
        fields or ``@hourly``-style, in ``tz``) or every ``when`` seconds.
        Written to Redis when a worker or scheduler of the app starts.
        Raises InvalidSchedule or InvalidJobOptions here, at declaration."""
        options = dict(task.options)
        target = task.task if isinstance(task, BoundTask) else task
        for option in _NOT_FOR_SCHEDULES:
            options.pop(option, None)
        if key in self.schedules:
            raise InvalidArgument(f"schedule {key!r} is declared twice")
        data = target.payload(**(kwargs or {}))
        timing: dict[str, Any] = {
            "cron": when if isinstance(when, str) else None,
            "every": None if isinstance(when, str) else when,
            "tz": tz,
            "missed": missed,
            "limit": limit,
            "start_at": start_at,
            "end_at": end_at,
        }
        build_spec(key, target.name, data, **timing, max_payload=DEFAULT_MAX_PAYLOAD, options=options)
        self.schedules[key] = _ScheduleEntry(target, data, timing, options)

    def select_queues(self, names: Iterable[str] | None) -> list[TaskQueue]:
        """The declared queues named (all for None or none named); raises
        ConveyorError naming the unknown ones."""
        if not names:
            return list(self.queues.values())
        chosen = list(dict.fromkeys(names))
        unknown = [n for n in chosen if n not in self.queues]
        if unknown:
            raise ConveyorError(f"the app declares no queue {', '.join(map(repr, unknown))}")
        return [self.queues[n] for n in chosen]

    async def setup(self, queues: Iterable[str] | None = None) -> None:
        """Writes what the app declares to Redis: queues, their limits and
        the schedules of their tasks. Idempotent; workers call it on start."""
        selected = self.select_queues(queues)
        for declared in selected:
            await declared.apply()
        names = {q.name for q in selected}
        for key, entry in self.schedules.items():
            if entry.task.queue.name in names:
                queue = entry.task.queue.queue
                await queue.upsert_schedule(key, entry.task.name, entry.data, **entry.timing, **entry.options)

    async def run_worker(
        self,
        queues: Iterable[str] | None = None,
        *,
        concurrency: int | None = None,
        scheduler: bool = False,
        burst: bool = False,
    ) -> None:
        """Works the app's queues (or those named) until :meth:`close`, or
        with ``burst`` until nothing is waiting or running. With
        ``scheduler``, also fires the app's schedules in this process.
        Installs no signal handlers (the CLI does)."""
        selected = self.select_queues(queues)
        if not selected:
            raise ConveyorError("the app declares no queues")
        async with self._running():
            await self.setup(q.name for q in selected)
            while not self._closing:  # closed while it started: nothing runs
                self._workers = [q.worker(concurrency) for q in selected]
                if scheduler and not burst:
                    self._scheduler = Scheduler([q.queue for q in selected])
                try:
                    async with asyncio.TaskGroup() as group:
                        for worker in self._workers:
                            group.create_task(worker.run(burst=burst))
                        if self._scheduler is not None:
                            group.create_task(self._scheduler.run())
                finally:
                    self._workers, self._scheduler = [], None
                # A burst run ends once every queue is drained together: a flow's
                # parent woken after its own queue's worker stopped runs too.
                if not burst or self._closing or not await self._any_waiting(selected):
                    return

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """Counts a run from before its first await, so that a close that
        arrives while it starts (a SIGTERM right after launch) stops it."""
        if not self._runs:
            self._closing = False
        self._runs += 1
        try:
            yield
        finally:
            self._runs -= 1

    async def _any_waiting(self, queues: list[TaskQueue]) -> bool:
        for declared in queues:
            if (await declared.queue.counts()).get(JobState.WAITING, 0):
                return True
        return False

    async def run_scheduler(self, queues: Iterable[str] | None = None, *, poll: float = 1.0) -> None:
        """Fires the schedules of the app's queues until :meth:`close`."""
        selected = self.select_queues(queues)
        async with self._running():
            await self.setup(q.name for q in selected)
            if self._closing:
                return
            self._scheduler = Scheduler([q.queue for q in selected], poll=poll)
            try:
                await self._scheduler.run()
            finally:
                self._scheduler = None

    async def close(self, grace: float | None = None) -> None:
        """Stops running workers (letting jobs finish for ``grace`` seconds)
        and the scheduler, or a run that is starting. No run going: nothing
        to do (the next one runs)."""
        if self._runs:
            self._closing = True
        if self._scheduler is not None:
            self._scheduler.close()
        await asyncio.gather(*(w.close(grace) for w in self._workers))

    def hand_back_all(self) -> None:
        """Gives every running job back to waiting at once (a second Ctrl-C)."""
        for worker in self._workers:
            worker.hand_back_all()

    async def aclose(self) -> None:
        """Closes the Redis client if the app created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
            self._progress = None
            for declared in self.queues.values():
                declared._queue = None

    async def use_redis(self, redis: RedisClient | str | None) -> None:
        """Points the app at another Redis (a client, a URL, or None for the
        environment's settings), closing a client it created itself: tests
        give it a private server this way. Not while its workers run."""
        if self._runs:
            raise ConveyorError("the app's workers are running: close them before changing its Redis")
        await self.aclose()
        self._client = None if redis is None or isinstance(redis, str) else redis
        self._url = redis if isinstance(redis, str) else None
        self._owns_client = self._client is None
        self._progress = None
        for declared in self.queues.values():
            declared._queue = None

    def __repr__(self) -> str:
        return f"<Conveyor queues={sorted(self.queues)}>"
