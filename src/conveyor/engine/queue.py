"""The producer side: adding jobs, reading them, and administering a queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack, cast

from redis.exceptions import AskError, OutOfMemoryError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.engine.clock import Clock, RedisClock, clock_arg, current_ms
from conveyor.engine.cluster import RedisClient
from conveyor.engine.codec import DEFAULT_MAX_PAYLOAD, dumps_payload, packb, text, unpack_reply
from conveyor.engine.dlq import find_dead_letters
from conveyor.engine.events import QueueEvents, parse_entry
from conveyor.engine.flows import Children, children_of, pending_children, queue_for
from conveyor.engine.job import Job
from conveyor.engine.keys import DEFAULT_PREFIX, QueueKeys, registry_key
from conveyor.engine.limits import GroupInfo, QueueLimits, RateLimit, check_concurrency
from conveyor.engine.options import DEFAULT_KEEP_FAILED, Durable, JobOptions, JobOptionsDict
from conveyor.engine.registry import WorkerInfo, list_workers
from conveyor.engine.schedules import Schedule, build_spec
from conveyor.engine.schedules import get as get_schedule
from conveyor.engine.schedules import get_all as get_schedules
from conveyor.engine.schedules import remove as remove_schedule
from conveyor.engine.schedules import upsert as upsert_schedule
from conveyor.engine.scripts import connection_failed, not_clustered, out_of_memory, script
from conveyor.engine.states import CLEANABLE_STATES, JobState
from conveyor.errors import (
    InvalidJobOptions,
    JobFailed,
    JobIsActive,
    JobNotFound,
    NotReplicated,
    QueueNotEmpty,
)

BULK_CHUNK = 1000
#: A job ready to add: name, data, options and the add script's arguments.
Prepared = tuple[str, Any, JobOptions, list[str | bytes | int]]


def _resendable(opts: JobOptions) -> bool:
    """An add with a job id or a dedup key is safe to send again after a
    lost reply: a second run finds the first job."""
    return bool(opts.job_id or opts.dedup_key)


_STATE_KEY = {
    JobState.WAITING: "wait",
    JobState.WAITING_CHILDREN: "waiting-children",
    JobState.DELAYED: "delayed",
    JobState.ACTIVE: "active",
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
}
_NEWEST_FIRST = frozenset({JobState.COMPLETED, JobState.FAILED})
#: The queue meta fields of its limits, in the order read_limits takes them.
_LIMIT_FIELDS = ("rlm", "rld", "conc", "hold", "grlm", "grld", "gconc")

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
    ) -> None:
        self.name = name
        #: Adds wait for replicas to confirm them (see :class:`Durable`).
        self.durable = durable
        self.redis = redis
        self.keys = k = QueueKeys(name, prefix)
        self._add_keys = (k.wait, k.delayed, k.marker, k.id_counter, k.seq)
        self.max_payload = max_payload
        self.clock: Clock = clock or RedisClock()
        self._defaults = dict(default_options or {})
        self._registered = False
        self._default_opts = JobOptions.build({}, self._defaults)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    # -- adding -----------------------------------------------------------

    def _options(self, options: dict[str, Any]) -> JobOptions:
        if not options:
            return self._default_opts
        return JobOptions.build(options, self._defaults)

    def _job_args(self, name: str, data: Any, opts: JobOptions) -> list[str | bytes | int]:
        if not isinstance(name, str) or not name:
            raise InvalidJobOptions("a job needs a non-empty name")
        delay = -opts.run_at_ms if opts.run_at_ms is not None else opts.delay_ms
        return [
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
        ]

    async def register(self) -> None:
        """Lists this queue where the API and dashboard find queues (once
        per handle; adding, working and scheduling do it for you)."""
        if not self._registered:
            await self._call(self.redis.sadd(registry_key(self.keys.prefix), self.name))
            self._registered = True

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
        opts = self._options(cast(dict[str, Any], options))
        args = self._job_args(name, data, opts)
        await self.register()
        argv = [self.keys.job_prefix, clock_arg(self.clock), *args]
        resend = _resendable(opts)  # an add with an id may be sent again
        acked = 0
        if self.durable is None:
            reply = await script("add_job").run(self.redis, self._add_keys, argv, resend=resend)
        else:
            d = self.durable
            reply, acked = await script("add_job").run_replicated(
                self.redis,
                self._add_keys,
                argv,
                d.replicas,
                d.wait_ms,
                resend=resend,
            )
        now, raw_id, created = reply
        job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        now = int(now)
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
            name, data = item[0], item[1]
            opts = self._options(cast(dict[str, Any], item[2]) if len(item) > 2 else {})
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
            chunk = prepared[i : i + BULK_CHUNK]
            raw, acked = await script("add_jobs").run_replicated(
                self.redis,
                self._add_keys,
                self._bulk_args(chunk),
                durable.replicas,
                durable.wait_ms,
                resend=all(_resendable(p[2]) for p in chunk),
            )
            out.extend(await self._built(chunk, unpack_reply(raw)))
            fewest = min(fewest, acked)
        if fewest < durable.replicas:
            raise NotReplicated(out, fewest, durable.replicas)
        return out

    def _bulk_args(self, prepared: Sequence[Prepared]) -> list[str | bytes | int]:
        """The ARGV of ``add_jobs.lua`` for these jobs."""
        return [self.keys.job_prefix, clock_arg(self.clock), packb([p[3] for p in prepared])]

    async def _add_many(self, prepared: Sequence[Prepared]) -> list[Job]:
        reply = unpack_reply(
            await script("add_jobs").run(
                self.redis,
                self._add_keys,
                self._bulk_args(prepared),
                resend=all(_resendable(p[2]) for p in prepared),
            )
        )
        return await self._built(prepared, reply)

    async def _built(self, prepared: Sequence[Prepared], reply: Any) -> list[Job]:
        now = int(reply[0])
        created_at = datetime.fromtimestamp(now / 1000, tz=UTC)
        return [
            await self._added(job_id, created, name, data, opts, now, created_at)
            for (name, data, opts, _), (job_id, created) in zip(prepared, reply[1], strict=True)
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
            {},
            opts.priority,
            created_at=created_at,
            run_at=run_at,
            handle=self,
        )

    # -- reading ----------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        h = await self._call(self.redis.hgetall(self.keys.job(job_id)))
        if not h:
            return None
        return Job.from_hash(self.name, job_id, h, self)

    async def set_events_max(self, max_len: int) -> None:
        """Caps the queue's event stream at about ``max_len`` entries (a batch
        transition is one entry); 0 stops recording events. Default 10,000."""
        if max_len < 0:
            raise InvalidJobOptions("events max_len must be >= 0")
        await self._call(self.redis.hset(self.keys.meta, "events-max", max_len))

    async def wait_until_finished(self, job_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109 (the documented API)
        """Waits for the job to finish, from any process, and returns its result.

        Raises JobFailed (with the job's error and traceback) when it failed
        for good, JobNotFound when it does not exist or is removed first,
        TimeoutError after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            # The position is taken before the state is read, so a finish in
            # between is seen as an event.
            start = await QueueEvents(self).position()
            outcome = await self._outcome(job_id)
            if outcome is not None:
                return outcome[0]
            async for event in QueueEvents(self, after=str(start), block=0.2):
                if event.event == "gap" or (event.job_id == job_id and event.event in ("failed", "removed")):
                    outcome = await self._outcome(job_id)
                elif event.job_id == job_id and event.event == "completed":
                    return event.data.get("result")
                if outcome is not None:
                    return outcome[0]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _outcome(self, job_id: str) -> tuple[Any] | None:
        """(result,) when the job completed, None while it is not finished.
        A job already gone may have been removed on completion: its last
        outcome is then looked for in the event stream, newest first."""
        job = await self.get_job(job_id)
        if job is not None and job.state is JobState.COMPLETED:
            return (job.result,)
        if job is not None and job.state is JobState.FAILED:
            raise JobFailed(job_id, job.error or "failed", job.traceback)
        if job is not None:
            return None
        top = "+"
        while True:
            entries = await self._call(self.redis.xrevrange(self.keys.events, top, "-", count=500))
            for entry_id, fields in entries:
                for event in parse_entry(entry_id, fields):
                    if event.job_id != job_id:
                        continue
                    if event.event == "completed":
                        return (event.data.get("result"),)
                    if event.event == "failed":
                        raise JobFailed(job_id, event.data.get("error", "failed"))
                    raise JobNotFound(job_id)  # removed, or a later add under the same id
            if len(entries) < 500:
                raise JobNotFound(job_id)
            top = f"({entries[-1][0].decode()}"

    async def get_state(self, job_id: str) -> JobState | None:
        raw = await self._call(self.redis.hget(self.keys.job(job_id), "st"))
        return JobState(raw.decode()) if raw else None

    async def counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (waiting includes grouped jobs)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.ask_counts(pipe)
            replies = await self._call(pipe.execute())
        return self.read_counts(replies)

    #: How many replies :meth:`ask_counts` adds to a pipeline.
    COUNT_REPLIES = len(JobState) + 1

    def ask_counts(self, pipe: Any) -> None:
        """Queues on ``pipe`` the reads :meth:`read_counts` needs (for
        callers that read more in the same round trip)."""
        for state in JobState:
            pipe.zcard(self.keys.key(_STATE_KEY[state]))
        pipe.get(self.keys.groups_waiting)

    @staticmethod
    def read_counts(replies: Sequence[Any]) -> dict[JobState, int]:
        counts = {state: int(n) for state, n in zip(JobState, replies, strict=False)}
        counts[JobState.WAITING] += max(0, int(replies[len(JobState)] or 0))
        return counts

    async def is_paused(self) -> bool:
        return bool(await self._call(self.redis.hexists(self.keys.meta, "paused")))

    async def get_jobs(self, state: JobState | str, start: int = 0, count: int = 50) -> list[Job]:
        """A page of the jobs in ``state``: waiting in run order, delayed by
        due time, active by lease, finished newest first."""
        st = JobState(state)
        key = self.keys.key(_STATE_KEY[st])
        end = start + count - 1
        if st in _NEWEST_FIRST:
            ids = await self._call(self.redis.zrevrange(key, start, end))
        else:
            ids = await self._call(self.redis.zrange(key, start, end))
        return await self._fetch([i.decode() for i in ids])

    async def _fetch(self, ids: list[str]) -> list[Job]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            hashes = await self._call(pipe.execute())
        return [Job.from_hash(self.name, i, h, self) for i, h in zip(ids, hashes, strict=True) if h]

    async def get_logs(self, job_id: str, start: int = 0, end: int = -1) -> list[str]:
        rows = await self._call(self.redis.lrange(self.keys.logs(job_id), start, end))
        return [r.decode(errors="replace") for r in rows]

    async def get_progress(self, job_id: str) -> Any:
        job = await self.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job.progress

    # -- administration ---------------------------------------------------

    async def pause(self) -> None:
        """Workers stop claiming jobs of this queue; running jobs finish."""
        await script("set_paused").run(self.redis, [self.keys.meta, self.keys.marker], ["1"])

    async def resume(self) -> None:
        await script("set_paused").run(self.redis, [self.keys.meta, self.keys.marker], ["0"])

    async def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Lets every worker together start at most ``limit.max`` jobs of
        this queue in any window of ``limit.per`` seconds (None: no limit).
        Jobs over the limit wait; they do not fail or use an attempt."""
        if limit is not None and not isinstance(limit, RateLimit):
            raise InvalidJobOptions(f"rate limit must be a RateLimit or None, not {limit!r}")
        await self._set_limits("rate", limit.to_wire() if limit else "")

    async def set_concurrency(self, limit: int | None) -> None:
        """Caps the jobs of this queue active at once across all workers
        (None: only each worker's own concurrency applies)."""
        value = check_concurrency(limit)
        await self._set_limits("conc", "" if value is None else str(value))

    async def hold(self, seconds: float) -> datetime | None:
        """Keeps every worker from starting jobs of this queue for
        ``seconds`` (what a handler's RateLimited does); 0 lifts a hold.
        Returns when the hold ends."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise InvalidJobOptions(f"hold must be a number of seconds >= 0, not {seconds!r}")
        until = await self._set_limits("hold", str(round(seconds * 1000)))
        return datetime.fromtimestamp(until / 1000, tz=UTC) if until else None

    async def set_group_limits(
        self, *, concurrency: int | None = None, rate_limit: RateLimit | None = None
    ) -> None:
        """Limits that every group of this queue gets (jobs added with
        ``group=``): at most ``concurrency`` of a group's jobs active at once
        and ``rate_limit`` starts per window, across all workers. None
        removes a limit. Groups always take turns, limits or not."""
        value = check_concurrency(concurrency)
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise InvalidJobOptions(f"rate limit must be a RateLimit or None, not {rate_limit!r}")
        await self._set_limits("gconc", "" if value is None else str(value))
        await self._set_limits("grate", rate_limit.to_wire() if rate_limit else "")

    async def groups(self, *, start: int = 0, count: int = 100) -> list[GroupInfo]:
        """A page of the queue's groups, by name."""
        k = self.keys
        names = sorted(text(n) for n in await self._call(self.redis.smembers(k.groups_all)))
        page = names[start : start + count]
        if not page:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in page:
                pipe.zcard(k.group(name))
                pipe.hget(k.groups_active, name)
                pipe.zscore(k.groups_ring, name)
                pipe.sismember(k.groups_parked, name)
                pipe.zscore(k.groups_held, name)
            raw = await self._call(pipe.execute())
        out = []
        for i, name in enumerate(page):
            waiting, active, ring, parked, held = raw[i * 5 : i * 5 + 5]
            state = (
                "parked"
                if parked
                else "held"
                if held is not None
                else "ready"
                if ring is not None
                else "idle"
            )
            if state == "ready" and not waiting:
                state = "idle"
            out.append(GroupInfo(name, int(waiting), int(active or 0), state))
        return out

    async def workers(self) -> list[WorkerInfo]:
        """The workers of this queue that beat within the last hour, each
        marked alive when its last beat is recent, with the jobs it holds."""
        return cast(list[WorkerInfo], await self._call(list_workers(self)))

    async def get_group_jobs(self, group: str, start: int = 0, count: int = 50) -> list[Job]:
        """A page of a group's waiting jobs, in the order they will run."""
        ids = await self._call(self.redis.zrange(self.keys.group(group), start, start + count - 1))
        return await self._fetch([text(i) for i in ids])

    async def limits(self) -> QueueLimits:
        """The queue's rate limit, global concurrency and current hold, and
        the limits each group gets."""
        raw = await self._call(self.redis.hmget(self.keys.meta, *_LIMIT_FIELDS))
        now = await self._call(current_ms(self.clock, self.redis))
        return self.read_limits(raw, now)

    def ask_limits(self, pipe: Any) -> None:
        """Queues on ``pipe`` the read :meth:`read_limits` needs (one reply)."""
        pipe.hmget(self.keys.meta, *_LIMIT_FIELDS)

    @staticmethod
    def read_limits(raw: Sequence[Any], now: int) -> QueueLimits:
        rlm, rld, conc, hold, grlm, grld, gconc = (int(v) if v is not None else None for v in raw)
        return QueueLimits(
            rate_limit=RateLimit(rlm, rld / 1000) if rlm and rld else None,
            concurrency=conc,
            held_until=datetime.fromtimestamp(hold / 1000, tz=UTC) if hold and hold > now else None,
            group_rate_limit=RateLimit(grlm, grld / 1000) if grlm and grld else None,
            group_concurrency=gconc,
        )

    async def _set_limits(self, field: str, value: str) -> int:
        k = self.keys
        return int(
            await script("set_limits").run(
                self.redis,
                [k.meta, k.marker, k.limiter, k.limiter_count],
                [clock_arg(self.clock), field, value],
            )
        )

    # -- schedules (repeatable jobs; a Scheduler enqueues their ticks) -------

    async def upsert_schedule(
        self,
        key: str,
        name: str,
        data: Any = None,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = "UTC",
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        limit: int | None = None,
        missed: str = "once",
        **options: Unpack[JobOptionsDict],
    ) -> Schedule:
        """Creates or updates the schedule ``key``: a job ``name`` with
        ``data`` on every tick of ``cron`` (five fields or ``@hourly``-style,
        in time zone ``tz``) or ``every`` seconds (ticks at multiples of the
        interval from ``start_at``, or from the epoch).

        Upserting the same schedule from many processes keeps one schedule
        and its next run; a changed one runs next at its first tick from
        now. ``end_at`` and ``limit`` (a count of jobs) end it; ``missed``
        says what ticks missed while no scheduler ran become: ``"once"``
        one job, ``"all"`` one each, ``"skip"`` none. Other keywords are
        the job options of each tick's job (not job_id, delay or run_at).
        Raises InvalidSchedule (bad cron, zone, interval or option) or a
        PayloadError before anything is written."""
        spec = build_spec(
            key,
            name,
            data,
            cron=cron,
            every=every,
            tz=tz,
            start_at=start_at,
            end_at=end_at,
            limit=limit,
            missed=missed,
            max_payload=self.max_payload,
            options=dict(options),
        )
        return cast(Schedule, await self._call(upsert_schedule(self, key, spec)))

    async def get_schedule(self, key: str) -> Schedule | None:
        """The schedule ``key`` with its run count, last and next run."""
        return cast(Schedule | None, await self._call(get_schedule(self, key)))

    async def get_schedules(self) -> list[Schedule]:
        """Every schedule of this queue, by key."""
        return cast(list[Schedule], await self._call(get_schedules(self)))

    async def remove_schedule(self, key: str) -> bool:
        """Removes a schedule (jobs it already enqueued stay); False if absent."""
        return bool(await self._call(remove_schedule(self, key)))

    async def drain(self, *, delayed: bool = False) -> int:
        """Removes every waiting job (and delayed ones if asked); returns how many."""
        k = self.keys
        total = 0
        while True:
            n = int(
                await script("drain").run(
                    self.redis,
                    [k.wait, k.delayed],
                    [k.job_prefix, k.logs_prefix, 5000, "1" if delayed else "0"],
                )
            )
            total += n
            if n < 5000:
                return total

    async def clean(self, state: JobState | str, *, grace: float = 0, limit: int = 1000) -> list[str]:
        """Removes up to ``limit`` jobs of ``state`` older than ``grace`` seconds.

        Only states whose jobs are not running can be cleaned.
        """
        st = JobState(state)
        if st not in CLEANABLE_STATES:
            raise InvalidJobOptions(f"cannot clean {st.value} jobs")
        k = self.keys
        removed = await script("clean_jobs").run(
            self.redis,
            [k.key(_STATE_KEY[st])],
            [k.job_prefix, k.logs_prefix, clock_arg(self.clock), int(grace * 1000), limit, st.value],
        )
        return [r.decode() for r in removed]

    async def obliterate(
        self, *, force: bool = False, on_progress: Callable[[int], None] | None = None
    ) -> int:
        """Deletes the queue and all its jobs, 5,000 per script call, and
        takes it off the list of queues; returns how many jobs went.
        ``on_progress`` gets the running total after each call. Raises
        QueueNotEmpty while jobs are running, unless ``force``.
        """
        k = self.keys
        groups = [text(g) for g in await self._call(self.redis.smembers(k.groups_all))]
        sets = [k.wait, k.delayed, k.completed, k.failed, k.waiting_children, *map(k.group, groups)]
        others = [key for key in k.all_fixed() if key not in sets and key != k.active]
        others += [key for g in groups for key in k.group_limiter(g)]
        total = 0
        while True:
            n = int(
                await script("obliterate").run(
                    self.redis,
                    [k.active, *sets, *others],
                    [k.job_prefix, k.logs_prefix, 5000, "1" if force else "0", len(sets)],
                )
            )
            if n == -4:
                raise QueueNotEmpty(f"queue {self.name} has running jobs; use force=True")
            total += n
            if on_progress is not None:
                on_progress(total)
            if n < 5000:
                break
        # Unlisted last: a handle that adds to this queue again lists it again.
        await self._call(self.redis.srem(registry_key(self.keys.prefix), self.name))
        self._registered = False
        return total

    async def retry_failed(self, job_id: str | None = None, *, limit: int = 1000) -> int:
        """Moves a failed job (or up to ``limit`` of them) back to waiting with
        fresh attempts; returns how many moved."""
        k = self.keys
        ids = [job_id] if job_id else []
        return int(
            await script("retry_jobs").run(
                self.redis, [k.failed, k.wait, k.marker, k.seq], [k.job_prefix, limit, *ids]
            )
        )

    async def dead_letters(self, *, search: str = "", start: int = 0, count: int = 50) -> list[Job]:
        """Jobs in the dead-letter set (failed for good and kept), newest
        first, filtered by ``search`` in their error, name or id. Replay
        them with :meth:`retry_failed`, purge them with ``clean("failed")``."""
        return await find_dead_letters(self, search=search, start=start, count=count)

    async def promote(self, job_id: str | None = None, *, limit: int = 1000) -> int:
        """Makes a delayed job (or up to ``limit`` of them) run now."""
        k = self.keys
        ids = [job_id] if job_id else []
        return int(
            await script("promote_jobs").run(
                self.redis, [k.delayed, k.wait, k.marker, k.seq], [k.job_prefix, limit, *ids]
            )
        )

    async def get_children(self, job_id: str) -> Children:
        """A flow parent's children: results, ignored failures, pending ids."""
        return cast(Children, await self._call(children_of(self.redis, self.keys, job_id)))

    async def remove(self, job_id: str) -> None:
        """Deletes a job that is not running, and a flow parent's pending
        children with it (recursively, on whatever queue they are).
        Raises JobNotFound or JobIsActive (then nothing is removed)."""
        pending = await self._call(pending_children(self.redis, self.keys, job_id))
        if pending:
            children = [(queue_for(self, queue, prefix), child) for prefix, queue, child in pending]
            for queue, child in children:
                if await queue.get_state(child) is JobState.ACTIVE:
                    raise JobIsActive(f"job {job_id} has a running child {queue.name}/{child}")
            for queue, child in children:
                with contextlib.suppress(JobNotFound):
                    await queue.remove(child)
        k = self.keys
        code = await script("remove_job").run(
            self.redis,
            [k.wait, k.delayed, k.completed, k.failed, k.waiting_children],
            [k.job_prefix, k.logs_prefix, job_id],
        )
        if code == -1:
            raise JobNotFound(job_id)
        if code == -4:
            raise JobIsActive(f"job {job_id} is running; cancel it first")

    async def cancel(self, job_id: str, reason: str = "cancelled") -> bool:
        """Stops a job from any process. A running job's handler is cancelled
        at its worker's next lease renewal and the job fails with ``reason``;
        a waiting or delayed job fails at once. Returns False when the job
        had already finished; raises JobNotFound."""
        k = self.keys
        count, age = DEFAULT_KEEP_FAILED.to_wire()
        code = await script("cancel_job").run(
            self.redis,
            [k.wait, k.delayed, k.failed],
            [k.job_prefix, k.logs_prefix, job_id, reason, clock_arg(self.clock), count, age],
        )
        if code == -1:
            raise JobNotFound(job_id)
        return int(code) > 0

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise connection_failed(self.redis, exc) from exc
        except OutOfMemoryError as exc:
            raise out_of_memory(self.redis, exc) from exc
        except AskError as exc:  # MOVED or ASK: a cluster node, through a plain client
            raise not_clustered(self.redis, exc) from exc
