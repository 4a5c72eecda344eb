from collections.abc import AsyncIterator

import pytest
from reports import app

from conveyor import Conveyor


@pytest.fixture
async def jobs(conveyor_redis: object) -> AsyncIterator[Conveyor]:
    """The app on the test session's private Redis, emptied for each test."""
    await app.use_redis(conveyor_redis)  # type: ignore[arg-type]
    yield app
    await app.use_redis(None)
