"""Fixtures of the event hub's tests: a private Redis and the hub on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from eventhub_env import fast_settings

from conveyor import connect
from conveyor.testing import RedisServer
from eventhub.hub import Connections, Hub


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def hub(redis_server: RedisServer) -> AsyncIterator[Hub]:
    async with connect(redis_server.url) as client:
        await client.flushdb()
    connections = Connections.open(fast_settings(redis_server.url))
    try:
        yield Hub(fast_settings(redis_server.url), connections)
    finally:
        await connections.aclose()
