"""A worker's run: recording outcomes and claiming (one call), heartbeats,
lease renewal and the stalled check. The last three run on the lease
thread's own (sync) connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import redis
import redis.cluster

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.command import Command
from conveyor.engine.codec import packb, unpack_reply
from conveyor.engine.keys import QueueKeys

SyncClient = redis.Redis | redis.cluster.RedisCluster

#: The most jobs one finish-and-claim call claims.
MAX_CLAIM = 1000


class Finished(NamedTuple):
    """finish_jobs's reply."""

    now: int
    next_due: int  # the next delayed job's due time or a held group's turn; -1 none
    codes: list[int]  # per outcome row: 1 applied, 0 applied before, or a negative code
    claimed: list[Any]  # the claimed jobs' rows
    held_until: int  # 0: the queue is not held
    relay: list[str]  # flow children that finished (outbox entries to relay)
    grouped: int  # jobs waiting for their group's turn (counted when the claim fell short)


class Recovered(NamedTuple):
    requeued: list[str]
    failed: list[str]


FINISH_JOBS = Command(
    "finish_jobs",
    keys=(
        "wait",
        "active",
        "marker",
        "meta",
        "delayed",
        "seq_counter",
        "completed",
        "failed",
        "limiter_log",
        "limiter_count",
        "claims",
    ),
    argv=(
        "job_key_prefix",
        "logs_prefix",
        "now",
        "claim_count",
        "lock_ms",
        "worker_id",
        "outcomes",
        "call_id",
    ),
    reply=Finished,
)
#: finish_jobs with no outcomes, as a script of its own (fewer functions
#: for Redis to make on each call): the claim that rides behind a worker's
#: blocking pop, and any claim with nothing to record.
CLAIM_JOBS = Command("claim_jobs", keys=FINISH_JOBS.keys, argv=FINISH_JOBS.argv, reply=Finished)
BEAT_WORKER = Command("beat_worker", keys=("workers", "beats"), argv=("now", "worker_id", "info"))
EXTEND_LOCKS = Command(
    "extend_locks", keys=("active",), argv=("job_key_prefix", "now", "lock_ms"), more_argv=True
)
RECOVER_STALLED = Command(
    "recover_stalled",
    keys=("active", "wait", "marker", "seq_counter", "failed", "completed", "guard"),
    argv=(
        "job_key_prefix",
        "logs_prefix",
        "now",
        "max_stalled",
        "guard_ms",
        "failed_keep_count",
        "failed_keep_age_ms",
    ),
)


def _finish_call(
    k: QueueKeys,
    now: Arg,
    claim_count: int,
    lock_ms: int,
    worker_id: str,
    outcomes: Sequence[Sequence[Any]],
    call_id: int | str,
) -> tuple[list[str], list[Arg]]:
    keys = [
        k.wait,
        k.active,
        k.marker,
        k.meta,
        k.delayed,
        k.seq,
        k.completed,
        k.failed,
        k.limiter,
        k.limiter_count,
        k.claims,
    ]
    claim_count = min(claim_count, MAX_CLAIM)
    return keys, [k.job_prefix, k.logs_prefix, now, claim_count, lock_ms, worker_id, packb(outcomes), call_id]


async def finish_jobs(
    client: RedisClient,
    k: QueueKeys,
    *,
    now: Arg,
    claim_count: int,
    lock_ms: int,
    worker_id: str,
    outcomes: Sequence[Sequence[Any]],
    call_id: int | str,
) -> Finished:
    """Records ``outcomes`` (rows: id, token, kind, value, delay ms, keep
    count, keep age ms) and claims up to ``claim_count`` jobs (at most
    MAX_CLAIM), in one call; a resend with the same ``call_id`` gets the
    same jobs back. With no outcomes it runs claim_jobs, the same call
    with less for Redis to set up."""
    keys, argv = _finish_call(k, now, claim_count, lock_ms, worker_id, outcomes, call_id)
    return finished(await (FINISH_JOBS if outcomes else CLAIM_JOBS).run(client, keys, argv))


def claim_command(
    k: QueueKeys, *, claim_count: int, lock_ms: int, worker_id: str, call_id: int | str
) -> tuple[Any, ...]:
    """A claim (claim_jobs) as a raw EVALSHA command (see
    :meth:`Command.evalsha`) to write behind a blocking pop, so that Redis
    runs it the moment the pop returns. Its time is Redis's, read when it
    runs. Its raw reply becomes a :class:`Finished` by :func:`finished`. A
    reply lost or answered NOSCRIPT is made good by :func:`finish_jobs`
    with the same call id and no outcomes, which loads the script."""
    keys, argv = _finish_call(k, "", claim_count, lock_ms, worker_id, (), call_id)
    return CLAIM_JOBS.evalsha(keys, argv)


def finished(raw: bytes) -> Finished:
    """finish_jobs's raw reply, unpacked."""
    return Finished(*unpack_reply(raw))


def beat_worker(client: SyncClient, k: QueueKeys, *, now: Arg, worker_id: str, info: str) -> None:
    """Records a worker's heartbeat and ``info`` (JSON; '' = it stopped)."""
    BEAT_WORKER.run_sync(client, [k.workers, k.worker_beats], [now, worker_id, info])


def extend_locks(
    client: SyncClient, k: QueueKeys, *, now: Arg, lock_ms: int, tokens: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Renews the leases of the jobs in ``tokens`` (id -> token); returns
    the ids whose lease is lost and the cancelled ones' reasons."""
    argv: list[Arg] = [k.job_prefix, now, lock_ms]
    for job_id, token in tokens.items():
        argv += (job_id, token)
    reply = EXTEND_LOCKS.run_sync(client, [k.active], argv)
    sep = reply.index(b"")
    rest = reply[sep + 1 :]
    return [r.decode() for r in reply[:sep]], {
        rest[i].decode(): rest[i + 1].decode() for i in range(0, len(rest), 2)
    }


def recover_stalled(
    client: SyncClient,
    k: QueueKeys,
    *,
    now: Arg,
    max_stalled: int,
    guard_ms: int,
    keep_failed: Sequence[int],
) -> Recovered | None:
    """Hands jobs whose lease lapsed back to waiting (or fails those that
    stalled more than ``max_stalled`` times); None when another worker
    ran the check within ``guard_ms``."""
    reply = RECOVER_STALLED.run_sync(
        client,
        [k.active, k.wait, k.marker, k.seq, k.failed, k.completed, k.stalled_guard],
        [k.job_prefix, k.logs_prefix, now, max_stalled, guard_ms, *keep_failed],
    )
    if not reply:
        return None
    sep = reply.index(b"")
    return Recovered([r.decode() for r in reply[:sep]], [r.decode() for r in reply[sep + 1 :]])
