"""Schedules: storing one, and firing one due tick."""

from __future__ import annotations

from typing import NamedTuple

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.command import Command
from conveyor.engine.keys import QueueKeys


class TickJob(NamedTuple):
    """The job a tick enqueues."""

    job_id: str
    name: str
    data: bytes
    opts: str | bytes
    priority: int


class Upserted(NamedTuple):
    changed: int
    next_run_ms: int  # -1: none left


#: A tick that moves the schedule on without enqueueing a job.
NO_JOB = TickJob("", "", b"", "", 0)

FIRE_SCHEDULE = Command(
    "fire_schedule",
    keys=("schedules", "next_runs", "runs", "wait", "marker", "seq_counter"),
    argv=("job_key_prefix", "now", "key", "tick_ms", "new_next_ms", "spec", *TickJob._fields),
)
UPSERT_SCHEDULE = Command(
    "upsert_schedule", keys=("schedules", "next_runs"), argv=("key", "spec", "next_run_ms"), reply=Upserted
)


async def fire_schedule(
    client: RedisClient,
    k: QueueKeys,
    key: str,
    *,
    now: Arg,
    tick_ms: int,
    new_next_ms: int,
    spec: bytes,
    job: TickJob,
) -> bool:
    """Moves schedule ``key`` from its due tick to ``new_next_ms`` (-1: it
    ends) and enqueues ``job`` (unless NO_JOB); False when another
    scheduler won the race or the schedule changed meanwhile."""
    done = await FIRE_SCHEDULE.run(
        client,
        [k.schedules, k.schedules_next, k.schedules_runs, k.wait, k.marker, k.seq],
        [k.job_prefix, now, key, tick_ms, new_next_ms, spec, *job],
    )
    return bool(done)


async def upsert_schedule(
    client: RedisClient, k: QueueKeys, key: str, *, spec: bytes, next_run_ms: int
) -> Upserted:
    changed, nxt = await UPSERT_SCHEDULE.run(
        client, [k.schedules, k.schedules_next], [key, spec, next_run_ms]
    )
    return Upserted(int(changed), int(nxt))
