"""Administering a queue's jobs: drain, clean, obliterate, retry,
promote, remove, cancel, and the dead letters. (Methods of :class:`Queue`.)"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import cast

from conveyor.engine.children import Children, children_of, pending_children
from conveyor.engine.clock import clock_arg
from conveyor.engine.codec import text
from conveyor.engine.codes import Reply, job_error
from conveyor.engine.commands import admin as commands
from conveyor.engine.commands.jobs import cancel_job, remove_job
from conveyor.engine.job import Job
from conveyor.engine.keys import registry_key
from conveyor.engine.options import DEFAULT_KEEP_FAILED
from conveyor.engine.queue.common import STATE_KEY, QueueCore, check_limit, check_page, job_state
from conveyor.engine.queue.reading import get_jobs, get_state
from conveyor.engine.states import CLEANABLE_STATES, JobState
from conveyor.errors import InvalidJobOptions, JobIsActive, JobNotFound, QueueNotEmpty, check_seconds


async def drain(queue: QueueCore, *, delayed: bool = False) -> int:
    """Removes every waiting job (and delayed ones if asked); returns how many."""
    k = queue.keys
    total = 0
    while True:
        n = await commands.drain(queue.redis, k, limit=5000, include_delayed=delayed)
        total += n
        if n < 5000:
            return total


async def clean(queue: QueueCore, state: JobState | str, *, grace: float = 0, limit: int = 1000) -> list[str]:
    """Removes up to ``limit`` jobs of ``state`` older than ``grace`` seconds.

    Only states whose jobs are not running can be cleaned.
    """
    st = job_state(state)
    if st not in CLEANABLE_STATES:
        raise InvalidJobOptions(f"cannot clean {st.value} jobs")
    limit = check_limit(limit)
    grace_ms = round(check_seconds(grace, "grace") * 1000)
    k = queue.keys
    return await commands.clean_jobs(
        queue.redis,
        k,
        k.key(STATE_KEY[st]),
        state=st.value,
        now=clock_arg(queue.clock),
        grace_ms=grace_ms,
        limit=limit,
    )


async def obliterate(
    queue: QueueCore, *, force: bool = False, on_progress: Callable[[int], None] | None = None
) -> int:
    """Deletes the queue and all its jobs, 5,000 per script call, and
    takes it off the list of queues; returns how many jobs went.
    ``on_progress`` gets the running total after each call. Raises
    QueueNotEmpty while jobs are running, unless ``force``.
    """
    k = queue.keys
    groups = [text(g) for g in await queue._call(queue.redis.smembers(k.groups_all))]
    sets = [k.wait, k.delayed, k.completed, k.failed, k.waiting_children, *map(k.group, groups)]
    others = [key for key in k.all_fixed() if key not in sets and key != k.active]
    others += [key for g in groups for key in k.group_limiter(g)]
    total = 0
    while True:
        n = await commands.obliterate(queue.redis, k, sets, others, limit=5000, force=force)
        if n == Reply.ACTIVE:
            raise QueueNotEmpty(f"queue {queue.name} has running jobs; use force=True")
        total += n
        if on_progress is not None:
            on_progress(total)
        if n < 5000:
            break
    await _sweep_leftovers(queue)
    # Unlisted last: a handle that adds to this queue again lists it again.
    await queue._call(queue.redis.srem(registry_key(queue.keys.prefix), queue.name))
    queue._registered = False
    return total


async def _sweep_leftovers(queue: QueueCore) -> None:
    """Deletes what no list of the queue leads to: dedup keys kept for
    their TTL, the keys of groups and jobs no longer listed. Keys of an
    event stream sharing the queue's name are not the queue's, and stay."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in queue.keys.base) + ":*"
    batch: list[str] = []
    async for raw in queue.redis.scan_iter(match=pattern, count=1000):
        key = text(raw)
        if queue.keys.owns(key):
            batch.append(key)
        if len(batch) >= 500:
            await queue._call(queue.redis.delete(*batch))
            batch = []
    if batch:
        await queue._call(queue.redis.delete(*batch))


async def retry_failed(queue: QueueCore, job_id: str | None = None, *, limit: int = 1000) -> int:
    """Moves a failed job (or up to ``limit`` of them) back to waiting with
    fresh attempts; returns how many moved."""
    ids = [job_id] if job_id else []
    return await commands.retry_jobs(queue.redis, queue.keys, ids, limit=check_limit(limit))


async def dead_letters(queue: QueueCore, *, search: str = "", start: int = 0, count: int = 50) -> list[Job]:
    """Jobs in the dead-letter set (failed for good and kept), newest
    first, filtered by ``search`` in their error, name or id. Replay
    them with :meth:`retry_failed`, purge them with ``clean("failed")``."""
    check_page(start, count)
    needle = search.lower()
    out: list[Job] = []
    skipped = 0
    offset = 0
    page = max(count, 200)
    while len(out) < count:
        jobs = await get_jobs(queue, JobState.FAILED, offset, page)
        if not jobs:
            break
        offset += page
        for job in jobs:
            if needle and needle not in f"{job.id}\n{job.name}\n{job.error or ''}".lower():
                continue
            if skipped < start:
                skipped += 1
                continue
            out.append(job)
            if len(out) == count:
                break
    return out


async def promote(queue: QueueCore, job_id: str | None = None, *, limit: int = 1000) -> int:
    """Makes a delayed job (or up to ``limit`` of them) run now."""
    ids = [job_id] if job_id else []
    return await commands.promote_jobs(queue.redis, queue.keys, ids, limit=check_limit(limit))


async def get_children(queue: QueueCore, job_id: str) -> Children:
    """A flow parent's children: results, ignored failures, pending ids."""
    return cast(Children, await queue._call(children_of(queue.redis, queue.keys, job_id)))


async def remove(queue: QueueCore, job_id: str) -> None:
    """Deletes a job that is not running, and a flow parent's pending
    children with it (recursively, on whatever queue they are).
    Raises JobNotFound or JobIsActive (then nothing is removed)."""
    pending = await queue._call(pending_children(queue.redis, queue.keys, job_id))
    if pending:
        children = [(queue._sibling(name, prefix), child) for prefix, name, child in pending]
        for other, child in children:
            if await get_state(other, child) is JobState.ACTIVE:
                raise JobIsActive(f"job {job_id} has a running child {other.name}/{child}")
        for other, child in children:
            with contextlib.suppress(JobNotFound):
                await remove(other, child)
    code = await remove_job(queue.redis, queue.keys, job_id)
    if (error := job_error(code, job_id)) is not None:
        raise error


async def cancel(queue: QueueCore, job_id: str, reason: str = "cancelled") -> bool:
    """Stops a job from any process. A running job's handler is cancelled
    at its worker's next lease renewal and the job fails with ``reason``;
    a waiting or delayed job fails at once. Returns False when the job
    had already finished; raises JobNotFound."""
    code = await cancel_job(
        queue.redis,
        queue.keys,
        job_id,
        reason=reason,
        now=clock_arg(queue.clock),
        keep_failed=DEFAULT_KEEP_FAILED.to_wire(),
    )
    if (error := job_error(code, job_id)) is not None:
        raise error
    return code > 0
