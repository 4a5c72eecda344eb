"""A queue of an app: its tasks, its limits, and how its workers run
(the ``TaskQueue`` that ``Conveyor.queue`` declares)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, Unpack, cast, overload

from conveyor.engine.dlq import RetryClassifier
from conveyor.engine.execution import Executor, Target
from conveyor.engine.job import Job, JobContext
from conveyor.engine.limits import RateLimit, check_concurrency
from conveyor.engine.middleware import Middleware
from conveyor.engine.options import JobOptionsDict
from conveyor.engine.queue import Queue
from conveyor.engine.worker import Worker
from conveyor.engine.worker_options import WorkerOptions
from conveyor.errors import Discard, InvalidArgument, InvalidJobOptions, InvalidTask
from conveyor.tasks.blocking import SyncTask, SyncTaskContext
from conveyor.tasks.host import TaskApp
from conveyor.tasks.task import BaseTask, Task, TaskContext

P = ParamSpec("P")
R = TypeVar("R")
TaskFunction = Callable[Concatenate[TaskContext, P], Awaitable[R]]
SyncTaskFunction = Callable[Concatenate[SyncTaskContext, P], R]


class TaskDecorator(Protocol):
    @overload
    def __call__(self, fn: TaskFunction[P, R], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: SyncTaskFunction[P, R], /) -> SyncTask[P, R]: ...


class TaskQueue:
    """A queue of an app: its tasks, its limits and how its workers run."""

    def __init__(
        self,
        app: TaskApp,
        name: str,
        *,
        rate_limit: RateLimit | None,
        global_concurrency: int | None,
        worker: WorkerOptions,
        middleware: tuple[Middleware, ...] = (),
    ) -> None:
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise InvalidJobOptions(f"rate_limit must be a RateLimit, not {rate_limit!r}")
        check_concurrency(global_concurrency)
        self.app = app
        self.name = name
        self.rate_limit = rate_limit
        self.global_concurrency = global_concurrency
        self.worker_settings = worker
        #: The app's middleware, then the queue's own.
        self.middleware = middleware
        self.tasks: dict[str, BaseTask[Any, Any]] = {}
        self._queue: Queue | None = None

    @property
    def queue(self) -> Queue:
        """The engine's queue handle (for counts, jobs, admin actions)."""
        if self._queue is None:
            self._queue = Queue(self.name, self.app.redis, prefix=self.app.prefix, middleware=self.middleware)
        return self._queue

    @overload
    def task(self, fn: TaskFunction[P, R]) -> Task[P, R]: ...

    @overload
    def task(self, fn: SyncTaskFunction[P, R]) -> SyncTask[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        retryable: RetryClassifier | None = None,
        middleware: Sequence[Middleware] = (),
        executor: Executor | None = None,
        **options: Unpack[JobOptionsDict],
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        retryable: RetryClassifier | None = None,
        middleware: Sequence[Middleware] = (),
        executor: Executor | None = None,
        **options: Any,
    ) -> BaseTask[Any, Any] | TaskDecorator:
        """Registers a function taking a context and typed arguments as a
        task of this queue (the job name is ``name``, by default the
        function's name). An ``async def`` takes a TaskContext and runs on
        the worker's event loop; a plain ``def`` takes a SyncTaskContext
        and runs on a thread or, with ``executor="process"``, in a pool
        process (by default as the queue's ``executor`` says).
        ``retryable(exc)`` returning False fails the job at once;
        ``middleware`` runs inside the queue's, for this task's jobs. Other
        keywords are the job options of its jobs (``attempts``,
        ``backoff``, ``timeout``, ``priority``...)."""

        def register(function: Callable[..., Any]) -> BaseTask[Any, Any]:
            task_name = name or str(getattr(function, "__name__", ""))
            if task_name in self.tasks:
                raise InvalidArgument(f"queue {self.name!r} already has a task named {task_name!r}")
            created: BaseTask[Any, Any]
            job_options = cast(JobOptionsDict, options)
            if inspect.iscoroutinefunction(function):
                if executor is not None:
                    raise InvalidTask(
                        f"task {function.__qualname__} is an async def, which runs on the event loop: "
                        "executor is for plain def tasks"
                    )
                created = Task(
                    self, function, task_name, job_options, retryable=retryable, middleware=middleware
                )
            else:
                created = SyncTask(
                    self,
                    function,
                    task_name,
                    job_options,
                    executor=executor or self.worker_settings.executor,
                    retryable=retryable,
                    middleware=middleware,
                )
            self.tasks[task_name] = created
            return created

        return register(fn) if fn is not None else cast(TaskDecorator, register)

    async def add_named(self, name: str, data: Any = None, **options: Unpack[JobOptionsDict]) -> Job:
        """Adds a job of the task called ``name`` from untyped input (an API
        request, say): ``data`` is checked as the task's arguments, and
        ``options`` apply over the task's own job options. Raises
        InvalidJobOptions, writing nothing, for an unknown task or data
        that does not fit it (a job its worker could only fail)."""
        task = self.tasks.get(name)
        if task is None:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise InvalidJobOptions(f"queue {self.name!r} has no task named {name!r} (its tasks: {known})")
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidJobOptions(
                f"{name}: job data must be an object of arguments, not {type(data).__name__}"
            )
        return await task.with_options(**options).enqueue(**data)

    async def handle(self, job: JobContext) -> Any:
        """The handler of this queue's workers: runs the job's task."""
        task = self.tasks.get(job.name)
        if not isinstance(task, Task):  # a SyncTask's jobs are routed to its own target
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
        options = self.worker_settings
        return Worker.from_options(
            self.queue,
            self.handle,
            replace(options, concurrency=concurrency) if concurrency else options,
            progress_hook=self.app.progress.bridge(),
            task_middleware=self._task_middleware,
            route=self._route,
        )

    def _route(self, name: str) -> Target | None:
        """How a plain task's job runs (None: on the loop, by ``handle``)."""
        task = self.tasks.get(name)
        return task.target() if isinstance(task, SyncTask) else None

    def _task_middleware(self, name: str) -> tuple[Middleware, ...]:
        task = self.tasks.get(name)
        return task.middleware if task is not None else ()

    def use(self, middleware: tuple[Middleware, ...]) -> None:
        """Adds middleware after this queue's own (see Conveyor.use)."""
        self.middleware += middleware
        if self._queue is not None:
            self._queue.middleware = self.middleware

    def __repr__(self) -> str:
        return f"<TaskQueue {self.name} tasks={sorted(self.tasks)}>"
