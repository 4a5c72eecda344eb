"""Clocks. By default every script reads Redis ``TIME``, so workers on
machines with skewed clocks still agree; tests inject a manual clock."""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Clock(Protocol):
    """Gives the time in milliseconds for scripts, or None to use Redis TIME."""

    def now_ms(self) -> int | None: ...


class RedisClock:
    """The default clock: scripts read Redis ``TIME``."""

    def now_ms(self) -> int | None:
        return None


class ManualClock:
    """A clock that moves only when told to (thread-safe); for tests."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += int(seconds * 1000)


async def current_ms(clock: Clock, redis: Any) -> int:
    """The time scripts will see: the clock's, or Redis ``TIME`` in ms."""
    now = clock.now_ms()
    if now is None:
        seconds, micros = await redis.time()
        now = int(seconds) * 1000 + int(micros) // 1000
    return now


def clock_arg(clock: Clock) -> str:
    """The ``now`` argument passed to scripts: '' means Redis TIME."""
    now = clock.now_ms()
    return "" if now is None else str(now)
