"""A flow parent's children, as the parent reads them: the results of
those that completed, the errors of those whose failure was ignored, and
those still pending."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.codec import loads_or_text, text
from conveyor.engine.keys import QueueKeys


@dataclass(frozen=True, slots=True)
class Children:
    """A parent's view of its children: results of those that completed,
    errors of those whose failure was ignored, and the ones still pending
    (all keyed by child job id)."""

    results: dict[str, Any]
    failures: dict[str, str]
    pending: list[str]


def job_ref(key: str) -> tuple[str, str, str]:
    """(prefix, queue, id) of a job key ``<prefix>:{<queue>}:job:<id>``."""
    head, _, rest = key.partition(":{")
    queue, _, job_id = rest.partition("}:job:")
    return head, queue, job_id


async def children_of(redis: RedisClient, keys: QueueKeys, job_id: str) -> Children:
    """The children state of parent ``job_id`` in queue ``keys``."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.kids_prefix + job_id)
        pipe.smembers(keys.deps_prefix + job_id)
        kids, pending = await pipe.execute()
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for raw_field, raw in kids.items():
        kind, _, child_key = text(raw_field).partition(":")
        child_id = job_ref(child_key)[2]
        if kind == "r":
            results[child_id] = loads_or_text(raw)
        else:
            failures[child_id] = text(raw)
    return Children(results, failures, sorted(job_ref(text(p))[2] for p in pending))


async def pending_children(redis: RedisClient, keys: QueueKeys, job_id: str) -> list[tuple[str, str, str]]:
    """(prefix, queue, id) of each child ``job_id`` still waits for."""
    return [job_ref(text(m)) for m in await redis.smembers(keys.deps_prefix + job_id)]
