"""A handle on one queue: adding jobs, here; reading, limits, schedules
and administration in the modules beside this one, whose functions are
this class's methods (each takes the queue first, as ``self``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Unpack, cast

from conveyor.engine import preflight
from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.errors import call
from conveyor.engine.clock import Clock, RedisClock, clock_arg
from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD, dumps_payload, loads
from conveyor.engine.commands import jobs as commands
from conveyor.engine.commands.jobs import AddedMany, NewJob
from conveyor.engine.job import Job
from conveyor.engine.keys import DEFAULT_PREFIX, QueueKeys, registry_key
from conveyor.engine.middleware import Middleware, check_middleware, stamp_headers
from conveyor.engine.options import Durable, JobOptions, JobOptionsDict
from conveyor.engine.queue import admin, reading, schedules
from conveyor.engine.queue import limits as limiting
from conveyor.engine.states import JobState
from conveyor.errors import (
    InvalidJobOptions,
    NotReplicated,
)

BULK_CHUNK = 1000
#: A job ready to add: name, data, options and the add script's arguments.
Prepared = tuple[str, Any, JobOptions, NewJob]


def _resendable(opts: JobOptions) -> bool:
    """An add with a job id or a dedup key is safe to send again after a
    lost reply: a second run finds the first job."""
    return bool(opts.job_id or opts.dedup_key)


BulkItem = tuple[str, Any] | tuple[str, Any, JobOptionsDict]


class Queue:
    """A handle on one named queue. Cheap to create; does no I/O until used.

    All methods are safe to call from many processes at once: each change is
    one atomic script in Redis.
    """

    def __init__(
        self,
        name: str,
        redis: RedisClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        default_options: JobOptionsDict | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        clock: Clock | None = None,
        durable: Durable | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        self.name = name
        #: Run for each job added (may set its headers); a Worker's default too.
        self.middleware = check_middleware(middleware)
        #: Adds wait for replicas to confirm them (see :class:`Durable`).
        self.durable = durable
        self.redis = redis
        self.keys = QueueKeys(name, prefix)
        self.max_payload = max_payload
        self.clock: Clock = clock or RedisClock()
        self._defaults = dict(default_options or {})
        self._registered = False
        self._default_opts = JobOptions.build({}, self._defaults)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    def _sibling(self, name: str, prefix: str = "") -> Queue:
        """A handle on another queue with this one's connection and clock."""
        return Queue(name, self.redis, prefix=prefix or self.keys.prefix, clock=self.clock)

    # -- adding -----------------------------------------------------------

    def _options(self, name: Any, options: dict[str, Any]) -> JobOptions:
        if self.middleware and isinstance(name, str):
            options = stamp_headers(self.middleware, self.name, name, options)
        if not options:
            return self._default_opts
        return JobOptions.build(options, self._defaults)

    def _job_args(self, name: str, data: Any, opts: JobOptions) -> NewJob:
        if not isinstance(name, str) or not name:
            raise InvalidJobOptions("a job needs a non-empty name")
        delay = -opts.run_at_ms if opts.run_at_ms is not None else opts.delay_ms
        return NewJob(
            opts.job_id or "",
            name,
            dumps_payload(data, self.max_payload),
            opts.wire,
            opts.priority,
            1 if opts.lifo else 0,
            delay,
            opts.dedup_key or "",
            opts.dedup_ttl_ms,
            1 if opts.debounce else 0,
            opts.group or "",
        )

    async def register(self) -> None:
        """Lists this queue where the API and dashboard find queues (once
        per handle; adding, working and scheduling do it for you)."""
        if not self._registered:
            await self._call(self.redis.sadd(registry_key(self.keys.prefix), self.name))
            self._registered = True
            await preflight.warn_once(self.redis)  # once per client: a Redis that may evict jobs

    async def add(self, name: str, data: Any = None, **options: Unpack[JobOptionsDict]) -> Job:
        """Adds a job and returns it.

        With ``job_id`` set and a job of that id already present, returns
        the existing job and adds nothing. With ``dedup_key``, an add that
        meets the key's holder (a job not yet finished, or for
        ``dedup_ttl`` seconds from its add) returns that job; with
        ``debounce=True`` it replaces the holder's data, options and delay
        instead while the holder has not started. Raises InvalidJobOptions,
        PayloadError or PayloadTooLarge before anything is written.
        """
        opts = self._options(name, cast(dict[str, Any], options))
        args = self._job_args(name, data, opts)
        await self.register()
        d = self.durable
        (now, job_id, created), acked = await commands.add_job(
            self.redis,
            self.keys,
            clock_arg(self.clock),
            args,
            resend=_resendable(opts),  # an add with an id may be sent again
            replicas=None if d is None else (d.replicas, d.wait_ms),
        )
        created_at = datetime.fromtimestamp(now / 1000, tz=UTC)
        job = await self._added(job_id, created, name, data, opts, now, created_at)
        if self.durable is not None and acked < self.durable.replicas:
            raise NotReplicated([job], acked, self.durable.replicas)
        return job

    async def add_bulk(self, jobs: Iterable[BulkItem]) -> list[Job]:
        """Adds many jobs, a thousand per script call; each chunk is atomic.

        Every item is validated before the first one is written. The chunks
        are sent back to back (pipelined); if one fails, the error is raised
        once the chunks sent with it have finished, and those may have been
        written: give jobs ids to make a retry safe.
        """
        prepared = []
        for item in jobs:
            if not isinstance(item, tuple | list) or not 2 <= len(item) <= 3:
                kind = type(item).__name__
                raise InvalidJobOptions(
                    f"each bulk item must be a (name, data[, options]) tuple, not a {kind}"
                )
            name, data = item[0], item[1]
            if len(item) > 2 and not isinstance(item[2], dict):
                raise InvalidJobOptions(f"bulk item options must be a dict, not a {type(item[2]).__name__}")
            opts = self._options(name, cast(dict[str, Any], item[2]) if len(item) > 2 else {})
            prepared.append((name, data, opts, self._job_args(name, data, opts)))
        await self.register()  # before the chunks go out, which must leave in order
        if self.durable is not None:
            return await self._add_replicated(prepared, self.durable)
        if len(prepared) <= BULK_CHUNK:
            return await self._add_many(prepared)
        chunks = await asyncio.gather(
            *(self._add_many(prepared[i : i + BULK_CHUNK]) for i in range(0, len(prepared), BULK_CHUNK)),
            return_exceptions=True,
        )
        out: list[Job] = []
        for chunk in chunks:
            if isinstance(chunk, BaseException):
                raise chunk
            out.extend(chunk)
        return out

    async def _add_replicated(self, prepared: Sequence[Prepared], durable: Durable) -> list[Job]:
        """Chunk after chunk, each followed by WAIT on its connection."""
        out: list[Job] = []
        fewest = durable.replicas
        for i in range(0, len(prepared), BULK_CHUNK):
            jobs, acked = await self._add_chunk(
                prepared[i : i + BULK_CHUNK], (durable.replicas, durable.wait_ms)
            )
            out.extend(jobs)
            fewest = min(fewest, acked)
        if fewest < durable.replicas:
            raise NotReplicated(out, fewest, durable.replicas)
        return out

    async def _add_many(self, prepared: Sequence[Prepared]) -> list[Job]:
        return (await self._add_chunk(prepared))[0]

    async def _add_chunk(
        self, prepared: Sequence[Prepared], replicas: tuple[int, int] | None = None
    ) -> tuple[list[Job], int]:
        """One add_jobs call: the jobs, and how many replicas confirmed them."""
        reply, acked = await commands.add_jobs(
            self.redis,
            self.keys,
            clock_arg(self.clock),
            [p[3] for p in prepared],
            resend=all(_resendable(p[2]) for p in prepared),
            replicas=replicas,
        )
        return await self._built(prepared, reply), acked

    async def _built(self, prepared: Sequence[Prepared], reply: AddedMany) -> list[Job]:
        now = reply.now
        created_at = datetime.fromtimestamp(now / 1000, tz=UTC)
        return [
            await self._added(job_id, created, name, data, opts, now, created_at)
            for (name, data, opts, _), (job_id, created) in zip(prepared, reply.jobs, strict=True)
        ]

    async def _added(
        self,
        job_id: str,
        created: int,
        name: str,
        data: Any,
        opts: JobOptions,
        now: int,
        created_at: datetime,
    ) -> Job:
        if created == 1:
            return self._new_job(job_id, name, data, opts, now, created_at)
        existing = await self.get_job(job_id)
        if existing is None:  # removed in between: report what was asked
            existing = self._new_job(job_id, name, data, opts, now, created_at)
        return existing

    def _new_job(
        self, job_id: str, name: str, data: Any, opts: JobOptions, now: int, created_at: datetime
    ) -> Job:
        due = opts.run_at_ms if opts.run_at_ms is not None else now + opts.delay_ms
        if due > now:
            state, run_at = JobState.DELAYED, datetime.fromtimestamp(due / 1000, tz=UTC)
        else:
            state, run_at = JobState.WAITING, None
        return Job(
            job_id,
            self.name,
            name,
            data,
            state,
            loads(opts.wire),  # as stored, as get_job reads it
            opts.priority,
            created_at=created_at,
            run_at=run_at,
            handle=self,
        )

    # -- reading (reading.py) ------------------------------------------------

    get_job = reading.get_job
    get_state = reading.get_state
    get_jobs = reading.get_jobs
    get_logs = reading.get_logs
    get_progress = reading.get_progress
    counts = reading.counts
    ask_counts = reading.ask_counts
    read_counts = staticmethod(reading.read_counts)
    #: How many replies :meth:`ask_counts` adds to a pipeline.
    COUNT_REPLIES = reading.COUNT_REPLIES
    is_paused = reading.is_paused
    set_events_max = reading.set_events_max
    wait_until_finished = reading.wait_until_finished
    _outcome = reading._outcome
    _fetch = reading._fetch

    # -- limits, groups and workers (limits.py) ------------------------------

    pause = limiting.pause
    resume = limiting.resume
    set_rate_limit = limiting.set_rate_limit
    set_concurrency = limiting.set_concurrency
    hold = limiting.hold
    set_group_limits = limiting.set_group_limits
    limits = limiting.limits
    ask_limits = limiting.ask_limits
    read_limits = staticmethod(limiting.read_limits)
    _set_limits = limiting._set_limits
    groups = limiting.groups
    get_group_jobs = limiting.get_group_jobs
    workers = limiting.workers

    # -- schedules (schedules.py) ----------------------------------------------

    upsert_schedule = schedules.upsert_schedule
    get_schedule = schedules.get_schedule
    get_schedules = schedules.get_schedules
    remove_schedule = schedules.remove_schedule

    # -- administration (admin.py) -------------------------------------------

    drain = admin.drain
    clean = admin.clean
    obliterate = admin.obliterate
    _sweep_leftovers = admin._sweep_leftovers
    retry_failed = admin.retry_failed
    promote = admin.promote
    remove = admin.remove
    cancel = admin.cancel
    dead_letters = admin.dead_letters
    get_children = admin.get_children

    async def _call(self, awaitable: Any) -> Any:
        """Awaits a Redis call, its failures mapped to Conveyor's errors."""
        return await call(self.redis, awaitable)
