"""The entries an event consumer holds: kept while it handles them,
claimed from other consumers when they stayed pending too long, released
when it stops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

from conveyor.engine.commands.events import Member, claim_events, forget_consumer, touch_events
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.engine.client.cluster import RedisClient
    from conveyor.engine.keys import StreamKeys

log = logging.getLogger("conveyor.events")
_FAILURES = (ConveyorError, RedisError, OSError)

#: Dead-lettered entries as the scripts report them: id, type, error, reason.
DeadEntries = list[tuple[str, str, str, str]]


class Delivery:
    """An entry in hand. A claimed one has no fields until it is started;
    ``suspect``: its last start ended without a recorded outcome (the
    consumer crashed or froze), so it runs alone."""

    __slots__ = ("deliveries", "fields", "id", "suspect")

    def __init__(
        self, entry_id: str, fields: dict[str, bytes] | None, deliveries: int = 1, suspect: bool = False
    ) -> None:
        self.id = entry_id
        self.fields = fields
        self.deliveries = deliveries
        self.suspect = suspect


class _Pending(Protocol):
    @property
    def id(self) -> str: ...


class HeldBus(Protocol):
    """What :class:`Holdings` uses of its consumer's stream (an ``EventBus``)."""

    @property
    def keys(self) -> StreamKeys: ...
    @property
    def dead_max_len(self) -> int: ...
    async def pending(
        self, group: str, *, count: int = 100, consumer: str | None = None
    ) -> Sequence[_Pending]: ...
    async def forget_idle_consumers(self, group: str, *, idle: float) -> list[str]: ...


class Holder(Protocol):
    """What :class:`Holdings` uses of its consumer (an ``EventConsumer``)."""

    @property
    def bus(self) -> HeldBus: ...
    @property
    def redis(self) -> RedisClient: ...
    @property
    def group(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def member(self) -> Member: ...
    @property
    def prefetch(self) -> int: ...
    @property
    def claim_idle_ms(self) -> int: ...
    @property
    def claim_interval(self) -> float: ...
    @property
    def forget_after(self) -> float: ...


class Holdings:
    """What ``consumer`` holds (:attr:`held`), touched every
    ``claim_idle / 3`` seconds so that no live consumer loses an entry
    while its handler runs; and every ``claim_interval``, entries pending
    on others past ``claim_idle`` claimed for ``dispatch``."""

    def __init__(
        self,
        consumer: Holder,
        dispatch: Callable[[Iterable[Delivery]], None],
        dead_lettered: Callable[[DeadEntries], Awaitable[None]],
        stop: asyncio.Event,
    ) -> None:
        self.consumer = consumer
        self.dispatch = dispatch
        self.dead_lettered = dead_lettered
        self.stop = stop
        self.held: dict[str, Delivery] = {}
        #: Held entries another consumer claimed meanwhile.
        self.lost: set[str] = set()
        self.cursor = "0-0"
        #: Set when an entry is let go: there is room to read more.
        self.room = asyncio.Event()

    def drop(self, entry_id: str) -> None:
        self.held.pop(entry_id, None)
        self.lost.discard(entry_id)
        self.room.set()

    async def keep_loop(self) -> None:
        c = self.consumer
        touch_every = c.claim_idle_ms / 3000
        last_touch = time.monotonic()
        last_forget = time.monotonic()
        while True:
            await asyncio.sleep(c.claim_interval)
            try:
                if self.held and time.monotonic() - last_touch >= touch_every:
                    await self.touch(list(self.held), 0)
                    last_touch = time.monotonic()
                await self.claim()
                if time.monotonic() - last_forget >= 60:
                    last_forget = time.monotonic()
                    await c.bus.forget_idle_consumers(c.group, idle=c.forget_after)
            except _FAILURES as exc:
                log.warning("%r: keeping or claiming entries failed: %s", c, exc)

    async def touch(self, ids: list[str], idle_ms: int) -> None:
        if not ids:
            return
        c = self.consumer
        for entry_id in await touch_events(c.redis, c.member, ids, idle_ms=idle_ms):
            if entry_id in self.held and entry_id not in self.lost:
                self.lost.add(entry_id)
                log.warning("%r: lost %s to another consumer while handling it", c, entry_id)

    async def claim(self) -> None:
        c = self.consumer
        for _ in range(10):
            room = c.prefetch - len(self.held)
            if room <= 0 or self.stop.is_set():
                return
            self.cursor, claimed, dead = await claim_events(
                c.redis,
                c.member,
                min_idle_ms=c.claim_idle_ms,
                cursor=self.cursor,
                count=room,
                dead_letter_cap=c.bus.dead_max_len,
            )
            if dead:
                await self.dead_lettered(dead)
            self.dispatch(Delivery(eid, None, suspect=not clean) for eid, clean in claimed)
            if self.cursor == "0-0":
                return

    async def release(self) -> None:
        """Hands entries not finished back to the group at once: those it
        holds, and those Redis delivered to it by a read whose reply it
        never took (the read was cut short by the stop)."""
        c = self.consumer
        try:
            unseen = await c.bus.pending(c.group, count=2 * c.prefetch + len(self.held), consumer=c.name)
            ids = list(dict.fromkeys([*self.held, *(entry.id for entry in unseen)]))
            await self.touch(ids, c.claim_idle_ms)
        except _FAILURES as exc:
            log.warning(
                "%r: could not release %d entries (%s); claimable after claim_idle",
                self.consumer,
                len(self.held),
                exc,
            )
        self.held.clear()

    async def leave(self) -> None:
        """Takes the consumer off the group (when it holds nothing)."""
        c = self.consumer
        try:
            await forget_consumer(c.redis, c.member)
        except _FAILURES as exc:
            log.debug("%r: could not leave the group: %s", c, exc)
