"""The progress bus: the latest status of long-running work (an artist
import, a job), persisted for readers that poll and published for readers
that subscribe.

Each report is merged into the subject's status atomically in Redis (stage
start and end times, ETA, updated_at), so several processes may report on
one subject. Statuses expire ``retention`` seconds after their last update.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster

from conveyor.engine.client.cluster import RedisClient
from conveyor.engine.client.errors import maps_redis_errors
from conveyor.engine.clock import Clock, RedisClock, clock_arg
from conveyor.engine.codec import dumps, loads
from conveyor.engine.commands.events import report_progress
from conveyor.engine.job import JobContext
from conveyor.engine.keys import check_name
from conveyor.errors import InvalidJobOptions, check_seconds

#: Stages that end a subject (it leaves ``active()``); so does percent 100.
FINAL_STAGES = frozenset({"done", "completed", "failed", "error", "cancelled"})


def _dt(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if isinstance(ms, int | float) else None


@dataclass(frozen=True, slots=True)
class StageTiming:
    name: str
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """The latest status of one subject."""

    subject: str
    stage: str
    percent: float
    message: str
    extra: dict[str, Any]
    job_id: str | None
    stages: list[StageTiming]
    started_at: datetime
    updated_at: datetime
    eta_seconds: float | None
    finished: bool
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ProgressStatus:
        d = loads(raw)
        timings = d.get("stages") or {}
        stages = [
            StageTiming(
                name, _dt(timings[name].get("started_at")) or datetime.min, _dt(timings[name].get("ended_at"))
            )
            for name in d.get("order") or []
            if name in timings
        ]
        extra = d.get("extra")
        return cls(
            subject=d["subject"],
            stage=d["stage"],
            percent=d["percent"],
            message=d.get("message", ""),
            extra=extra if isinstance(extra, dict) else {},
            job_id=d.get("job_id"),
            stages=stages,
            started_at=_dt(d.get("started_at")) or datetime.min,
            updated_at=_dt(d.get("updated_at")) or datetime.min,
            eta_seconds=d.get("eta_seconds"),
            finished=bool(d.get("finished")),
            raw=d,
        )


class ProgressBus:
    """Reports, reads and streams progress statuses, from any process.

    ``namespace`` separates buses sharing one Redis; all its keys share one
    hash tag. No I/O happens in the constructor.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        namespace: str = "progress",
        retention: float = 24 * 3600.0,
        clock: Clock | None = None,
    ) -> None:
        retention = check_seconds(retention, "retention", positive=True)
        self.redis = redis
        self.retention_ms = int(retention * 1000)
        self.clock: Clock = clock or RedisClock()
        # a tag no queue or stream can have (their names have no '/')
        self._base = f"conveyor:{{progress/{check_name('progress namespace', namespace)}}}"

    def _status_key(self, subject: str) -> str:
        return f"{self._base}:status:{subject}"

    def _channel(self, subject: str) -> str:
        return f"{self._base}:updates:{subject}"

    @property
    def _active_key(self) -> str:
        return f"{self._base}:active"

    @maps_redis_errors
    async def report(
        self,
        /,
        subject: str,
        stage: str,
        percent: float,
        message: str = "",
        *,
        job_id: str | None = None,
        finished: bool | None = None,
        restart: bool = False,
        monotonic: bool = False,
        merge: bool = False,
        **extra: Any,
    ) -> ProgressStatus:
        """Records and publishes the subject's status. ``percent`` is 0 to 100.
        The subject ends (leaves ``active()``) at 100 %, on a final stage
        (``done``, ``completed``, ``failed``, ``error``, ``cancelled``) or
        with ``finished=True``. ``restart`` begins a new run of the subject
        (stage timings and start time start over); while the subject runs,
        ``monotonic`` keeps its percent from going down and ``merge`` adds
        ``extra`` to the stored extra instead of replacing it (reporters
        working side by side). Raises InvalidJobOptions on an empty subject
        or stage or a percent out of range, PayloadError on extra values
        that are not JSON; nothing is written then."""
        if not subject or not stage:
            raise InvalidJobOptions("subject and stage must be non-empty")
        if not isinstance(percent, int | float) or math.isnan(percent) or not 0 <= percent <= 100:
            raise InvalidJobOptions(f"percent must be between 0 and 100, not {percent!r}")
        if finished is None:
            finished = percent >= 100 or stage in FINAL_STAGES
        raw = await report_progress(
            self.redis,
            self._status_key(subject),
            self._active_key,
            subject,
            stage=stage,
            percent=float(percent),
            message=message,
            extra=dumps(extra),
            job_id=job_id or "",
            now=clock_arg(self.clock),
            retention_ms=self.retention_ms,
            channel=self._channel(subject),
            finished=finished,
            options=("r" if restart else "") + ("m" if monotonic else "") + ("x" if merge else ""),
        )
        return ProgressStatus.from_json(raw)

    @maps_redis_errors
    async def get(self, subject: str) -> ProgressStatus | None:
        """The subject's latest status, or None (never reported, or expired)."""
        raw = await self.redis.get(self._status_key(subject))
        return ProgressStatus.from_json(raw) if raw else None

    @maps_redis_errors
    async def active(self) -> list[ProgressStatus]:
        """Subjects in progress, most recently updated first (expired ones
        are dropped from the index on the way)."""
        members = await self.redis.zrevrange(self._active_key, 0, 999)
        subjects = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        if not subjects:
            return []
        raws = await self.redis.mget([self._status_key(s) for s in subjects])
        gone = [s for s, raw in zip(subjects, raws, strict=True) if raw is None]
        if gone:
            await self.redis.zrem(self._active_key, *gone)
        return [ProgressStatus.from_json(raw) for raw in raws if raw is not None]

    async def subscribe(self, subject: str, *, current: bool = True) -> AsyncGenerator[ProgressStatus, None]:
        """Yields the subject's updates as they are reported (first its
        current status, unless ``current=False``); ends after a finishing
        update. Cancel the consumer to stop earlier. The subscription starts
        on the first iteration; :meth:`open` starts it at once."""
        subscription = await self.open(subject, current=current)
        try:
            async for status in subscription:
                yield status
        finally:
            await subscription.aclose()

    async def pubsub(self) -> PubSub | ClusterPubSub:
        """A pub/sub client of the bus's Redis, not yet subscribed (a
        server's clients share one: ``server.feeds.ProgressHub``)."""
        if isinstance(self.redis, RedisCluster):
            await self.redis.initialize()  # its pubsub picks a node from the slot table
        return self.redis.pubsub()

    async def open(self, subject: str, *, current: bool = True) -> ProgressSubscription:
        """A subscription to ``subject`` that is already listening: no update
        reported after this returns is missed. Iterate it as
        :meth:`subscribe` (the current status is the one read here);
        :meth:`ProgressSubscription.aclose` it when done."""
        pubsub = await self.pubsub()
        try:
            await pubsub.subscribe(self._channel(subject))
            # read after subscribing, so no update falls between the two
            status = await self.get(subject) if current else None
        except BaseException:
            await pubsub.aclose()
            raise
        return ProgressSubscription(pubsub, status)

    async def watch(self, prefix: str = "") -> AsyncGenerator[ProgressStatus, None]:
        """Every update of every subject that starts with ``prefix``, as
        reported, over one pattern subscription (a feed of all imports,
        say); it does not end by itself: stop iterating to close it."""
        pubsub = await self.pubsub()
        try:
            escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self._channel(prefix))
            await pubsub.psubscribe(escaped + "*")
            async for message in pubsub.listen():
                if message.get("type") == "pmessage":
                    yield ProgressStatus.from_json(message["data"])
        finally:
            await pubsub.aclose()

    def reporter(self, subject: str, job: JobContext | None = None) -> ProgressReporter:
        """A reporter bound to ``subject`` (and to a running job, whose own
        progress it updates too)."""
        return ProgressReporter(self, subject, job)

    def bridge(self, subject: str = "job:{queue}:{id}") -> JobProgressHook:
        """A hook for ``Worker(progress_hook=...)``: every ``update_progress``
        of a job is reported on the bus under ``subject`` (formatted with the
        job's ``queue`` and ``id``). A mapping progress may carry ``stage``,
        ``percent`` and ``message``; anything else becomes ``extra``."""
        return JobProgressHook(self, subject)


