"""The event bus: typed events on a Redis Stream, consumed by groups.

Every consumer group sees every event at least once: an entry stays pending
until a handler of the group succeeds and acknowledges it. Entries pending on
a consumer that died are claimed by a live one after ``claim_idle``; an
entry handed out ``max_deliveries`` times without success, or whose payload
fails validation, moves to the bus's dead-letter stream with the error, from
where it can be inspected and replayed to its group.

The stream is trimmed by length (approximately, by default) and optionally by
age on every publish. Consumers are :class:`EventConsumer` objects, made by
:meth:`EventBus.consumer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from redis.exceptions import ResponseError

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.errors import maps_redis_errors
from conveyor.engine.clock import Clock, RedisClock, clock_arg, current_ms
from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD, dumps_payload, text
from conveyor.engine.commands import events as commands
from conveyor.engine.keys import DEFAULT_PREFIX, StreamKeys, check_name, stream_registry_key
from conveyor.errors import InvalidJobOptions, check_seconds
from conveyor.realtime.dead_letters import DeadLetter, check_entry_ids
from conveyor.realtime.router import EventRouter, H

if TYPE_CHECKING:
    from conveyor.realtime.consumer import EventConsumer


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A consumer group: ``lag`` is how many entries it has not been handed
    yet (None when Redis cannot tell, after deletions), ``pending`` how many
    it was handed and has not acknowledged."""

    name: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    name: str
    pending: int
    idle_seconds: float


@dataclass(frozen=True, slots=True)
class PendingEntry:
    id: str
    consumer: str
    idle_seconds: float
    deliveries: int


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    length: int
    first_id: str | None
    last_id: str | None
    groups: list[GroupInfo]
    dead_letters: int


