"""A Redis that would lose jobs is refused: workers and schedulers do not
start on an evicting policy (unless told to accept it) or without a command
the engine needs, producers warn once, and ``conveyor check`` fails."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import JobContext, JobState, Queue, Scheduler, UnsafeRedis, Worker, connect
from conveyor.cli.check import _exposed
from conveyor.testing import RedisServer

pytestmark = pytest.mark.single_node

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


@pytest.fixture(scope="module")
def evicting() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        yield server


@pytest.fixture(scope="module")
def scriptless() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--rename-command", "SCRIPT", ""]) as server:
        yield server


async def ok(job: JobContext) -> int:
    return 1


async def test_a_worker_and_a_scheduler_refuse_an_evicting_redis(evicting: RedisServer) -> None:
    async with connect(evicting.url) as redis:
        queue = Queue("evicted", redis)
        job = await queue.add("j", 1)
        worker = Worker(queue, ok)
        with pytest.raises(UnsafeRedis, match="maxmemory-policy is allkeys-lru"):
            await worker.run(burst=True)
        with pytest.raises(UnsafeRedis, match="allow_eviction=True or CONVEYOR_ALLOW_EVICTION=1"):
            await Scheduler([queue]).run()
        assert await queue.get_state(job.id) is JobState.WAITING  # nothing was claimed


async def test_an_operator_can_accept_eviction_explicitly(
    evicting: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect(evicting.url) as redis:
        queue = Queue("accepted", redis)
        job = await queue.add("j", 1)
        await Worker(queue, ok, allow_eviction=True).run(burst=True)
        assert await queue.get_state(job.id) is JobState.COMPLETED
        monkeypatch.setenv("CONVEYOR_ALLOW_EVICTION", "1")
        again = await queue.add("j", 2)
        await Worker(queue, ok).run(burst=True)
        assert await queue.get_state(again.id) is JobState.COMPLETED


async def test_a_producer_warns_once_per_client(
    evicting: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor.redis")
    async with connect(evicting.url) as redis:
        for name in ("p1", "p2"):
            await Queue(name, redis).add("j", 1)
    warnings = [r for r in caplog.records if "maxmemory-policy is allkeys-lru" in r.getMessage()]
    assert len(warnings) == 1


async def test_a_worker_refuses_a_redis_without_a_command_it_needs(scriptless: RedisServer) -> None:
    async with connect(scriptless.url) as redis:
        queue = Queue("scriptless", redis)
        await redis.sadd("unrelated", "x")
        with pytest.raises(UnsafeRedis, match="does not serve SCRIPT"):
            await Worker(queue, ok).run(burst=True)


@pytest.mark.parametrize(
    ("server", "says"), [("evicting", "maxmemory-policy is allkeys-lru"), ("scriptless", "SCRIPT")]
)
def test_check_fails_for_an_evicting_or_scriptless_redis(
    server: str, says: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(server).url
    done = subprocess.run(
        [CONVEYOR, "check"], capture_output=True, text=True, timeout=60, env={**os.environ, "REDIS_URL": url}
    )
    assert done.returncode == 1 and says in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("version", "exposed"),
    [
        ("6.2.14", True),
        ("7.0.15", True),
        ("7.2.10", True),
        ("7.2.11", False),
        ("7.4.5", True),
        ("7.4.6", False),
        ("8.0.3", True),
        ("8.0.4", False),
        ("8.2.1", True),
        ("8.2.2", False),
        ("8.4.0", False),
    ],
)
def test_check_knows_the_releases_exposed_to_cve_2025_49844(version: str, exposed: bool) -> None:
    assert _exposed(version) is exposed
