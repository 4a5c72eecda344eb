"""Jobs as readers see them (:class:`Job`) and as handlers hold them
(:class:`JobContext`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol

from typing_extensions import TypeVar

from conveyor.engine.children import children_of
from conveyor.engine.clock import clock_arg
from conveyor.engine.codec import dumps_payload, loads_or_text
from conveyor.engine.codes import job_error
from conveyor.engine.commands import jobs as commands
from conveyor.engine.options import Priority, with_defaults
from conveyor.engine.states import JobState
from conveyor.errors import JobFailed, PayloadError, PayloadTooLarge

if TYPE_CHECKING:
    from conveyor.engine.children import Children
    from conveyor.engine.options import RunOptions
    from conveyor.engine.scope import QueueScope


#: What a job's handler returns; a job of a typed task is ``Job[Report]``.
R = TypeVar("R", default=Any)


def _ms_to_dt(raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)


def _parent(raw: bytes | None) -> tuple[str, str] | None:
    if raw is None:
        return None
    _head, _, rest = raw.decode(errors="replace").partition(":{")
    queue, _, job_id = rest.partition("}:job:")
    return queue, job_id


def _json_or_raw(raw: bytes | None) -> Any:
    return None if raw is None else loads_or_text(raw)


def _whole_data(h: dict[bytes, bytes]) -> bytes | None:
    """A job's data, put back together from its chunks (see
    lua/includes/job_data.lua)."""
    first = h.get(b"data")
    count = h.get(b"dn")
    if first is None or count is None:
        return first
    return first + b"".join(h.get(b"d%d" % i, b"") for i in range(2, int(count) + 1))


class JobWaiter(Protocol):
    """What a job read through a queue waits on (the queue it was read from)."""

    async def wait_until_finished(self, job_id: str, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109


@dataclass(slots=True)
class Job(Generic[R]):
    """A snapshot of one job as stored in Redis. ``result`` is the stored
    JSON value; a job of a typed task (``Job[R]``) reads it back as the
    task's declared return type with :meth:`wait_until_finished`."""

    id: str
    queue: str
    name: str
    data: Any
    state: JobState
    options: dict[str, Any]
    priority: int = 0
    attempts_made: int = 0
    attempts_started: int = 0
    stalled_count: int = 0
    progress: Any = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_at: datetime | None = None
    worker_id: str | None = None
    cancel_requested: str | None = None
    #: A flow child's parent: (queue, job id).
    parent: tuple[str, str] | None = None
    handle: JobWaiter | None = field(default=None, repr=False, compare=False)
    #: Reads the stored result back as the task's return type (a typed task's jobs).
    decoder: Callable[[str, Any], R] | None = field(default=None, repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        """The headers the job was added with."""
        raw = self.options.get("h")
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    async def wait_until_finished(self, timeout: float | None = None) -> R:  # noqa: ASYNC109 (the documented API)
        """Waits for this job to finish (returning at once if it has) and
        returns its result, as the task's declared return type for a typed
        task's job. Raises JobFailed when it failed for good, JobNotFound
        when it is gone, WaitTimeout (a TimeoutError) after ``timeout``
        seconds, ResultMismatch when the result does not fit the type."""
        if self.handle is not None:
            raw = await self.handle.wait_until_finished(self.id, timeout)
        elif self.state is JobState.COMPLETED:  # a finished job not read from Redis (eager mode)
            raw = self.result
        elif self.state is JobState.FAILED:
            raise JobFailed(self.id, self.error or "failed", self.traceback)
        else:
            raise RuntimeError("this Job was not read through a Queue")
        if self.decoder is None:
            return raw  # type: ignore[no-any-return]
        return self.decoder(self.id, raw)

    @classmethod
    def from_hash(
        cls, queue: str, job_id: str, h: dict[bytes, bytes], handle: JobWaiter | None = None
    ) -> Job:
        """Builds a snapshot from the job's hash; undecodable fields are kept as text."""
        g = h.get
        state_raw = (g(b"st") or b"waiting").decode()
        try:
            state = JobState(state_raw)
        except ValueError:
            state = JobState.WAITING
        opts = _json_or_raw(g(b"opts") or b"{}")
        hist = _json_or_raw(g(b"hist"))
        err = g(b"err")
        tb = g(b"tb")
        cx = g(b"cx")
        token = g(b"tk")  # "<attempts started>:<worker id>"
        return cls(
            id=job_id,
            queue=queue,
            name=(g(b"name") or b"").decode(errors="replace"),
            data=_json_or_raw(_whole_data(h)),
            state=state,
            options=with_defaults(opts) if isinstance(opts, dict) else {},
            priority=int(g(b"pr") or Priority.NORMAL),
            attempts_made=int(g(b"atm") or 0),
            attempts_started=int(g(b"ats") or 0),
            stalled_count=int(g(b"stc") or 0),
            progress=_json_or_raw(g(b"prog")),
            result=_json_or_raw(g(b"rv")),
            error=err.decode(errors="replace") if err else None,
            traceback=tb.decode(errors="replace") if tb else None,
            history=hist if isinstance(hist, list) else [],
            created_at=_ms_to_dt(g(b"ts")),
            started_at=_ms_to_dt(g(b"pon")),
            finished_at=_ms_to_dt(g(b"fon")),
            run_at=_ms_to_dt(g(b"due")),
            worker_id=token.decode(errors="replace").partition(":")[2] if token else None,
            cancel_requested=cx.decode(errors="replace") if cx else None,
            parent=_parent(g(b"par")),
            handle=handle,
        )


#: Called after each accepted ``update_progress`` (e.g. ``ProgressBus.bridge()``).
ProgressHook = Callable[["JobContext", Any], Awaitable[None]]


class Reporter(Protocol):
    """What a job's context uses of the worker running it."""

    @property
    def queue(self) -> QueueScope: ...

    @property
    def max_log_line(self) -> int: ...

    @property
    def max_result_size(self) -> int: ...

    @property
    def progress_hook(self) -> ProgressHook | None: ...


class JobContext:
    """What a handler receives: the job's data and identity, and ways to
    report progress and log lines while it holds the job's lock.

    ``update_progress`` and ``log`` raise StaleLease when another worker has
    taken the job over, so a handler that lost its lease stops early.
    """

    __slots__ = (
        "_worker",
        "attempt",
        "created_ms",
        "data",
        "fence",
        "id",
        "name",
        "run",
        "token",
    )

    def __init__(
        self,
        worker: Reporter,
        job_id: str,
        name: str,
        data: Any,
        attempt: int,
        fence: int,
        token: str,
        created_ms: int,
        run: RunOptions,
    ) -> None:
        self._worker = worker
        self.id = job_id
        self.name = name
        self.data = data
        #: 1 for the first attempt, 2 for the first retry, ...
        self.attempt = attempt
        #: Grows with every start of this job (a fencing number for side effects).
        self.fence = fence
        self.token = token
        self.created_ms = created_ms
        self.run = run

    @property
    def queue(self) -> str:
        return self._worker.queue.name

    @property
    def attempts(self) -> int:
        """The number of attempts this job may use in all."""
        return self.run.attempts

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers the job was added with (a trace context, say)."""
        return self.run.headers

    async def update_progress(self, progress: Any) -> None:
        """Stores the job's progress (any JSON value, e.g. a percentage)."""
        await self._report(progress, ())

    async def log(self, *lines: str) -> None:
        """Appends lines to the job's log (kept with the job, capped)."""
        await self._report(None, lines)

    async def _report(self, progress: Any, lines: tuple[str, ...]) -> None:
        worker = self._worker
        queue = worker.queue
        for line in lines:
            size = len(line.encode(errors="surrogatepass")) if isinstance(line, str) else -1
            if size < 0:
                raise PayloadError(f"a log line must be a str, not {type(line).__name__}")
            if worker.max_log_line and size > worker.max_log_line:
                raise PayloadTooLarge(size, worker.max_log_line, "a log line")
        raw_progress = (
            b"" if progress is None else dumps_payload(progress, worker.max_result_size, "progress")
        )
        code = await commands.update_progress(
            queue.redis,
            queue.keys,
            self.id,
            token=self.token,
            progress=raw_progress,
            keep_logs=self.run.keep_logs,
            now=clock_arg(queue.clock),
            lines=lines,
        )
        if (error := job_error(code, self.id)) is not None:
            raise error
        if progress is not None and worker.progress_hook is not None:
            await worker.progress_hook(self, progress)

    async def children(self) -> Children:
        """For a flow's parent: its children's results (and the errors of
        those whose failure was ignored), keyed by child job id."""
        queue = self._worker.queue
        return await children_of(queue.redis, queue.keys, self.id)

    def __repr__(self) -> str:
        return f"<JobContext {self.queue}/{self.id} attempt={self.attempt}>"