class ProgressSubscription:
    """Updates of one subject, from a subscription opened by
    :meth:`ProgressBus.open`: the status it had when opened first (if any
    was asked for), then each update; iteration ends after a finishing
    update."""

    def __init__(self, pubsub: PubSub | ClusterPubSub, status: ProgressStatus | None) -> None:
        self._pubsub = pubsub
        self._status = status

    def __aiter__(self) -> AsyncIterator[ProgressStatus]:
        return status_then_updates(self._status, self._updates())

    async def _updates(self) -> AsyncIterator[ProgressStatus]:
        async for message in self._pubsub.listen():
            if message.get("type") == "message":
                yield ProgressStatus.from_json(message["data"])

    async def aclose(self) -> None:
        # Closing drops the connection and with it the subscription; an
        # UNSUBSCRIBE first would fail when the client is already closed.
        await self._pubsub.aclose()


async def status_then_updates(
    status: ProgressStatus | None, updates: AsyncIterable[ProgressStatus]
) -> AsyncIterator[ProgressStatus]:
    """The status read at opening (if any), then each update; ends after a
    finishing one. An update equal to the opening status (published just
    before it was read) is not repeated."""
    last = None
    if status is not None:
        last = status.updated_at, status.percent, status.stage
        yield status
        if status.finished:
            return
    async for update in updates:
        if last is not None and (update.updated_at, update.percent, update.stage) == last:
            continue  # the status read at opening, seen already
        last = None
        yield update
        if update.finished:
            return


