"""Event bus consumers as real processes: one killed with SIGKILL while it
holds entries, and a poison event that kills every consumer it reaches."""

from __future__ import annotations

import signal
import uuid

import pytest
import redis.asyncio as aredis

from conveyor import EventBus
from conveyor.testing import RedisServer
from polling import wait_until

from .processes import ledger, spawn_consumer
from .tally import check

pytestmark = pytest.mark.slow


@pytest.fixture
def bus(redis: aredis.Redis) -> EventBus:
    return EventBus(redis, f"bus-{uuid.uuid4().hex[:10]}")


async def test_sigkilled_consumer_leaves_no_entry_unprocessed(
    redis: aredis.Redis, redis_server: RedisServer, bus: EventBus
) -> None:
    # Given 300 events and a consumer process working through them
    ids = await bus.publish_many([("e", i) for i in range(300)])
    victim = spawn_consumer(redis_server.url, bus.name, "g", "victim", sleep=0.02)

    async def some_done() -> bool:
        return len(await ledger(redis, bus.name)) >= 40

    await wait_until(some_done)

    # When it is killed while holding entries
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    at_risk = {p.id for p in await bus.pending("g", consumer="victim", count=1000)}
    assert at_risk, "the victim held entries when it died"

    # Then another consumer process claims them and the group finishes
    survivor = spawn_consumer(redis_server.url, bus.name, "g", "survivor", burst=True)
    assert survivor.wait(timeout=60) == 0
    handled = await ledger(redis, bus.name)
    assert max(handled.values()) <= 2
    (group,) = await bus.groups()
    assert (group.pending, group.lag) == (0, 0)
    # none lost; only entries the victim held ran again
    check(
        "SIGKILL an event consumer holding entries (stream group)",
        faults=1,
        added=ids,
        completed=handled,
        runs=handled,
        at_risk=at_risk,
    )


async def test_poison_event_that_kills_consumers_ends_in_dead_letters_after_n_deliveries(
    redis: aredis.Redis, redis_server: RedisServer, bus: EventBus
) -> None:
    # Given a poison event between good ones, with at most 2 deliveries
    before = await bus.publish_many([("e", i) for i in range(10)])
    poison = await bus.publish("poison", {"payload": "kills the process"})
    after = await bus.publish_many([("e", i) for i in range(10)])

    # When consumer processes are started one after another until one
    # finishes the group
    crashes = 0
    for n in range(6):
        proc = spawn_consumer(redis_server.url, bus.name, "g", f"c{n}", max_deliveries=2, burst=True)
        if proc.wait(timeout=60) == 0:
            break
        crashes += 1

    # Then the poison killed exactly two consumers and was dead-lettered
    # instead of a third start; no entry read ahead by a dying consumer was
    # blamed, and everything else ran
    assert crashes == 2
    (letter,) = await bus.dead_letters()
    assert (letter.event_id, letter.type, letter.deliveries) == (poison, "poison", 2)
    assert letter.data == {"payload": "kills the process"}
    assert "started 2 times without finishing" in letter.error
    assert set(await ledger(redis, bus.name)) == set(before + after)
    assert (await bus.groups())[0].pending == 0
