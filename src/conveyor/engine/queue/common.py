"""What the parts of a queue share: what they use of its handle, where
each state's jobs are listed, and the checks of the arguments that name a
state or count jobs."""

from __future__ import annotations

from typing import Any, Protocol

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.clock import Clock
from conveyor.engine.keys import QueueKeys
from conveyor.engine.states import JobState
from conveyor.errors import InvalidJobOptions, is_count

#: The key (under the queue's base) of the sorted set of each state's jobs.
STATE_KEY = {
    JobState.WAITING: "wait",
    JobState.WAITING_CHILDREN: "waiting-children",
    JobState.DELAYED: "delayed",
    JobState.ACTIVE: "active",
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
}
#: States listed newest first.
NEWEST_FIRST = frozenset({JobState.COMPLETED, JobState.FAILED})


class QueueCore(Protocol):
    """What the parts of a queue (reading, limits, schedules, admin) use of
    its handle, the :class:`~conveyor.Queue` they are methods of."""

    name: str
    redis: RedisClient
    keys: QueueKeys
    clock: Clock
    max_payload: int
    _registered: bool

    async def _call(self, awaitable: Any) -> Any:
        """Awaits a Redis call, its errors mapped to Conveyor's."""
        ...

    async def register(self) -> None: ...

    def _sibling(self, name: str, prefix: str = "") -> QueueCore:
        """A handle on another queue with the same connection and clock."""
        ...

    async def wait_until_finished(self, job_id: str, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109


def job_state(state: JobState | str) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        raise InvalidJobOptions(f"no job state named {state!r}") from None


def check_page(start: Any, count: Any) -> None:
    """A page of a listing: ``start`` an int >= 0, ``count`` an int >= 1."""
    if not is_count(start, 0) or not is_count(count, 1):
        raise InvalidJobOptions(
            f"start must be an int >= 0 and count an int >= 1, not {start!r} and {count!r}"
        )


def check_limit(limit: Any) -> int:
    """How many jobs a bulk operation may move: an int >= 1 (a 0 or -1
    would read as ``ZRANGE 0 -1``, every job)."""
    if not is_count(limit, 1):
        raise InvalidJobOptions(f"limit must be an int >= 1, not {limit!r}")
    return int(limit)
