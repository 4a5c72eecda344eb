"""The demo that the README's first command runs, against the test Redis."""

from __future__ import annotations

import pytest

from conveyor import JobState, Queue, connect
from conveyor.cli import demo
from conveyor.testing import RedisServer

pytestmark = pytest.mark.single_node("the demo starts its own Redis")


async def test_the_demo_runs_to_the_end(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await demo.workload(redis_server.url)
    out = capsys.readouterr().out
    assert "1,006 jobs finished" in out
    assert "wrap-up: 9 parts imported" in out
    async with connect(redis_server.url) as redis:
        assert (await Queue("demo-imports", redis).counts())[JobState.COMPLETED] == 1
        assert [s.key for s in await Queue("demo-imports", redis).get_schedules()] == ["trending"]
        limits = await Queue("demo-spotify", redis).limits()
        assert limits.rate_limit is not None and limits.rate_limit.max == 5
