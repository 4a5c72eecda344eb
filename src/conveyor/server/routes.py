"""The queue API under ``/api``: queues, jobs, schedules, dead letters,
groups and workers, read and administered. Every route needs the token
when one is configured."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from conveyor.engine.clock import RedisClock, current_ms
from conveyor.engine.codec import dumps
from conveyor.engine.queue import Queue
from conveyor.engine.registry import WorkerInfo, alive_window, queue_names
from conveyor.engine.states import JobState
from conveyor.errors import InvalidJobOptions, JobNotFound
from conveyor.server.auth import require_token
from conveyor.server.models import (
    AddJobIn,
    CancelIn,
    CleanIn,
    Done,
    GroupOut,
    JobOut,
    JobPage,
    QueueOut,
    RateLimitModel,
    ScheduleOut,
    problems,
)

if TYPE_CHECKING:
    from conveyor.server.state import ServerState

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], responses=problems(401))

Start = Annotated[int, Query(ge=0, le=1_000_000)]
Count = Annotated[int, Query(ge=1, le=1000)]
SEARCH_SPAN = 1000


async def _queue(request: Request, name: str) -> Queue:
    queue: Queue = await request.app.state.conveyor.queue(name)
    return queue


QueueDep = Annotated[Queue, Depends(_queue)]


# -- queues ----------------------------------------------------------------------


@router.get("/queues", response_model=list[QueueOut], tags=["queues"])
async def list_queues(request: Request) -> list[QueueOut]:
    """Every queue in use, with its counts, limits and recent throughput."""
    return await describe_all(request.app.state.conveyor)


async def describe_all(state: ServerState) -> list[QueueOut]:
    """Every queue's summary, all read in one pipeline (one connection
    however many queues there are), with Redis's time read once."""
    queues = [await state.queue(name) for name in await queue_names(state.redis, state.prefix)]
    if not queues:
        return []
    now = await current_ms(RedisClock(), state.redis)
    async with state.redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            _ask_summary(pipe, queue, now)
        replies = await pipe.execute()
    return [
        _read_summary(queue, replies[i * SUMMARY_REPLIES : (i + 1) * SUMMARY_REPLIES], now)
        for i, queue in enumerate(queues)
    ]


@router.get("/queues/{name}", response_model=QueueOut, tags=["queues"], responses=problems(404))
async def get_queue(queue: QueueDep) -> QueueOut:
    return await describe(queue)


async def describe(queue: Queue) -> QueueOut:
    """The queue's summary, read in one round trip after Redis's time."""
    now = await current_ms(queue.clock, queue.redis)
    async with queue.redis.pipeline(transaction=False) as pipe:
        _ask_summary(pipe, queue, now)
        replies = await pipe.execute()
    return _read_summary(queue, replies, now)


#: How many replies _ask_summary adds to a pipeline.
SUMMARY_REPLIES = Queue.COUNT_REPLIES + 6


def _ask_summary(pipe: Any, queue: Queue, now: int) -> None:
    k = queue.keys
    queue.ask_counts(pipe)
    queue.ask_limits(pipe)
    pipe.hexists(k.meta, "paused")
    pipe.zcount(k.completed, now - 60_000, "+inf")
    pipe.zcount(k.failed, now - 60_000, "+inf")
    pipe.hmget(k.stats, "completed", "failed")
    pipe.zcount(*alive_window(queue, now))


def _read_summary(queue: Queue, replies: list[Any], now: int) -> QueueOut:
    n = Queue.COUNT_REPLIES
    limits = Queue.read_limits(replies[n], now)
    paused, done, failed, totals, alive = replies[n + 1 :]
    rate = limits.rate_limit
    return QueueOut(
        name=queue.name,
        counts=Queue.read_counts(replies[:n]),
        paused=bool(paused),
        rate_limit=RateLimitModel(max=rate.max, per=rate.per) if rate else None,
        concurrency=limits.concurrency,
        held_until=limits.held_until,
        workers_alive=int(alive),
        completed_last_minute=int(done),
        failed_last_minute=int(failed),
        completed_total=int(totals[0] or 0),
        failed_total=int(totals[1] or 0),
    )


@router.post(
    "/queues/{name}/pause", status_code=status.HTTP_204_NO_CONTENT, tags=["queues"], responses=problems(404)
)
async def pause(queue: QueueDep) -> Response:
    """Workers stop starting jobs of the queue; running jobs finish."""
    await queue.pause()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/queues/{name}/resume", status_code=status.HTTP_204_NO_CONTENT, tags=["queues"], responses=problems(404)
)
async def resume(queue: QueueDep) -> Response:
    await queue.resume()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/queues/{name}/clean", response_model=Done, tags=["queues"], responses=problems(400, 404))
async def clean(queue: QueueDep, body: CleanIn) -> Done:
    """Removes up to ``limit`` jobs of a state older than ``grace`` seconds."""
    return Done(count=len(await queue.clean(body.state, grace=body.grace, limit=body.limit)))


# -- jobs ------------------------------------------------------------------------


@router.get("/queues/{name}/jobs", response_model=JobPage, tags=["jobs"], responses=problems(404))
async def list_jobs(
    queue: QueueDep,
    state: JobState = JobState.WAITING,
    start: Start = 0,
    count: Count = 50,
    search: Annotated[str, Query(max_length=200)] = "",
) -> JobPage:
    """A page of the jobs in ``state``; ``search`` matches an exact id, or
    text in the id, name or data of the first thousand jobs of the state."""
    if not search:
        jobs = await queue.get_jobs(state, start, count)
    else:
        exact = await queue.get_job(search)
        needle = search.lower()
        found = [exact] if exact is not None and exact.state is state else []
        for job in await queue.get_jobs(state, 0, SEARCH_SPAN):
            if job is not None and job.id != search and _matches(job, needle):
                found.append(job)
        jobs = found[start : start + count]
    return JobPage(queue=queue.name, state=state, start=start, count=count, jobs=[JobOut.of(j) for j in jobs])


