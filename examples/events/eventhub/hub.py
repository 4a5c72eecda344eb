"""The service: its three Redis connections, its job queues and tasks, the
event processor's routes; the dead-letter processor is in ``dlq``.

Queues (on the queue connection):

- ``long-running-jobs``: ``process_dataset``, minutes to an hour of work in
  steps. Its lock is renewed while it runs, so a long job is never taken
  for stalled while its worker lives. Each finished step is checkpointed on
  the master. After a crash the job resumes from its checkpoint
  (``restart_policy="resume"``), or starts again (``"rerun"``).
- ``async-processing``: ``send_welcome``, quick jobs.
- ``event-driven-jobs``: ``provision_workspace`` and ``sync_airtable``,
  started by events and by Airtable's webhook.
- ``dead-letter-queue``: the dead-letter processor's jobs (see ``dlq``).

The event processor (group ``event-processors`` on the streams connection)
routes ``user.created`` to a welcome job, ``workspace.created`` to a
provisioning job, ``auth.failed`` to a per-account failure counter,
``auth.*`` to an audit log, ``airtable.record.*`` to a mirror of the
records on the master, and ``job.*`` to counters. Job ids derive from the
event's subject, so an event delivered twice starts one job.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from conveyor import (
    Conveyor,
    DeadLetteredJob,
    Event,
    EventBus,
    EventConsumer,
    EventRouter,
    Retry,
    TaskContext,
    connect,
)
from eventhub.airtable import AirtableSync, Busy, Mirror
from eventhub.config import Settings
from eventhub.dlq import DeadLetters
from eventhub.events import (
    AirtableBaseSynced,
    AirtableRecordCreated,
    AirtableRecordDeleted,
    AirtableRecordUpdated,
    AuthFailed,
    JobFinished,
    PlatformEvent,
    Publisher,
    UserCreated,
    WorkspaceCreated,
)
from eventhub.sessions import Sessions

log = logging.getLogger("eventhub")

LONG = "long-running-jobs"
QUICK = "async-processing"
EVENT_DRIVEN = "event-driven-jobs"
CACHE = "eventhub"
ROLES = ("master", "streams", "queue")


@dataclass
class Connections:
    """One client per role; separate pools even when the URLs are the same."""

    master: Any
    streams: Any
    queues: Any

    @classmethod
    def open(cls, settings: Settings) -> Connections:
        urls = settings.urls
        return cls(connect(urls["master"]), connect(urls["streams"]), connect(urls["queue"]))

    def role(self, name: str) -> Any:
        return {"master": self.master, "streams": self.streams, "queue": self.queues}[name]

    async def ping(self) -> dict[str, str]:
        """Each role's state: ``ok`` or the error."""
        states = {}
        for role in ROLES:
            try:
                await self.role(role).ping()
                states[role] = "ok"
            except Exception as exc:
                states[role] = f"{type(exc).__name__}: {exc}"
        return states

    async def aclose(self) -> None:
        for client in (self.master, self.streams, self.queues):
            await client.aclose()


