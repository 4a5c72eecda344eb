"""The shared rate limiter and circuit breaker that handlers call."""

from __future__ import annotations

from typing import NamedTuple

from conveyor.engine.client.channel import Arg
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.command import Command
from conveyor.engine.codec import text


class Taken(NamedTuple):
    until: int  # 0 when taken, else when to ask again (ms)
    now: int


class Verdict(NamedTuple):
    state: str  # 'closed', 'probe' or 'open'
    retry_at_ms: int  # when open
    now: int


LIMITER_TAKE = Command(
    "limiter_take", keys=("log", "count"), argv=("now", "max", "window_ms", "n"), reply=Taken
)
BREAKER_ENTER = Command(
    "breaker_enter", keys=("breaker_hash",), argv=("now", "probe_timeout_ms"), reply=Verdict
)
BREAKER_EXIT = Command(
    "breaker_exit", keys=("breaker_hash",), argv=("now", "outcome", "probe", "threshold", "cooldown_ms")
)


async def limiter_take(
    client: RedisClient, log: str, count: str, *, now: Arg, max: int, window_ms: int, n: int
) -> Taken:
    """Takes ``n`` of ``max`` slots in a sliding window of ``window_ms``."""
    until, at = await LIMITER_TAKE.run(client, [log, count], [now, max, window_ms, n])
    return Taken(int(until), int(at))


async def breaker_enter(client: RedisClient, breaker: str, *, now: Arg, probe_timeout_ms: int) -> Verdict:
    state, retry_at, at = await BREAKER_ENTER.run(client, [breaker], [now, probe_timeout_ms])
    return Verdict(text(state), int(retry_at), int(at))


async def breaker_exit(
    client: RedisClient, breaker: str, *, now: Arg, ok: bool, probe: bool, threshold: int, cooldown_ms: int
) -> str:
    """Records a call's outcome; returns the state after: 'closed', 'open' or 'half'."""
    state = await BREAKER_EXIT.run(
        client, [breaker], [now, "ok" if ok else "fail", 1 if probe else 0, threshold, cooldown_ms]
    )
    return text(state)
