"""The high-level app object: queues, their typed tasks and schedules, in
one place that the CLI can load (``conveyor worker myapp:app``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, Unpack, cast, overload

from conveyor.engine.cluster import RedisClient
from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD
from conveyor.engine.connection import connect
from conveyor.engine.dlq import DeadLetterHook
from conveyor.engine.flows import FlowJob, FlowNode, FlowProducer
from conveyor.engine.job import JobContext
from conveyor.engine.keys import DEFAULT_PREFIX
from conveyor.engine.limits import RateLimit, check_concurrency
from conveyor.engine.options import JobOptionsDict
from conveyor.engine.queue import Queue
from conveyor.engine.scheduler import Scheduler
from conveyor.engine.schedules import build_spec
from conveyor.engine.states import JobState
from conveyor.engine.worker import Worker
from conveyor.errors import ConveyorError, Discard, InvalidArgument, InvalidJobOptions
from conveyor.realtime.progress import ProgressBus
from conveyor.tasks.task import BoundTask, Task, TaskContext

P = ParamSpec("P")
R = TypeVar("R")
TaskFunction = Callable[Concatenate[TaskContext, P], Awaitable[R]]


class TaskDecorator(Protocol):
    def __call__(self, fn: TaskFunction[P, R], /) -> Task[P, R]: ...


#: Job options a schedule cannot carry: each tick's job gets its own id and time.
_NOT_FOR_SCHEDULES = ("job_id", "delay", "run_at")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How the workers of one queue run its jobs."""

    concurrency: int = 10
    lock_duration: float = 10.0
    max_stalled_count: int = 1
    shutdown_grace: float = 30.0
    on_dead_letter: DeadLetterHook | None = None


@dataclass(frozen=True, slots=True)
class _ScheduleEntry:
    """A declared schedule: its task, the job data, and the timing keywords
    of ``Queue.upsert_schedule`` (cron, every, tz, missed, limit, start_at,
    end_at) as checked at declaration."""

    task: Task[Any, Any]
    data: dict[str, Any]
    timing: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


class TaskQueue:
    """A queue of an app: its tasks, its limits and how its workers run."""

    def __init__(
        self,
        app: Conveyor,
        name: str,
        *,
        rate_limit: RateLimit | None,
        global_concurrency: int | None,
        worker: WorkerSettings,
    ) -> None:
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise InvalidJobOptions(f"rate_limit must be a RateLimit, not {rate_limit!r}")
        check_concurrency(global_concurrency)
        self.app = app
        self.name = name
        self.rate_limit = rate_limit
        self.global_concurrency = global_concurrency
        self.worker_settings = worker
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._queue: Queue | None = None

    @property
    def queue(self) -> Queue:
        """The engine's queue handle (for counts, jobs, admin actions)."""
        if self._queue is None:
            self._queue = Queue(self.name, self.app.redis, prefix=self.app.prefix)
        return self._queue

    @overload
    def task(self, fn: TaskFunction[P, R]) -> Task[P, R]: ...

    @overload
    def task(self, *, name: str | None = None, **options: Unpack[JobOptionsDict]) -> TaskDecorator: ...

    def task(
        self,
        fn: TaskFunction[Any, Any] | None = None,
        *,
        name: str | None = None,
        **options: Any,
    ) -> Task[Any, Any] | TaskDecorator:
        """Registers an ``async def`` taking a TaskContext and typed
        arguments as a task of this queue (the job name is ``name``, by
        default the function's name). Keywords are the job options of its
        jobs (``attempts``, ``backoff``, ``timeout``, ``priority``...)."""

        def register(function: TaskFunction[P, R]) -> Task[P, R]:
            task_name = name or function.__name__
            if task_name in self.tasks:
                raise InvalidArgument(f"queue {self.name!r} already has a task named {task_name!r}")
            created = Task(self, function, task_name, cast(JobOptionsDict, options))
            self.tasks[task_name] = created
            return created

        return register(fn) if fn is not None else register

    async def handle(self, job: JobContext) -> Any:
        """The handler of this queue's workers: runs the job's task."""
        task = self.tasks.get(job.name)
        if task is None:
            raise Discard(f"queue {self.name!r} has no task named {job.name!r}")
        return await task.run(TaskContext(self.app, job), job.data)

    async def apply(self) -> None:
        """Registers the queue and sets the limits declared here (limits
        not declared are left as an operator set them)."""
        await self.queue.register()
        if self.rate_limit is not None:
            await self.queue.set_rate_limit(self.rate_limit)
        if self.global_concurrency is not None:
            await self.queue.set_concurrency(self.global_concurrency)

    def worker(self, concurrency: int | None = None) -> Worker:
        s = self.worker_settings
        return Worker(
            self.queue,
            self.handle,
            concurrency=concurrency or s.concurrency,
            lock_duration=s.lock_duration,
            max_stalled_count=s.max_stalled_count,
            shutdown_grace=s.shutdown_grace,
            on_dead_letter=s.on_dead_letter,
            progress_hook=self.app.progress.bridge(),
        )

    def __repr__(self) -> str:
        return f"<TaskQueue {self.name} tasks={sorted(self.tasks)}>"


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
    ) -> None:
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

    def queue(
        self,
        name: str,
        *,
        concurrency: int = 10,
        rate_limit: RateLimit | None = None,
        global_concurrency: int | None = None,
        lock_duration: float = 10.0,
        max_stalled_count: int = 1,
        shutdown_grace: float = 30.0,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> TaskQueue:
        """Declares a queue. ``concurrency`` is each worker process's jobs at
        a time; ``rate_limit`` and ``global_concurrency`` hold for all
        workers together and are set in Redis when workers start."""
        if name in self.queues:
            raise InvalidArgument(f"queue {name!r} is declared twice")
        if concurrency < 1:
            raise InvalidArgument("concurrency must be >= 1")
        settings = WorkerSettings(
            concurrency, lock_duration, max_stalled_count, shutdown_grace, on_dead_letter
        )
        declared = TaskQueue(
            self, name, rate_limit=rate_limit, global_concurrency=global_concurrency, worker=settings
        )
        self.queues[name] = declared
        return declared

    async def add_flow(self, flow: FlowJob) -> FlowNode:
        """Adds a flow built from :meth:`Task.node` (a parent runs after its
        children). Adding it again with the same job ids changes nothing."""
        return await FlowProducer(self.redis, prefix=self.prefix).add(flow)

    def schedule(
        self,
        when: str | float | timedelta,
        task: Task[Any, Any] | BoundTask[Any, Any],
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
        await self.setup(q.name for q in selected)
        self._closing = False
        while True:
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

    async def _any_waiting(self, queues: list[TaskQueue]) -> bool:
        for declared in queues:
            if (await declared.queue.counts()).get(JobState.WAITING, 0):
                return True
        return False

    async def run_scheduler(self, queues: Iterable[str] | None = None, *, poll: float = 1.0) -> None:
        """Fires the schedules of the app's queues until :meth:`close`."""
        selected = self.select_queues(queues)
        await self.setup(q.name for q in selected)
        self._scheduler = Scheduler([q.queue for q in selected], poll=poll)
        try:
            await self._scheduler.run()
        finally:
            self._scheduler = None

    async def close(self, grace: float | None = None) -> None:
        """Stops running workers (letting jobs finish for ``grace`` seconds)
        and the scheduler."""
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

    def __repr__(self) -> str:
        return f"<Conveyor queues={sorted(self.queues)}>"
