"""The scheduler: enqueues the due ticks of a queue's schedules (see
schedules.py), each exactly once however many schedulers run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.engine import preflight
from conveyor.engine.client.errors import outage_event
from conveyor.engine.clock import clock_arg, current_ms
from conveyor.engine.codec import loads
from conveyor.engine.codec import text as codec_text
from conveyor.engine.commands.schedules import NO_JOB, TickJob, fire_schedule
from conveyor.engine.keys import runs_field
from conveyor.engine.schedules import Spec, tick_job_id
from conveyor.errors import ConnectionFailed, InvalidArgument, RedisOutOfMemory, check_int, check_seconds

if TYPE_CHECKING:
    from conveyor.engine.queue import Queue

log = logging.getLogger("conveyor.scheduler")


class Scheduler:
    """Enqueues the due ticks of the schedules of ``queues``.

    Run as many as you like (one per worker host, say): each tick is
    enqueued once. A schedule whose ticks were missed while no scheduler
    ran enqueues one job on return (``missed="once"``, the default), every
    missed tick (``"all"``), or none (``"skip"``), then continues from now.
    """

    def __init__(
        self,
        queues: Sequence[Queue],
        *,
        poll: float = 1.0,
        batch: int = 100,
        allow_eviction: bool | None = None,
    ) -> None:
        if not queues:
            raise InvalidArgument("a Scheduler needs at least one queue")
        check_seconds(poll, "poll", positive=True)
        check_int(batch, "batch", 1)
        self.queues = list(queues)
        #: Run on a Redis that may evict keys (None: CONVEYOR_ALLOW_EVICTION).
        self.allow_eviction = allow_eviction
        self.poll = poll
        self.batch = batch
        self.fired = 0
        self._stop: asyncio.Event | None = None

    async def tick(self) -> int:
        """One pass: fires every due tick of every queue; returns how many
        jobs this scheduler enqueued (ticks won by another are not counted)."""
        fired = 0
        for queue in self.queues:
            fired += await self._tick_queue(queue)
        self.fired += fired
        return fired

    async def run(self) -> None:
        """Fires ticks as they fall due until :meth:`close`."""
        self._stop = stop = asyncio.Event()
        failures = 0
        log.info("scheduler started for %s", ", ".join(q.name for q in self.queues))
        # Redis as it is at the start: unreachable or unsafe fails the start,
        # as for a worker; an outage later is waited out
        for redis in {id(q.redis): q.redis for q in self.queues}.values():
            await preflight.guard(redis, "scheduler", self.allow_eviction)
        while not stop.is_set():
            try:
                await self.tick()
                wait = await self._until_next()
                failures = 0
            except (ConnectionFailed, RedisConnectionError, RedisTimeoutError, RedisOutOfMemory) as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning("scheduler: %s; retrying", exc, extra={"event": outage_event(exc)})
                wait = min(2.0, 0.05 * 2**failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
        log.info("scheduler stopped")

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _until_next(self) -> float:
        wait = self.poll
        for queue in self.queues:
            head: list[Any] = await queue.redis.zrange(queue.keys.schedules_next, 0, 0, withscores=True)
            if head:
                wait = min(
                    wait, max(0.0, (float(head[0][1]) - await current_ms(queue.clock, queue.redis)) / 1000)
                )
        return wait

    async def _tick_queue(self, queue: Queue) -> int:
        k = queue.keys
        fired = 0
        # Rounds, so that a schedule catching up with missed="all" enqueues
        # every missed tick in one pass (bounded, so one pass stays short).
        for _ in range(100):
            now = await current_ms(queue.clock, queue.redis)
            due: list[Any] = await queue.redis.zrangebyscore(
                k.schedules_next, "-inf", now, 0, self.batch, withscores=True
            )
            moved = 0
            for raw_key, at in due:
                key = codec_text(raw_key)
                async with queue.redis.pipeline(transaction=False) as pipe:
                    pipe.hget(k.schedules, key)
                    pipe.hget(k.schedules_runs, runs_field(key))
                    raw, runs = await pipe.execute()
                if raw is None:
                    continue
                done, enqueued = await self._fire(queue, key, raw, int(at), int(runs or 0), now)
                moved += done
                fired += enqueued
            if not moved:
                break
        return fired

    async def _fire(
        self, queue: Queue, key: str, raw: bytes, tick: int, runs: int, now: int
    ) -> tuple[int, int]:
        """Fires (or skips) one due tick: (1 if this scheduler moved the
        schedule on, 1 if it enqueued a job)."""
        stored = loads(raw)
        spec = Spec.from_stored(key, stored)
        nxt = spec.following(tick, runs + 1)
        fire = True
        if spec.missed != "all" and 0 <= nxt <= now:
            # ticks were missed while nothing ran: one job (or none), then on from now
            fire = spec.missed == "once"
            nxt = spec.following(now, runs + 1 if fire else runs)
        k = queue.keys
        job = NO_JOB
        if fire:
            data = orjson.dumps(stored.get("data"))
            job = TickJob(
                tick_job_id(key, tick), stored["name"], data, stored["opts"], int(stored.get("pr", 0))
            )
        done = await fire_schedule(
            queue.redis, k, key, now=clock_arg(queue.clock), tick_ms=tick, new_next_ms=nxt, spec=raw, job=job
        )
        if not done:
            return 0, 0
        if fire:
            log.debug("schedule %s fired for tick %d", key, tick, extra={"event": "schedule_fired"})
        return 1, int(fire)
