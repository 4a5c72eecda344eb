"""A queue's limits, shared by every worker: pause, rate limit, global
concurrency, holds, and what each group gets; the groups and workers
themselves. (Methods of :class:`Queue`.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from conveyor.engine.clock import clock_arg, current_ms
from conveyor.engine.codec import text
from conveyor.engine.commands import admin as commands
from conveyor.engine.job import Job
from conveyor.engine.limits import GroupInfo, QueueLimits, RateLimit, check_concurrency
from conveyor.engine.queue.common import QueueCore, check_page
from conveyor.engine.queue.reading import _fetch
from conveyor.engine.registry import WorkerInfo, list_workers
from conveyor.errors import InvalidJobOptions, check_seconds

#: The queue meta fields of its limits, in the order read_limits takes them.
LIMIT_FIELDS = ("rlm", "rld", "conc", "hold", "grlm", "grld", "gconc")


async def pause(queue: QueueCore) -> None:
    """Workers stop claiming jobs of this queue; running jobs finish."""
    await commands.set_paused(queue.redis, queue.keys, True)


async def resume(queue: QueueCore) -> None:
    await commands.set_paused(queue.redis, queue.keys, False)


async def set_rate_limit(queue: QueueCore, limit: RateLimit | None) -> None:
    """Lets every worker together start at most ``limit.max`` jobs of
    this queue in any window of ``limit.per`` seconds (None: no limit).
    Jobs over the limit wait; they do not fail or use an attempt."""
    if limit is not None and not isinstance(limit, RateLimit):
        raise InvalidJobOptions(f"rate limit must be a RateLimit or None, not {limit!r}")
    await _set_limits(queue, "rate", limit.to_wire() if limit else "")


async def set_concurrency(queue: QueueCore, limit: int | None) -> None:
    """Caps the jobs of this queue active at once across all workers
    (None: only each worker's own concurrency applies)."""
    value = check_concurrency(limit)
    await _set_limits(queue, "conc", "" if value is None else str(value))


async def hold(queue: QueueCore, seconds: float) -> datetime | None:
    """Keeps every worker from starting jobs of this queue for
    ``seconds`` (what a handler's RateLimited does); 0 lifts a hold.
    Returns when the hold ends."""
    seconds = check_seconds(seconds, "hold")
    until = await _set_limits(queue, "hold", str(round(seconds * 1000)))
    return datetime.fromtimestamp(until / 1000, tz=UTC) if until else None


async def set_group_limits(
    queue: QueueCore, *, concurrency: int | None = None, rate_limit: RateLimit | None = None
) -> None:
    """Limits that every group of this queue gets (jobs added with
    ``group=``): at most ``concurrency`` of a group's jobs active at once
    and ``rate_limit`` starts per window, across all workers. None
    removes a limit. Groups always take turns, limits or not."""
    value = check_concurrency(concurrency)
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        raise InvalidJobOptions(f"rate limit must be a RateLimit or None, not {rate_limit!r}")
    await _set_limits(queue, "gconc", "" if value is None else str(value))
    await _set_limits(queue, "grate", rate_limit.to_wire() if rate_limit else "")


async def groups(queue: QueueCore, *, start: int = 0, count: int = 100) -> list[GroupInfo]:
    """A page of the queue's groups, by name."""
    check_page(start, count)
    k = queue.keys
    names = sorted(text(n) for n in await queue._call(queue.redis.smembers(k.groups_all)))
    page = names[start : start + count]
    if not page:
        return []
    async with queue.redis.pipeline(transaction=False) as pipe:
        for name in page:
            pipe.zcard(k.group(name))
            pipe.hget(k.groups_active, name)
            pipe.zscore(k.groups_ring, name)
            pipe.sismember(k.groups_parked, name)
            pipe.zscore(k.groups_held, name)
        raw = await queue._call(pipe.execute())
    out = []
    for i, name in enumerate(page):
        waiting, active, ring, parked, held = raw[i * 5 : i * 5 + 5]
        state = (
            "parked" if parked else "held" if held is not None else "ready" if ring is not None else "idle"
        )
        if state == "ready" and not waiting:
            state = "idle"
        out.append(GroupInfo(name, int(waiting), int(active or 0), state))
    return out


async def workers(queue: QueueCore) -> list[WorkerInfo]:
    """The workers of this queue that beat within the last hour, each
    marked alive when its last beat is recent, with the jobs it holds."""
    return cast(list[WorkerInfo], await queue._call(list_workers(queue)))


async def get_group_jobs(queue: QueueCore, group: str, start: int = 0, count: int = 50) -> list[Job]:
    """A page of a group's waiting jobs, in the order they will run."""
    check_page(start, count)
    ids = await queue._call(queue.redis.zrange(queue.keys.group(group), start, start + count - 1))
    return await _fetch(queue, [text(i) for i in ids])


async def limits(queue: QueueCore) -> QueueLimits:
    """The queue's rate limit, global concurrency and current hold, and
    the limits each group gets."""
    raw = await queue._call(queue.redis.hmget(queue.keys.meta, *LIMIT_FIELDS))
    now = await queue._call(current_ms(queue.clock, queue.redis))
    return read_limits(raw, now)


def ask_limits(queue: QueueCore, pipe: Any) -> None:
    """Queues on ``pipe`` the read :meth:`read_limits` needs (one reply)."""
    pipe.hmget(queue.keys.meta, *LIMIT_FIELDS)


def _count(value: Any) -> int | None:
    """A stored limit field as the claim reads it: a whole number of at
    least 1, or None (unset, or written by hand as anything else)."""
    digits = text(value) if value is not None else ""
    return int(digits) if digits.isascii() and digits.isdigit() and int(digits) >= 1 else None


def read_limits(raw: Sequence[Any], now: int) -> QueueLimits:
    rlm, rld, conc, hold, grlm, grld, gconc = (_count(v) for v in raw)
    return QueueLimits(
        rate_limit=RateLimit(rlm, rld / 1000) if rlm and rld else None,
        concurrency=conc,
        held_until=datetime.fromtimestamp(hold / 1000, tz=UTC) if hold and hold > now else None,
        group_rate_limit=RateLimit(grlm, grld / 1000) if grlm and grld else None,
        group_concurrency=gconc,
    )


async def _set_limits(queue: QueueCore, field: str, value: str) -> int:
    return await commands.set_limits(queue.redis, queue.keys, clock_arg(queue.clock), {field: value})