class ProgressReporter:
    """Reports one subject's progress; optionally mirrors it on a job."""

    def __init__(self, bus: ProgressBus, subject: str, job: JobContext | None) -> None:
        self.bus = bus
        self.subject = subject
        self.job = job
        self.percent = 0.0

    async def report(
        self,
        stage: str,
        percent: float,
        message: str = "",
        *,
        restart: bool = False,
        monotonic: bool = False,
        merge: bool = False,
        **extra: Any,
    ) -> ProgressStatus:
        """Reports on the subject (see :meth:`ProgressBus.report`) and
        mirrors the resulting status on the job."""
        status = await self.bus.report(
            self.subject,
            stage,
            percent,
            message,
            job_id=self.job.id if self.job else None,
            restart=restart,
            monotonic=monotonic,
            merge=merge,
            **extra,
        )
        self.percent = status.percent
        if self.job is not None:
            await self.job.update_progress(
                {"stage": stage, "percent": status.percent, "message": message, **status.extra}
            )
        return status

    async def finish(self, message: str = "done", **extra: Any) -> ProgressStatus:
        """Ends the subject at 100 %."""
        return await self.report("done", 100, message, **extra)

    async def fail(self, message: str, **extra: Any) -> ProgressStatus:
        """Ends the subject as failed, keeping the percent it reached."""
        return await self.report("failed", self.percent, message, **extra)


class JobProgressHook:
    """Feeds a job's ``update_progress`` calls to a progress bus."""

    def __init__(self, bus: ProgressBus, subject: str) -> None:
        self.bus = bus
        self.subject = subject
        #: (queue, job id) -> the percent last reported, for jobs running here
        self._open: dict[tuple[str, str], float] = {}

    def job_ended(self, queue: str, job_id: str, completed: bool) -> Coroutine[Any, Any, Any] | None:
        """Called by the worker when a job completed or failed for good: a
        job that reported progress here ends its subject (``completed`` at
        100 %, or ``failed`` at the percent it reached), so it does not
        stay listed as active. None when the job reported nothing here."""
        percent = self._open.pop((queue, job_id), None)
        if percent is None:
            return None
        subject = self.subject.format(queue=queue, id=job_id)
        stage, percent = ("completed", 100.0) if completed else ("failed", percent)
        return self.bus.report(subject, stage, percent, job_id=job_id, finished=True, merge=True)

    async def __call__(self, job: JobContext, progress: Any) -> None:
        subject = self.subject.format(queue=job.queue, id=job.id)
        fields: Mapping[str, Any] = progress if isinstance(progress, Mapping) else {"percent": progress}
        percent = fields.get("percent", 0)
        stage = str(fields.get("stage", "running"))
        message = str(fields.get("message", ""))
        extra = {k: v for k, v in fields.items() if k not in ("stage", "percent", "message")}
        if not isinstance(percent, int | float):
            extra["percent"], percent = percent, 0
        percent = max(0.0, min(100.0, float(percent)))
        status = await self.bus.report(subject, stage, percent, message, job_id=job.id, **extra)
        if status.finished:
            self._open.pop((job.queue, job.id), None)
        else:
            self._open[(job.queue, job.id)] = status.percent
