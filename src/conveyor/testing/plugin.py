"""Conveyor's pytest plugin (loaded by pytest once Conveyor is installed):
a private Redis per test session and a clean one for each test.

- ``conveyor_redis_url``: the URL of a ``redis-server`` (the one on PATH,
  else the Valkey of ``conveyor[embedded]``) started for the session on a
  free port, and stopped after it. Never a server of yours: it is emptied.
- ``conveyor_redis``: a client of it, the server emptied (``FLUSHALL``)
  before the test. Needs pytest-asyncio.

Point an app at it in your ``conftest.py``::

    @pytest.fixture(autouse=True)
    async def jobs(conveyor_redis):
        await app.use_redis(conveyor_redis)
        yield
        await app.use_redis(None)

then run its jobs with ``await run_until_idle(app)`` (``conveyor.testing``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.connection import connect
from conveyor.testing.servers import RedisServer


@pytest.fixture(scope="session")
def conveyor_redis_url() -> Iterator[str]:
    """A private Redis for the test session."""
    with RedisServer() as server:
        yield server.url


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover (the async fixture needs pytest-asyncio)
    pass
else:

    @pytest_asyncio.fixture
    async def conveyor_redis(conveyor_redis_url: str) -> AsyncIterator[RedisClient]:
        """A client of the session's private Redis, emptied for this test."""
        client = connect(conveyor_redis_url)
        await client.flushall()
        try:
            yield client
        finally:
            await client.aclose()
