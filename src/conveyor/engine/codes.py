"""What the scripts' negative replies mean, in one table, and the error
each becomes for a call about one job. Each script's header in ``lua/``
lists the codes it returns (its ``Returns`` line); a test checks them
against this table."""

from __future__ import annotations

from enum import IntEnum

from conveyor.errors import ConveyorError, JobIsActive, JobNotFound, StaleLease


class Reply(IntEnum):
    """A script's negative reply about a job."""

    #: The job does not exist (never did, removed, or expired by retention).
    MISSING = -1
    #: The job's lock token is another's: a worker took the job over.
    SUPERSEDED = -2
    #: The job is running (for ``obliterate``: some job of the queue is).
    ACTIVE = -4


def job_error(code: int, job_id: str) -> ConveyorError | None:
    """The error a script's reply ``code`` about job ``job_id`` becomes
    (None for a reply that is not an error)."""
    if code == Reply.MISSING:
        return JobNotFound(job_id)
    if code == Reply.SUPERSEDED:
        return StaleLease(f"job {job_id}: lock held by another worker")
    if code == Reply.ACTIVE:
        return JobIsActive(f"job {job_id} is running; cancel it first")
    return None
