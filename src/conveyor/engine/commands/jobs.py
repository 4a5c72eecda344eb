"""Adding, reading, reporting on and removing single jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.command import Command
from conveyor.engine.codec import packb, unpack_reply
from conveyor.engine.keys import QueueKeys


class NewJob(NamedTuple):
    """One job as add_job and add_jobs take it."""

    id: str  # '' = the next auto id
    name: str
    data: bytes
    opts: str  # the options' wire form
    priority: int
    lifo: int  # 0/1
    delay: int  # ms relative, -(absolute ms) for run_at, or 0
    dedup_key: str  # '' none
    dedup_ttl_ms: int
    debounce: int  # 0/1
    group: str  # '' none


class Added(NamedTuple):
    now: int
    id: str
    created: int  # 1 created, 0 an existing job (same id or dedup key), 2 debounced


class AddedMany(NamedTuple):
    now: int
    jobs: list[tuple[str, int]]  # per job: id, created (as in Added)


_ADD_KEYS = ("wait", "delayed", "marker", "id_counter", "seq_counter")
ADD_JOB = Command(
    "add_job",
    keys=_ADD_KEYS,
    argv=("job_key_prefix", "now", *NewJob._fields),
    reply=Added,
)
ADD_JOBS = Command("add_jobs", keys=_ADD_KEYS, argv=("job_key_prefix", "now", "rows"), reply=AddedMany)
READ_JOB_FIELDS = Command("read_job_fields", keys=(), argv=(), more_keys=True, more_argv=True)
UPDATE_PROGRESS = Command(
    "update_progress",
    keys=("job_hash", "job_logs", "events_stream"),
    argv=("token", "progress", "keep_logs", "job_id", "now"),
    more_argv=True,
)
REMOVE_JOB = Command(
    "remove_job",
    keys=("wait", "delayed", "completed", "failed", "waiting_children"),
    argv=("job_key_prefix", "logs_prefix", "id"),
)
CANCEL_JOB = Command(
    "cancel_job",
    keys=("wait", "delayed", "failed"),
    argv=("job_key_prefix", "logs_prefix", "id", "reason", "now", "failed_keep_count", "failed_keep_age_ms"),
)


def _add_keys(k: QueueKeys) -> list[str]:
    return [k.wait, k.delayed, k.marker, k.id_counter, k.seq]


def _added(reply: Sequence[Any]) -> Added:
    now, raw_id, created = reply
    return Added(int(now), raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id), int(created))


async def add_job(
    client: RedisClient,
    k: QueueKeys,
    now: Arg,
    job: NewJob,
    *,
    resend: bool,
    replicas: tuple[int, int] | None = None,
) -> tuple[Added, int]:
    """Adds one job. ``now``: a clock's time or '' for Redis's. With
    ``replicas`` (count, wait ms) the add waits for that many replicas;
    returns the reply and how many replicas confirmed it (0 without)."""
    argv = [k.job_prefix, now, *job]
    if replicas is None:
        return _added(await ADD_JOB.run(client, _add_keys(k), argv, resend=resend)), 0
    reply, acked = await ADD_JOB.run_replicated(client, _add_keys(k), argv, *replicas, resend=resend)
    return _added(reply), acked


async def add_jobs(
    client: RedisClient,
    k: QueueKeys,
    now: Arg,
    jobs: Sequence[NewJob],
    *,
    resend: bool,
    replicas: tuple[int, int] | None = None,
) -> tuple[AddedMany, int]:
    """Adds jobs in one call; returns the reply and how many replicas
    confirmed them (with ``replicas``, as :func:`add_job`)."""
    argv = [k.job_prefix, now, packb(list(jobs))]
    if replicas is None:
        raw, acked = await ADD_JOBS.run(client, _add_keys(k), argv, resend=resend), 0
    else:
        raw, acked = await ADD_JOBS.run_replicated(client, _add_keys(k), argv, *replicas, resend=resend)
    reply_now, added = unpack_reply(raw)
    return AddedMany(int(reply_now), [(str(i), int(c)) for i, c in added]), acked


async def read_job_fields(
    client: RedisClient, k: QueueKeys, ids: Sequence[str], fields: Sequence[str]
) -> list[list[Any]]:
    """Per job, its ``fields`` (None where unset), or [] for a job that does not exist."""
    replies = await READ_JOB_FIELDS.run(client, [k.job(i) for i in ids], list(fields))
    return [list(values) for values in replies]


async def update_progress(
    client: RedisClient,
    k: QueueKeys,
    job_id: str,
    *,
    token: str,
    progress: bytes,
    keep_logs: int,
    now: Arg,
    lines: Sequence[str],
) -> int:
    """Sets a running job's progress (b'' unchanged) and appends log lines,
    under its lease: 1, or a negative code (see engine.codes)."""
    return int(
        await UPDATE_PROGRESS.run(
            client,
            [k.job(job_id), k.logs(job_id), k.events],
            [token, progress, keep_logs, job_id, now, *lines],
        )
    )


async def remove_job(client: RedisClient, k: QueueKeys, job_id: str) -> int:
    """1 removed, or a negative code (see engine.codes)."""
    return int(
        await REMOVE_JOB.run(
            client,
            [k.wait, k.delayed, k.completed, k.failed, k.waiting_children],
            [k.job_prefix, k.logs_prefix, job_id],
        )
    )


async def cancel_job(
    client: RedisClient, k: QueueKeys, job_id: str, *, reason: str, now: Arg, keep_failed: Sequence[int]
) -> int:
    """1 flagged (running), 2 failed now, 0 already finished, or a negative code."""
    return int(
        await CANCEL_JOB.run(
            client,
            [k.wait, k.delayed, k.failed],
            [k.job_prefix, k.logs_prefix, job_id, reason, now, *keep_failed],
        )
    )
