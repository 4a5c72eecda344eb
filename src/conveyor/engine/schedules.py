"""Repeatable jobs: schedules by cron pattern (in a time zone) or fixed
interval, kept in Redis by key (the scheduler that enqueues their ticks
is in scheduler.py).

A schedule's next run lives in a zset. Firing a tick is one script that
compares that next run and the spec, enqueues the tick's job and moves the
next run on, so any number of schedulers (and restarts) enqueue each tick
exactly once. Cron patterns are parsed by ``cronsim`` (standard five
fields, evaluated in the schedule's zone, daylight-saving aware).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from cronsim import CronSim, CronSimError

from conveyor.engine.clock import current_ms
from conveyor.engine.codec import dumps_payload, loads
from conveyor.engine.codec import text as codec_text
from conveyor.engine.commands.schedules import upsert_schedule
from conveyor.engine.keys import last_field, runs_field
from conveyor.engine.options import JobOptions
from conveyor.errors import (
    MAX_SECONDS,
    InvalidJobOptions,
    InvalidSchedule,
)

if TYPE_CHECKING:
    from conveyor.engine.scope import QueueScope

log = logging.getLogger("conveyor.scheduler")

Missed = Literal["once", "all", "skip"]
_MISSED = ("once", "all", "skip")
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NOT_FOR_SCHEDULES = ("job_id", "delay", "run_at", "dedup_key", "dedup_ttl", "debounce", "group")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as stored: what it enqueues, when, and how far it got."""

    key: str
    name: str
    data: Any
    cron: str | None
    every: float | None
    tz: str
    start_at: datetime | None
    end_at: datetime | None
    limit: int | None
    missed: Missed
    options: dict[str, Any]
    runs: int
    last_run: datetime | None
    next_run: datetime | None
    spec: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def upcoming(self, count: int = 5) -> list[datetime]:
        """The next ``count`` run times (fewer when the schedule ends)."""
        spec = Spec.from_stored(self.key, self.spec)
        out: list[datetime] = []
        at = int(self.next_run.timestamp() * 1000) if self.next_run else -1
        runs = self.runs
        while at >= 0 and len(out) < count:
            out.append(_dt(at))
            runs += 1
            at = spec.following(at, runs)
        return out


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(value: datetime | None, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidSchedule(f"{what} must be a datetime, not {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


class Spec:
    """A validated schedule spec and its tick arithmetic (all in ms)."""

    __slots__ = ("cron", "end", "every", "limit", "missed", "raw", "start", "zone")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.cron: str | None = raw.get("cron")
        self.every: int | None = raw.get("every")
        self.start: int = raw.get("start") or 0
        self.end: int | None = raw.get("end")
        self.limit: int | None = raw.get("limit")
        self.missed: Missed = raw.get("missed", "once")
        self.zone = ZoneInfo(raw.get("tz", "UTC"))

    @classmethod
    def from_stored(cls, key: str, raw: dict[str, Any]) -> Spec:
        try:
            return cls(raw)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise InvalidSchedule(f"schedule {key!r} has an unreadable spec: {exc}") from None

    def encoded(self) -> bytes:
        return orjson.dumps(self.raw, option=orjson.OPT_SORT_KEYS)

    def tick_after(self, ms: int) -> int:
        """The first tick strictly after ``ms`` (ignoring end and limit)."""
        if self.every is not None:
            if ms < self.start:
                return self.start
            return self.start + ((ms - self.start) // self.every + 1) * self.every
        assert self.cron is not None
        floor = max(ms, self.start - 1)
        moment = datetime.fromtimestamp(floor / 1000, tz=UTC).astimezone(self.zone)
        return int(next(CronSim(self.cron, moment)).timestamp() * 1000)

    def following(self, ms: int, runs: int) -> int:
        """The tick after ``ms`` once ``runs`` jobs were enqueued, or -1 when
        the schedule has ended."""
        if self.limit is not None and runs >= self.limit:
            return -1
        nxt = self.tick_after(ms)
        if self.end is not None and nxt > self.end:
            return -1
        return nxt


def build_spec(
    key: str,
    name: str,
    data: Any,
    *,
    cron: str | None,
    every: float | timedelta | None,
    tz: str,
    start_at: datetime | None,
    end_at: datetime | None,
    limit: int | None,
    missed: str,
    max_payload: int,
    options: dict[str, Any],
) -> Spec:
    """Validates everything about a schedule before anything is written."""
    if not isinstance(key, str) or not key or len(key) > 256 or "/" in key or key in (".", ".."):
        raise InvalidSchedule(
            "a schedule needs a key: a non-empty string of at most 256 chars, without '/', not '.' or '..'"
        )
    if not isinstance(name, str) or not name:
        raise InvalidSchedule("a schedule needs a non-empty job name")
    if (cron is None) == (every is None):
        raise InvalidSchedule("give a schedule either cron or every, not both or neither")
    raw: dict[str, Any] = {"name": name}
    if cron is not None:
        if not isinstance(cron, str):
            raise InvalidSchedule(f"cron must be a string, not {cron!r}")
        pattern = _ALIASES.get(cron.strip().lower(), cron.strip())
        try:
            next(CronSim(pattern, datetime(2000, 1, 1, tzinfo=UTC)))
        except (CronSimError, StopIteration) as exc:
            raise InvalidSchedule(f"invalid cron pattern {cron!r}: {exc}") from None
        raw["cron"] = pattern
        if not isinstance(tz, str):
            raise InvalidSchedule(f"tz must be a time zone name, not {tz!r}")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidSchedule(f"unknown time zone {tz!r}: {exc}") from None
        raw["tz"] = tz
    else:
        seconds = every.total_seconds() if isinstance(every, timedelta) else every
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0.001 <= seconds <= MAX_SECONDS
        ):
            raise InvalidSchedule(f"every must be from 0.001 seconds to ten years, not {every!r}")
        raw["every"] = round(seconds * 1000)
    start, end = _ms(start_at, "start_at"), _ms(end_at, "end_at")
    if start is not None:
        raw["start"] = start
    if end is not None:
        if start is not None and end < start:
            raise InvalidSchedule("end_at is before start_at")
        raw["end"] = end
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidSchedule(f"limit must be an int >= 1, not {limit!r}")
        raw["limit"] = limit
    if missed not in _MISSED:
        raise InvalidSchedule(f"missed must be one of {', '.join(_MISSED)}, not {missed!r}")
    raw["missed"] = missed
    bad = [opt for opt in _NOT_FOR_SCHEDULES if opt in options]
    if bad:
        raise InvalidSchedule(f"a schedule sets its own {', '.join(bad)}: each tick gets its own job")
    try:
        opts = JobOptions.build(options)
    except InvalidJobOptions as exc:
        raise InvalidSchedule(str(exc)) from None
    payload = dumps_payload(data, max_payload)
    raw["data"] = orjson.Fragment(payload)
    raw["opts"] = opts.wire
    raw["pr"] = opts.priority
    raw["options"] = {k: v for k, v in options.items() if isinstance(v, str | int | float | bool | None)}
    return Spec(raw)


def tick_job_id(key: str, tick_ms: int) -> str:
    """The deterministic id of a tick's job."""
    return f"repeat:{key}:{tick_ms}"


def schedule_of(job_id: str) -> str | None:
    """The key of the schedule whose tick started the job, or None."""
    if not job_id.startswith("repeat:"):
        return None
    key, _, tick = job_id[len("repeat:") :].rpartition(":")
    return key if key and tick.isdigit() else None


def parse_schedule(key: str, raw_spec: bytes, next_ms: float | None, runs: int, last: int | None) -> Schedule:
    raw = loads(raw_spec)
    every = raw.get("every")
    return Schedule(
        key=key,
        name=raw.get("name", ""),
        data=raw.get("data"),
        cron=raw.get("cron"),
        every=every / 1000 if every is not None else None,
        tz=raw.get("tz", "UTC"),
        start_at=_dt(raw["start"]) if raw.get("start") is not None else None,
        end_at=_dt(raw["end"]) if raw.get("end") is not None else None,
        limit=raw.get("limit"),
        missed=raw.get("missed", "once"),
        options=raw.get("options", {}),
        runs=runs,
        last_run=_dt(last) if last is not None else None,
        next_run=_dt(int(next_ms)) if next_ms is not None else None,
        spec=raw,
    )


# -- the queue's side: upsert, read, remove -----------------------------------


async def upsert(queue: QueueScope, key: str, spec: Spec) -> Schedule:
    """Stores a validated schedule (see ``Queue.upsert_schedule``)."""
    k = queue.keys
    now = await current_ms(queue.clock, queue.redis)
    runs = int(await queue.redis.hget(k.schedules_runs, runs_field(key)) or 0)
    first = spec.following(now, runs)
    await upsert_schedule(queue.redis, k, key, spec=spec.encoded(), next_run_ms=first)
    found = await get(queue, key)
    assert found is not None
    return found


async def get(queue: QueueScope, key: str) -> Schedule | None:
    k = queue.keys
    async with queue.redis.pipeline(transaction=False) as pipe:
        pipe.hget(k.schedules, key)
        pipe.zscore(k.schedules_next, key)
        pipe.hmget(k.schedules_runs, runs_field(key), last_field(key))
        raw, at, (runs, last) = await pipe.execute()
    if raw is None:
        return None
    return parse_schedule(key, raw, at, int(runs or 0), int(last) if last else None)


async def get_all(queue: QueueScope) -> list[Schedule]:
    keys = sorted(codec_text(k) for k in await queue.redis.hkeys(queue.keys.schedules))
    found = [await get(queue, key) for key in keys]
    return [s for s in found if s is not None]


async def remove(queue: QueueScope, key: str) -> bool:
    k = queue.keys
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.hdel(k.schedules, key)
        pipe.zrem(k.schedules_next, key)
        pipe.hdel(k.schedules_runs, runs_field(key), last_field(key))
        removed, _, _ = await pipe.execute()
    return bool(removed)
