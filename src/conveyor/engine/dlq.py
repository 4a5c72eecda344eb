"""The dead-letter set of a queue: jobs that failed for good (out of
attempts, ``Discard``, judged not retryable, or stalled too often) and that
retention keeps, with their data, options, error, traceback and every
attempt's error. They live in the queue's failed set; ``Queue.retry_failed``
replays them with fresh attempts and ``Queue.clean("failed")`` purges them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.engine.states import JobState

if TYPE_CHECKING:
    from conveyor.engine.job import Job
    from conveyor.engine.queue import Queue


@dataclass(frozen=True, slots=True)
class DeadLetteredJob:
    """Told to a worker's ``on_dead_letter`` hook, once per job, by the one
    worker whose outcome for the job was accepted."""

    queue: str
    job_id: str
    name: str | None
    error: str
    attempt: int


#: ``async def alert(job: DeadLetteredJob) -> None`` (errors are logged).
DeadLetterHook = Callable[[DeadLetteredJob], Awaitable[None]]
#: Decides whether a handler's exception may be retried; False sends the job
#: to the dead-letter set at once (e.g. HTTP 4xx other than 429).
RetryClassifier = Callable[[BaseException], bool]


async def find_dead_letters(queue: Queue, *, search: str = "", start: int = 0, count: int = 50) -> list[Job]:
    """Dead-lettered jobs, newest first: a page of ``count`` starting at
    ``start`` among those whose error, name or id contains ``search``
    (case-insensitive; every job when empty)."""
    needle = search.lower()
    out: list[Job] = []
    skipped = 0
    offset = 0
    page = max(count, 200)
    while len(out) < count:
        jobs = await queue.get_jobs(JobState.FAILED, offset, page)
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
