"""Shared fixtures: one private redis-server per test session, a fresh client
and a uniquely named queue per test.

With ``--redis-cluster`` the ``redis`` client is one of a private
three-primary Redis Cluster instead, so the same tests check the engine on
a cluster; tests marked ``single_node`` (they need one server's URL, its
process or commands a cluster has not) are skipped then."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aredis

from conveyor import ManualClock, Queue, connect
from conveyor.engine.client.cluster import RedisClient
from conveyor.testing import RedisClusterNodes, RedisServer

# every script call, here and in the processes the tests start, is held to
# its script's header (conveyor.engine.client.headers)
os.environ["CONVEYOR_CHECK_SCRIPTS"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-cluster",
        action="store_true",
        help="run the tests' Redis client on a private three-primary Redis Cluster",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--redis-cluster"):
        return
    for item in items:
        marker = item.get_closest_marker("single_node")
        if marker is not None:
            reason = marker.args[0] if marker.args else "needs a single Redis server"
            item.add_marker(pytest.mark.skip(reason=f"on a cluster: {reason}"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL the ``redis`` client connects to."""
    if request.config.getoption("--redis-cluster"):
        with RedisClusterNodes() as cluster:
            yield cluster.url
    else:
        yield request.getfixturevalue("redis_server").url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[RedisClient]:
    async with connect(redis_url) as client:
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
