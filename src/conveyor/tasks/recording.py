"""Tasks without Redis, for unit tests: a job that records what its task
reports (:class:`RecordedJob`, behind ``TaskContext.for_testing()``), and
eager mode, in which ``enqueue`` runs the task inline and returns a
finished job.

Eager mode runs the task's own code with its arguments checked and its
result stored as JSON and read back typed, attempt after attempt up to
the task's ``attempts``. It does not reproduce what happens between
Redis and the workers: no backoff delays, delays, priorities, timeouts,
leases, stalls, rate limits, concurrency or group limits, schedules,
flows, deduplication, middleware, or other processes. Test those against
a real Redis (the ``conveyor_redis`` fixture).
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from conveyor.engine.codec import dumps, loads
from conveyor.engine.job import Job, JobContext
from conveyor.engine.options import JobOptions, JobOptionsDict
from conveyor.engine.states import JobState
from conveyor.errors import Discard
from conveyor.tasks.facts import JobFacts

if TYPE_CHECKING:
    from conveyor.engine.children import Children


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class EagerTask(Protocol):
    """What eager mode needs of a task (a ``BaseTask``): its names and a
    way to run it for a recorded job."""

    @property
    def name(self) -> str: ...

    @property
    def queue(self) -> _Named: ...

    async def run_recorded(self, recorded: RecordedJob, data: Any) -> Any: ...


class RecordedJob:
    """Stands in for a running job (a :class:`JobContext`) in a unit test:
    ``progress`` and ``logs`` keep what the task reported."""

    def __init__(
        self,
        *,
        job_id: str = "test-job",
        queue: str = "test",
        name: str = "test",
        data: Any = None,
        attempt: int = 1,
        attempts: int = 1,
        headers: Mapping[str, str] | None = None,
        children: Children | None = None,
    ) -> None:
        self.id = job_id
        self.queue = queue
        self.name = name
        self.data = data
        self.attempt = attempt
        self.attempts = attempts
        self.fence = attempt
        self.token = "test"
        self.headers: Mapping[str, str] = dict(headers or {})
        #: Every progress the task reported, in order.
        self.progress: list[Any] = []
        #: Every log line the task wrote, in order.
        self.logs: list[str] = []
        self._children = children

    async def update_progress(self, progress: Any) -> None:
        self.blocking.update_progress(progress)

    async def log(self, *lines: str) -> None:
        self.blocking.log(*lines)

    async def children(self) -> Children:
        return self.blocking.children()

    @property
    def blocking(self) -> BlockingRecordedJob:
        """This job as a plain (``def``) task sees it."""
        return BlockingRecordedJob(self)

    def __repr__(self) -> str:
        return f"<RecordedJob {self.queue}/{self.id} attempt={self.attempt}>"


class BlockingRecordedJob(JobFacts):
    """A :class:`RecordedJob` as a plain task's context reports to it."""

    __slots__ = ()

    job: RecordedJob

    def __init__(self, recorded: RecordedJob) -> None:
        self.job = recorded

    def update_progress(self, progress: Any) -> None:
        self.job.progress.append(loads(dumps(progress)))  # JSON, as Redis would keep it

    def log(self, *lines: str) -> None:
        self.job.logs.extend(lines)

    def children(self) -> Children:
        if self.job._children is None:
            raise RuntimeError("this test job has no children: give RecordedJob(children=...)")
        return self.job._children


def as_job_context(job: RecordedJob) -> JobContext:
    """The recorded job where a JobContext is expected (it has its shape)."""
    return cast(JobContext, job)


async def run_eagerly(task: EagerTask, options: JobOptionsDict, data: dict[str, Any]) -> Job[Any]:
    """Runs ``task`` inline for ``data`` and returns the finished job:
    completed with its result, or failed with the last attempt's error."""
    opts = JobOptions.build(dict(options))
    job_id = opts.job_id or f"eager-{uuid.uuid4().hex[:12]}"
    created = datetime.now(UTC)
    error: BaseException | None = None
    history: list[dict[str, Any]] = []
    result: Any = None
    attempt = 0
    while attempt < opts.attempts:
        attempt += 1
        recorded = RecordedJob(
            job_id=job_id,
            queue=task.queue.name,
            name=task.name,
            data=data,
            attempt=attempt,
            attempts=opts.attempts,
            headers=dict(opts.headers),
        )
        try:
            result = await task.run_recorded(recorded, loads(dumps(data)))
            error = None
            break
        except Exception as exc:
            error = exc
            history.append({"attempt": attempt, "error": f"{type(exc).__name__}: {exc}"})
            if isinstance(exc, Discard):
                break
    finished = Job[Any](
        id=job_id,
        queue=task.queue.name,
        name=task.name,
        data=data,
        state=JobState.COMPLETED if error is None else JobState.FAILED,
        options=loads(opts.wire),
        priority=opts.priority,
        attempts_made=attempt,
        attempts_started=attempt,
        result=loads(dumps(result)) if error is None else None,
        error=None if error is None else f"{type(error).__name__}: {error}",
        traceback=None if error is None else "".join(traceback.format_exception(error)),
        history=history,
        created_at=created,
        started_at=created,
        finished_at=datetime.now(UTC),
    )
    return finished
