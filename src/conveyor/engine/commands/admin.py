"""Administration: draining, cleaning, deleting, moving jobs to waiting,
pausing and setting limits."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.command import Command
from conveyor.engine.keys import QueueKeys

DRAIN = Command(
    "drain", keys=("wait", "delayed"), argv=("job_key_prefix", "logs_prefix", "limit", "include_delayed")
)
CLEAN_JOBS = Command(
    "clean_jobs",
    keys=("state_set",),
    argv=("job_key_prefix", "logs_prefix", "now", "grace_ms", "limit", "state_name"),
)
OBLITERATE = Command(
    "obliterate",
    keys=("active",),
    more_keys=True,
    argv=("job_key_prefix", "logs_prefix", "limit", "force", "number_of_state_zsets"),
)
PROMOTE_JOBS = Command(
    "promote_jobs",
    keys=("delayed", "wait", "marker", "seq_counter"),
    argv=("job_key_prefix", "limit"),
    more_argv=True,
)
RETRY_JOBS = Command(
    "retry_jobs",
    keys=("failed", "wait", "marker", "seq_counter"),
    argv=("job_key_prefix", "limit"),
    more_argv=True,
)
SET_PAUSED = Command("set_paused", keys=("meta", "marker"), argv=("paused",))
SET_LIMITS = Command(
    "set_limits", keys=("meta", "marker", "limiter_log", "limiter_count"), argv=("now",), more_argv=True
)


async def drain(client: RedisClient, k: QueueKeys, *, limit: int, include_delayed: bool) -> int:
    """Removes up to ``limit`` waiting (and delayed) jobs; returns how many went."""
    return int(
        await DRAIN.run(
            client, [k.wait, k.delayed], [k.job_prefix, k.logs_prefix, limit, "1" if include_delayed else "0"]
        )
    )


async def clean_jobs(
    client: RedisClient, k: QueueKeys, state_set: str, *, state: str, now: Arg, grace_ms: int, limit: int
) -> list[str]:
    """Removes up to ``limit`` jobs of ``state`` (kept in ``state_set``)
    older than ``grace_ms``; returns their ids."""
    removed = await CLEAN_JOBS.run(
        client, [state_set], [k.job_prefix, k.logs_prefix, now, grace_ms, limit, state]
    )
    return [r.decode() for r in removed]


async def obliterate(
    client: RedisClient,
    k: QueueKeys,
    state_sets: Sequence[str],
    other_keys: Sequence[str],
    *,
    limit: int,
    force: bool,
) -> int:
    """Deletes up to ``limit`` jobs and, once none is left, the queue's
    keys; returns how many jobs went, or a negative code (active jobs)."""
    return int(
        await OBLITERATE.run(
            client,
            [k.active, *state_sets, *other_keys],
            [k.job_prefix, k.logs_prefix, limit, "1" if force else "0", len(state_sets)],
        )
    )


async def promote_jobs(client: RedisClient, k: QueueKeys, ids: Sequence[str], *, limit: int) -> int:
    """Moves the delayed jobs ``ids`` (none: up to ``limit`` of them) to waiting."""
    return int(
        await PROMOTE_JOBS.run(client, [k.delayed, k.wait, k.marker, k.seq], [k.job_prefix, limit, *ids])
    )


async def retry_jobs(client: RedisClient, k: QueueKeys, ids: Sequence[str], *, limit: int) -> int:
    """Moves the failed jobs ``ids`` (none: up to ``limit`` of them) to waiting."""
    return int(await RETRY_JOBS.run(client, [k.failed, k.wait, k.marker, k.seq], [k.job_prefix, limit, *ids]))


async def set_paused(client: RedisClient, k: QueueKeys, paused: bool) -> None:
    await SET_PAUSED.run(client, [k.meta, k.marker], ["1" if paused else "0"])


async def set_limits(client: RedisClient, k: QueueKeys, now: Arg, fields: dict[str, str]) -> int:
    """Sets the queue's limit fields ('' clears one); returns the time
    until which the queue is held (0: not held)."""
    pairs = [part for item in fields.items() for part in item]
    return int(await SET_LIMITS.run(client, [k.meta, k.marker, k.limiter, k.limiter_count], [now, *pairs]))
