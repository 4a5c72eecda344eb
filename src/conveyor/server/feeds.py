"""The live sources the server fans out to its clients (see fanout.py):
a queue's events, the queue list, and progress subjects.

Each is read once per server process: a queue's event stream by one
``XREAD`` loop, the queue list by one poller per interval, and every
progress subject through one pub/sub connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from conveyor.engine.codec import dumps
from conveyor.engine.events import QueueEvent, QueueEvents
from conveyor.engine.queue import Queue
from conveyor.realtime.progress import ProgressBus, ProgressStatus
from conveyor.server.fanout import Outlet, Reader, Subscriber

log = logging.getLogger("conveyor.server")


@dataclass(frozen=True, slots=True)
class Frame:
    """A queue event as it goes on the wire (its Server-Sent Events text),
    encoded once for every client."""

    id: int
    data: bytes

    @classmethod
    def of(cls, event: QueueEvent) -> Frame:
        payload = dumps({"job_id": event.job_id, "time": event.time, **event.data})
        return cls(
            int(event.id),
            b"event: %b\r\nid: %b\r\ndata: %b\r\n\r\n" % (event.event.encode(), event.id.encode(), payload),
        )


#: Seconds a queue's feed lets events gather after each read: a client gets
#: at most 1 / FLUSH_INTERVAL writes a second, however busy the queue (each
#: write costs the server about 0.08 ms of CPU; see docs/live.md).
FLUSH_INTERVAL = 0.25


def queue_events_reader(queue: Queue) -> Reader[Frame]:
    """Reads a queue's events from the stream's end (where it stood when
    the feed started) on, once; after an outage it goes on where it
    stopped, so no subscriber misses one."""

    async def read(outlet: Outlet[Frame]) -> None:
        if outlet.position is None:
            outlet.position = await QueueEvents(queue).position()
        outlet.ready()
        async for page in QueueEvents(queue, after=str(outlet.position)).pages():
            outlet.position = max(outlet.position, int(page[-1].id))
            await outlet.publish_many([Frame.of(event) for event in page])
            # what happens meanwhile goes to every client in one write
            await asyncio.sleep(FLUSH_INTERVAL)

    return read


async def queue_event_frames(queue: Queue, live: Subscriber[Frame], after: int) -> AsyncIterator[list[Frame]]:
    """A client's events after ``after``, in batches: first those the stream
    holds (read on their own, non-blocking: a resume), then the shared live
    feed (subscribed before this is called), each event once."""
    last = after
    async for page in QueueEvents(queue, after=str(after), follow=False).pages():
        last = max(last, int(page[-1].id))
        yield [Frame.of(event) for event in page]
    async for batch in live.batches():
        fresh = [frame for frame in batch if frame.id > last]
        if fresh:
            last = fresh[-1].id
            yield fresh


def queue_list_reader(describe: Callable[[], Awaitable[list[Any]]], interval: float) -> Reader[bytes]:
    """Polls the queue list every ``interval`` seconds; publishes its JSON
    when it changed (a topic with ``keep_last`` gives new clients the
    latest at once)."""

    async def read(outlet: Outlet[bytes]) -> None:
        last = b""
        while True:
            snapshot = dumps(await describe())
            if snapshot != last:
                last = snapshot
                await outlet.publish(snapshot)
            outlet.ready()
            await asyncio.sleep(interval)

    return read


class ProgressHub:
    """Every progress subject a server's clients follow, through one
    pub/sub connection: subscribed to a subject's channel while a client
    follows it. An app that streams progress to its own clients (a page
    per import, say) keeps one per process instead of a Redis connection
    per client: ``follower, status = await hub.open(subject)``, iterate
    ``follower``, then ``await hub.close(subject, follower)``. A client
    that falls ``buffer`` updates behind is dropped (its iteration ends)."""

    def __init__(self, bus: ProgressBus, buffer: int = 1000) -> None:
        self.bus = bus
        self.buffer = buffer
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._followers: dict[str, set[Subscriber[ProgressStatus]]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        # redis-py's PubSub takes its connection on its first command: two
        # first commands at once would each take one
        self._lock = asyncio.Lock()

    @property
    def subjects(self) -> int:
        return len(self._followers)

    async def open(self, subject: str) -> tuple[Subscriber[ProgressStatus], ProgressStatus | None]:
        """Follows ``subject``: a subscriber already listening (no update
        reported after this returns is missed) and the status now."""
        channel = self.bus._channel(subject)
        follower: Subscriber[ProgressStatus] = Subscriber(self.buffer)
        followers = self._followers.get(channel)
        if followers is None:
            followers = self._followers[channel] = set()
            self._confirmed[channel] = asyncio.Event()
            await self._subscribe(channel)
        followers.add(follower)
        try:
            async with asyncio.timeout(10):
                await self._confirmed[channel].wait()
            status = await self.bus.get(subject)
        except BaseException:
            await self.close(subject, follower)
            raise
        return follower, status

    async def close(self, subject: str, follower: Subscriber[ProgressStatus]) -> None:
        """Stops following (an async callable: response background tasks
        run plain functions on other threads)."""
        channel = self.bus._channel(subject)
        followers = self._followers.get(channel)
        if followers is None:
            return
        followers.discard(follower)
        if not followers:
            del self._followers[channel]
            self._confirmed.pop(channel, None)
            if self._pubsub is not None:
                await self._unsubscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = await self.bus.pubsub()
            await self._pubsub.subscribe(channel)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="conveyor-progress-feed")

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel not in self._followers:  # nobody came back for it meanwhile
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        failures = 0
        while self._followers:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the pub/sub client reconnects and resubscribes
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("progress feed: %s; retrying", exc, extra={"event": "feed_failed"})
                await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                continue
            if message is None:
                continue
            channel = message.get("channel")
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            kind = message.get("type")
            if kind == "subscribe" and (confirmed := self._confirmed.get(channel)) is not None:
                confirmed.set()
            elif kind == "message":
                status = ProgressStatus.from_json(message["data"])
                for follower in list(self._followers.get(channel, ())):
                    follower._offer([status])

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
        self._followers.clear()
