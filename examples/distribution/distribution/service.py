"""The jobs and the ``QueueService`` facade.

Three queues, as the service's design has them:

- ``distribution:dispatch``: ``dispatch`` (one post to one account;
  retried ``max_retries`` times with exponential backoff, 5 s, 25 s, 125 s
  by default, then the dead-letter queue) and ``retry`` (an operator's
  replay of a dead-lettered dispatch);
- ``distribution:scheduled``: ``scheduled_publish`` (a delayed job that fans
  a schedule out into dispatches at its time);
- ``distribution:token-refresh``: ``token_refresh``, repeated per account
  every ``token_refresh_every`` seconds.

A dispatch is idempotent end to end: its job id derives from the schedule
and the account, a sent dispatch is not sent again, and the network gets
an idempotency key, so a retry after a lost answer never posts twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy import update

from conveyor import (
    Conveyor,
    DeadLetteredJob,
    Discard,
    Exponential,
    Job,
    JobState,
    KeepJobs,
    Schedule,
    TaskContext,
)
from distribution.config import Settings
from distribution.models import Dispatch
from distribution.models import Schedule as ScheduleRow
from distribution.network import NetworkClient, Refused, TokenExpired, Tokens
from distribution.store import NotFound, Store, aware

log = logging.getLogger("distribution")

DISPATCH = "distribution:dispatch"
SCHEDULED = "distribution:scheduled"
TOKEN_REFRESH = "distribution:token-refresh"
#: The facade's short names of the queues.
QUEUE_NAMES: dict[str, str] = {"dispatch": DISPATCH, "scheduled": SCHEDULED, "token-refresh": TOKEN_REFRESH}


class DispatchJobData(BaseModel):
    schedule_id: int
    post_id: int
    target_id: int
    request_ai_assets: bool = False
    custom_message: str | None = None


class ScheduledPublishJobData(BaseModel):
    schedule_id: int


class TokenRefreshJobData(BaseModel):
    connection_id: int


class QueueStatus(BaseModel):
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int


class UnknownQueue(LookupError):
    pass


def dispatch_job_id(schedule_id: int, connection_id: int) -> str:
    return f"dispatch-{schedule_id}-{connection_id}"


@dataclass
class Services:
    """What the jobs use: the database and the networks' client."""

    store: Store
    network: NetworkClient
    http: httpx.AsyncClient
    owns_http: bool

    @classmethod
    def create(
        cls, settings: Settings, *, database_url: str | None = None, http: httpx.AsyncClient | None = None
    ) -> Services:
        client = http or httpx.AsyncClient(timeout=settings.http_timeout)
        return cls(Store(database_url), NetworkClient(client, settings.network_url), client, http is None)

    async def aclose(self) -> None:
        if self.owns_http:
            await self.http.aclose()
        await self.store.aclose()


