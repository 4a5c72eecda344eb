"""Tasks written as a plain ``def``, for blocking or CPU-bound work: each
job runs on a thread (``executor="thread"``, the default) or in a pool
process (``executor="process"``), and the task receives a
:class:`SyncTaskContext` whose reports block until the worker has stored
them.

A plain task's jobs keep every rule of the worker's threads and pool
processes: a thread that outlives its job's timeout, cancel or the
worker's shutdown keeps the job held (its lease renewed) until it returns,
so no other worker starts the job meanwhile; a pool process past its
timeout is killed, and one that dies fails only its job. Work that must be
stoppable belongs in a process.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from conveyor.engine.dlq import RetryClassifier
from conveyor.engine.execution import Executor, Target
from conveyor.engine.job import JobContext
from conveyor.engine.middleware import Middleware
from conveyor.engine.options import JobOptionsDict
from conveyor.engine.procpool import ProcessJob
from conveyor.errors import InvalidArgument, InvalidTask
from conveyor.tasks.facts import JobFacts
from conveyor.tasks.host import TaskApp, TaskHome
from conveyor.tasks.recording import RecordedJob
from conveyor.tasks.task import BaseTask

if TYPE_CHECKING:
    from conveyor.engine.children import Children

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class BlockingJob(Protocol):
    """A running job as a plain task reports to it."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def fence(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def update_progress(self, progress: Any) -> None: ...
    def log(self, *lines: str) -> None: ...
    def children(self) -> Children: ...


class ThreadJob(JobFacts):
    """A job running on the worker's event loop, for a task on a thread:
    each report is made on the loop while the thread waits for it."""

    __slots__ = ("_loop",)

    job: JobContext

    def __init__(self, job: JobContext, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self._loop = loop

    def update_progress(self, progress: Any) -> None:
        self._wait(self.job.update_progress(progress))

    def log(self, *lines: str) -> None:
        self._wait(self.job.log(*lines))

    def children(self) -> Children:
        return self._wait(self.job.children())

    def _wait(self, report: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            report.close()
            raise RuntimeError("a SyncTaskContext blocks: call it from the task's thread, not the event loop")
        return asyncio.run_coroutine_threadsafe(report, self._loop).result()


class SyncTaskContext(JobFacts):
    """What a plain (``def``) task receives first: the running job and
    blocking ways to report on it. ``progress`` and ``log`` return once the
    worker has stored the report, and raise StaleLease when another worker
    has taken the job over."""

    __slots__ = ("app",)

    job: BlockingJob

    def __init__(self, app: TaskApp, job: BlockingJob) -> None:
        self.app = app
        self.job = job

    def progress(self, stage: str, percent: float, message: str = "", **extra: Any) -> None:
        """Reports the job's stage and percent (0 to 100)."""
        self.job.update_progress({"stage": stage, "percent": percent, "message": message, **extra})

    def log(self, *lines: str) -> None:
        self.job.log(*lines)

    def children(self) -> Children:
        """For a flow's parent: its children's results, keyed by job id."""
        return self.job.children()

    @classmethod
    def for_testing(
        cls,
        app: TaskApp | None = None,
        *,
        job_id: str = "test-job",
        queue: str = "test",
        attempt: int = 1,
        attempts: int = 1,
        headers: Mapping[str, str] | None = None,
        children: Children | None = None,
    ) -> SyncRecordingContext:
        """A context for calling a plain task directly in a unit test,
        without Redis: ``ctx.recorded.progress`` and ``ctx.recorded.logs``
        keep what the task reported."""
        recorded = RecordedJob(
            job_id=job_id, queue=queue, attempt=attempt, attempts=attempts, headers=headers, children=children
        )
        return SyncRecordingContext(app, recorded)

    def __repr__(self) -> str:
        return f"<SyncTaskContext {self.queue}/{self.id} attempt={self.attempt}>"


class SyncRecordingContext(SyncTaskContext):
    """A SyncTaskContext over a :class:`RecordedJob` (see ``for_testing``)."""

    __slots__ = ("recorded",)

    def __init__(self, app: TaskApp | None, recorded: RecordedJob) -> None:
        super().__init__(cast("TaskApp", app), recorded.blocking)
        self.recorded = recorded


class SyncTask(BaseTask[P, R]):
    """A task whose function is a plain ``def``: its jobs run on a thread
    (``executor="thread"``) or in a pool process (``"process"``; the
    function must then be declared at module level, where the process
    imports it)."""

    fn: Callable[Concatenate[SyncTaskContext, P], R]
    context = SyncTaskContext

    def __init__(
        self,
        queue: TaskHome,
        fn: Callable[Concatenate[SyncTaskContext, P], R],
        name: str,
        options: JobOptionsDict,
        *,
        executor: Executor = "thread",
        retryable: RetryClassifier | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        if inspect.iscoroutinefunction(fn) or not callable(fn):
            raise InvalidTask(f"task {getattr(fn, '__qualname__', fn)!r} is not a plain def")
        if executor not in ("thread", "process"):
            raise InvalidArgument(f"executor must be 'thread' or 'process', not {executor!r}")
        if executor == "process" and "<locals>" in fn.__qualname__:
            raise InvalidTask(
                f"task {fn.__qualname__} runs in a pool process, which imports it: declare it at module level"
            )
        super().__init__(queue, fn, name, options, retryable=retryable, middleware=middleware)
        self.executor: Executor = executor
        self._found = False

    def run_sync(self, ctx: SyncTaskContext, data: Any) -> Any:
        """Runs the task for a job's data (on a thread or in a pool
        process) and returns a JSON result."""
        kwargs = self.arguments(data)
        try:
            result = cast(Callable[..., Any], self.fn)(ctx, **kwargs)
        except Exception as exc:
            failure = self.final(exc)
            if failure is exc:
                raise
            raise failure from exc
        return self.jsonable(result)

    def target(self) -> Target:
        """How the worker runs this task's next job (called on its loop)."""
        if self.executor == "process":
            self._check_importable()
            return Target(self.fn, "process")
        return Target(functools.partial(self._on_thread, asyncio.get_running_loop()), "thread")

    def _on_thread(self, loop: asyncio.AbstractEventLoop, job: JobContext) -> Any:
        return self.run_sync(SyncTaskContext(self.queue.app, ThreadJob(job, loop)), job.data)

    def run_in_process(self, job: ProcessJob) -> Any:
        """A job of this task in a pool process (which found the task by
        its function's module and name)."""
        return self.run_sync(SyncTaskContext(self.queue.app, job), job.data)

    def _check_importable(self) -> None:
        """The pool process finds the task under its function's name in its
        module: the decorator must have put it there."""
        if self._found:
            return
        found: Any = importlib.import_module(self.fn.__module__)
        for part in self.fn.__qualname__.split("."):
            found = getattr(found, part, None)
        if found is not self:
            raise InvalidTask(
                f"task {self.name}: a pool process looks it up as "
                f"{self.fn.__module__}.{self.fn.__qualname__}, which is not this task; "
                "declare it with @queue.task(...) at module level"
            )
        self._found = True

    async def run_recorded(self, recorded: RecordedJob, data: Any) -> Any:
        context = SyncTaskContext(self.queue.app, recorded.blocking)
        return await asyncio.to_thread(self.run_sync, context, data)

    def __call__(self, ctx: SyncTaskContext, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(ctx, *args, **kwargs)
