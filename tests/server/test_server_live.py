"""Server-Sent Events through a real uvicorn server: queue events as they
happen, resumed after Last-Event-ID, and a progress subject's updates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aredis

from conveyor import Queue
from conveyor.realtime.progress import ProgressBus
from conveyor.server import create_app
from conveyor.testing import serving
from polling import wait_until
from pubsub import subscribers
from sse import read_events


@pytest.fixture
async def server(redis: aredis.Redis) -> AsyncIterator[str]:
    async with serving(create_app(redis)) as url:
        yield url


async def read(
    base: str,
    path: str,
    count: int,
    headers: dict[str, str] | None = None,
    ready: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        return await read_events(client, path, count, headers, ready.set if ready else None)


async def test_queue_events_stream_live_and_resume_after_last_event_id(server: str, queue: Queue) -> None:
    await queue.register()
    ready = asyncio.Event()
    reader = asyncio.create_task(read(server, f"/api/queues/{queue.name}/events", 3, ready=ready))
    await ready.wait()  # the stream starts at the request: no sleep needed
    jobs = [await queue.add("j", i) for i in range(3)]
    live = await asyncio.wait_for(reader, 10)
    assert [e["event"] for e in live] == ["added"] * 3
    assert [orjson.loads(e["data"])["job_id"] for e in live] == [j.id for j in jobs]

    # a client that saw the first event resumes after it
    resumed = await read(
        server, f"/api/queues/{queue.name}/events", 2, headers={"Last-Event-ID": live[0]["id"]}
    )
    assert [e["id"] for e in resumed] == [live[1]["id"], live[2]["id"]]


async def test_progress_stream_sends_the_status_then_each_update_until_finished(
    server: str, redis: aredis.Redis
) -> None:
    bus = ProgressBus(redis)
    await bus.report("artist:7", "identity", 10, "found the artist")
    ready = asyncio.Event()
    reader = asyncio.create_task(read(server, "/api/progress/artist:7/stream", 3, ready=ready))
    await ready.wait()  # subscribed before the headers were sent
    await bus.report("artist:7", "shows", 60, "page 3 of 5")
    await bus.report("artist:7", "done", 100, "imported", finished=True)
    updates = [orjson.loads(e["data"]) for e in await asyncio.wait_for(reader, 10)]
    assert [(u["stage"], u["percent"]) for u in updates] == [("identity", 10), ("shows", 60), ("done", 100)]


async def test_a_progress_stream_left_early_drops_its_subscription(server: str, redis: aredis.Redis) -> None:
    bus = ProgressBus(redis)
    await bus.report("artist:8", "identity", 10)
    assert len(await read(server, "/api/progress/artist:8/stream", 1)) == 1  # then the client leaves

    async def dropped() -> bool:
        return await subscribers(redis, bus._channel("artist:8")) == 0

    await wait_until(dropped, within=10)
