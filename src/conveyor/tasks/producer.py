"""Adding jobs from blocking code: Django and Flask views, scripts, the
threads of a WSGI server, code leaving Celery.

``SyncProducer`` is the async engine behind a blocking facade: its calls
run on an event loop of its own (a daemon thread), so every rule of the
async API holds (validation before any write, one round trip per add, the
resend rules of a lost reply, Redis Cluster and Sentinel) and any number
of threads may call it at once. Make one per process and keep it; a
process forked after its first call (a pre-forking server) gets a fresh
connection on its own first call.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, Unpack, cast

from conveyor.engine.client.connection import connect
from conveyor.engine.job import Job
from conveyor.engine.keys import DEFAULT_PREFIX
from conveyor.engine.middleware import Middleware
from conveyor.engine.options import JobOptionsDict
from conveyor.engine.portal import Portal
from conveyor.engine.queue import Queue
from conveyor.engine.queue.handle import BulkItem
from conveyor.engine.states import JobState
from conveyor.errors import InvalidArgument
from conveyor.tasks.recording import run_eagerly
from conveyor.tasks.task import BaseTask, BoundTask

if TYPE_CHECKING:
    from conveyor.engine.client.cluster import RedisClient
    from conveyor.tasks.app import Conveyor

P = ParamSpec("P")
R = TypeVar("R")


class SyncProducer:
    """Adds and reads jobs without an event loop.

    ``app``: a Conveyor app whose tasks ``enqueue`` takes (and whose
    middleware, key prefix and Redis settings apply); ``redis_url``: the
    Redis to use (default: the app's URL, else the environment's
    ``REDIS_URL``, ``REDIS_HOST``...). Calling it from a running event loop
    is refused: there, use the async API."""

    def __init__(self, app: Conveyor | None = None, *, redis_url: str | None = None) -> None:
        if app is not None and redis_url is None and not app._owns_client:
            raise InvalidArgument(
                "this app was given a Redis client, which belongs to its own event loop: "
                "give SyncProducer the redis_url to connect to"
            )
        self.app = app
        self.redis_url = redis_url if redis_url is not None else app._url if app is not None else None
        self.prefix = app.prefix if app is not None else DEFAULT_PREFIX
        self._portal = Portal("conveyor-sync-producer")

    # -- adding ---------------------------------------------------------------

    def add(self, queue: str, name: str, data: Any = None, **options: Unpack[JobOptionsDict]) -> Job:
        """Adds a job to ``queue``, as ``Queue.add`` does."""
        return self._portal.call(lambda: self._queue(queue).add(name, data, **options))

    def add_bulk(self, queue: str, jobs: Iterable[BulkItem]) -> list[Job]:
        """Adds many jobs to ``queue``, as ``Queue.add_bulk`` does."""
        items = list(jobs)
        return self._portal.call(lambda: self._queue(queue).add_bulk(items))

    def enqueue(self, task: BaseTask[P, R] | BoundTask[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Adds a job of a typed task (or of ``task.with_options(...)``),
        its arguments checked here, before anything is sent."""
        plain = task.task if isinstance(task, BoundTask) else task
        options = task.options
        data = plain.payload(*args, **kwargs)
        queue = plain.queue.name
        if plain.queue.app.eager:  # tests: run inline, as the async enqueue does
            return plain._typed(self._portal.call(lambda: run_eagerly(plain, options, data)))
        job = self._portal.call(lambda: self._queue(queue).add(plain.name, data, **options))
        return plain._typed(job)

    # -- reading --------------------------------------------------------------

    def get_job(self, queue: str, job_id: str) -> Job | None:
        """The job with this id in ``queue``, or None."""
        return self._portal.call(lambda: self._queue(queue).get_job(job_id))

    def get_state(self, queue: str, job_id: str) -> JobState | None:
        return self._portal.call(lambda: self._queue(queue).get_state(job_id))

    def wait_until_finished(self, job: Job[R], timeout: float | None = None) -> R:
        """Blocks until ``job`` finishes and returns its result (as its
        task's return type for a typed task's job); raises JobFailed,
        JobNotFound or WaitTimeout like the async one."""
        raw = self._portal.call(lambda: self._queue(job.queue).wait_until_finished(job.id, timeout))
        if job.decoder is None:
            return cast(R, raw)
        return job.decoder(job.id, raw)

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection and stops the thread; a later call opens
        them again."""
        state = self._portal.state

        async def cleanup() -> None:
            client: RedisClient | None = state.get("client")
            if client is not None:
                await client.aclose()

        self._portal.close(cleanup)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _queue(self, name: str) -> Queue:
        """On the portal's loop: the handle of queue ``name``, on a client
        of this loop, with the app's middleware for it."""
        state = self._portal.state
        queues: dict[str, Queue] = state.setdefault("queues", {})
        handle = queues.get(name)
        if handle is None:
            client = state.get("client")
            if client is None:
                client = state["client"] = connect(self.redis_url)
            middleware: tuple[Middleware, ...] = ()
            if self.app is not None:
                declared = self.app.queues.get(name)
                middleware = declared.middleware if declared is not None else self.app.middleware
            handle = queues[name] = Queue(name, client, prefix=self.prefix, middleware=middleware)
        return handle

    def __repr__(self) -> str:
        return f"<SyncProducer prefix={self.prefix!r}>"
