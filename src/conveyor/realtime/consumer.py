"""A consumer of one group of an event bus stream.

It reads entries the group has not been handed yet, claims entries that
stayed pending too long on other consumers (dead, frozen, or waiting out a
retry delay), runs the router's handler for each, and acknowledges an entry
only after its handler returned. Acknowledgements are batched: while one
batch is on its way, the next one collects.

While a handler runs, the consumer touches its entries every
``claim_idle / 3`` seconds so that no live consumer loses them; handlers
must therefore not block the event loop for ``claim_idle`` (run blocking
work in a thread: plain-function handlers do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
import uuid
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from conveyor.engine.client.cluster import connection_kwargs
from conveyor.engine.codec import loads, text
from conveyor.engine.commands.events import Member, fail_event, start_event
from conveyor.engine.keys import check_name
from conveyor.engine.signals import Stopped, unless_stopped
from conveyor.errors import (
    ConveyorError,
    PayloadError,
    check_int,
    check_seconds,
)
from conveyor.realtime.acks import Acknowledger
from conveyor.realtime.claims import Delivery, HeldBus, Holdings
from conveyor.realtime.dead_letters import (
    TRANSIENT_ERRORS,
    DeadLettered,
    DeadLetterHook,
    DeadLetterReason,
    asked_delay,
    dead_letter_reason,
    failure_reason,
)
from conveyor.realtime.gate import SuspectGate
from conveyor.realtime.router import Event, EventRouter

if TYPE_CHECKING:
    from conveyor.engine.client.cluster import RedisClient

log = logging.getLogger("conveyor.events")


class Stream(HeldBus, Protocol):
    """What a consumer uses of its :class:`~conveyor.EventBus` (which makes
    consumers, so this module does not import it)."""

    @property
    def name(self) -> str: ...
    @property
    def redis(self) -> RedisClient: ...
    async def create_group(self, group: str, *, start: Literal["first", "new"] = "first") -> bool: ...


R = TypeVar("R")
_FAILURES = (ConveyorError, RedisError, OSError)


class EventConsumer:
    """Consumes ``group`` of ``bus``, ``concurrency`` handlers at a time.

    - ``prefetch``: entries held at once (read ahead of free handlers).
    - ``claim_idle``: seconds an entry may stay untouched on a consumer
      before another claims it (the recovery delay after a crash).
    - ``max_deliveries``: times an entry is handed out before it is
      dead-lettered; a failed delivery is retried after ``retry_delay``
      seconds, doubling per delivery (capped at ``claim_idle``). A handler
      raising ``Discard`` dead-letters at once, ``Retry(delay=...)`` sets the
      delay; an invalid payload is dead-lettered at once. Each dead letter
      records why (``DeadLetterReason``); a failure that is an instance of
      one of ``transient_errors`` is recorded as ``transient``, which tells
      a dead-letter processor that replaying it may succeed.
    - On :meth:`close`, handlers running finish (within ``shutdown_grace``)
      and entries read ahead but not started are released to the group.
    - ``start``: where a group created by this consumer begins ("first":
      every entry still in the stream; "new": only later ones).

    No I/O happens in the constructor.
    """

    def __init__(
        self,
        bus: Stream,
        group: str,
        *,
        router: EventRouter,
        name: str | None = None,
        concurrency: int = 1,
        prefetch: int | None = None,
        block: float = 2.0,
        claim_idle: float = 30.0,
        claim_interval: float | None = None,
        max_deliveries: int = 5,
        retry_delay: float = 1.0,
        handler_timeout: float | None = None,
        start: Literal["first", "new"] = "first",
        shutdown_grace: float = 30.0,
        forget_after: float = 3600.0,
        on_dead_letter: DeadLetterHook | None = None,
        transient_errors: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    ) -> None:
        check_int(concurrency, "concurrency", 1)
        check_int(max_deliveries, "max_deliveries", 1)
        if prefetch is not None:
            check_int(prefetch, "prefetch", 1)
        for what, seconds in (("claim_idle", claim_idle), ("block", block)):
            check_seconds(seconds, what, positive=True)
        for what, seconds in (
            ("retry_delay", retry_delay),
            ("shutdown_grace", shutdown_grace),
            ("forget_after", forget_after),
        ):
            check_seconds(seconds, what)
        for what, maybe in (("claim_interval", claim_interval), ("handler_timeout", handler_timeout)):
            if maybe is not None:
                check_seconds(maybe, what, positive=True)
        self.bus = bus
        self.redis = bus.redis
        self.group = check_name("group", group)
        self.name = check_name(
            "consumer", name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        #: This consumer as the bus's scripts take it: stream keys, group, name.
        self.member = Member(bus.keys, self.group, self.name)
        self.router = router
        self.concurrency = concurrency
        self.prefetch = max(prefetch or 16, concurrency)
        timeout = connection_kwargs(self.redis).get("socket_timeout")
        self.block_ms = max(1, int(1000 * (min(block, timeout / 2) if timeout else block)))
        self.claim_idle_ms = int(claim_idle * 1000)
        self.claim_interval = claim_interval or min(claim_idle / 4, 1.0)
        self.max_deliveries = max_deliveries
        self.retry_delay = retry_delay
        self.handler_timeout = handler_timeout
        self.start = start
        self.shutdown_grace = shutdown_grace
        self.transient_errors = transient_errors
        self.forget_after = forget_after
        self.on_dead_letter = on_dead_letter
        self._stop = asyncio.Event()
        self._holdings = Holdings(self, self._dispatch, self._dead_lettered, self._stop)
        self._held = self._holdings.held
        self._acks = Acknowledger(self.redis, bus.keys, self.group, self._holdings.drop)
        self._done = asyncio.Event()
        self._room = self._holdings.room
        self._work: asyncio.Queue[Delivery] = asyncio.Queue()
        self._gate = SuspectGate()
        self.processed = 0
        self.failed = 0
        self.dead_lettered = 0
        self.skipped = 0

    def __repr__(self) -> str:
        return f"EventConsumer({self.bus.name!r}, group={self.group!r}, name={self.name!r})"

    # -- public -----------------------------------------------------------

    async def run(self, *, burst: bool = False) -> None:
        """Consumes until :meth:`close`, or with ``burst`` until the group
        has nothing left: no entry it was not handed yet and none pending on
        any consumer. On the way out, handlers get ``shutdown_grace`` seconds
        to finish; entries not finished are released for others at once."""
        await self.bus.create_group(self.group, start=self.start)
        self._stop.clear()
        self._done.clear()
        self._acks.open()
        try:
            async with asyncio.TaskGroup() as tg:
                handlers = [tg.create_task(self._handle_loop()) for _ in range(self.concurrency)]
                acker = tg.create_task(self._acks.loop())
                keeper = tg.create_task(self._holdings.keep_loop())
                try:
                    await self._read_loop(burst)
                    try:
                        async with asyncio.timeout(self.shutdown_grace):
                            await self._work.join()
                    except TimeoutError:
                        log.warning("%r: handlers still running after the shutdown grace", self)
                finally:
                    for task in (keeper, *handlers):
                        task.cancel()
                    await asyncio.gather(keeper, *handlers, return_exceptions=True)
                    self._acks.close()
                    await acker
                    await self._holdings.release()
            await self._holdings.leave()
        finally:
            self._done.set()

    async def close(self) -> None:
        """Stops reading and waits until :meth:`run` returned (handlers in
        flight finish first, within ``shutdown_grace``)."""
        self._stop.set()
        if not self._done.is_set():
            await self._done.wait()

    def request_stop(self) -> None:
        """Like :meth:`close` without waiting (for signal handlers)."""
        self._stop.set()

    # -- reading ----------------------------------------------------------

    async def _read_loop(self, burst: bool) -> None:
        block_ms = min(self.block_ms, 50) if burst else self.block_ms
        failures = 0
        while not self._stop.is_set():
            room = self.prefetch - len(self._held)
            if room <= 0:
                self._room.clear()
                try:
                    await unless_stopped(self._room.wait(), self._stop)
                except Stopped:
                    return
                continue
            try:
                reply: Any = await unless_stopped(
                    self.redis.xreadgroup(
                        self.group, self.name, {self.bus.keys.stream: ">"}, count=room, block=block_ms
                    ),
                    self._stop,
                )
                failures = 0
            except Stopped:
                return
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.bus.create_group(self.group, start=self.start)
                continue
            except _FAILURES as exc:
                failures += 1
                await self._pause_after(exc, failures)
                continue
            entries = reply[0][1] if reply else []
            if entries:
                self._dispatch(
                    Delivery(text(eid), {text(k): v for k, v in fields.items()}) for eid, fields in entries
                )
            elif burst and await self._group_is_done():
                return

    async def _group_is_done(self) -> bool:
        if self._held or self._acks.pending or not self._work.empty():
            return False
        summary = await self.redis.xpending(self.bus.keys.stream, self.group)
        return int(summary["pending"]) == 0

    async def _pause_after(self, exc: BaseException, failures: int) -> None:
        delay = min(0.05 * 2**failures, 5.0)
        log.warning("%r: Redis call failed (%s); again in %.2fs", self, exc, delay)
        with contextlib.suppress(Stopped):
            await unless_stopped(asyncio.sleep(delay), self._stop)

    def _dispatch(self, deliveries: Any) -> None:
        for d in deliveries:
            if d.id in self._held:
                continue  # already ours (a touch came late); one run is enough
            self._held[d.id] = d
            self._work.put_nowait(d)

    # -- handling ---------------------------------------------------------

    async def _handle_loop(self) -> None:
        while True:
            d = await self._work.get()
            try:
                if self._stop.is_set():
                    continue  # not started: released to the group on the way out
                async with self._gate.alone() if d.suspect else self._gate.shared():
                    await self._start_and_process(d)
            except _FAILURES as exc:
                # The outcome could not be recorded; the entry stays pending
                # and is claimed again after claim_idle.
                log.warning("%r: could not record the outcome of %s: %s", self, d.id, exc)
                self._holdings.drop(d.id)
            finally:
                self._work.task_done()

    async def _start_and_process(self, d: Delivery) -> None:
        if d.fields is None:
            started = await start_event(
                self.redis,
                self.member,
                d.id,
                max_deliveries=self.max_deliveries,
                dead_letter_cap=self.bus.dead_max_len,
            )
            if started.code != 1:
                self._holdings.drop(d.id)
                if started.code == 2:
                    await self._dead_lettered([(d.id, started.type, started.error, started.reason)])
                return
            d.deliveries = started.deliveries
            d.fields = started.fields
        await self._process(d)

    async def _process(self, d: Delivery) -> None:
        assert d.fields is not None
        target = d.fields.get("group")
        if target is not None and text(target) != self.group:
            self.skipped += 1  # a replay meant for another group
            return self._acks.ack(d.id)
        raw_type = d.fields.get("type")
        if raw_type is None:
            return await self._fail(d, "entry has no 'type' field", "", "invalid")
        event_type = text(raw_type)
        route = self.router.route(event_type)
        if route is None:
            self.skipped += 1
            return self._acks.ack(d.id)
        try:
            raw = d.fields.get("data")
            data = route.validate(loads(raw) if raw is not None else None)
        except (PayloadError, ValidationError) as exc:
            return await self._fail(d, f"invalid payload for {event_type}: {exc}", "", "invalid")
        replay = d.fields.get("replay")
        event = Event(
            d.id, event_type, data, d.deliveries, self.group, self.name, text(replay) if replay else None
        )
        try:
            await route.call(event, self.handler_timeout)
        except BaseException as caught:
            task = asyncio.current_task()
            if isinstance(caught, asyncio.CancelledError) and task is not None and task.cancelling():
                raise  # the consumer's own cancel (shutdown, timeout)
            # anything else the handler raised, SystemExit or its own
            # CancelledError included, is a failure of this delivery
            self.failed += 1
            log.warning("%r: handler for %s failed on %s: %r", self, event_type, d.id, caught)
            tb = getattr(caught, "remote_traceback", None) or traceback.format_exc()
            reason = failure_reason(caught, self.transient_errors)
            await self._fail(d, f"{type(caught).__name__}: {caught}", tb, reason, delay=asked_delay(caught))
        else:
            self.processed += 1
            self._acks.ack(d.id)

    async def _fail(
        self, d: Delivery, error: str, tb: str, reason: DeadLetterReason, *, delay: float | None = None
    ) -> None:
        """Records a failed delivery; ``invalid`` and ``discarded`` ones are
        dead-lettered at once, others once out of deliveries."""
        if delay is None:
            delay = self.retry_delay * 2 ** (d.deliveries - 1)
        idle = max(0, self.claim_idle_ms - int(min(delay * 1000, self.claim_idle_ms)))
        try:
            code = await fail_event(
                self.redis,
                self.member,
                d.id,
                max_deliveries=self.max_deliveries,
                idle_ms=idle,
                error=error,
                traceback=tb,
                dead_letter_cap=self.bus.dead_max_len,
                at_once=reason in ("invalid", "discarded"),
                reason=reason,
            )
        finally:
            self._holdings.drop(d.id)
        if code == 2:
            await self._dead_lettered([(d.id, text((d.fields or {}).get("type", b"")), error, reason)])

    async def _dead_lettered(self, entries: list[tuple[str, str, str, str]]) -> None:
        self.dead_lettered += len(entries)
        for entry_id, event_type, error, reason in entries:
            log.warning("%r: dead-lettered %s (%s, %s): %s", self, entry_id, event_type or "?", reason, error)
            if self.on_dead_letter is not None:
                letter = DeadLettered(entry_id, event_type, self.group, error, dead_letter_reason(reason))
                try:
                    await self.on_dead_letter(letter)
                except Exception:
                    log.exception("%r: on_dead_letter hook failed", self)
