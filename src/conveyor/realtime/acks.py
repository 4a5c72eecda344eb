"""Acknowledging a group's entries in batches: while one batch is on its
way, the next one collects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.commands.events import ack_events
from conveyor.engine.keys import StreamKeys
from conveyor.errors import ConveyorError

log = logging.getLogger("conveyor.events")
_FAILURES = (ConveyorError, RedisError, OSError)


class Acknowledger:
    """Sends the acknowledgements of ``group`` (clearing the errors earlier
    deliveries recorded), then calls ``done`` with each id sent. A batch
    that fails is sent again; after :meth:`close`, three failures give up
    (the entries are then delivered again later)."""

    def __init__(self, redis: RedisClient, keys: StreamKeys, group: str, done: Callable[[str], None]) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.done = done
        #: Ids waiting to be sent.
        self.pending: list[str] = []
        self._wake = asyncio.Event()
        self._closing = False

    def ack(self, entry_id: str) -> None:
        self.pending.append(entry_id)
        self._wake.set()

    def open(self) -> None:
        self._closing = False

    def close(self) -> None:
        """The loop sends what is pending once more, then returns."""
        self._closing = True
        self._wake.set()

    async def loop(self) -> None:
        """Flushes acknowledgements as they come; after closing, once more."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            closing = self._closing
            await self.flush(final=closing)
            if closing:
                return

    async def flush(self, *, final: bool = False) -> None:
        failures = 0
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await ack_events(self.redis, self.keys, self.group, batch)
            except _FAILURES as exc:
                failures += 1
                self.pending = batch + self.pending
                if final and failures >= 3:
                    log.warning(
                        "group %s: %d acknowledgements lost (%s); redelivered later",
                        self.group,
                        len(batch),
                        exc,
                    )
                    return
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))
                continue
            for entry_id in batch:
                self.done(entry_id)
