"""The server's state: what its routes share, kept on
``app.state.conveyor`` (no globals): the Redis client (following a
Conveyor app's), the queue and stream handles, the progress bus and the
live feeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, status

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.connection import connect
from conveyor.engine.queue import Queue
from conveyor.engine.registry import queue_listed, stream_listed, stream_names
from conveyor.realtime.progress import ProgressBus
from conveyor.realtime.streams import EventBus
from conveyor.server.fanout import FanOut
from conveyor.server.feeds import ProgressHub

if TYPE_CHECKING:
    from conveyor.engine.job import Job
    from conveyor.tasks.app import Conveyor


class ServerState:
    """What the routes share (kept on ``app.state.conveyor``, no globals).

    Given ``tasks`` and no client of its own, it follows the app's client:
    an app pointed at another Redis (``Conveyor.use_redis``, as tests do)
    is served from there on, with fresh feeds and handles. ``events``: the
    client of the event streams when they live on a Redis of their own."""

    def __init__(
        self,
        redis: RedisClient | None,
        *,
        prefix: str,
        token: str | None,
        progress_namespace: str,
        stream_names: Sequence[str] = (),
        tasks: Conveyor | None = None,
        events: RedisClient | None = None,
    ) -> None:
        self.prefix = prefix
        self._events = events
        self.token = token
        self.progress_namespace = progress_namespace
        self.stream_names = tuple(stream_names)
        #: An app whose tasks check the jobs added to its queues.
        self.tasks = tasks
        self._follows = redis is None and tasks is not None
        self._client: RedisClient | None = None
        self._bind(redis if redis is not None else tasks.redis if tasks is not None else connect())

    def _bind(self, client: RedisClient) -> None:
        self._client = client
        self._progress = ProgressBus(client, namespace=self.progress_namespace)
        events = self._events or client
        self._streams = {name: EventBus(events, name, prefix=self.prefix) for name in self.stream_names}
        self.queues: dict[str, Queue] = {}
        #: One reader per live source, shared by the clients of this process.
        self.fanout = FanOut()
        self.progress_hub: ProgressHub | None = None

    def _follow(self) -> None:
        """Rebinds to the app's client when the app has moved to another."""
        if self._follows and self.tasks is not None and self.tasks.redis is not self._client:
            self._bind(self.tasks.redis)

    @property
    def redis(self) -> RedisClient:
        self._follow()
        assert self._client is not None
        return self._client

    @property
    def events_redis(self) -> RedisClient:
        """The Redis of the event streams (the queues' unless given one)."""
        return self._events or self.redis

    @property
    def progress(self) -> ProgressBus:
        self._follow()
        return self._progress

    @property
    def streams(self) -> dict[str, EventBus]:
        self._follow()
        return self._streams

    def progress_feed(self) -> ProgressHub:
        if self.progress_hub is None:
            self.progress_hub = ProgressHub(self.progress)
        return self.progress_hub

    async def aclose_feeds(self) -> None:
        await self.fanout.aclose()
        if self.progress_hub is not None:
            await self.progress_hub.aclose()
            self.progress_hub = None

    async def queue(self, name: str) -> Queue:
        """The queue called ``name``; 404 unless it has been used."""
        self._follow()
        handle = self.queues.get(name)
        if handle is None and self.tasks is not None and name in self.tasks.queues:
            handle = self.queues[name] = self.tasks.queues[name].queue
        if handle is None:
            if not await queue_listed(self.redis, name, self.prefix):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown queue {name!r}")
            handle = self.queues[name] = Queue(name, self.redis, prefix=self.prefix)
        return handle

    async def add(self, queue: Queue, name: str, data: Any, options: dict[str, Any]) -> Job:
        """Adds a job; to a queue of ``tasks``, as its task called ``name``
        (data checked as the task's arguments, the task's job options under
        ``options``)."""
        declared = self.tasks.queues.get(queue.name) if self.tasks is not None else None
        if declared is None:
            return await queue.add(name, data, **options)
        return await declared.add_named(name, data, **options)

    async def stream_list(self) -> list[str]:
        """The streams given to the server and those used under its prefix."""
        return sorted(set(self.streams) | set(await stream_names(self.events_redis, self.prefix)))

    async def stream(self, name: str) -> EventBus:
        """The event stream called ``name``; 404 unless it was given to the
        server or has been used."""
        bus = self.streams.get(name)
        if bus is None:
            if not await stream_listed(self.events_redis, name, self.prefix):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown event stream {name!r}")
            bus = self._streams[name] = EventBus(self.events_redis, name, prefix=self.prefix)
        return bus
