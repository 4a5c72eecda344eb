"""Following a Sentinel failover at once.

A client of a Sentinel-managed primary asks the sentinels where the
primary is whenever it connects, but a connection that stays open keeps
talking to the server it was opened to. After a failover the old primary
may live on for seconds before the sentinels demote it, taking writes
that the new primary never sees: adds, completions and, worst, lock
renewals (the new primary's locks then lapse and running jobs are taken
for stalled).

The watch subscribes to the sentinels' ``+switch-master`` announcements
(and, in case one was missed, asks them every few seconds); when its
service's primary changes it cuts every connection to the old one: the
pipelined channel, the redis-py pool, and the blocking pools of lease
threads. Commands in flight fail as connection errors, and follow the
resend rules of any lost reply; the next command reaches the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.asyncio.sentinel import SentinelConnectionPool

log = logging.getLogger("conveyor.failover")
_ANNOUNCEMENT = "+switch-master"
#: Seconds between checks of the primary's address when no announcement came.
RECHECK = 3.0


class FailoverWatch:
    def __init__(self, pool: SentinelConnectionPool, abandon: Callable[[], None]) -> None:
        self._pool = pool
        self._abandon = abandon
        self._blocking: weakref.WeakSet[redis.ConnectionPool] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        self._primary: tuple[str, int] | None = None
        self.switches = 0

    def follow(self, pool: redis.ConnectionPool) -> None:
        """Cuts ``pool``'s connections too (a lease thread's) on a switch."""
        self._blocking.add(pool)

    def start(self) -> None:
        """Starts watching in the running event loop (again, after a loop
        change); does nothing outside one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._task = loop.create_task(self._run(), name="conveyor-failover-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # its loop is gone or elsewhere: nothing to wait for
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        service = self._pool.service_name
        while True:
            for sentinel in list(self._pool.sentinel_manager.sentinels):
                try:
                    await self._listen(sentinel, service)
                except (redis.RedisError, OSError, TimeoutError) as exc:
                    log.debug("sentinel watch for %s: %s", service, exc)
            await asyncio.sleep(0.5)

    async def _listen(self, sentinel: Any, service: str) -> None:
        """Listens to one sentinel until it fails."""
        pubsub = sentinel.pubsub()
        try:
            await pubsub.subscribe(_ANNOUNCEMENT)
            loop = asyncio.get_running_loop()
            while True:
                await self._check()
                recheck = loop.time() + RECHECK
                while (left := recheck - loop.time()) > 0:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
                    if message is None:
                        continue
                    # "<service> <old ip> <old port> <new ip> <new port>"
                    parts = message["data"].decode().split()
                    if len(parts) == 5 and parts[0] == service:
                        await self._now_at((parts[3], int(parts[4])))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _check(self) -> None:
        address = await self._pool.sentinel_manager.discover_master(self._pool.service_name)
        await self._now_at((str(address[0]), int(address[1])))

    async def _now_at(self, address: tuple[str, int]) -> None:
        known = self._primary or self._pool.master_address
        self._primary = address
        if known is None or known == address:
            return
        self.switches += 1
        log.warning(
            "Redis primary of %s moved from %s:%d to %s:%d; reconnecting",
            self._pool.service_name,
            *known,
            *address,
        )
        self._abandon()
        await self._pool.disconnect(inuse_connections=True)
        for pool in list(self._blocking):
            pool.disconnect(inuse_connections=True)
