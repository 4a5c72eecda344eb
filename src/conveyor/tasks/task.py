"""Typed tasks: an ``async def`` whose arguments are checked against its
type hints when it is enqueued, and again when a worker runs it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, Unpack, cast, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    PydanticSchemaGenerationError,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticSerializationError, to_jsonable_python

from conveyor.engine.dlq import RetryClassifier
from conveyor.engine.flows import Children, FlowJob
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
from conveyor.tasks.recording import RecordedJob, as_job_context, run_eagerly

if TYPE_CHECKING:
    from conveyor.tasks.app import Conveyor
    from conveyor.tasks.queue import TaskQueue

P = ParamSpec("P")
R = TypeVar("R")


class TaskContext:
    """What a task receives first: the running job and ways to report on it.

    ``progress`` stores the job's progress and publishes it on the app's
    progress bus (subject ``job:<queue>:<id>``); ``reporter`` reports under
    a subject of your own (an artist id, say) and mirrors it on the job.
    Both raise StaleLease when another worker has taken the job over.
    """

    __slots__ = ("app", "job")

    def __init__(self, app: Conveyor, job: JobContext) -> None:
        self.app = app
        self.job = job

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self.job.attempt

    @property
    def attempts(self) -> int:
        return self.job.attempts

    @property
    def fence(self) -> int:
        """Grows with every start of this job (a fencing number for side effects)."""
        return self.job.fence

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
        app: Conveyor | None = None,
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
        return RecordingContext(cast("Conveyor", app), recorded)

    def __repr__(self) -> str:
        return f"<TaskContext {self.queue}/{self.id} attempt={self.attempt}>"


class RecordingContext(TaskContext):
    """A TaskContext over a :class:`RecordedJob` (see ``for_testing``)."""

    __slots__ = ("recorded",)

    def __init__(self, app: Conveyor, recorded: RecordedJob) -> None:
        super().__init__(app, as_job_context(recorded))
        self.recorded = recorded

    def reporter(self, subject: str) -> ProgressReporter:
        if self.app is None:
            raise RuntimeError("TaskContext.for_testing(app) needs the app for a progress reporter")
        return super().reporter(subject)


def arguments_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the first (the
    context). Raises TypeError for a first parameter that cannot be the
    context, ``*args``/``**kwargs`` or a missing hint."""
    params = list(inspect.signature(fn).parameters.values())
    hints = get_type_hints(fn)
    _check_context(fn, params, hints)
    fields: dict[str, Any] = {}
    for param in params[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InvalidTask(
                f"task {fn.__qualname__}: *args and **kwargs cannot be checked; name each argument"
            )
        if param.name not in hints:
            raise InvalidTask(f"task {fn.__qualname__}: argument {param.name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False, allow_inf_nan=False)
    return create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def _check_context(fn: Callable[..., Any], params: list[inspect.Parameter], hints: dict[str, Any]) -> None:
    """The first parameter receives the TaskContext: it must be
    positional, without a default, and typed TaskContext if typed at all
    (``async def f(n: int)`` forgot the context: its jobs could never run)."""
    need = (
        f"task {fn.__qualname__} must take a TaskContext as its first parameter "
        f"(async def {fn.__name__}(ctx: TaskContext, ...))"
    )
    if not params:
        raise InvalidTask(need)
    first = params[0]
    if (
        first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
        or first.default is not first.empty
    ):
        raise InvalidTask(f"{need}; {first.name!r} cannot be it")
    hint = hints.get(first.name)
    if (
        hint is not None
        and hint is not Any
        and not (isinstance(hint, type) and issubclass(hint, TaskContext))
    ):
        raise InvalidTask(
            f"{need}; its first parameter {first.name!r} is typed {getattr(hint, '__name__', hint)}"
        )


def result_adapter(fn: Callable[..., Any]) -> TypeAdapter[Any]:
    """Reads a stored (JSON) result back as ``fn``'s declared return type.
    Raises TypeError for a return type that JSON cannot carry."""
    returns = get_type_hints(fn).get("return", Any)
    try:
        return TypeAdapter(returns)
    except PydanticSchemaGenerationError:
        raise InvalidTask(
            f"task {fn.__qualname__}: its return type {getattr(returns, '__name__', returns)} "
            "cannot be stored as JSON (return a pydantic model, a dataclass or JSON values)"
        ) from None


def _retryable(classify: RetryClassifier, exc: BaseException) -> bool:
    """What ``classify`` says; a classifier that raises counts as retryable."""
    try:
        return bool(classify(exc))
    except Exception:
        return True


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
    )


class Task(Generic[P, R]):
    """A registered task. ``await task.enqueue(...)`` takes the function's
    own arguments (without the context), checks them against its type hints
    and adds a job, a ``Job[R]`` whose ``wait_until_finished()`` returns the
    function's declared return type; ``task.with_options(...)`` sets job
    options for one add. Calling the task runs the function directly."""

    def __init__(
        self,
        queue: TaskQueue,
        fn: Callable[Concatenate[TaskContext, P], Awaitable[R]],
        name: str,
        options: JobOptionsDict,
        *,
        retryable: RetryClassifier | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidTask(
                f"task {fn.__qualname__} must be an async def (run blocking code with asyncio.to_thread)"
            )
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
        self.model = arguments_model(fn)
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
            raise InvalidJobOptions(f"{self.name}: {_describe(exc)}") from None
        try:
            return checked.model_dump(mode="json")
        except PydanticSerializationError as exc:
            raise PayloadError(f"{self.name}: arguments are not JSON: {exc}") from None

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Adds a job that runs this task with these arguments."""
        return await self._add(self.options, self.payload(*args, **kwargs))

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
            raise ResultMismatch(job_id, _describe(exc), raw) from None

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
        if self.middleware:
            options = cast(
                JobOptionsDict, stamp_headers(self.middleware, self.queue.name, self.name, dict(options))
            )
        if self.queue.app.eager:
            return self._typed(await run_eagerly(self, options, data))
        return self._typed(await self.queue.queue.add(self.name, data, **options))

    async def run(self, ctx: TaskContext, data: Any) -> Any:
        """Runs the task for a job's data: checks it (Discard when it does
        not fit: a retry would not help) and returns a JSON result."""
        if not isinstance(data, Mapping):
            raise Discard(f"{self.name}: job data must be an object of arguments, not {type(data).__name__}")
        try:
            checked = self.model.model_validate(data)
        except ValidationError as exc:
            raise Discard(f"{self.name}: bad arguments: {_describe(exc)}") from None
        kwargs = {field: getattr(checked, field) for field in type(checked).model_fields}
        try:
            result = await cast(Callable[..., Awaitable[Any]], self.fn)(ctx, **kwargs)
        except Exception as exc:
            if (
                self.retryable is not None
                and not isinstance(exc, HandlerSignal)
                and not _retryable(self.retryable, exc)
            ):
                raise Discard(f"{type(exc).__name__}: {exc}") from exc
            raise
        try:
            return to_jsonable_python(result)
        except PydanticSerializationError as exc:
            raise PayloadError(f"{self.name} returned a value that is not JSON: {exc}") from None

    async def __call__(self, ctx: TaskContext, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.fn(ctx, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.queue.name}/{self.name}>"


class BoundTask(Generic[P, R]):
    """A task with job options for its next adds."""

    def __init__(self, task: Task[P, R], options: JobOptionsDict) -> None:
        self.task = task
        self.options = options

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        return await self.task._add(self.options, self.task.payload(*args, **kwargs))