class EventBus:
    """Publishes to and administers one event stream, from any process.

    ``max_len`` caps the stream (0 = no cap) and ``max_age`` (seconds) drops
    older entries, both on every publish; trimming is approximate (whole
    stream nodes, much cheaper) unless ``exact_trim``. An entry trimmed
    before a group acknowledged it is dead-lettered for that group (as an
    id without data) the next time a consumer of the group looks for work.
    ``dead_max_len`` caps the dead-letter stream. No I/O happens in the
    constructor.
    """

    def __init__(
        self,
        redis: RedisClient,
        stream: str = "events",
        *,
        max_len: int = 100_000,
        max_age: float | None = None,
        exact_trim: bool = False,
        dead_max_len: int = 100_000,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        clock: Clock | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        if max_len < 0 or dead_max_len < 0:
            raise InvalidJobOptions("max_len and dead_max_len must be >= 0")
        if max_age is not None:
            max_age = check_seconds(max_age, "max_age", positive=True)
        self.redis = redis
        self.keys = StreamKeys(stream, prefix)
        self.prefix = prefix
        self.name = stream
        self._registered = False
        self.max_len = max_len
        self.max_age_ms = int(max_age * 1000) if max_age else 0
        self.trim_how = "=" if exact_trim else "~"
        self.dead_max_len = dead_max_len
        self.max_payload = max_payload
        self.clock: Clock = clock or RedisClock()
        #: The handlers of consumers made without a router of their own.
        self.router = EventRouter()

    def __repr__(self) -> str:
        return f"EventBus({self.name!r})"

    # -- producing --------------------------------------------------------

    def on(self, pattern: str, *, model: Any = None) -> Callable[[H], H]:
        """Decorator registering a handler on the bus's router:
        ``@bus.on("user.created", model=UserCreated)``."""
        return self.router.on(pattern, model=model)

    @maps_redis_errors
    async def publish(self, type: str, data: Any = None) -> str:
        """Appends one event; returns its id. ``data`` is anything JSON can
        hold, a pydantic model or a dataclass. Raises InvalidJobOptions for
        an empty type, PayloadError (PayloadTooLarge) for data that cannot
        be encoded or is over ``max_payload``; nothing is written then."""
        return (await self.publish_many([(type, data)]))[0]

    @maps_redis_errors
    async def publish_many(self, events: Iterable[tuple[str, Any]]) -> list[str]:
        """Appends events in order, in one step; returns their ids. Every
        event is validated first: one bad event and none is written."""
        args: list[str | bytes] = []
        for event_type, data in events:
            args += [self._check_type(event_type), self._encode(data), "", ""]
        if not args:
            return []
        return await self._append(args)

    def _check_type(self, event_type: str) -> str:
        if not isinstance(event_type, str) or not event_type or any(c.isspace() for c in event_type):
            raise InvalidJobOptions(f"event type {event_type!r} must be a non-empty string without spaces")
        return event_type

    def _encode(self, data: Any) -> bytes:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        return dumps_payload(data, self.max_payload)

    @maps_redis_errors
    async def register(self) -> None:
        """Lists this stream where the API, the dashboard and the CLI find
        streams (once per bus; publishing and consuming do it for you)."""
        if not self._registered:
            await self.redis.sadd(stream_registry_key(self.prefix), self.name)
            self._registered = True

    async def _append(self, args: Sequence[str | bytes]) -> list[str]:
        await self.register()
        return await commands.publish_events(
            self.redis,
            self.keys,
            args,
            max_length=self.max_len,
            max_age_ms=self.max_age_ms,
            now=clock_arg(self.clock),
            trim=self.trim_how,
        )

    # -- consuming --------------------------------------------------------

    def consumer(self, group: str, *, router: EventRouter | None = None, **options: Any) -> EventConsumer:
        """A consumer in ``group`` running the handlers of ``router`` (by
        default the bus's own). See :class:`EventConsumer` for options."""
        from conveyor.realtime.consumer import EventConsumer

        return EventConsumer(self, group, router=router or self.router, **options)

    @maps_redis_errors
    async def create_group(self, group: str, *, start: Literal["first", "new"] = "first") -> bool:
        """Creates ``group`` (and the stream) if missing; returns whether it
        was created. ``start="first"``: the group gets every entry still in
        the stream; ``"new"``: only entries published from now on."""
        check_name("group", group)
        await self.register()
        try:
            await self.redis.xgroup_create(
                self.keys.stream, group, "0" if start == "first" else "$", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    @maps_redis_errors
    async def delete_group(self, group: str) -> bool:
        """Deletes ``group`` and forgets what it had pending."""
        removed = await self.redis.xgroup_destroy(self.keys.stream, group)
        await self.redis.delete(self.keys.errors(group))
        return bool(removed)

    # -- introspection ----------------------------------------------------

    @maps_redis_errors
    async def info(self) -> StreamInfo:
        """Length, first and last ids, groups with lag and pending counts,
        and how many entries are dead-lettered."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.keys.stream)
            pipe.xrange(self.keys.stream, count=1)
            pipe.xrevrange(self.keys.stream, count=1)
            pipe.xlen(self.keys.dead)
            length, first, last, dead = await pipe.execute()
        return StreamInfo(
            name=self.name,
            length=int(length),
            first_id=text(first[0][0]) if first else None,
            last_id=text(last[0][0]) if last else None,
            groups=await self.groups(),
            dead_letters=int(dead),
        )

    @maps_redis_errors
    async def groups(self) -> list[GroupInfo]:
        try:
            raw = await self.redis.xinfo_groups(self.keys.stream)
        except ResponseError:  # no such stream yet
            return []
        return [
            GroupInfo(
                name=text(g["name"]),
                consumers=int(g["consumers"]),
                pending=int(g["pending"]),
                lag=int(g["lag"]) if g.get("lag") is not None else None,
                last_delivered_id=text(g["last-delivered-id"]),
            )
            for g in raw
        ]

    @maps_redis_errors
    async def consumers(self, group: str) -> list[ConsumerInfo]:
        raw = await self.redis.xinfo_consumers(self.keys.stream, group)
        return [ConsumerInfo(text(c["name"]), int(c["pending"]), int(c["idle"]) / 1000) for c in raw]

    @maps_redis_errors
    async def pending(
        self, group: str, *, count: int = 100, consumer: str | None = None
    ) -> list[PendingEntry]:
        """The oldest entries ``group`` was handed and has not acknowledged."""
        raw = await self.redis.xpending_range(self.keys.stream, group, "-", "+", count, consumername=consumer)
        return [
            PendingEntry(
                text(p["message_id"]),
                text(p["consumer"]),
                int(p["time_since_delivered"]) / 1000,
                int(p["times_delivered"]),
            )
            for p in raw
        ]

    @maps_redis_errors
    async def forget_idle_consumers(self, group: str, *, idle: float) -> list[str]:
        """Removes from ``group`` the consumers idle for ``idle`` seconds
        that hold no entries (gone processes); returns their names."""
        gone = []
        for c in await self.consumers(group):
            if (
                c.pending == 0
                and c.idle_seconds >= idle
                and await commands.forget_consumer(self.redis, commands.Member(self.keys, group, c.name))
            ):
                gone.append(c.name)
        return gone

    @maps_redis_errors
    async def trim(self, *, max_len: int | None = None, max_age: float | None = None) -> int:
        """Trims the stream now, exactly; returns how many entries went."""
        removed = 0
        if max_len is not None:
            removed += int(await self.redis.xtrim(self.keys.stream, maxlen=max_len, approximate=False))
        if max_age is not None:
            now = await current_ms(self.clock, self.redis)
            oldest = now - int(max_age * 1000)
            removed += int(
                await self.redis.xtrim(self.keys.stream, minid=f"{max(oldest, 0)}-0", approximate=False)
            )
        return removed

    # -- dead letters -----------------------------------------------------

    @maps_redis_errors
    async def dead_letters(
        self,
        *,
        count: int = 100,
        before: str | None = None,
        group: str | None = None,
        search: str | None = None,
    ) -> list[DeadLetter]:
        """Dead-lettered entries, newest first, ``count`` per page (pass the
        last id seen as ``before`` for the next page), optionally only a
        group's and only those whose error or type contains ``search``."""
        out: list[DeadLetter] = []
        end = f"({before}" if before else "+"
        while len(out) < count:
            page = await self.redis.xrevrange(self.keys.dead, max=end, min="-", count=max(count, 100))
            if not page:
                break
            for entry_id, fields in page:
                letter = DeadLetter.from_entry(entry_id, fields)
                if group is not None and letter.group != group:
                    continue
                if search and search.lower() not in f"{letter.type} {letter.error}".lower():
                    continue
                out.append(letter)
                if len(out) == count:
                    break
            end = f"({text(page[-1][0])}"
        return out

    @maps_redis_errors
    async def dead_letter(self, dead_id: str) -> DeadLetter | None:
        check_entry_ids([dead_id])
        page = await self.redis.xrange(self.keys.dead, min=dead_id, max=dead_id)
        return DeadLetter.from_entry(*page[0]) if page else None

    @maps_redis_errors
    async def replay(self, *dead_ids: str) -> list[str | None]:
        """Publishes dead-lettered entries again, to the group that gave up
        on them only, and removes them from the dead-letter stream. Returns
        each one's new event id, or None for an id that is not (or no
        longer) dead-lettered or has no data to replay."""
        if not dead_ids:
            return []
        check_entry_ids(dead_ids)
        return await commands.replay_dead_events(
            self.redis, self.keys, dead_ids, max_length=self.max_len, trim=self.trim_how
        )

    async def dead_letter_pages(
        self, *, group: str | None = None, search: str | None = None
    ) -> AsyncIterator[list[DeadLetter]]:
        """Every dead letter (of ``group``, matching ``search``), newest
        first, 500 at a time."""
        before: str | None = None
        while letters := await self.dead_letters(count=500, before=before, group=group, search=search):
            yield letters
            before = letters[-1].id

    @maps_redis_errors
    async def replay_dead_letters(
        self, *dead_ids: str, group: str | None = None, search: str | None = None
    ) -> int:
        """Replays the dead letters ``dead_ids``, or with none every one (of
        ``group``, matching ``search``); returns how many were published again."""
        if dead_ids:
            return sum(1 for new in await self.replay(*dead_ids) if new is not None)
        replayed = 0
        async for letters in self.dead_letter_pages(group=group, search=search):
            results = await self.replay(*(d.id for d in letters))
            replayed += sum(1 for r in results if r is not None)
        return replayed

    @maps_redis_errors
    async def remove_dead_letters(self, *dead_ids: str) -> int:
        check_entry_ids(dead_ids)
        return int(await self.redis.xdel(self.keys.dead, *dead_ids)) if dead_ids else 0

    @maps_redis_errors
    async def purge_dead_letters(self, *dead_ids: str) -> int:
        """Deletes the dead letters ``dead_ids``, or with none every one;
        returns how many went."""
        if dead_ids:
            return await self.remove_dead_letters(*dead_ids)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xlen(self.keys.dead)
            pipe.delete(self.keys.dead)
            count, _ = await pipe.execute()
        return int(count)
