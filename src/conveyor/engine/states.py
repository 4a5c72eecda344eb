"""Job states, shared by the Redis layout, the API and the dashboard."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life. A job is in exactly one state at a time."""

    WAITING = "waiting"
    #: A flow's parent, until its children have finished.
    WAITING_CHILDREN = "waiting-children"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


#: States a job can still leave on its own.
PENDING_STATES = frozenset({JobState.WAITING, JobState.WAITING_CHILDREN, JobState.DELAYED, JobState.ACTIVE})
#: States a job ends in.
FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED})
#: States whose jobs can be removed or cleaned (not running).
CLEANABLE_STATES = frozenset({JobState.WAITING, JobState.DELAYED, JobState.COMPLETED, JobState.FAILED})