class Distribution:
    """Declares the queues and tasks on ``app``; the tasks use ``services``."""

    def __init__(self, app: Conveyor, services: Services, settings: Settings) -> None:
        self.app, self.services, self.settings = app, services, settings
        store = services.store
        self.backoff = backoff = Exponential(settings.backoff_delay, settings.backoff_factor)
        retention: dict[str, Any] = {
            "remove_on_complete": KeepJobs(count=settings.keep_completed),
            "remove_on_fail": KeepJobs(count=settings.keep_failed),
        }
        dispatches = app.queue(
            DISPATCH,
            concurrency=settings.concurrency,
            shutdown_grace=settings.shutdown_grace,
            on_dead_letter=self._dead_lettered,
        )
        scheduled = app.queue(SCHEDULED, concurrency=2, shutdown_grace=settings.shutdown_grace)
        tokens = app.queue(TOKEN_REFRESH, concurrency=2, shutdown_grace=settings.shutdown_grace)

        @dispatches.task(
            attempts=settings.max_retries + 1, backoff=backoff, timeout=settings.dispatch_timeout, **retention
        )
        async def dispatch(
            ctx: TaskContext,
            schedule_id: int,
            post_id: int,
            target_id: int,
            request_ai_assets: bool = False,
            custom_message: str | None = None,
        ) -> dict[str, Any]:
            """Posts to one account."""
            found = await store.start_dispatch(
                schedule_id, target_id, post_id=post_id, attempt=ctx.attempt, job_id=ctx.id
            )
            if found is None:
                raise Discard(f"schedule {schedule_id} has no dispatch to connection {target_id}")
            row, post, connection = found
            if row.status == "sent":  # a job run again after its success was recorded
                return {"externalId": row.external_id, "alreadySent": True}
            if post is None or connection is None:
                raise Discard(f"post {post_id} or connection {target_id} is gone")
            text = custom_message or post.body
            key = dispatch_job_id(schedule_id, target_id)
            try:
                token = connection.access_token
                if aware(connection.token_expires_at) <= datetime.now(UTC) + timedelta(
                    seconds=settings.token_margin
                ):
                    token = (await self.refresh_token(target_id)).access_token
                try:
                    sent = await services.network.publish(
                        connection.network, token, text, idempotency_key=key, assets=request_ai_assets
                    )
                except TokenExpired:  # revoked or expired early: one refresh, one more try
                    token = (await self.refresh_token(target_id)).access_token
                    sent = await services.network.publish(
                        connection.network, token, text, idempotency_key=key, assets=request_ai_assets
                    )
            except Refused as exc:
                raise Discard(str(exc)) from None
            except Exception as exc:
                await store.update_dispatch(row.id, status="queued", error=f"{type(exc).__name__}: {exc}")
                raise
            await store.finish_dispatch(row.id, schedule_id, sent.external_id)
            log.info("dispatch %s sent as %s (attempt %d)", ctx.id, sent.external_id, ctx.attempt)
            return {"externalId": sent.external_id, "assets": sent.assets, "replayed": sent.replayed}

        @dispatches.task(name="retry", attempts=3, backoff=backoff)
        async def retry(ctx: TaskContext, dispatch_id: int) -> dict[str, Any]:
            """Sends a dead-lettered dispatch again, with fresh attempts: its
            dead job itself when the dead-letter queue still holds it (so it
            leaves that queue), else a new job."""
            async with store.sessions.begin() as session:
                claimed = await session.execute(
                    update(Dispatch)
                    .where(Dispatch.id == dispatch_id, Dispatch.status == "failed")
                    .values(status="queued", error=None)
                )
            row = await store.dispatch_by_id(dispatch_id)
            if row is None or not getattr(claimed, "rowcount", 0):
                return {"retried": False, "status": row.status if row else None}
            await store.set_schedule_status(row.schedule_id, "publishing")
            if row.job_id and await dispatches.queue.retry_failed(row.job_id):
                return {"retried": True, "jobId": row.job_id, "replayed": True}
            schedule = await store.schedule(row.schedule_id)
            assert schedule is not None
            job_id = f"{dispatch_job_id(row.schedule_id, row.connection_id)}-retry-{ctx.id}"
            job = await self.enqueue_dispatch(_job_data(schedule[0], row), row.id, job_id)
            return {"retried": True, "jobId": job.id, "replayed": False}

        @scheduled.task(name="scheduled_publish", attempts=3, backoff=backoff)
        async def scheduled_publish(ctx: TaskContext, schedule_id: int) -> dict[str, Any]:
            """At the schedule's time: a dispatch job per account."""
            found = await store.schedule(schedule_id)
            if found is None:
                raise Discard(f"no schedule {schedule_id}")
            schedule, rows = found
            await store.set_schedule_status(schedule_id, "publishing")
            for row in rows:
                if row.status in ("queued", "sending"):
                    job_id = dispatch_job_id(schedule.id, row.connection_id)
                    await self.enqueue_dispatch(_job_data(schedule, row), row.id, job_id)
            return {"dispatches": len(rows)}

        @tokens.task(name="token_refresh", attempts=5, backoff=backoff)
        async def token_refresh(ctx: TaskContext, connection_id: int) -> dict[str, Any]:
            fresh = await self.refresh_token(connection_id)
            return {"expiresAt": fresh.expires_at.isoformat()}

        self.dispatch, self.retry = dispatch, retry
        self.scheduled_publish, self.token_refresh = scheduled_publish, token_refresh

    async def refresh_token(self, connection_id: int) -> Tokens:
        connection = await self.services.store.connection(connection_id)
        if connection is None:
            raise Discard(f"no connection {connection_id}")
        try:
            fresh = await self.services.network.refresh(connection.network, connection.refresh_token)
        except Refused as exc:
            raise Discard(f"connection {connection_id}: the refresh token was refused ({exc})") from None
        await self.services.store.set_token(connection_id, fresh.access_token, fresh.expires_at)
        return fresh

    async def enqueue_dispatch(
        self, data: DispatchJobData, dispatch_id: int, job_id: str, **options: Any
    ) -> Job:
        """Adds the dispatch job ``job_id``, recording the id on its row
        first (the dead-letter hook finds the row by it)."""
        await self.services.store.update_dispatch(dispatch_id, job_id=job_id)
        return await self.dispatch.with_options(job_id=job_id, **options).enqueue(**data.model_dump())

    async def _dead_lettered(self, dead: DeadLetteredJob) -> None:
        """Records a dispatch that failed for good (the dead-letter queue has the job)."""
        if dead.name != "dispatch":
            return
        row = await self.services.store.dispatch_by_job(dead.job_id)
        if row is None:
            return
        await self.services.store.update_dispatch(row.id, status="failed", error=dead.error)
        status = await self.services.store.settle_schedule(row.schedule_id)
        log.warning("dispatch %s dead-lettered after %d attempts: %s", dead.job_id, dead.attempt, dead.error)
        log.info("schedule %s is %s", row.schedule_id, status)


