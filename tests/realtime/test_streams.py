"""The event bus on Redis Streams: publishing, consumer groups, routing,
retries, the dead-letter stream and replay, trimming and introspection."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aredis
from pydantic import BaseModel

from conveyor import Discard, Event, EventBus, EventRouter, InvalidJobOptions, ManualClock, PayloadError
from conveyor.errors import PayloadTooLarge
from conveyor.realtime import TRANSIENT_ERRORS, DeadLettered, EventConsumer

FAST: dict[str, Any] = {"claim_idle": 0.3, "claim_interval": 0.05, "retry_delay": 0.02, "block": 0.1}


class UserCreated(BaseModel):
    user_id: int
    email: str


@pytest.fixture
def bus(redis: aredis.Redis) -> EventBus:
    return EventBus(redis, f"bus-{uuid.uuid4().hex[:10]}")


async def drain(consumer: EventConsumer) -> None:
    async with asyncio.timeout(10):
        await consumer.run(burst=True)


async def test_group_gets_events_in_order_and_acknowledges_them(bus: EventBus) -> None:
    # Given ten events
    ids = [await bus.publish("user.created", {"n": i}) for i in range(10)]
    seen: list[Event[Any]] = []
    router = EventRouter()

    @router.on("user.created")
    async def handle(event: Event[Any]) -> None:
        seen.append(event)

    # When a group consumes them
    consumer = bus.consumer("mailer", router=router, **FAST)
    await drain(consumer)

    # Then each arrived once, in order, and nothing is left pending
    assert [e.id for e in seen] == ids
    assert [e.data for e in seen] == [{"n": i} for i in range(10)]
    assert {e.deliveries for e in seen} == {1}
    assert seen[0].group == "mailer" and seen[0].consumer == consumer.name
    assert consumer.processed == 10
    (group,) = await bus.groups()
    assert (group.name, group.pending, group.lag) == ("mailer", 0, 0)


async def test_every_group_sees_every_event(bus: EventBus) -> None:
    await bus.publish_many([("a", 1), ("b", 2)])
    got: dict[str, list[str]] = {"g1": [], "g2": []}
    for group in got:
        router = EventRouter()
        router.add("*", lambda e, g=group: got[g].append(e.type))  # type: ignore[misc]
        await drain(bus.consumer(group, router=router, **FAST))
    assert got == {"g1": ["a", "b"], "g2": ["a", "b"]}


async def test_router_prefers_exact_type_then_longest_prefix_then_fallback(bus: EventBus) -> None:
    router = EventRouter()
    hits: list[tuple[str, str]] = []
    router.add("user.created", lambda e: hits.append(("exact", e.type)))
    router.add("user.*", lambda e: hits.append(("user", e.type)))
    router.add("user.profile.*", lambda e: hits.append(("profile", e.type)))
    router.add("*", lambda e: hits.append(("any", e.type)))
    with pytest.raises(ValueError, match="already has a handler"):
        router.add("user.*", lambda e: None)
    await bus.publish_many(
        [("user.created", None), ("user.deleted", None), ("user.profile.updated", None), ("billing", None)]
    )
    await drain(bus.consumer("g", router=router, **FAST))
    assert hits == [
        ("exact", "user.created"),
        ("user", "user.deleted"),
        ("profile", "user.profile.updated"),
        ("any", "billing"),
    ]


async def test_events_without_a_handler_are_acknowledged_and_skipped(bus: EventBus) -> None:
    router = EventRouter()
    router.add("wanted", lambda e: None)
    await bus.publish_many([("unwanted", 1), ("wanted", 2)])
    consumer = bus.consumer("g", router=router, **FAST)
    await drain(consumer)
    assert (consumer.processed, consumer.skipped) == (1, 1)
    assert (await bus.groups())[0].pending == 0


async def test_typed_payload_is_validated_into_the_model(bus: EventBus) -> None:
    got: list[UserCreated] = []

    @bus.on("user.created", model=UserCreated)
    async def handle(event: Event[UserCreated]) -> None:
        got.append(event.data)

    await bus.publish("user.created", UserCreated(user_id=7, email="ada@example.com"))
    await drain(bus.consumer("g", **FAST))
    assert got == [UserCreated(user_id=7, email="ada@example.com")]


async def test_invalid_payload_is_dead_lettered_at_once_and_does_not_block_the_group(bus: EventBus) -> None:
    # Given a typed route and an event that does not fit it, then a good one
    got: list[int] = []
    bus.router.add("user.created", lambda e: got.append(e.data.user_id), model=UserCreated)
    bad = await bus.publish("user.created", {"user_id": "not a number"})
    await bus.publish("user.created", {"user_id": 2, "email": "b@example.com"})

    # When the group consumes
    consumer = bus.consumer("g", max_deliveries=5, **FAST)
    await drain(consumer)

    # Then the bad one went to the dead-letter stream on its first delivery
    # with the validation error, and the good one was handled
    assert got == [2]
    (letter,) = await bus.dead_letters()
    assert (letter.event_id, letter.group, letter.deliveries) == (bad, "g", 1)
    assert "invalid payload for user.created" in letter.error and "user_id" in letter.error
    assert letter.data == {"user_id": "not a number"}
    assert letter.reason == "invalid"
    assert consumer.dead_lettered == 1


async def test_failed_delivery_is_retried_after_the_delay_and_its_error_forgotten(bus: EventBus) -> None:
    calls: list[int] = []

    async def flaky(event: Event[Any]) -> None:
        calls.append(event.deliveries)
        if event.deliveries < 3:
            raise RuntimeError("upstream down")

    bus.router.add("job", flaky)
    await bus.publish("job", {})
    consumer = bus.consumer("g", max_deliveries=5, **FAST)
    await drain(consumer)
    assert calls == [1, 2, 3]
    assert (consumer.failed, consumer.processed, consumer.dead_lettered) == (2, 1, 0)
    assert await bus.redis.exists(bus.keys.errors("g")) == 0
    assert await bus.dead_letters() == []


async def test_poison_event_is_dead_lettered_after_max_deliveries_with_its_error(bus: EventBus) -> None:
    # Given a handler that always fails on one event type
    handled: list[str] = []

    async def handle(event: Event[Any]) -> None:
        if event.type == "poison":
            raise ValueError(f"cannot handle {event.data['n']}")
        handled.append(event.type)

    bus.router.add("*", handle)
    poison = await bus.publish("poison", {"n": 13})
    await bus.publish("fine", {})
    notices: list[DeadLettered] = []

    async def alert(notice: DeadLettered) -> None:
        notices.append(notice)

    # When the group consumes it with at most 3 deliveries
    consumer = bus.consumer("g", max_deliveries=3, on_dead_letter=alert, **FAST)
    await drain(consumer)

    # Then it was tried 3 times, then dead-lettered with error and traceback,
    # the alert fired once, and the other event went through
    assert handled == ["fine"]
    (letter,) = await bus.dead_letters()
    assert (letter.event_id, letter.type, letter.deliveries) == (poison, "poison", 3)
    assert letter.error == "ValueError: cannot handle 13"
    assert "raise ValueError" in letter.traceback
    assert letter.reason == "error"
    assert notices == [DeadLettered(poison, "poison", "g", "ValueError: cannot handle 13", "error")]
    assert (await bus.groups())[0].pending == 0


async def test_discard_dead_letters_without_retrying(bus: EventBus) -> None:
    async def handle(event: Event[Any]) -> None:
        raise Discard("malformed upstream record")

    bus.router.add("x", handle)
    await bus.publish("x", {})
    await drain(bus.consumer("g", max_deliveries=5, **FAST))
    (letter,) = await bus.dead_letters()
    assert letter.deliveries == 1 and "malformed upstream record" in letter.error
    assert letter.reason == "discarded"


async def test_dead_letters_record_whether_their_failure_was_passing(bus: EventBus) -> None:
    # Given handlers failing on a timeout, a lost connection, a custom
    # transient error, and a bug; and an entry whose consumer vanished
    class UpstreamBusy(Exception):
        pass

    failures: dict[str, BaseException] = {
        "slow": TimeoutError("upstream took too long"),
        "cut": ConnectionResetError("reset by peer"),
        "busy": UpstreamBusy("429"),
        "bug": KeyError("user_id"),
    }

    async def handle(event: Event[Any]) -> None:
        raise failures[event.type]

    bus.router.add("*", handle)
    await bus.create_group("g")
    vanished = await bus.publish("crash", {})
    await bus.redis.xreadgroup("g", "ghost", {bus.keys.stream: ">"}, count=1)
    ids = {t: await bus.publish(t, {}) for t in failures}

    # When a consumer that counts UpstreamBusy as passing gives up on each
    consumer = bus.consumer("g", max_deliveries=1, transient_errors=(*TRANSIENT_ERRORS, UpstreamBusy), **FAST)
    await drain(consumer)

    # Then each dead letter says why: passing faults are "transient", the
    # bug an "error", and the entry started without an outcome "unfinished"
    reasons = {d.event_id: d.reason for d in await bus.dead_letters()}
    assert reasons == {
        ids["slow"]: "transient",
        ids["cut"]: "transient",
        ids["busy"]: "transient",
        ids["bug"]: "error",
        vanished: "unfinished",
    }


async def test_conveyors_own_try_again_errors_are_transient(bus: EventBus) -> None:
    # Given handlers meeting Conveyor's own errors that mean "try again"
    from conveyor import CircuitOpen, ConnectionFailed, OutcomeUnknown, RedisOutOfMemory, SlotUnavailable

    failures: dict[str, BaseException] = {
        "down": ConnectionFailed("Redis at 127.0.0.1:1 cannot be reached"),
        "unknown": OutcomeUnknown("connection lost after the write"),
        "moving": SlotUnavailable("slot migrating"),
        "full": RedisOutOfMemory("OOM"),
        "open": CircuitOpen("upstream", 0.01),
    }

    async def handle(event: Event[Any]) -> None:
        raise failures[event.type]

    bus.router.add("*", handle)
    await bus.create_group("g")
    ids = {t: await bus.publish(t, {}) for t in failures}
    await drain(bus.consumer("g", max_deliveries=1, **FAST))
    reasons = {d.event_id: d.reason for d in await bus.dead_letters()}
    assert reasons == dict.fromkeys(ids.values(), "transient")


async def test_a_handler_raising_a_base_exception_or_its_own_cancel_fails_the_delivery(bus: EventBus) -> None:
    # Given handlers raising SystemExit, KeyboardInterrupt, GeneratorExit
    # and a CancelledError of their own, on their first delivery only
    seen: dict[str, int] = {}
    raised: dict[str, type[BaseException]] = {
        "exit": SystemExit,
        "interrupt": KeyboardInterrupt,
        "generator": GeneratorExit,
        "cancel": asyncio.CancelledError,
    }

    async def handle(event: Event[Any]) -> None:
        seen[event.type] = seen.get(event.type, 0) + 1
        if seen[event.type] == 1:
            raise raised[event.type]()

    bus.router.add("*", handle)
    await bus.create_group("g")
    for kind in raised:
        await bus.publish(kind, {})

    # When a consumer drains the stream, then each failed once, was
    # delivered again and handled, and the consumer is still there
    consumer = bus.consumer("g", max_deliveries=3, **FAST)
    await drain(consumer)
    assert seen == dict.fromkeys(raised, 2)
    assert consumer.failed == 4 and consumer.processed == 4
    assert await bus.dead_letters() == []


async def test_replay_goes_to_the_group_that_gave_up_only_and_only_once(bus: EventBus) -> None:
    # Given two groups, one of which dead-letters an event
    broken = True
    seen: dict[str, list[Event[Any]]] = {"ok": [], "picky": []}

    def router_for(group: str) -> EventRouter:
        router = EventRouter()

        async def handle(event: Event[Any]) -> None:
            if group == "picky" and broken:
                raise RuntimeError("bug")
            seen[group].append(event)

        router.add("order.paid", handle)
        return router

    event_id = await bus.publish("order.paid", {"order": 1})
    for group in seen:
        await drain(bus.consumer(group, router=router_for(group), max_deliveries=1, **FAST))
    (letter,) = await bus.dead_letters(group="picky")

    # When the bug is fixed and the letter replayed (twice)
    broken = False
    first, second = await bus.replay(letter.id), await bus.replay(letter.id)
    for group in seen:
        await drain(bus.consumer(group, router=router_for(group), **FAST))

    # Then the picky group handled it once, marked as a replay; the other
    # group handled the original only
    assert first[0] is not None and second == [None]
    assert [(e.id, e.replay_of) for e in seen["picky"]] == [(first[0], letter.id)]
    assert [e.id for e in seen["ok"]] == [event_id]
    assert await bus.dead_letters() == []


async def test_dead_letters_count_replays_and_keep_the_first_id(bus: EventBus) -> None:
    # Given an event that keeps failing, dead-lettered on each delivery
    bus.router.add("x", lambda e: (_ for _ in ()).throw(RuntimeError("still broken")))
    first = await bus.publish("x", {"n": 1})
    seen = []
    for _ in range(3):
        await drain(bus.consumer("g", max_deliveries=1, **FAST))
        (letter,) = await bus.dead_letters()
        seen.append((letter.replays, letter.origin_id, letter.event_id == first))
        # When it is replayed (the second replay of one letter is a no-op)
        (new_id,) = await bus.replay(letter.id)
        assert new_id is not None and await bus.replay(letter.id) == [None]
    # Then each letter says how often the event had been replayed, and
    # where it came from
    assert seen == [(0, first, True), (1, first, False), (2, first, False)]


async def test_replay_all_and_purge(bus: EventBus) -> None:
    bus.router.add("*", lambda e: (_ for _ in ()).throw(RuntimeError("no")))
    await bus.publish_many([("a", 1), ("b", 2), ("c", 3)])
    await drain(bus.consumer("g", max_deliveries=1, **FAST))
    assert len(await bus.dead_letters()) == 3
    assert [d.type for d in await bus.dead_letters(search="no", count=2)] == ["c", "b"]
    assert await bus.replay_dead_letters(group="g") == 3
    await drain(bus.consumer("g", max_deliveries=1, **FAST))
    assert (await bus.info()).dead_letters == 3
    assert await bus.purge_dead_letters() == 3
    assert await bus.dead_letters() == []


async def test_bad_publish_raises_and_writes_nothing(bus: EventBus) -> None:
    small = EventBus(bus.redis, bus.name, max_payload=100)
    with pytest.raises(PayloadError):
        await bus.publish("x", {"when": object()})
    with pytest.raises(PayloadTooLarge):
        await small.publish("x", "y" * 200)
    with pytest.raises(InvalidJobOptions):
        await bus.publish("", {})
    with pytest.raises(InvalidJobOptions):
        await bus.publish("has space", {})
    with pytest.raises(PayloadError):
        await bus.publish_many([("ok", 1), ("bad", {1, 2})])
    assert await bus.redis.exists(bus.keys.stream) == 0
    with pytest.raises(InvalidJobOptions):
        bus.consumer("bad group")


async def test_stream_is_trimmed_by_length_and_by_age(redis: aredis.Redis) -> None:
    name = f"bus-{uuid.uuid4().hex[:10]}"
    capped = EventBus(redis, name, max_len=5, exact_trim=True)
    await capped.publish_many([("e", i) for i in range(8)])
    assert (await capped.info()).length == 5

    # Entries written an hour ago (ids are milliseconds) go on the next publish
    hour_ago = int(time.time() * 1000) - 3_600_000
    await redis.delete(capped.keys.stream)
    for i in range(3):
        await redis.xadd(capped.keys.stream, {"type": "old", "data": "1"}, id=f"{hour_ago + i}-0")
    aged = EventBus(redis, name, max_age=60, exact_trim=True)
    new = await aged.publish("e", "new")
    assert (await aged.info()).first_id == new
    assert await aged.trim(max_len=0) == 1
    # An injected clock decides what "now" is for age trimming
    await aged.publish("e", "newer")
    ahead = EventBus(redis, name, clock=ManualClock(int(time.time() * 1000) + 3_600_000))
    assert await ahead.trim(max_age=60) == 1


async def test_entry_trimmed_before_acknowledgement_is_dead_lettered_not_lost(bus: EventBus) -> None:
    # Given an entry handed to a consumer that vanished without acknowledging
    await bus.create_group("g")
    gone = await bus.publish("e", 1)
    await bus.redis.xreadgroup("g", "ghost", {bus.keys.stream: ">"}, count=1)
    # When the stream is trimmed past it and a live consumer looks for work
    await bus.trim(max_len=0)
    bus.router.add("*", lambda e: None)
    consumer = bus.consumer("g", **FAST)
    await drain(consumer)
    # Then it is dead-lettered as an id without data, with the reason
    (letter,) = await bus.dead_letters()
    assert (letter.event_id, letter.type, letter.data) == (gone, None, None)
    assert "trimmed" in letter.error and letter.reason == "trimmed"
    assert await bus.replay(letter.id) == [None]


async def test_entries_of_a_vanished_consumer_are_claimed_after_claim_idle(bus: EventBus) -> None:
    # Given entries delivered to a consumer that never acknowledges them
    await bus.create_group("g")
    ids = await bus.publish_many([("e", i) for i in range(5)])
    await bus.redis.xreadgroup("g", "ghost", {bus.keys.stream: ">"}, count=3)
    assert [p.consumer for p in await bus.pending("g")] == ["ghost"] * 3
    got: list[tuple[str, int]] = []
    bus.router.add("e", lambda e: got.append((e.id, e.deliveries)))

    # When a live consumer drains the group
    await drain(bus.consumer("g", **FAST))

    # Then it handled all five, the ghost's three as second deliveries
    assert sorted(got) == sorted([(i, 2) for i in ids[:3]] + [(i, 1) for i in ids[3:]])
    assert await bus.dead_letters() == []
    assert (await bus.groups())[0].pending == 0


async def test_slow_handler_keeps_its_entry_past_claim_idle(bus: EventBus) -> None:
    # Given two consumers of one group and a handler slower than claim_idle
    runs: list[str] = []

    async def slow(event: Event[Any]) -> None:
        runs.append(event.id)
        await asyncio.sleep(1.0)

    bus.router.add("slow", slow)
    await bus.publish("slow", {})
    a = bus.consumer("g", name="a", **FAST)
    b = bus.consumer("g", name="b", **FAST)

    # When both run until the group is done
    await asyncio.gather(drain(a), drain(b))

    # Then the entry ran once: its holder kept touching it
    assert len(runs) == 1


async def test_close_releases_entries_not_started_to_other_consumers(bus: EventBus) -> None:
    started = asyncio.Event()

    async def slow(event: Event[Any]) -> None:
        started.set()
        await asyncio.sleep(0.2)

    bus.router.add("e", slow)
    await bus.publish_many([("e", i) for i in range(6)])
    first = bus.consumer("g", name="first", prefetch=6, claim_idle=60, block=0.1)
    run = asyncio.create_task(first.run())
    await started.wait()
    await first.close()
    await run
    assert first.processed == 1
    # The rest are claimable at once, though claim_idle is a minute
    late = bus.consumer("g", name="late", claim_idle=60, claim_interval=0.05, block=0.1)
    await drain(late)
    assert late.processed == 5
    # A consumer leaves the group on the way out when it holds nothing; one
    # that still held entries is forgotten once idle and empty
    assert [c.name for c in await bus.consumers("g")] == ["first"]
    assert await bus.forget_idle_consumers("g", idle=0) == ["first"]


async def test_group_created_for_new_events_skips_history(bus: EventBus) -> None:
    await bus.publish("old", 1)
    seen: list[str] = []
    bus.router.add("*", lambda e: seen.append(e.type))
    assert await bus.create_group("g", start="new")
    assert not await bus.create_group("g")
    await bus.publish("new", 2)
    await drain(bus.consumer("g", **FAST))
    assert seen == ["new"]


async def test_introspection_reports_lag_pending_and_consumers(bus: EventBus) -> None:
    await bus.create_group("g")
    await bus.publish_many([("e", i) for i in range(4)])
    await bus.redis.xreadgroup("g", "c1", {bus.keys.stream: ">"}, count=1)
    info = await bus.info()
    assert (info.name, info.length, info.dead_letters) == (bus.name, 4, 0)
    (group,) = info.groups
    assert (group.name, group.consumers, group.pending, group.lag) == ("g", 1, 1, 3)
    (consumer,) = await bus.consumers("g")
    assert (consumer.name, consumer.pending) == ("c1", 1)
    (entry,) = await bus.pending("g")
    assert (entry.consumer, entry.deliveries, entry.id) == ("c1", 1, info.first_id)
    assert await bus.forget_idle_consumers("g", idle=0) == []  # c1 holds an entry
    await bus.trim(max_len=0)
    assert [g.name for g in (await bus.info()).groups] == ["g"]  # an empty stream keeps its groups
    assert await bus.delete_group("g")
    assert await bus.groups() == []


async def test_a_consumer_reads_on_past_its_prefetch_as_entries_are_handled(bus: EventBus) -> None:
    # Given more events than the consumer holds at once
    seen: list[int] = []

    async def handle(event: Event[Any]) -> None:
        seen.append(event.data["n"])

    bus.router.add("e", handle)
    await bus.publish_many([("e", {"n": i}) for i in range(50)])

    # Then handling each makes room to read the next: every one is handled
    await drain(bus.consumer("g", concurrency=2, prefetch=4, **FAST))
    assert sorted(seen) == list(range(50))
