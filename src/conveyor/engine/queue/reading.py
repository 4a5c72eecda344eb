"""Reading a queue: its jobs, their states, counts, logs and progress, and
waiting for a job to finish. (Methods of :class:`Queue`.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from conveyor.engine.commands.jobs import read_job_fields as read_fields
from conveyor.engine.events import QueueEvents, parse_entry
from conveyor.engine.job import Job
from conveyor.engine.options import Priority
from conveyor.engine.queue.common import NEWEST_FIRST, STATE_KEY, QueueCore, check_page, job_state
from conveyor.engine.states import JobState
from conveyor.errors import InvalidJobOptions, JobFailed, JobNotFound, WaitTimeout, check_seconds, is_count


async def get_job(queue: QueueCore, job_id: str) -> Job | None:
    """The job with this id, or None."""
    h = await queue._call(queue.redis.hgetall(queue.keys.job(job_id)))
    if not h:
        return None
    return Job.from_hash(queue.name, job_id, h, queue)


async def set_events_max(queue: QueueCore, max_len: int) -> None:
    """Caps the queue's event stream at about ``max_len`` entries (a batch
    transition is one entry); 0 stops recording events. Default 10,000."""
    if not is_count(max_len, 0):
        raise InvalidJobOptions(f"events max_len must be an int >= 0, not {max_len!r}")
    await queue._call(queue.redis.hset(queue.keys.meta, "events-max", max_len))


async def wait_until_finished(queue: QueueCore, job_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109 (the documented API)
    """Waits for the job to finish, from any process, and returns its result.

    Raises JobFailed (with the job's error and traceback) when it failed
    for good, JobNotFound when it does not exist or is removed first,
    WaitTimeout (a TimeoutError) after ``timeout`` seconds; the job itself
    is not changed by a wait that timed out.
    """
    seconds = None if timeout is None else check_seconds(timeout, "timeout")
    until = None if seconds is None else asyncio.get_running_loop().time() + seconds
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await _wait(queue, job_id, until)
    except TimeoutError:
        late = until is not None and asyncio.get_running_loop().time() >= until
        if seconds is not None and (deadline.expired() or late):
            raise WaitTimeout(job_id, seconds) from None
        raise


async def _wait(queue: QueueCore, job_id: str, until: float | None) -> Any:
    """The job's result; TimeoutError at ``until`` (the loop's clock). The
    reading stops there by itself as well as by the caller's cancellation,
    which a blocking read can lose when it lands as the read returns."""
    # The position is taken before the state is read, so a finish in
    # between is seen as an event.
    start = await QueueEvents(queue).position()
    outcome = await _outcome(queue, job_id)
    if outcome is not None:
        return outcome[0]
    async for event in QueueEvents(queue, after=str(start), block=0.2, until=until):
        if event.event == "gap" or (event.job_id == job_id and event.event in ("failed", "removed")):
            outcome = await _outcome(queue, job_id)
        elif event.job_id == job_id and event.event == "completed":
            return event.data.get("result")
        if outcome is not None:
            return outcome[0]
    raise TimeoutError(f"job {job_id} did not finish in time")


async def _outcome(queue: QueueCore, job_id: str) -> tuple[Any] | None:
    """(result,) when the job completed, None while it is not finished.
    A job already gone may have been removed on completion: its last
    outcome is then looked for in the event stream, newest first."""
    job = await get_job(queue, job_id)
    if job is not None and job.state is JobState.COMPLETED:
        return (job.result,)
    if job is not None and job.state is JobState.FAILED:
        raise JobFailed(job_id, job.error or "failed", job.traceback)
    if job is not None:
        return None
    top = "+"
    while True:
        entries = await queue._call(queue.redis.xrevrange(queue.keys.events, top, "-", count=500))
        for entry_id, fields in entries:
            for event in parse_entry(entry_id, fields):
                if event.job_id != job_id:
                    continue
                if event.event == "completed":
                    return (event.data.get("result"),)
                if event.event == "failed":
                    raise JobFailed(job_id, event.data.get("error", "failed"))
                raise JobNotFound(job_id)  # removed, or a later add under the same id
        if len(entries) < 500:
            raise JobNotFound(job_id)
        top = f"({entries[-1][0].decode()}"


async def get_state(queue: QueueCore, job_id: str) -> JobState | None:
    raw = await queue._call(queue.redis.hget(queue.keys.job(job_id), "st"))
    return JobState(raw.decode()) if raw else None


async def counts(queue: QueueCore) -> dict[JobState, int]:
    """How many jobs are in each state (waiting includes grouped jobs)."""
    async with queue.redis.pipeline(transaction=False) as pipe:
        ask_counts(queue, pipe)
        replies = await queue._call(pipe.execute())
    return read_counts(replies)


#: How many replies :meth:`ask_counts` adds to a pipeline.
COUNT_REPLIES = len(JobState) + 2

#: Wait scores below this are of a priority higher than the default; jobs
#: of the default priority wait in the line (see lua/includes/wait_line.lua).
LINE_CUT = int(Priority.NORMAL) * 2**42


def ask_counts(queue: QueueCore, pipe: Any) -> None:
    """Queues on ``pipe`` the reads :meth:`read_counts` needs (for
    callers that read more in the same round trip)."""
    for state in JobState:
        pipe.zcard(queue.keys.key(STATE_KEY[state]))
    pipe.get(queue.keys.groups_waiting)
    pipe.llen(queue.keys.line)


def read_counts(replies: Sequence[Any]) -> dict[JobState, int]:
    counts = {state: int(n) for state, n in zip(JobState, replies, strict=False)}
    extra = len(JobState)
    counts[JobState.WAITING] += max(0, int(replies[extra] or 0)) + int(replies[extra + 1] or 0)
    return counts


async def is_paused(queue: QueueCore) -> bool:
    return bool(await queue._call(queue.redis.hexists(queue.keys.meta, "paused")))


async def get_jobs(queue: QueueCore, state: JobState | str, start: int = 0, count: int = 50) -> list[Job]:
    """A page of the jobs in ``state``: waiting in run order, delayed by
    due time, active by lease, finished newest first."""
    st = job_state(state)
    check_page(start, count)
    key = queue.keys.key(STATE_KEY[st])
    end = start + count - 1
    if st is JobState.WAITING:
        return await _fetch(queue, await _waiting_ids(queue, start, end))
    if st in NEWEST_FIRST:
        ids = await queue._call(queue.redis.zrevrange(key, start, end))
    else:
        ids = await queue._call(queue.redis.zrange(key, start, end))
    return await _fetch(queue, [i.decode() for i in ids])


async def _waiting_ids(queue: QueueCore, start: int, end: int) -> list[str]:
    """Ids of the ungrouped waiting jobs from rank ``start`` to ``end``, in
    run order: the wait zset's jobs of a higher priority than the default,
    then the line (the default priority), then the zset's others."""
    k = queue.keys
    async with queue.redis.pipeline(transaction=False) as pipe:
        pipe.zcount(k.wait, "-inf", f"({LINE_CUT}")
        pipe.llen(k.line)
        ahead, lined = await queue._call(pipe.execute())
    ids: list[bytes] = []
    if start < ahead:
        ids += await queue._call(queue.redis.zrange(k.wait, start, min(end, ahead - 1)))
    if end >= ahead and start < ahead + lined:
        items = await queue._call(queue.redis.lrange(k.line, max(0, start - ahead), end - ahead))
        ids += [item.split(b":", 1)[1] for item in items]
    if end >= ahead + lined:
        ids += await queue._call(queue.redis.zrange(k.wait, max(ahead, start - lined), end - lined))
    return [i.decode() for i in ids]


