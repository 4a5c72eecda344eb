"""Fixtures of the distribution service's tests: a private Redis, a SQLite
file per test, the fake networks in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aredis
from distribution_env import FAST, Env

from conveyor import Conveyor, connect
from conveyor.testing import RedisServer
from distribution.config import Settings
from distribution.fake import FakeNetworks, create_fake
from distribution.service import Distribution, QueueService, Services


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    """A client on an emptied server: the service's queue names are fixed."""
    async with connect(redis_server.url) as client:
        await client.flushdb()
        yield client


@pytest.fixture
async def env(redis: aredis.Redis, tmp_path: Path) -> AsyncIterator[Env]:
    networks = FakeNetworks()
    fake = create_fake(networks)
    settings = Settings(network_url="http://fake", **FAST)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://fake") as http:
        services = Services.create(settings, database_url=f"sqlite:///{tmp_path / 'd.db'}", http=http)
        await services.store.create_schema()
        app = Conveyor(redis)
        try:
            yield Env(app, QueueService(Distribution(app, services, settings)), networks, settings)
        finally:
            await services.aclose()
