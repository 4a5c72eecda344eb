"""Typed tasks: an ``async def`` whose arguments are checked against its
type hints when it is enqueued, and again when a worker runs it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import (
    Any,
    ClassVar,
    Concatenate,
    Generic,
    ParamSpec,
    TypeVar,
    Unpack,
    cast,
)

from pydantic import (
    ValidationError,
)
from pydantic_core import PydanticSerializationError, to_jsonable_python

from conveyor.engine.children import Children
from conveyor.engine.dlq import RetryClassifier
from conveyor.engine.flows import FlowJob
from conveyor.engine.job import Job, JobContext
from conveyor.engine.middleware import Middleware, check_middleware, stamp_headers
from conveyor.engine.options import JobOptions, JobOptionsDict
from conveyor.errors import (
    Discard,
    HandlerSignal,
    InvalidArgument,
    InvalidJobOptions,
    InvalidTask,
    PayloadError,
    ResultMismatch,
)
from conveyor.realtime.progress import ProgressReporter
from conveyor.tasks.facts import JobFacts
from conveyor.tasks.host import TaskApp, TaskHome
from conveyor.tasks.recording import RecordedJob, as_job_context, run_eagerly
from conveyor.tasks.signature import arguments_model, describe, result_adapter

P = ParamSpec("P")
R = TypeVar("R")
#: One job of :meth:`BaseTask.enqueue_many`: the task's keyword arguments,
#: or ``(kwargs, options)``, the options as ``with_options`` takes them
#: (checked when added: an unknown one raises InvalidJobOptions).
Call = Mapping[str, Any] | tuple[Mapping[str, Any], Mapping[str, Any]]


class TaskContext(JobFacts):
    """What a task receives first: the running job and ways to report on it.

    ``progress`` stores the job's progress and publishes it on the app's
    progress bus (subject ``job:<queue>:<id>``); ``reporter`` reports under
    a subject of your own (an artist id, say) and mirrors it on the job.
    Both raise StaleLease when another worker has taken the job over.
    """

    __slots__ = ("app",)

    job: JobContext

    def __init__(self, app: TaskApp, job: JobContext) -> None:
        self.app = app
        self.job = job

    async def progress(self, stage: str, percent: float, message: str = "", **extra: Any) -> None:
        """Reports the job's stage and percent (0 to 100)."""
        await self.job.update_progress({"stage": stage, "percent": percent, "message": message, **extra})

    def reporter(self, subject: str) -> ProgressReporter:
        """A progress reporter for ``subject`` that also updates this job."""
        return self.app.progress.reporter(subject, self.job)

    async def log(self, *lines: str) -> None:
        await self.job.log(*lines)

    async def children(self) -> Children:
        """For a flow's parent: its children's results, keyed by job id."""
        return await self.job.children()

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
    ) -> RecordingContext:
        """A context for calling a task directly in a unit test, without
        Redis: ``ctx.recorded.progress`` and ``ctx.recorded.logs`` keep what
        the task reported. (``reporter`` needs ``app``.)"""
        recorded = RecordedJob(
            job_id=job_id,
            queue=queue,
            attempt=attempt,
            attempts=attempts,
            headers=headers,
            children=children,
        )
        return RecordingContext(cast("TaskApp", app), recorded)

    def __repr__(self) -> str:
        return f"<TaskContext {self.queue}/{self.id} attempt={self.attempt}>"


class RecordingContext(TaskContext):
    """A TaskContext over a :class:`RecordedJob` (see ``for_testing``)."""

    __slots__ = ("recorded",)

    def __init__(self, app: TaskApp, recorded: RecordedJob) -> None:
        super().__init__(app, as_job_context(recorded))
        self.recorded = recorded

    def reporter(self, subject: str) -> ProgressReporter:
        if self.app is None:
            raise RuntimeError("TaskContext.for_testing(app) needs the app for a progress reporter")
        return super().reporter(subject)


def _retryable(classify: RetryClassifier, exc: BaseException) -> bool:
    """What ``classify`` says; a classifier that raises counts as retryable."""
    try:
        return bool(classify(exc))
    except Exception:
        return True