async def _fetch(queue: QueueCore, ids: list[str]) -> list[Job]:
    if not ids:
        return []
    async with queue.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(queue.keys.job(job_id))
        hashes = await queue._call(pipe.execute())
    return [Job.from_hash(queue.name, i, h, queue) for i, h in zip(ids, hashes, strict=True) if h]


#: Jobs per read_job_fields call: a script runs alone on Redis, so each is kept short.
_FIELDS_CHUNK = 1000


async def read_job_fields(
    queue: QueueCore, ids: Sequence[str], fields: Sequence[str]
) -> dict[str, list[bytes | None]]:
    """Some fields of many jobs, a call per thousand jobs rather than a
    reply per job: per job that exists, its values in ``fields``' order."""
    found: dict[str, list[bytes | None]] = {}
    for i in range(0, len(ids), _FIELDS_CHUNK):
        chunk = ids[i : i + _FIELDS_CHUNK]
        replies = await read_fields(queue.redis, queue.keys, chunk, fields)
        for job_id, values in zip(chunk, replies, strict=True):
            if values:
                found[job_id] = values
    return found


async def get_logs(queue: QueueCore, job_id: str, start: int = 0, end: int = -1) -> list[str]:
    rows = await queue._call(queue.redis.lrange(queue.keys.logs(job_id), start, end))
    return [r.decode(errors="replace") for r in rows]


async def get_progress(queue: QueueCore, job_id: str) -> Any:
    job = await get_job(queue, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job.progress
