"""A script Redis does not know (its cache flushed by a restart, a
failover or an operator) is loaded and called again, on every path a
script takes: the engine's channel, redis-py's pool and the blocking
client of the lease thread; and a cache that keeps being flushed makes
the call fail after a few loads instead of looping."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.exceptions import NoScriptError

from conveyor import JobState, Queue
from conveyor.engine.client.channel import Channel, Client
from conveyor.engine.client.connection import sync_twin
from conveyor.engine.client.scripts import LOADS
from conveyor.engine.commands.running import beat_worker


def _flushing_after_loads(monkeypatch: pytest.MonkeyPatch, queue: Queue, times: int) -> list[int]:
    """Each of the next ``times`` loads of a script on the engine's
    channel is followed by a flush of the script cache, as if another
    client flushed it between the load and the call; the loads seen."""
    loads: list[int] = []
    real = Channel.call

    async def call(self: Channel, *args: Any) -> Any:
        reply = await real(self, *args)
        if args[:2] == ("SCRIPT", "LOAD"):
            loads.append(1)
            if len(loads) <= times:
                await queue.redis.script_flush()
        return reply

    monkeypatch.setattr(Channel, "call", call)
    return loads


async def test_a_script_flushed_again_after_its_load_is_loaded_again(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queue.redis.script_flush()
    loads = _flushing_after_loads(monkeypatch, queue, LOADS - 1)
    job = await queue.add("j", 1)
    assert await queue.get_state(job.id) is JobState.WAITING
    assert len(loads) == LOADS


async def test_a_script_cache_that_keeps_being_flushed_fails_the_call(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(queue.redis, Client):
        pytest.skip("a cluster client's channels are counted per node")
    await queue.redis.script_flush()
    loads = _flushing_after_loads(monkeypatch, queue, LOADS + 5)
    with pytest.raises(NoScriptError):
        await queue.add("j", 1)
    assert len(loads) == LOADS  # then the last call, unloaded, fails
    assert await queue.counts() == {state: 0 for state in await queue.counts()}


async def test_the_blocking_client_loads_a_script_flushed_after_its_load(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = sync_twin(queue.redis)
    flushes = [LOADS - 1]
    cls: Any = type(twin)
    real = cls.script_load

    def script_load(self: Any, source: str) -> Any:
        sha = real(self, source)
        if flushes[0] > 0:
            flushes[0] -= 1
            self.script_flush()
        return sha

    monkeypatch.setattr(cls, "script_load", script_load)
    twin.script_flush()
    beat_worker(twin, queue.keys, now="", worker_id="w-1", info='{"pid": 1}')
    assert flushes == [0]
    assert twin.hexists(queue.keys.workers, "w-1")
    if isinstance(twin, redis.Redis):
        twin.close()
