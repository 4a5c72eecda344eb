"""The dead-letter set of a queue: jobs that failed for good (out of
attempts, ``Discard``, judged not retryable, or stalled too often) and that
retention keeps, with their data, options, error, traceback and every
attempt's error. They live in the queue's failed set; ``Queue.retry_failed``
replays them with fresh attempts and ``Queue.clean("failed")`` purges them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


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
