"""Live and operational routes: queue events and progress over Server-Sent
Events (resumable with ``Last-Event-ID``), a polling fallback, ``/health``
and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from conveyor.engine.client.connection import ping
from conveyor.engine.clock import RedisClock, current_ms
from conveyor.engine.codec import dumps, text
from conveyor.engine.events import QueueEvents
from conveyor.engine.registry import count_alive, queue_names
from conveyor.engine.states import JobState
from conveyor.realtime.progress import ProgressStatus, status_then_updates
from conveyor.server.auth import carries_token, require_token
from conveyor.server.feeds import queue_event_frames, queue_events_reader, queue_list_reader
from conveyor.server.models import Health, problems
from conveyor.server.routes import describe_all

HEALTH_TIMEOUT = 1.0
router = APIRouter()
api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], responses=problems(401))


# -- Server-Sent Events ----------------------------------------------------------


@api.get("/queues/{name}/events", tags=["live"], response_class=EventSourceResponse, responses=problems(404))
async def queue_events(
    request: Request,
    name: str,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(pattern=r"^\d+$")] = None,
) -> EventSourceResponse:
    """The queue's job events as they happen (event: the transition; data:
    job id, time and details). Resumes after ``Last-Event-ID`` (or
    ``?after=``); ``?after=0`` replays what the stream still holds."""
    state = request.app.state.conveyor
    queue = await state.queue(name)
    resume = last_event_id if last_event_id and last_event_id.isdigit() else after
    # Subscribed to the queue's shared feed, the feed's reader in place,
    # and "from now on" read after that, all before the headers go out: a
    # client that has the headers misses nothing, and a thousand clients
    # make one XREAD, not a thousand. Each event is encoded once for all,
    # and a client gets what arrived meanwhile in one write.
    topic = state.fanout.topic(("events", name), queue_events_reader(queue))
    live = topic.subscribe()
    try:
        await topic.started()
        start = int(resume) if resume is not None else await QueueEvents(queue).position()
    except BaseException:
        topic.unsubscribe(live)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            async for frames in queue_event_frames(queue, live, start):
                yield b"".join(frame.data for frame in frames)
        finally:
            topic.unsubscribe(live)

    # unsubscribed also when the client left before the body began
    return EventSourceResponse(body(), ping=15, background=BackgroundTask(topic.leave, live))


@api.get("/live/queues", tags=["live"], response_class=EventSourceResponse)
async def live_queues(
    request: Request, interval: Annotated[float, Query(ge=0.1, le=60)] = 0.5
) -> EventSourceResponse:
    """Every queue's summary (as ``GET /api/queues``), sent at once and then
    whenever it changes (looked at every ``interval`` seconds, once for all
    the clients of this server that asked for that interval)."""
    state = request.app.state.conveyor

    async def describe() -> list[Any]:
        return [queue.model_dump(mode="json") for queue in await describe_all(state)]

    topic = state.fanout.topic(("queues", interval), queue_list_reader(describe, interval), keep_last=True)
    live = topic.subscribe()

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for snapshot in live:
            yield ServerSentEvent(data=snapshot.decode(), event="queues")

    return EventSourceResponse(stream(), ping=15, background=BackgroundTask(topic.leave, live))


@api.get("/progress", tags=["live"])
async def active_progress(request: Request) -> list[dict[str, Any]]:
    """Every subject whose work is still under way."""
    return [s.raw for s in await request.app.state.conveyor.progress.active()]


@api.get("/progress/{subject:path}/stream", tags=["live"], response_class=EventSourceResponse)
async def progress_stream(request: Request, subject: str) -> EventSourceResponse:
    """The status of ``subject`` now, then each update, until it finishes."""
    # Subscribed before the headers go out: a client that has them misses
    # no update reported afterwards. One pub/sub connection serves them all.
    hub = request.app.state.conveyor.progress_feed()
    follower, status = await hub.open(subject)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for update in status_then_updates(status, follower):
            yield ServerSentEvent(data=dumps(update.raw).decode(), event="progress")

    # closed after the response, also when the client left before its body began
    return EventSourceResponse(stream(), ping=15, background=BackgroundTask(hub.close, subject, follower))


@api.get("/progress/{subject:path}", tags=["live"], responses=problems(404))
async def progress_status(request: Request, subject: str) -> dict[str, Any]:
    """The latest status of ``subject`` (the polling fallback of the stream)."""
    found: ProgressStatus | None = await request.app.state.conveyor.progress.get(subject)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no progress for {subject!r}")
    return found.raw


# -- health and metrics ----------------------------------------------------------


@router.get(
    "/health",
    response_model=Health,
    tags=["operations"],
    responses={503: {"model": Health, "description": "Redis is unreachable, too slow or refusing."}},
)
async def health(request: Request) -> JSONResponse:
    """Redis reachable (and how fast), and the live workers of each queue;
    503 when Redis is not. With a token set, the queues (their names) are
    shown only to callers that carry it."""
    state = request.app.state.conveyor
    named = not state.token or carries_token(request, state.token)
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):  # a probe wants an answer, not a retry loop
            latency = await ping(state.redis)
        queues: dict[str, int] = {}
        if named:
            now = await current_ms(RedisClock(), state.redis)
            for name in await queue_names(state.redis, state.prefix):
                queues[name] = await count_alive(await state.queue(name), now)
    except Exception as exc:  # unreachable, too slow or refusing: not healthy, whatever the cause
        error = str(exc) or type(exc).__name__
        body = Health(status="down", redis=False, latency_ms=None, queues={}, error=error)
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(
        Health(status="ok", redis=True, latency_ms=latency * 1000, queues=queues).model_dump()
    )


@router.get(
    "/metrics",
    tags=["operations"],
    dependencies=[Depends(require_token)],
    response_class=PlainTextResponse,
    responses=problems(401),
)
async def metrics(request: Request) -> Response:
    """Prometheus text per queue: jobs by state, completed and failed
    totals, and histograms of how long completed jobs waited and ran."""
    state = request.app.state.conveyor
    started = time.perf_counter()
    rows = []
    for name in await queue_names(state.redis, state.prefix):
        queue = await state.queue(name)
        counts = await queue.counts()
        stats = {text(k): int(v) for k, v in (await state.redis.hgetall(queue.keys.stats)).items()}
        rows.append((name, counts, stats))
    registry = CollectorRegistry()
    registry.register(_Snapshot(rows, time.perf_counter() - started))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")


class _Snapshot(Collector):
    """The figures read for one scrape, in Prometheus' shapes."""

    def __init__(self, rows: list[tuple[str, dict[JobState, int], dict[str, int]]], took: float) -> None:
        self.rows = rows
        self.took = took

    def collect(self) -> Any:
        jobs = GaugeMetricFamily("conveyor_jobs", "Jobs in each state", labels=["queue", "state"])
        completed = CounterMetricFamily("conveyor_jobs_completed", "Jobs completed", labels=["queue"])
        failed = CounterMetricFamily("conveyor_jobs_failed", "Jobs failed for good", labels=["queue"])
        waits = HistogramMetricFamily(
            "conveyor_job_wait_seconds", "Time completed jobs waited, from added to started", labels=["queue"]
        )
        runs = HistogramMetricFamily(
            "conveyor_job_run_seconds", "Time completed jobs ran, from started to completed", labels=["queue"]
        )
        for name, counts, stats in self.rows:
            for job_state, n in counts.items():
                jobs.add_metric([name, job_state.value], n)
            completed.add_metric([name], stats.get("completed", 0))
            failed.add_metric([name], stats.get("failed", 0))
            for family, tag in ((waits, "w"), (runs, "r")):
                family.add_metric([name], _buckets(stats, tag), stats.get(f"{tag}:sum", 0) / 1000)
        yield jobs
        yield completed
        yield failed
        yield waits
        yield runs
        yield GaugeMetricFamily(
            "conveyor_scrape_seconds", "Time spent reading Redis for this scrape", value=self.took
        )


#: The bucket bounds of includes/timings.lua, in ms.
TIMING_BOUNDS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)


def _buckets(stats: dict[str, int], tag: str) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets from the per-bucket counts."""
    out: list[tuple[str, float]] = []
    total = 0
    for i, bound in enumerate(TIMING_BOUNDS, start=1):
        total += stats.get(f"{tag}:{i}", 0)
        out.append((f"{bound / 1000:g}", total))
    total += stats.get(f"{tag}:{len(TIMING_BOUNDS) + 1}", 0)
    out.append(("+Inf", total))
    return out


router.include_router(api)