def _matches(job: Any, needle: str) -> bool:
    return (
        needle in job.id.lower() or needle in job.name.lower() or needle in dumps(job.data).decode().lower()
    )


@router.post(
    "/queues/{name}/jobs",
    response_model=JobOut,
    status_code=status.HTTP_201_CREATED,
    tags=["jobs"],
    responses=problems(400, 404, 413),
)
async def add_job(request: Request, queue: QueueDep, body: AddJobIn) -> JobOut:
    """Adds a job; bad options or data answer 422 and write nothing. On a
    queue of the served app's, ``name`` is one of its tasks and ``data``
    its arguments, with the task's job options as defaults."""
    state: ServerState = request.app.state.conveyor
    job = await state.add(queue, body.name, body.data, _options(body.options))
    return JobOut.of(job)


def _options(raw: dict[str, Any]) -> Any:
    options = dict(raw)
    run_at = options.get("run_at")
    if isinstance(run_at, str):
        try:
            options["run_at"] = datetime.fromisoformat(run_at)
        except ValueError:
            raise InvalidJobOptions(f"run_at must be an ISO 8601 time, not {run_at!r}") from None
    return options


@router.get("/queues/{name}/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=problems(404))
async def get_job(queue: QueueDep, job_id: str) -> JobOut:
    """A job with its data, options, progress, logs, attempts, error and result."""
    job = await queue.get_job(job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r} in queue {queue.name!r}")
    return JobOut.of(job, await queue.get_logs(job_id))


@router.delete(
    "/queues/{name}/jobs/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["jobs"],
    responses=problems(404, 409),
)
async def remove_job(queue: QueueDep, job_id: str) -> Response:
    """Removes a job that is not running (409 while it runs)."""
    await queue.remove(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/queues/{name}/jobs/{job_id}/retry", response_model=Done, tags=["jobs"], responses=problems(404, 409)
)
async def retry_job(queue: QueueDep, job_id: str) -> Done:
    """Sends a failed job back to waiting with fresh attempts."""
    await _require(queue, job_id)
    return Done(count=await queue.retry_failed(job_id))


@router.post(
    "/queues/{name}/jobs/{job_id}/promote", response_model=Done, tags=["jobs"], responses=problems(404, 409)
)
async def promote_job(queue: QueueDep, job_id: str) -> Done:
    """Runs a delayed job now."""
    await _require(queue, job_id)
    return Done(count=await queue.promote(job_id))


@router.post(
    "/queues/{name}/jobs/{job_id}/cancel",
    response_model=Done,
    tags=["jobs"],
    responses=problems(400, 404, 409),
)
async def cancel_job(queue: QueueDep, job_id: str, body: CancelIn | None = None) -> Done:
    """Stops a running job (its worker fails it with the reason) or fails a
    waiting one at once."""
    await _require(queue, job_id)
    reason = body.reason if body else "cancelled from the API"
    return Done(count=int(await queue.cancel(job_id, reason)))


async def _require(queue: Queue, job_id: str) -> None:
    if await queue.get_state(job_id) is None:
        raise JobNotFound(f"no job {job_id!r} in queue {queue.name!r}")


# -- dead letters, schedules, groups, workers --------------------------------------


@router.get(
    "/queues/{name}/dead-letters", response_model=list[JobOut], tags=["dead letters"], responses=problems(404)
)
async def dead_letters(
    queue: QueueDep, search: Annotated[str, Query(max_length=200)] = "", start: Start = 0, count: Count = 50
) -> list[JobOut]:
    """Jobs that failed for good, newest first, filtered by error text."""
    return [JobOut.of(j) for j in await queue.dead_letters(search=search, start=start, count=count)]


@router.post(
    "/queues/{name}/dead-letters/replay", response_model=Done, tags=["dead letters"], responses=problems(404)
)
async def replay_dead_letters(queue: QueueDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> Done:
    """Sends up to ``limit`` dead letters back to waiting with fresh attempts."""
    return Done(count=await queue.retry_failed(limit=limit))


@router.delete(
    "/queues/{name}/dead-letters", response_model=Done, tags=["dead letters"], responses=problems(404)
)
async def purge_dead_letters(
    queue: QueueDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000
) -> Done:
    """Deletes up to ``limit`` dead letters."""
    return Done(count=len(await queue.clean(JobState.FAILED, limit=limit)))


@router.get(
    "/queues/{name}/schedules", response_model=list[ScheduleOut], tags=["schedules"], responses=problems(404)
)
async def schedules(queue: QueueDep) -> list[ScheduleOut]:
    return [ScheduleOut.of(s) for s in await queue.get_schedules()]


@router.delete(
    "/queues/{name}/schedules/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["schedules"],
    responses=problems(404),
)
async def remove_schedule(queue: QueueDep, key: str) -> Response:
    if not await queue.remove_schedule(key):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {key!r} in queue {queue.name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/queues/{name}/groups", response_model=list[GroupOut], tags=["queues"], responses=problems(404))
async def groups(queue: QueueDep, start: Start = 0, count: Count = 100) -> list[GroupOut]:
    return [GroupOut.model_validate(g) for g in await queue.groups(start=start, count=count)]


@router.get(
    "/queues/{name}/workers", response_model=list[WorkerInfo], tags=["workers"], responses=problems(404)
)
async def workers(queue: QueueDep) -> list[WorkerInfo]:
    """Workers seen in the last hour, alive or not, with the jobs they hold."""
    return await queue.workers()
