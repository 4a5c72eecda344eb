"""Who is there: the queues in use under a prefix, and the workers of a
queue with their last heartbeat (what the API and dashboard list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.clock import current_ms
from conveyor.engine.codec import loads_or_text, text
from conveyor.engine.keys import DEFAULT_PREFIX, registry_key, stream_registry_key

if TYPE_CHECKING:
    from conveyor.engine.scope import QueueScope

#: A worker beats about once a second; one silent this long is gone.
ALIVE_WITHIN = 10.0
#: Entries of workers silent this long are dropped when listed.
FORGET_AFTER = 3600.0


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker of a queue as it last reported itself."""

    id: str
    host: str
    pid: int
    concurrency: int
    started_at: datetime | None
    last_seen: datetime
    alive: bool
    jobs: list[str]
    processed: int
    failed: int


async def queue_names(redis: RedisClient, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Every queue that was used under ``prefix``, by name."""
    return sorted(text(n) for n in await redis.smembers(registry_key(prefix)))


async def queue_listed(redis: RedisClient, name: str, prefix: str = DEFAULT_PREFIX) -> bool:
    """Whether a queue called ``name`` has been used under ``prefix``."""
    return bool(await redis.sismember(registry_key(prefix), name))


async def stream_listed(redis: RedisClient, name: str, prefix: str = DEFAULT_PREFIX) -> bool:
    """Whether an event stream called ``name`` was published to or consumed under ``prefix``."""
    return bool(await redis.sismember(stream_registry_key(prefix), name))


async def stream_names(redis: RedisClient, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Every event bus stream that was published to or consumed under
    ``prefix``, by name."""
    return sorted(text(n) for n in await redis.smembers(stream_registry_key(prefix)))


def alive_window(queue: QueueScope, now: int) -> tuple[str, int, str]:
    """``ZCOUNT`` arguments counting the workers of ``queue`` that beat
    within ``ALIVE_WITHIN`` of ``now`` (for a caller's own pipeline)."""
    return queue.keys.worker_beats, now - int(ALIVE_WITHIN * 1000), "+inf"


async def count_alive(queue: QueueScope, now: int) -> int:
    """How many workers of ``queue`` beat within ``ALIVE_WITHIN`` of ``now``."""
    return int(await queue.redis.zcount(*alive_window(queue, now)))


async def list_workers(queue: QueueScope) -> list[WorkerInfo]:
    k = queue.keys
    now = await current_ms(queue.clock, queue.redis)
    forget = now - int(FORGET_AFTER * 1000)
    await queue.redis.zremrangebyscore(k.worker_beats, "-inf", forget)
    beats: list[Any] = await queue.redis.zrange(k.worker_beats, 0, -1, withscores=True)
    if not beats:
        return []
    ids = [text(i) for i, _ in beats]
    infos = await queue.redis.hmget(k.workers, ids)
    out = []
    for (_, seen), raw in zip(beats, infos, strict=True):
        info = loads_or_text(raw) if isinstance(raw, bytes) else {}
        if not isinstance(info, dict):
            continue
        started = info.get("started")
        out.append(
            WorkerInfo(
                id=str(info.get("id", "")),
                host=str(info.get("host", "")),
                pid=int(info.get("pid", 0)),
                concurrency=int(info.get("concurrency", 0)),
                started_at=datetime.fromtimestamp(started / 1000, tz=UTC) if started else None,
                last_seen=datetime.fromtimestamp(seen / 1000, tz=UTC),
                alive=now - seen <= ALIVE_WITHIN * 1000,
                jobs=[str(j) for j in info.get("jobs", [])],
                processed=int(info.get("processed", 0)),
                failed=int(info.get("failed", 0)),
            )
        )
    return out
