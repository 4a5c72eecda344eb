"""Redis's failures reach the caller as Conveyor's errors, mapped in one
place (conveyor.engine.client.errors), from every call that talks to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from redis.exceptions import (
    AskError,
    AuthenticationError,
    ClusterDownError,
    MovedError,
    OutOfMemoryError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from conveyor import (
    ConnectionFailed,
    EventBus,
    FlowJob,
    FlowProducer,
    ProgressBus,
    Queue,
    QueueEvents,
    RedisOutOfMemory,
    SlotUnavailable,
    connect,
    ping,
)
from conveyor.engine import preflight
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.errors import mapped
from conveyor.testing import free_port

ONE_SERVER = redis.Redis(host="10.1.2.3", port=6390)


@pytest.mark.parametrize(
    ("raised", "expected", "says"),
    [
        (AuthenticationError("invalid password"), ConnectionFailed, "refused the credentials"),
        (
            redis.ConnectionError("Connection refused"),
            ConnectionFailed,
            "cannot reach Redis at 10.1.2.3:6390",
        ),
        (redis.TimeoutError("Timeout reading"), ConnectionFailed, "cannot reach Redis at 10.1.2.3:6390"),
        (OutOfMemoryError("OOM command not allowed"), RedisOutOfMemory, "maxmemory limit"),
        (MovedError("3999 127.0.0.1:6381"), ConnectionFailed, "node of a Redis Cluster"),
        (AskError("3999 127.0.0.1:6381"), ConnectionFailed, "redis+cluster://"),
        (TryAgainError("TRYAGAIN"), SlotUnavailable, "slot is unavailable"),
        (ClusterDownError("CLUSTERDOWN"), SlotUnavailable, "slot is unavailable"),
        (SlotNotCoveredError("slot 12 not covered"), SlotUnavailable, "slot is unavailable"),
    ],
)
def test_each_failure_of_redis_maps_to_its_conveyor_error(
    raised: Exception, expected: type[Exception], says: str
) -> None:
    error = mapped(ONE_SERVER, raised)
    assert type(error) is expected
    assert says in str(error)


def test_an_error_of_the_command_itself_is_left_to_the_caller() -> None:
    assert mapped(ONE_SERVER, ResponseError("WRONGTYPE Operation against a key")) is None
    assert mapped(ONE_SERVER, ValueError("not a Redis failure")) is None


def _calls(client: RedisClient) -> dict[str, Callable[[], Awaitable[Any]]]:
    queue = Queue("q", client)
    flow = FlowJob("parent", "q", children=[FlowJob("child", "q")])
    return {
        "Queue.add": lambda: queue.add("j", 1),
        "Queue.add_bulk": lambda: queue.add_bulk([("j", 1), ("j", 2)]),
        "Queue.get_job": lambda: queue.get_job("1"),
        "Queue.counts": queue.counts,
        "Queue.clean": lambda: queue.clean("completed"),
        "Queue.upsert_schedule": lambda: queue.upsert_schedule("k", "j", every=60),
        "Queue.workers": queue.workers,
        "FlowProducer.add": lambda: FlowProducer(client).add(flow),
        "QueueEvents.position": QueueEvents(queue).position,
        "ping": lambda: ping(client),
        "preflight.guard": lambda: preflight.guard(client, "test"),
        "EventBus.publish": lambda: EventBus(client, "s").publish("t", 1),
        "EventBus.publish_many": lambda: EventBus(client, "s").publish_many([("t", 1)]),
        "EventBus.info": EventBus(client, "s").info,
        "EventBus.create_group": lambda: EventBus(client, "s").create_group("g"),
        "EventBus.dead_letters": EventBus(client, "s").dead_letters,
        "EventBus.trim": lambda: EventBus(client, "s").trim(max_len=10),
        "ProgressBus.report": lambda: ProgressBus(client).report("import:1", "importing", 10),
        "ProgressBus.get": lambda: ProgressBus(client).get("import:1"),
        "ProgressBus.active": ProgressBus(client).active,
    }


@pytest.mark.single_node("talks to no Redis at all: the cluster pass adds nothing")
async def test_every_call_to_an_unreachable_redis_raises_connection_failed() -> None:
    address = f"127.0.0.1:{free_port()}"
    client = connect(f"redis://{address}/0")
    try:
        calls = _calls(client)
        # at once: each gives up only after the client's retries (about 3 s)
        outcomes = await asyncio.gather(*(call() for call in calls.values()), return_exceptions=True)
    finally:
        await client.aclose()
    wrong = {
        name: repr(outcome)
        for name, outcome in zip(calls, outcomes, strict=True)
        if not (isinstance(outcome, ConnectionFailed) and address in str(outcome))
    }
    assert wrong == {}
