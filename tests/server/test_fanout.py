"""Many live streams on one server process share one reader per source:
hundreds of clients of a queue's events, of progress subjects and of the
queue list, each receiving every event, while the pool keeps connections
for the rest of the API; a slow client is dropped and resumes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aredis
from fastapi import FastAPI

from conveyor import Queue
from conveyor.engine.events import QueueEvents
from conveyor.realtime.progress import ProgressBus
from conveyor.server import create_app
from conveyor.server.fanout import FanOut
from conveyor.server.feeds import FLUSH_INTERVAL, queue_event_frames, queue_events_reader
from conveyor.testing import serving
from sse import read_events

CLIENTS = 150  # past redis-py's default pool of 100 connections


@pytest.fixture
async def app(redis: aredis.Redis) -> FastAPI:
    return create_app(redis)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    async with serving(app) as url:
        yield url


async def subscribed_connections(redis: aredis.Redis) -> int:
    return sum(1 for c in await redis.client_list() if int(c.get("sub", 0)) > 0)


Readers = list[asyncio.Task[list[dict[str, Any]]]]


@contextlib.asynccontextmanager
async def following(
    server: str, paths: list[str], count: int
) -> AsyncIterator[tuple[httpx.AsyncClient, Readers]]:
    """A client per path reading its stream's first ``count`` events; yields
    the HTTP client and the readers once every one has its headers."""
    ready, opened = asyncio.Event(), []

    def one_more() -> None:
        opened.append(1)
        if len(opened) == len(paths):
            ready.set()

    limits = httpx.Limits(max_connections=len(paths) + 10)
    async with httpx.AsyncClient(base_url=server, timeout=30, limits=limits) as client:
        readers = [asyncio.create_task(read_events(client, path, count, opened=one_more)) for path in paths]
        await asyncio.wait_for(ready.wait(), 30)
        yield client, readers


async def test_many_clients_of_a_queue_share_one_reader_and_get_every_event(
    app: FastAPI, server: str, queue: Queue, redis: aredis.Redis
) -> None:
    # Given 150 clients following one queue's events
    await queue.register()
    paths = [f"/api/queues/{queue.name}/events"] * CLIENTS
    async with following(server, paths, 20) as (client, readers):
        # When 20 jobs are added, while the rest of the API is asked
        jobs = [await queue.add("j", i) for i in range(20)]
        health = await client.get("/health")
        listed = await client.get("/api/queues")
        got = await asyncio.wait_for(asyncio.gather(*readers), 30)

    # Then every client got every event, in order, and the API answered
    want = [j.id for j in jobs]
    assert all([orjson.loads(e["data"])["job_id"] for e in events] == want for events in got)
    assert health.status_code == 200 and listed.status_code == 200


@pytest.mark.single_node("counts subscribed connections with CLIENT LIST of one server")
async def test_many_clients_of_progress_subjects_share_one_connection(
    server: str, redis: aredis.Redis, queue_name: str
) -> None:
    # Given 150 clients, three on each of 50 subjects
    bus = ProgressBus(redis)
    subjects = [f"{queue_name}:{i}" for i in range(50)]
    for subject in subjects:
        await bus.report(subject, "start", 0)
    before = await subscribed_connections(redis)
    paths = [f"/api/progress/{s}/stream" for s in subjects for _ in range(3)]
    async with following(server, paths, 3) as (_, readers):
        during = await subscribed_connections(redis)

        # When each subject moves on and finishes
        for subject in subjects:
            await bus.report(subject, "half", 50)
        for subject in subjects:
            await bus.report(subject, "done", 100)
        got = await asyncio.wait_for(asyncio.gather(*readers), 30)

    # Then every client saw its subject's three statuses, and the server
    # followed the 50 subjects on one pub/sub connection, not one per client
    assert all(
        [orjson.loads(e["data"])["stage"] for e in events] == ["start", "half", "done"] for events in got
    )
    assert during - before == 1


async def test_a_client_that_falls_behind_is_dropped_and_resumes_where_it_left(queue: Queue) -> None:
    # Given a feed whose clients may fall 5 events behind, and a client
    # following it live
    fanout = FanOut(buffer=5)
    topic = fanout.topic(("events", queue.name), queue_events_reader(queue))
    slow = topic.subscribe()
    await queue.register()
    await topic.started()
    start = await QueueEvents(queue).position()
    stream = aiter(queue_event_frames(queue, slow, start))
    waiting = asyncio.ensure_future(anext(stream))
    # (its resume read, which finds nothing, is done before the first event:
    # a resume that saw events would catch up on all of them from Redis)
    await asyncio.sleep(FLUSH_INTERVAL)

    # When 50 events happen, in five bursts the feed reads one at a time,
    # while it reads only the first batch
    for burst in range(5):
        for i in range(10):
            await queue.add("j", burst * 10 + i)
        await asyncio.sleep(FLUSH_INTERVAL * 2.5)
    first = await asyncio.wait_for(waiting, 10)

    # Then it gets what its buffer held and its stream ends: it was
    # dropped, and the reader went on for the others
    held = [f.id for f in first] + [f.id async for batch in stream for f in batch]
    assert slow.dropped and len(held) < 50
    assert held == list(range(start + 1, start + 1 + len(held)))
    # and resuming after its last event (what Last-Event-ID does) gets the rest, once each
    again = topic.subscribe()
    rest: list[int] = []
    async for batch in queue_event_frames(queue, again, held[-1]):
        rest += [f.id for f in batch]
        if rest and rest[-1] == start + 50:
            break
    assert held + rest == list(range(start + 1, start + 51))
    await fanout.aclose()
