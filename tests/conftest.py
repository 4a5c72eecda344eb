"""Shared fixtures: one private redis-server per test session, a fresh client
and a uniquely named queue per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aredis

from conveyor import ManualClock, Queue, connect
from conveyor.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    async with connect(redis_server.url) as client:
        yield client


@pytest.fixture
def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def queue(redis: aredis.Redis, queue_name: str) -> Queue:
    return Queue(queue_name, redis)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked_queue(redis: aredis.Redis, queue_name: str, clock: ManualClock) -> Queue:
    return Queue(queue_name, redis, clock=clock)