class Hub:
    def __init__(self, settings: Settings, connections: Connections) -> None:
        self.settings, self.redis = settings, connections
        self.app = Conveyor(connections.queues)
        self.bus = EventBus(connections.streams, settings.stream)
        self.publisher = Publisher(self.bus)
        self.sessions = Sessions(connections.master, settings.session_ttl)
        self.airtable = AirtableSync(
            connections.master, self.publisher, settings.airtable_api_url, settings.airtable_token
        )
        self.mirror = Mirror(connections.master, CACHE)
        master = connections.master
        hooked: dict[str, Any] = {"concurrency": settings.concurrency, "on_dead_letter": self._dead_job}
        long = self.app.queue(LONG, lock_duration=settings.lock_duration, **hooked)
        quick = self.app.queue(QUICK, **hooked)
        driven = self.app.queue(EVENT_DRIVEN, **hooked)

        @long.task(attempts=3, timeout=settings.max_job_duration, backoff=5.0)
        async def process_dataset(
            ctx: TaskContext, dataset_id: str, steps: int = 60, step_seconds: float = 10.0
        ) -> dict[str, Any]:
            """Works through ``steps`` steps (a stand-in for an hour-long import)."""
            checkpoint = f"{CACHE}:checkpoint:{ctx.id}"
            first = 0
            if settings.restart_policy == "resume":
                first = int(await master.get(checkpoint) or 0)
            if first:
                log.info("%s resumes at step %d of %d", ctx.id, first, steps)
            for step in range(first, steps):
                await asyncio.sleep(step_seconds)  # the step's work
                await master.rpush(f"{CACHE}:steps:{dataset_id}", step)
                await master.set(checkpoint, step + 1, ex=7 * 86400)
                await ctx.progress("processing", 100 * (step + 1) / steps, f"step {step + 1} of {steps}")
            await master.delete(checkpoint)
            await self.publish(JobFinished(queue=LONG, job_id=ctx.id, outcome="completed"))
            return {"dataset": dataset_id, "steps": steps, "resumedAt": first}

        @quick.task(attempts=5, backoff=1.0)
        async def send_welcome(ctx: TaskContext, user_id: str, email: str) -> dict[str, Any]:
            await master.hset(f"{CACHE}:welcomed", user_id, email)
            return {"user": user_id}

        @driven.task(attempts=5, backoff=1.0)
        async def provision_workspace(ctx: TaskContext, workspace_id: str, owner_id: str) -> dict[str, Any]:
            await master.hset(f"{CACHE}:workspaces", workspace_id, owner_id)
            await self.publish(JobFinished(queue=EVENT_DRIVEN, job_id=ctx.id, outcome="completed"))
            return {"workspace": workspace_id}

        @driven.task(attempts=5, backoff=2.0)
        async def sync_airtable(ctx: TaskContext, base_id: str, webhook_id: str) -> dict[str, int]:
            """Publishes the changes Airtable's webhook announced."""
            try:
                return await self.airtable.sync(base_id, webhook_id)
            except Busy:
                raise Retry("another sync of this webhook is running", delay=1.0) from None

        self.process_dataset, self.send_welcome = process_dataset, send_welcome
        self.provision_workspace, self.sync_airtable = provision_workspace, sync_airtable
        self.dead_letters = DeadLetters(self)
        self.router = self._routes()

    @property
    def job_queues(self) -> list[str]:
        """The job queues taken and worked (``long-running-jobs`` only with
        ``LONG_RUNNING_JOBS_ENABLED``)."""
        if not self.settings.queue_enabled:
            return []
        return (
            [LONG, QUICK, EVENT_DRIVEN] if self.settings.long_running_jobs_enabled else [QUICK, EVENT_DRIVEN]
        )

    @property
    def worker_queues(self) -> list[str]:
        """What a worker process works: the job queues and the dead letters."""
        return [*self.job_queues, self.settings.dlq_queue] if self.settings.queue_enabled else []

    async def publish(self, event: PlatformEvent) -> str | None:
        """Publishes ``event`` unless ``PUBLISH_EVENTS`` or the bus is off."""
        if not (self.settings.publish_events and self.settings.event_bus_enabled):
            return None
        return await self.publisher.publish(event)

    async def _dead_job(self, dead: DeadLetteredJob) -> None:
        await self.dead_letters.on_dead_letter(dead)

    # -- the event processor ---------------------------------------------------

    def _routes(self) -> EventRouter:
        router = EventRouter()
        cache, delay = self.redis.master, self.settings.handler_delay

        @router.on(UserCreated.type, model=UserCreated)
        async def user_created(event: Event[UserCreated]) -> None:
            if delay:
                await asyncio.sleep(delay)
            user = event.data
            await self.send_welcome.with_options(job_id=f"welcome-{user.user_id}").enqueue(
                user_id=user.user_id, email=user.email
            )

        @router.on(WorkspaceCreated.type, model=WorkspaceCreated)
        async def workspace_created(event: Event[WorkspaceCreated]) -> None:
            if delay:
                await asyncio.sleep(delay)
            ws = event.data
            await self.provision_workspace.with_options(job_id=f"provision-{ws.workspace_id}").enqueue(
                workspace_id=ws.workspace_id, owner_id=ws.owner_id
            )

        @router.on(AuthFailed.type, model=AuthFailed)
        async def auth_failed(event: Event[AuthFailed]) -> None:
            key = f"{CACHE}:auth-failures:{event.data.email}"
            async with cache.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 3600)
                await pipe.execute()

        @router.on("auth.*")
        async def audit(event: Event[Any]) -> None:
            async with cache.pipeline(transaction=True) as pipe:
                pipe.lpush(f"{CACHE}:audit", f"{event.id} {event.type}")
                pipe.ltrim(f"{CACHE}:audit", 0, 9999)
                await pipe.execute()

        @router.on(AirtableRecordCreated.type, model=AirtableRecordCreated)
        @router.on(AirtableRecordUpdated.type, model=AirtableRecordUpdated)
        @router.on(AirtableRecordDeleted.type, model=AirtableRecordDeleted)
        async def airtable_record(
            event: Event[AirtableRecordCreated | AirtableRecordUpdated | AirtableRecordDeleted],
        ) -> None:
            await self.mirror.apply(event.data)

        @router.on(AirtableBaseSynced.type, model=AirtableBaseSynced)
        async def airtable_synced(event: Event[AirtableBaseSynced]) -> None:
            await self.mirror.synced(event.data)

        @router.on("job.*")
        async def job_event(event: Event[Any]) -> None:
            await cache.hincrby(f"{CACHE}:job-events", event.type, 1)

        return router

    def consumer(self, **options: Any) -> EventConsumer:
        defaults: dict[str, Any] = {
            "concurrency": 8,
            "claim_idle": self.settings.claim_idle,
            "retry_delay": self.settings.retry_delay,
            "max_deliveries": self.settings.max_deliveries,
        }
        return self.bus.consumer(self.settings.group, router=self.router, **{**defaults, **options})

    # -- the dead-letter processor -------------------------------------------

    async def process_dead_letters(self) -> dict[str, int]:
        """One sweep of dead jobs and events, each settled here (see ``dlq``)."""
        return await self.dead_letters.process()

    async def alerts(self) -> list[dict[str, Any]]:
        return await self.dead_letters.alerts()