class QueueService:
    """The facade the service's code uses: add a dispatch, a scheduled
    publish at a datetime, a token refresh repeated every 24 h; read a
    queue's status."""

    def __init__(self, distribution: Distribution) -> None:
        self.distribution = distribution
        self.app = distribution.app

    async def add_dispatch_job(self, data: DispatchJobData, **options: Any) -> Job:
        found = await self.distribution.services.store.dispatch(data.schedule_id, data.target_id)
        if found is None:
            raise NotFound(f"schedule {data.schedule_id} has no dispatch to connection {data.target_id}")
        job_id = options.pop("job_id", dispatch_job_id(data.schedule_id, data.target_id))
        if found.job_id == job_id:  # recorded with the schedule
            return await self.distribution.dispatch.with_options(job_id=job_id, **options).enqueue(
                **data.model_dump()
            )
        return await self.distribution.enqueue_dispatch(data, found.id, job_id, **options)

    async def add_scheduled_publish_job(self, data: ScheduledPublishJobData, scheduled_for: datetime) -> Job:
        """Runs the schedule at ``scheduled_for`` (at once when it is past)."""
        return await self.distribution.scheduled_publish.with_options(
            job_id=f"scheduled-{data.schedule_id}", run_at=scheduled_for
        ).enqueue(schedule_id=data.schedule_id)

    async def add_token_refresh_job(
        self, data: TokenRefreshJobData, repeat_every: float = 86400.0
    ) -> Schedule:
        """Refreshes the account's token every ``repeat_every`` seconds (one
        schedule per account, however often this is called)."""
        queue = self.app.queues[TOKEN_REFRESH].queue
        return await queue.upsert_schedule(
            f"token-refresh-{data.connection_id}",
            "token_refresh",
            data.model_dump(),
            every=repeat_every,
            attempts=5,
            backoff=self.distribution.backoff,
        )

    async def add_retry_job(self, dispatch_id: int) -> Job:
        return await self.distribution.retry.enqueue(dispatch_id=dispatch_id)

    async def get_queue_status(self, name: str) -> QueueStatus:
        """``name``: ``dispatch``, ``scheduled`` or ``token-refresh``."""
        if name not in QUEUE_NAMES:
            raise UnknownQueue(f"unknown queue {name!r}; the queues are {', '.join(QUEUE_NAMES)}")
        counts = await self.app.queues[QUEUE_NAMES[name]].queue.counts()
        return QueueStatus(
            waiting=counts[JobState.WAITING] + counts[JobState.WAITING_CHILDREN],
            active=counts[JobState.ACTIVE],
            completed=counts[JobState.COMPLETED],
            failed=counts[JobState.FAILED],
            delayed=counts[JobState.DELAYED],
        )

    async def close(self) -> None:
        await self.app.close()


def _job_data(schedule: ScheduleRow, row: Dispatch) -> DispatchJobData:
    """The dispatch job's arguments for one of a schedule's dispatches."""
    return DispatchJobData(
        schedule_id=schedule.id,
        post_id=schedule.post_id,
        target_id=row.connection_id,
        request_ai_assets=schedule.request_ai_assets,
        custom_message=schedule.custom_message,
    )
