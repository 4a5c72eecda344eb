"""Whether a Redis is fit to hold jobs, asked before a worker or a
scheduler starts: one that evicts keys under memory pressure, or that
lacks a command the engine needs, would lose or strand jobs silently.

A worker or scheduler refuses to start on such a Redis (UnsafeRedis),
unless told to accept eviction (``allow_eviction=True`` or
``CONVEYOR_ALLOW_EVICTION=1``); a producer logs a warning once per client.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from conveyor.engine.client.errors import redis_errors
from conveyor.errors import UnsafeRedis

log = logging.getLogger("conveyor.redis")

ALLOW_EVICTION_ENV = "CONVEYOR_ALLOW_EVICTION"
_PROBE_KEY = "conveyor:{preflight}:probe"  # never created: every probe only reads
#: Commands every part of the engine sends, each with a harmless call of it.
PROBES: dict[str, tuple[Any, ...]] = {
    "eval": ("EVAL", "return 1", 0),
    "evalsha": ("EVALSHA", "0" * 40, 0),
    "script": ("SCRIPT", "EXISTS", "0" * 40),
    "bzpopmin": ("BZPOPMIN", _PROBE_KEY, 0.001),
    "xadd": ("XADD", _PROBE_KEY, "NOMKSTREAM", "*", "f", "v"),
    "xrange": ("XRANGE", _PROBE_KEY, "-", "+", "COUNT", 1),
    "xread": ("XREAD", "COUNT", 1, "STREAMS", _PROBE_KEY, "0"),
    "time": ("TIME",),
}

_warned: weakref.WeakSet[Any] = weakref.WeakSet()
#: What a client's Redis was found to be, asked once per client.
_facts: weakref.WeakKeyDictionary[Any, tuple[list[str], list[str | None]]] = weakref.WeakKeyDictionary()


async def _per_primary(redis: Any, call: str, *args: Any) -> list[Any]:
    """``call(*args)`` on one server, or on each primary of a cluster."""
    if isinstance(redis, RedisCluster):
        return [await getattr(redis, call)(*args, target_nodes=node) for node in redis.get_primaries()]
    return [await getattr(redis, call)(*args)]


async def eviction_policies(redis: Any) -> list[str | None]:
    """Each primary's ``maxmemory-policy``; None where CONFIG is disabled
    (managed Redis often renames it)."""
    try:
        found = await _per_primary(redis, "config_get", "maxmemory-policy")
    except ResponseError:
        return [None]
    return [answer.get("maxmemory-policy") for answer in found]


async def missing_commands(redis: Any) -> list[str]:
    """The commands of PROBES a server does not serve (renamed or
    disabled): Redis answers those with "unknown command". One round trip
    to a single server."""
    if isinstance(redis, RedisCluster):
        answers: list[Any] = []
        for call in PROBES.values():
            try:
                answers.append(await redis.execute_command(*call))
            except ResponseError as exc:
                answers.append(exc)
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for call in PROBES.values():
                pipe.execute_command(*call)
            answers = await pipe.execute(raise_on_error=False)
    return [
        name
        for name, answer in zip(PROBES, answers, strict=True)
        if isinstance(answer, ResponseError) and "unknown command" in str(answer).lower()
    ]


def _allowed(allow_eviction: bool | None) -> bool:
    if allow_eviction is not None:
        return allow_eviction
    return os.environ.get(ALLOW_EVICTION_ENV, "").strip().lower() in ("1", "true", "yes", "on")


async def guard(redis: Any, who: str, allow_eviction: bool | None = None) -> None:
    """Raises UnsafeRedis when ``redis`` would lose jobs: an eviction
    policy other than ``noeviction`` (unless allowed), or a command the
    engine needs renamed away. ``who`` names the caller in the message.
    An unreachable Redis raises ConnectionFailed."""
    with redis_errors(redis):
        await _guard(redis, who, allow_eviction)


async def _guard(redis: Any, who: str, allow_eviction: bool | None) -> None:
    facts = _facts.get(redis)
    if facts is None:  # once per client: every worker of a process shares it
        facts = _facts[redis] = (await missing_commands(redis), await eviction_policies(redis))
    missing, policies = facts
    if missing:
        raise UnsafeRedis(
            f"the {who} cannot start: Redis does not serve {', '.join(c.upper() for c in missing)} "
            "(renamed or disabled), which Conveyor needs"
        )
    evicting = sorted({p for p in policies if p and p != "noeviction"})
    if not evicting:
        return
    text = (
        f"maxmemory-policy is {', '.join(evicting)}: under memory pressure Redis deletes keys, "
        "jobs and locks among them, while the counts still show them"
    )
    if not _allowed(allow_eviction):
        raise UnsafeRedis(
            f"the {who} will not start: {text}. Set maxmemory-policy noeviction, or accept the "
            f"loss with allow_eviction=True or {ALLOW_EVICTION_ENV}=1"
        )
    log.warning("%s runs although %s", who, text, extra={"event": "redis_evicts"})


async def warn_once(redis: Any) -> None:
    """For producers: logs a warning once per client when its Redis may
    evict jobs. Never raises: an add must not fail for want of CONFIG."""
    try:
        if redis in _warned:
            return
        _warned.add(redis)
        evicting = sorted({p for p in await eviction_policies(redis) if p and p != "noeviction"})
    except Exception:  # an unreachable Redis shows itself in the add
        return
    if evicting:
        log.warning(
            "Redis maxmemory-policy is %s: under memory pressure it deletes keys, jobs among them; "
            "set it to noeviction",
            ", ".join(evicting),
            extra={"event": "redis_evicts"},
        )
