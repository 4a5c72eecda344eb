"""A server stopping while browsers still watch it: every event stream ends
in order (as if its client had left) and the server stops at once, not
after its graceful-shutdown timeout and not never."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aredis
import uvicorn

from conveyor import JobState, Queue
from conveyor.realtime.progress import ProgressBus
from conveyor.server import create_app
from conveyor.server.hosting import DisconnectOnStop, QuietServer, Server
from conveyor.testing import free_port
from polling import wait_until
from pubsub import subscribers

#: far longer than the stop may take: a stop that needs it has waited on a client
PATIENCE = 60


@asynccontextmanager
async def running(server: Server) -> AsyncIterator[str]:
    task = asyncio.create_task(server.serve())
    try:
        assert await server.wait_started()
        yield f"http://{server.config.host}:{server.config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, PATIENCE)


async def held(client: httpx.AsyncClient, path: str, opened: asyncio.Event, lines: list[str]) -> None:
    """Reads the stream at ``path`` to its end into ``lines``."""
    async with client.stream("GET", path) as response:
        assert response.status_code == 200
        opened.set()
        async for line in response.aiter_lines():
            lines.append(line)


async def test_a_stopping_server_ends_its_streams_and_stops_without_waiting_on_clients(
    redis: aredis.Redis, queue: Queue
) -> None:
    await queue.register()
    bus = ProgressBus(redis)
    await bus.report("artist:1", "identity", 10)
    app = create_app(redis)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=PATIENCE
    )
    server = QuietServer(config)
    paths = [f"/api/queues/{queue.name}/events", "/api/live/queues", "/api/progress/artist:1/stream"]
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        async with running(server) as base:
            opened = [asyncio.Event() for _ in paths]
            queue_events: list[str] = []
            summaries: list[str] = []
            progress: list[str] = []
            got = (queue_events, summaries, progress)
            readers = [
                asyncio.create_task(held(client, base + path, ready, lines))
                for path, ready, lines in zip(paths, opened, got, strict=True)
            ]
            for ready in opened:
                await asyncio.wait_for(ready.wait(), 10)
            await queue.add("seen", 1)

            async def each_carried_an_event() -> bool:
                return all(any(line.startswith("event:") for line in lines) for lines in got)

            await wait_until(each_carried_an_event, within=10)
            asked = asyncio.get_running_loop().time()
        stopped_in = asyncio.get_running_loop().time() - asked
        # every stream ended in order (no protocol error)
        await asyncio.gather(*readers)
    assert "event: added" in queue_events
    assert "event: queues" in summaries
    assert "event: progress" in progress
    assert stopped_in < PATIENCE / 2  # the clients were not waited on

    # what the streams held is let go: the feeds' readers and the progress subscription
    assert len(app.state.conveyor.fanout._topics) in (0, 2)
    assert all(len(topic) == 0 for topic in app.state.conveyor.fanout._topics.values())

    async def unsubscribed() -> bool:
        return await subscribers(redis, bus._channel("artist:1")) == 0

    await wait_until(unsubscribed, within=10)


async def test_requests_that_are_not_streams_run_as_before(redis: aredis.Redis, queue: Queue) -> None:
    await queue.register()
    server = QuietServer(
        uvicorn.Config(create_app(redis), host="127.0.0.1", port=free_port(), log_level="warning")
    )
    async with running(server) as base, httpx.AsyncClient(base_url=base) as client:
        added = await client.post(f"/api/queues/{queue.name}/jobs", json={"name": "posted", "data": {"n": 1}})
        assert added.status_code in (200, 201), added.text
        assert (await client.get("/health")).json()["redis"] is True
    assert (await queue.counts())[JobState.WAITING] == 1


async def test_a_stop_tells_only_the_requests_waiting_on_their_client_that_it_left() -> None:
    arrived: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    seen: list[object] = []
    first = asyncio.Event()

    async def receive() -> dict[str, object]:
        return await arrived.get()

    async def app(scope: object, receive: object, send: object) -> None:
        for _ in range(2):
            seen.append(await receive())  # type: ignore[operator]
            first.set()

    middleware = DisconnectOnStop(app, asyncio.Event())
    request = asyncio.create_task(middleware({"type": "http"}, receive, None))  # type: ignore[arg-type]
    await arrived.put({"type": "http.request", "body": b"x", "more_body": True})
    await asyncio.wait_for(first.wait(), PATIENCE)
    middleware.stop()  # while the request waits for its next message
    await asyncio.wait_for(request, PATIENCE)
    assert seen == [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}]

    # a request cancelled for its own reasons is cancelled, stop or no stop
    for also_stopped in (False, True):
        middleware = DisconnectOnStop(app, asyncio.Event())
        seen.clear()
        request = asyncio.create_task(middleware({"type": "http"}, receive, None))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        request.cancel()
        if also_stopped:
            middleware.stop()
        await asyncio.gather(request, return_exceptions=True)
        assert request.cancelled() and seen == []
