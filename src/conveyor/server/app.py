"""``create_app``: the ASGI app (FastAPI) that serves the queue API, live
updates and health. Mount it in your own Starlette or FastAPI app, or run
it with ``conveyor serve``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from conveyor.engine.cluster import RedisClient
from conveyor.engine.connection import connect
from conveyor.engine.keys import DEFAULT_PREFIX
from conveyor.engine.queue import Queue
from conveyor.engine.registry import queue_listed, stream_listed, stream_names
from conveyor.errors import (
    ConnectionFailed,
    InvalidArgument,
    JobIsActive,
    JobNotFound,
    PayloadError,
    PayloadTooLarge,
    QueueNotEmpty,
)
from conveyor.realtime.progress import ProgressBus
from conveyor.realtime.streams import EventBus
from conveyor.server import dashboard, live, routes
from conveyor.server import streams as stream_routes
from conveyor.server.auth import TokenGate
from conveyor.server.body_limit import BodyLimit
from conveyor.server.fanout import FanOut
from conveyor.server.feeds import ProgressHub
from conveyor.server.same_origin import SameOrigin

if TYPE_CHECKING:
    from conveyor.engine.job import Job
    from conveyor.tasks.app import Conveyor

DEFAULT_MAX_BODY = 1024 * 1024


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


def create_app(
    redis: RedisClient | str | None = None,
    *,
    prefix: str | None = None,
    token: str | None = None,
    streams: Sequence[str] = (),
    progress_namespace: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    cors_origins: Sequence[str] = (),
    tasks: Conveyor | None = None,
    events_redis: RedisClient | str | None = None,
) -> FastAPI:
    """The Conveyor API as an ASGI app.

    ``redis``: a client, or a Redis URL (default: ``connect()`` from the
    environment; a client the app makes is closed with it). ``token``:
    required by every ``/api`` route (default: ``CONVEYOR_API_TOKEN``; none
    means open). ``streams``: event bus streams
    to report on. Bodies over ``max_body`` bytes get 413; CORS is off
    unless ``cors_origins`` names origins. ``tasks``: a Conveyor app; a job
    added to one of its queues must name one of its tasks, and its data is
    checked as that task's arguments (422 otherwise), with the task's job
    options as defaults; the app's Redis serves when ``redis`` is not
    given, and its key prefix and progress namespace when those are not.
    ``events_redis``: a client or URL of the Redis that holds the event
    streams, when they live apart from the queues (a URL's client is
    closed with the app). At ``/`` the app sends a browser on to the
    dashboard.
    """
    if tasks is not None:
        prefix = tasks.prefix if prefix is None else prefix
        progress_namespace = tasks.progress_namespace if progress_namespace is None else progress_namespace
    owned = (redis is None and tasks is None) or isinstance(redis, str)  # the app closes its own client
    if isinstance(redis, str):
        redis = connect(redis)
    owned_events = isinstance(events_redis, str)
    if isinstance(events_redis, str):
        events_redis = connect(events_redis)
    state = ServerState(
        redis,
        events=events_redis,
        tasks=tasks,
        prefix=DEFAULT_PREFIX if prefix is None else prefix,
        token=token if token is not None else os.environ.get("CONVEYOR_API_TOKEN") or None,
        progress_namespace="progress" if progress_namespace is None else progress_namespace,
        stream_names=streams,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await state.aclose_feeds()
        if owned:
            await state.redis.aclose()
        if owned_events:
            await state.events_redis.aclose()

    app = FastAPI(
        title="Conveyor",
        summary="Queues, jobs, schedules, dead letters and workers of a Conveyor deployment.",
        lifespan=lifespan,
    )
    app.state.conveyor = state
    app.include_router(routes.router)
    app.include_router(stream_routes.router)
    app.include_router(live.router)
    app.include_router(dashboard.router)
    app.include_router(dashboard.root)
    _errors(app)
    # outermost last: CORS answers preflights, then the token gate, cross-site
    # refusals, then the body limit
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(SameOrigin, allowed_origins=cors_origins)
    app.add_middleware(TokenGate, token=lambda: state.token)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"])
    return app


def _errors(app: FastAPI) -> None:
    """Engine errors as clear 4xx and 503 answers."""
    table: list[tuple[type[Exception], int]] = [
        (JobNotFound, status.HTTP_404_NOT_FOUND),
        (JobIsActive, status.HTTP_409_CONFLICT),
        (QueueNotEmpty, status.HTTP_409_CONFLICT),
        (PayloadTooLarge, status.HTTP_413_CONTENT_TOO_LARGE),
        (PayloadError, status.HTTP_422_UNPROCESSABLE_CONTENT),
        (InvalidArgument, status.HTTP_422_UNPROCESSABLE_CONTENT),
        (ConnectionFailed, status.HTTP_503_SERVICE_UNAVAILABLE),
    ]
    for exc_type, code in table:

        async def handler(request: Request, exc: Exception, code: int = code) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        app.add_exception_handler(exc_type, handler)
