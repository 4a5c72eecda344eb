"""Guards for calls to an upstream, shared by every process through Redis:
a sliding-window rate limiter and a circuit breaker.

Both fit job handlers: a limiter whose wait would be long raises
:class:`RateLimited` instead of sleeping, and an open breaker raises
:class:`CircuitOpen` (a RateLimited); either, left to escape a handler,
puts the job back without using an attempt and holds its queue until the
upstream can be called again, so no worker sits blocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.clock import Clock, RedisClock, clock_arg
from conveyor.engine.codec import text
from conveyor.engine.commands import guards as commands
from conveyor.engine.keys import DEFAULT_PREFIX, check_name
from conveyor.engine.limits import RateLimit
from conveyor.errors import CircuitOpen, InvalidArgument, RateLimited, check_seconds

T = TypeVar("T")


class Limiter:
    """At most ``limit.max`` calls in any window of ``limit.per`` seconds,
    across every process using the same ``name``::

        spotify = Limiter(redis, "spotify", RateLimit(5, per=1.0))
        async with spotify:
            response = await client.get(url)

    Entering waits for a slot. When the wait would pass ``max_wait``
    seconds, it raises RateLimited(retry_after) instead (None: always wait).
    """

    def __init__(
        self,
        redis: RedisClient,
        name: str,
        limit: RateLimit,
        *,
        max_wait: float | None = 5.0,
        prefix: str = DEFAULT_PREFIX,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(limit, RateLimit):
            raise InvalidArgument(f"limit must be a RateLimit, not {limit!r}")
        self.redis = redis
        self.name = check_name("limiter", name)
        self.limit = limit
        self.max_wait = max_wait
        self.clock: Clock = clock or RedisClock()
        base = f"{prefix}:{{limiter/{name}}}"  # no queue or stream tag has a '/'
        self._keys = (f"{base}:log", f"{base}:n")

    async def try_acquire(self, n: int = 1) -> float:
        """Takes ``n`` slots if free: returns 0, or the seconds to wait."""
        if not 1 <= n <= self.limit.max:
            raise InvalidArgument(f"n must be between 1 and {self.limit.max}")
        until, now = await commands.limiter_take(
            self.redis,
            *self._keys,
            now=clock_arg(self.clock),
            max=self.limit.max,
            window_ms=self.limit.per_ms,
            n=n,
        )
        return 0.0 if until == 0 else max(0.001, (until - now) / 1000)

    async def acquire(self, n: int = 1) -> None:
        """Waits for ``n`` slots (see the class doc for ``max_wait``)."""
        waited = 0.0
        while True:
            wait = await self.try_acquire(n)
            if wait == 0:
                return
            if self.max_wait is not None and waited + wait > self.max_wait:
                raise RateLimited(wait, f"limiter {self.name!r} is full")
            await asyncio.sleep(wait)
            waited += wait

    async def __aenter__(self) -> Limiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A breaker as stored: its state, consecutive failures, and when an
    open breaker lets a probe through (None unless open)."""

    state: Literal["closed", "open", "half-open"]
    failures: int
    retry_at_ms: int | None


class CircuitBreaker:
    """Stops every process from calling an upstream that keeps failing::

        breaker = CircuitBreaker(redis, "ticketmaster", failure_threshold=5, cooldown=30)
        async with breaker:                  # raises CircuitOpen while open
            response = await client.get(url)

    ``failure_threshold`` consecutive failures (exceptions for which
    ``is_failure`` is true; by default any) open it for ``cooldown``
    seconds. Then it is half-open: one probe call at a time goes through; a
    success closes it, a failure opens it again. A probe that never reports
    back (its process died) expires after ``probe_timeout`` seconds.
    """

    def __init__(
        self,
        redis: RedisClient,
        name: str,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        probe_timeout: float | None = None,
        is_failure: Callable[[BaseException], bool] | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Clock | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise InvalidArgument("failure_threshold must be >= 1")
        check_seconds(cooldown, "cooldown", positive=True)
        if probe_timeout is not None:
            check_seconds(probe_timeout, "probe_timeout", positive=True)
        self.redis = redis
        self.name = check_name("breaker", name)
        self.failure_threshold = failure_threshold
        self.cooldown_ms = round(cooldown * 1000)
        self.probe_timeout_ms = round((probe_timeout or cooldown) * 1000)
        self.is_failure = is_failure or (lambda exc: True)
        self.clock: Clock = clock or RedisClock()
        self._key = f"{prefix}:{{breaker/{name}}}"

    async def enter(self) -> bool:
        """Lets a call through or raises CircuitOpen; True for a probe."""
        verdict, retry_at, now = await commands.breaker_enter(
            self.redis, self._key, now=clock_arg(self.clock), probe_timeout_ms=self.probe_timeout_ms
        )
        if verdict == "open":
            raise CircuitOpen(self.name, max(0.001, (retry_at - now) / 1000))
        return verdict == "probe"

    async def exit(self, ok: bool, probe: bool) -> str:
        """Reports a call's outcome; returns the breaker's state after it."""
        return await commands.breaker_exit(
            self.redis,
            self._key,
            now=clock_arg(self.clock),
            ok=ok,
            probe=probe,
            threshold=self.failure_threshold,
            cooldown_ms=self.cooldown_ms,
        )

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Runs ``await fn(*args, **kwargs)`` under the breaker."""
        async with self.guard():
            return await fn(*args, **kwargs)

    def guard(self) -> _Guarded:
        """One guarded call, as an async context manager (``async with
        breaker`` makes one per call)."""
        return _Guarded(self)

    async def __aenter__(self) -> CircuitBreaker:
        guarded = _Guarded(self)
        await guarded.__aenter__()
        _OPEN_GUARDS.set((*_OPEN_GUARDS.get(), guarded))  # per task, so one breaker serves many
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack = _OPEN_GUARDS.get()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i]._breaker is self:
                guarded = stack[i]
                _OPEN_GUARDS.set(stack[:i] + stack[i + 1 :])
                await guarded.__aexit__(kind, exc, tb)
                return

    async def state(self) -> BreakerState:
        st, failures, until = await self.redis.hmget(self._key, "st", "f", "until")
        name = text(st) if st is not None else "closed"
        label: Literal["closed", "open", "half-open"] = (
            "half-open" if name == "half" else "open" if name == "open" else "closed"
        )
        return BreakerState(label, int(failures or 0), int(until) if label == "open" and until else None)

    async def reset(self) -> None:
        """Closes the breaker (an operator's override)."""
        await self.redis.delete(self._key)


#: The guarded calls the current task is inside (``async with breaker``).
_OPEN_GUARDS: ContextVar[tuple[_Guarded, ...]] = ContextVar("conveyor_breaker_guards", default=())


class _Guarded:
    __slots__ = ("_breaker", "_probe")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._probe = False

    async def __aenter__(self) -> _Guarded:
        self._probe = await self._breaker.enter()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            await self._breaker.exit(True, self._probe)
        elif isinstance(exc, Exception) and self._breaker.is_failure(exc):
            await self._breaker.exit(False, self._probe)
        elif self._probe:
            # cancelled, or an error that says nothing about the upstream:
            # let the next probe go at once rather than after the timeout
            await self._breaker.redis.hdel(self._breaker._key, "probe")