class BaseTask(Generic[P, R]):
    """A registered task. ``await task.enqueue(...)`` takes the function's
    own arguments (without the context), checks them against its type hints
    and adds a job, a ``Job[R]`` whose ``wait_until_finished()`` returns the
    function's declared return type; ``task.with_options(...)`` sets job
    options for one add. Calling the task runs the function directly.
    (:class:`Task` is an ``async def``'s, :class:`SyncTask` a plain ``def``'s.)"""

    #: The class of the context the function takes first.
    context: ClassVar[type[Any]] = object

    def __init__(
        self,
        queue: TaskHome,
        fn: Callable[..., Any],
        name: str,
        options: JobOptionsDict,
        *,
        retryable: RetryClassifier | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        JobOptions.build(dict(options))  # a bad option fails here, at import, not at the first add
        self.queue = queue
        self.fn = fn
        self.name = name
        self.options = options
        if retryable is not None and not callable(retryable):
            raise InvalidArgument(f"retryable must be callable, not {retryable!r}")
        #: False for an exception no retry of this task can fix: its job fails at once.
        self.retryable = retryable
        #: Runs inside the queue's middleware, for this task's jobs only.
        self.middleware = check_middleware(middleware)
        self.model = arguments_model(fn, self.context)
        self.returns = result_adapter(fn)
        self._signature = inspect.signature(fn)

    def payload(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The job data for these arguments, as JSON values. Raises
        InvalidJobOptions naming each bad or missing argument."""
        try:
            bound = self._signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise InvalidJobOptions(f"{self.name}: {exc}") from None
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(self._signature.parameters)))
        try:
            checked = self.model.model_validate(arguments)
        except ValidationError as exc:
            raise InvalidJobOptions(f"{self.name}: {describe(exc)}") from None
        try:
            return checked.model_dump(mode="json")
        except PydanticSerializationError as exc:
            raise PayloadError(f"{self.name}: arguments are not JSON: {exc}") from None

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Adds a job that runs this task with these arguments."""
        return await self._add(self.options, self.payload(*args, **kwargs))

    async def enqueue_many(self, calls: Iterable[Call]) -> list[Job[R]]:
        """Adds one job per call, in one round trip per thousand (each
        thousand atomic). A call is the task's keyword arguments, or a
        ``(kwargs, options)`` pair whose options (``job_id``...) apply over
        the task's own. Every call is checked before any job is written."""
        return await self._add_many(self.options, calls)

    async def get_job(self, job_id: str) -> Job[R] | None:
        """This task's job with this id (its result read back as the
        declared return type), or None. Raises InvalidArgument for a job of
        another task."""
        job = await self.queue.queue.get_job(job_id)
        if job is None:
            return None
        if job.name != self.name:
            raise InvalidArgument(
                f"job {job_id} of queue {self.queue.name!r} is a {job.name!r} job, not {self.name!r}"
            )
        return self._typed(job)

    def decode_result(self, job_id: str, raw: Any) -> R:
        """A stored result as the declared return type; ResultMismatch when
        it does not fit."""
        try:
            return cast(R, self.returns.validate_python(raw))
        except ValidationError as exc:
            raise ResultMismatch(job_id, describe(exc), raw) from None

    def _typed(self, job: Job[Any]) -> Job[R]:
        job.decoder = self.decode_result
        return cast("Job[R]", job)

    def with_options(self, **options: Unpack[JobOptionsDict]) -> BoundTask[P, R]:
        """This task with job options (``job_id``, ``delay``, ``priority``...)
        for the next adds, on top of the task's own."""
        return BoundTask(self, cast(JobOptionsDict, {**self.options, **options}))

    def node(
        self,
        kwargs: Mapping[str, Any] | None = None,
        *,
        children: Iterable[FlowJob] = (),
        fail_parent_on_failure: bool = False,
        ignore_dependency_on_failure: bool = False,
        **options: Unpack[JobOptionsDict],
    ) -> FlowJob:
        """A flow node running this task with ``kwargs`` (checked now, as
        ``enqueue`` checks them), for :meth:`Conveyor.add_flow`. The task's
        own job options apply, then ``options``."""
        return FlowJob(
            self.name,
            self.queue.name,
            self.payload(**(kwargs or {})),
            list(children),
            cast(JobOptionsDict, {**self.options, **options}),
            fail_parent_on_failure,
            ignore_dependency_on_failure,
        )

    async def _add(self, options: JobOptionsDict, data: dict[str, Any]) -> Job[R]:
        options = self._stamped(options)
        if self.queue.app.eager:
            return self._typed(await run_eagerly(self, options, data))
        return self._typed(await self.queue.queue.add(self.name, data, **options))

    async def _add_many(self, options: JobOptionsDict, calls: Iterable[Call]) -> list[Job[R]]:
        prepared: list[tuple[dict[str, Any], JobOptionsDict]] = []
        for call in calls:
            kwargs, extra = call if isinstance(call, tuple) else (call, {})
            if not isinstance(kwargs, Mapping) or not isinstance(extra, Mapping):
                raise InvalidJobOptions(f"{self.name}: a call is its keyword arguments, or (kwargs, options)")
            prepared.append(
                (self.payload(**kwargs), self._stamped(cast(JobOptionsDict, {**options, **extra})))
            )
        if self.queue.app.eager:
            return [self._typed(await run_eagerly(self, opts, data)) for data, opts in prepared]
        added = await self.queue.queue.add_bulk([(self.name, data, opts) for data, opts in prepared])
        return [self._typed(job) for job in added]

    def _stamped(self, options: JobOptionsDict) -> JobOptionsDict:
        """``options`` with the middleware's headers, if any."""
        if not self.middleware:
            return options
        return cast(JobOptionsDict, stamp_headers(self.middleware, self.queue.name, self.name, dict(options)))

    def arguments(self, data: Any) -> dict[str, Any]:
        """A job's data checked as this task's arguments (Discard when it
        does not fit: a retry would not help)."""
        if not isinstance(data, Mapping):
            raise Discard(f"{self.name}: job data must be an object of arguments, not {type(data).__name__}")
        try:
            checked = self.model.model_validate(data)
        except ValidationError as exc:
            raise Discard(f"{self.name}: bad arguments: {describe(exc)}") from None
        return {field: getattr(checked, field) for field in type(checked).model_fields}

    def final(self, exc: Exception) -> Exception:
        """What a failure becomes: Discard (no retry) when ``retryable``
        says no retry can fix it, else ``exc`` itself."""
        if (
            self.retryable is not None
            and not isinstance(exc, HandlerSignal)
            and not _retryable(self.retryable, exc)
        ):
            discard = Discard(f"{type(exc).__name__}: {exc}")
            discard.__cause__ = exc
            return discard
        return exc

    def jsonable(self, result: Any) -> Any:
        """The task's return value as JSON values, to be stored."""
        try:
            return to_jsonable_python(result)
        except PydanticSerializationError as exc:
            raise PayloadError(f"{self.name} returned a value that is not JSON: {exc}") from None

    async def run_recorded(self, recorded: RecordedJob, data: Any) -> Any:
        """Runs the task for ``data`` against a recorded job (eager mode)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.queue.name}/{self.name}>"


class Task(BaseTask[P, R]):
    """A task whose function is an ``async def``: it runs on the worker's
    event loop."""

    fn: Callable[Concatenate[TaskContext, P], Awaitable[R]]
    context = TaskContext

    def __init__(
        self,
        queue: TaskHome,
        fn: Callable[Concatenate[TaskContext, P], Awaitable[R]],
        name: str,
        options: JobOptionsDict,
        *,
        retryable: RetryClassifier | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidTask(f"task {fn.__qualname__} is not an async def (a plain def makes a SyncTask)")
        super().__init__(queue, fn, name, options, retryable=retryable, middleware=middleware)

    async def run(self, ctx: TaskContext, data: Any) -> Any:
        """Runs the task for a job's data and returns a JSON result."""
        kwargs = self.arguments(data)
        try:
            result = await cast(Callable[..., Awaitable[Any]], self.fn)(ctx, **kwargs)
        except Exception as exc:
            failure = self.final(exc)
            if failure is exc:
                raise
            raise failure from exc
        return self.jsonable(result)

    async def run_recorded(self, recorded: RecordedJob, data: Any) -> Any:
        return await self.run(TaskContext(self.queue.app, as_job_context(recorded)), data)

    async def __call__(self, ctx: TaskContext, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.fn(ctx, *args, **kwargs)


class BoundTask(Generic[P, R]):
    """A task with job options for its next adds."""

    def __init__(self, task: BaseTask[P, R], options: JobOptionsDict) -> None:
        self.task = task
        self.options = options

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        return await self.task._add(self.options, self.task.payload(*args, **kwargs))

    async def enqueue_many(self, calls: Iterable[Call]) -> list[Job[R]]:
        """As :meth:`BaseTask.enqueue_many`, with these options under each call's."""
        return await self.task._add_many(self.options, calls)
