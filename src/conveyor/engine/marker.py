"""Waiting for work: an idle worker blocks on its queue's marker (a sorted
set every add, promotion and finished job touches) instead of polling,
wakes when its next delayed job is due, and stays off a held (rate
limited) queue until it opens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from conveyor.engine.client.cluster import RedisClient, dedicated_connection


class MarkerWatch:
    """Blocks on ``marker`` with ``BZPOPMIN`` each time :attr:`idle` is
    set, then calls ``wake`` (the marker moved, or the block timed out:
    look again). It uses a connection of its own, closed to stop it:
    redis-py lets a blocking command run to its timeout even when the task
    is cancelled."""

    def __init__(
        self,
        redis: RedisClient,
        marker: str,
        block_timeout: float,
        nudge: asyncio.Event,
        wake: Callable[[], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.redis = redis
        self.marker = marker
        self.block_timeout = block_timeout
        self.nudge = nudge
        self.wake = wake
        self.stopping = stopping
        #: Set by the worker when its last claim found the queue dry.
        self.idle = asyncio.Event()
        #: The queue is held (rate limited or paused for a while): no claims.
        self.held = False
        self._conn: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._hold_timer: asyncio.TimerHandle | None = None

    def hold(self, delay: float) -> None:
        """No claims for ``delay`` seconds, then a nudge."""
        self.held = True
        if self._hold_timer:
            self._hold_timer.cancel()
        self._hold_timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self) -> None:
        self.held = False
        self._hold_timer = None
        self.nudge.set()

    def after(self, delay: float) -> None:
        """Wake in ``delay`` seconds (the next delayed job or group turn)."""
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self.wake)

    def cancel_timers(self) -> None:
        for timer in (self._timer, self._hold_timer):
            if timer:
                timer.cancel()

    async def run(self) -> None:
        failures = 0
        conn: Any = None
        release: Any = None
        try:
            while not self.stopping():
                await self.idle.wait()
                self.idle.clear()
                if self.stopping():
                    break
                try:
                    if conn is None:
                        conn, release = await dedicated_connection(self.redis, self.marker)
                    self._conn = conn
                    if self.stopping():
                        # stop() came while the connection was being made: it
                        # found none to close, and a block would run its course
                        break
                    await conn.send_command("BZPOPMIN", self.marker, self.block_timeout)
                    await conn.read_response()
                    failures = 0
                except Exception:
                    if conn is not None:
                        # on a cluster, the slot may be served elsewhere now
                        await conn.disconnect()
                        await release(conn)
                        conn = None
                    if self.stopping():
                        break
                    failures += 1
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                self.wake()
        finally:
            self._conn = None
            if conn is not None:
                await conn.disconnect()
                await release(conn)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Ends :meth:`run` (running as ``task``) once ``stopping()`` is true."""
        self.idle.set()
        conn = self._conn
        if conn is not None:
            await conn.disconnect()
        await task
