"""One reader per source, shared by every client of a server process.

A thousand dashboard tabs on one queue make one ``XREAD`` on its event
stream, not a thousand (each of which held a pooled connection in a
blocking read until the pool ran dry). A :class:`Topic` runs its source's
reader while it has subscribers and hands each item to every subscriber's
bounded buffer. A subscriber that falls ``buffer`` items behind is dropped:
its stream ends, and an ``EventSource`` reconnects with ``Last-Event-ID``
and catches up from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from conveyor.errors import ConnectionFailed

log = logging.getLogger("conveyor.server")

T = TypeVar("T")


class Outlet(Generic[T]):
    """A reader's side of its topic for one run (from the topic's first
    subscriber to its last): hands items over, says when the reader has
    found its place in the source, and keeps that place across retries."""

    def __init__(self, topic: Topic[T]) -> None:
        self._topic = topic
        #: where the reader is in its source (its own to set and read)
        self.position: Any = None

    async def publish(self, item: T) -> None:
        await self._topic.publish([item])

    async def publish_many(self, items: list[T]) -> None:
        """Items every subscriber gets at once (one write to each client)."""
        if items:
            await self._topic.publish(items)

    def ready(self) -> None:
        """Everything the source gets from now on will be published."""
        self._topic._ready.set()


#: Subscribers woken before the publisher lets the event loop run them.
WAKE_AT_ONCE = 25

#: A source's reader: runs until cancelled, handing each item to its outlet.
Reader = Callable[[Outlet[T]], Awaitable[None]]


class Subscriber(Generic[T]):
    """What one client receives: its topic's items, in order, as many at a
    time as arrived since it last looked; ended when the client is dropped
    for falling behind."""

    def __init__(self, buffer: int) -> None:
        self._items: list[T] = []
        self._arrived = asyncio.Event()
        self._buffer = buffer
        self.dropped = False

    def _offer(self, items: list[T]) -> bool:
        if self.dropped:
            return False
        if len(self._items) >= self._buffer:
            self.dropped = True  # it keeps what it holds; its stream ends after them
            self._arrived.set()
            return False
        self._items += items
        self._arrived.set()
        return True

    async def batches(self) -> AsyncIterator[list[T]]:
        while True:
            if not self._items:
                if self.dropped:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            batch, self._items = self._items, []
            yield batch

    async def __aiter__(self) -> AsyncIterator[T]:
        async for batch in self.batches():
            for item in batch:
                yield item


class Topic(Generic[T]):
    """The subscribers of one source, and its reader while it has any.
    With ``keep_last``, a new subscriber gets the latest item at once."""

    def __init__(self, key: Hashable, reader: Reader[T], *, keep_last: bool, buffer: int) -> None:
        self.key = key
        self._reader = reader
        self._keep_last = keep_last
        self._buffer = buffer
        self._subscribers: set[Subscriber[T]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last: list[T] = []
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber[T]:
        subscriber: Subscriber[T] = Subscriber(self._buffer)
        self._subscribers.add(subscriber)
        if self._keep_last and self._last:
            subscriber._offer(self._last[-1:])
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.get_running_loop().create_task(
                self._run(Outlet(self)), name=f"conveyor-feed {self.key}"
            )
        return subscriber

    async def started(self, within: float = 10.0) -> None:
        """Waits until the reader has found its place: an item the source
        gets after this returns reaches every subscriber."""
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError:
            raise ConnectionFailed(f"the live feed {self.key} did not start within {within:g} s") from None

    async def leave(self, subscriber: Subscriber[T]) -> None:
        """:meth:`unsubscribe` as an async callable, for a response's
        background task (which runs plain functions on other threads)."""
        self.unsubscribe(subscriber)

    def unsubscribe(self, subscriber: Subscriber[T]) -> None:
        self._subscribers.discard(subscriber)
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None
            self._last.clear()
            self._ready.clear()

    async def publish(self, items: list[T]) -> None:
        """Hands ``items`` to every subscriber, twenty-five at a time: the
        event loop runs their writes (and any request waiting) before the
        next are woken, so a thousand clients do not hold up the
        API for the time of a thousand writes."""
        if self._keep_last:
            self._last[:] = items[-1:]
        for i, subscriber in enumerate(list(self._subscribers)):
            if not subscriber._offer(items):
                self._subscribers.discard(subscriber)
            if i % WAKE_AT_ONCE == WAKE_AT_ONCE - 1:
                await asyncio.sleep(0)

    async def _run(self, outlet: Outlet[T]) -> None:
        failures = 0
        while True:
            try:
                await self._reader(outlet)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away, say: the clients wait, the reader tries again
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("feed %s: %s; retrying", self.key, exc, extra={"event": "feed_failed"})
                await asyncio.sleep(min(2.0, 0.05 * 2**failures))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class FanOut:
    """The topics of one server process, made on first use by key."""

    def __init__(self, buffer: int = 10_000) -> None:
        self.buffer = buffer
        self._topics: dict[Hashable, Topic[Any]] = {}

    def topic(self, key: Hashable, reader: Reader[T], *, keep_last: bool = False) -> Topic[T]:
        found = self._topics.get(key)
        if found is None:
            found = self._topics[key] = Topic(key, reader, keep_last=keep_last, buffer=self.buffer)
        topic: Topic[T] = found
        return topic

    async def aclose(self) -> None:
        for topic in self._topics.values():
            await topic.aclose()
        self._topics.clear()
