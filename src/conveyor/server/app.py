"""``create_app``: the ASGI app (FastAPI) that serves the queue API, live
updates and health. Mount it in your own Starlette or FastAPI app, or run
it with ``conveyor serve``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.connection import connect
from conveyor.engine.keys import DEFAULT_PREFIX
from conveyor.errors import (
    ConnectionFailed,
    InvalidArgument,
    JobIsActive,
    JobNotFound,
    PayloadError,
    PayloadTooLarge,
    QueueNotEmpty,
)
from conveyor.server import dashboard, live, routes
from conveyor.server import streams as stream_routes
from conveyor.server.auth import TokenGate
from conveyor.server.body_limit import BodyLimit
from conveyor.server.same_origin import SameOrigin
from conveyor.server.state import ServerState

if TYPE_CHECKING:
    from conveyor.tasks.app import Conveyor

DEFAULT_MAX_BODY = 1024 * 1024


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
