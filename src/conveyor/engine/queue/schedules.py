"""A queue's schedules (repeatable jobs; a Scheduler enqueues their
ticks). (Methods of :class:`Queue`.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Unpack, cast

from conveyor.engine import schedules as store
from conveyor.engine.options import JobOptionsDict
from conveyor.engine.queue.common import QueueCore
from conveyor.engine.schedules import Schedule, build_spec


async def upsert_schedule(
    queue: QueueCore,
    key: str,
    name: str,
    data: Any = None,
    *,
    cron: str | None = None,
    every: float | timedelta | None = None,
    tz: str = "UTC",
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    limit: int | None = None,
    missed: str = "once",
    **options: Unpack[JobOptionsDict],
) -> Schedule:
    """Creates or updates the schedule ``key``: a job ``name`` with
    ``data`` on every tick of ``cron`` (five fields or ``@hourly``-style,
    in time zone ``tz``) or ``every`` seconds (ticks at multiples of the
    interval from ``start_at``, or from the epoch).

    Upserting the same schedule from many processes keeps one schedule
    and its next run; a changed one runs next at its first tick from
    now. ``end_at`` and ``limit`` (a count of jobs) end it; ``missed``
    says what ticks missed while no scheduler ran become: ``"once"``
    one job, ``"all"`` one each, ``"skip"`` none. Other keywords are
    the job options of each tick's job (not job_id, delay or run_at).
    Raises InvalidSchedule (bad cron, zone, interval or option) or a
    PayloadError before anything is written."""
    spec = build_spec(
        key,
        name,
        data,
        cron=cron,
        every=every,
        tz=tz,
        start_at=start_at,
        end_at=end_at,
        limit=limit,
        missed=missed,
        max_payload=queue.max_payload,
        options=dict(options),
    )
    await queue.register()
    return cast(Schedule, await queue._call(store.upsert(queue, key, spec)))


async def get_schedule(queue: QueueCore, key: str) -> Schedule | None:
    """The schedule ``key`` with its run count, last and next run."""
    return cast(Schedule | None, await queue._call(store.get(queue, key)))


async def get_schedules(queue: QueueCore) -> list[Schedule]:
    """Every schedule of this queue, by key."""
    return cast(list[Schedule], await queue._call(store.get_all(queue)))


async def remove_schedule(queue: QueueCore, key: str) -> bool:
    """Removes a schedule (jobs it already enqueued stay); False if absent."""
    return bool(await queue._call(store.remove(queue, key)))
