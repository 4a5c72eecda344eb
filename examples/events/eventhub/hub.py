"""The service: its three Redis connections, its job queues and tasks, the
event processor's routes, and the dead-letter processor.

Queues (on the queues connection):

- ``long-running-jobs``: ``process_dataset``, minutes to an hour of work in
  steps. Its lock is renewed while it runs, so a long job is never taken
  for stalled while its worker lives. Each finished step is checkpointed on
  the cache connection. After a crash the job resumes from its checkpoint
  (``restart_policy="resume"``), or starts again (``"rerun"``).
- ``async-processing``: ``send_welcome``, quick jobs.
- ``event-driven-jobs``: ``provision_workspace``, started by events.

The event processor (group ``event-processors`` on the streams connection)
routes ``user.created`` to a welcome job, ``workspace.created`` to a
provisioning job, ``auth.failed`` to a per-account failure counter,
``auth.*`` to an audit log, and ``job.*`` to counters. Job ids derive from
the event's subject, so an event delivered twice starts one job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import redis.asyncio as aredis

from conveyor import Conveyor, Event, EventBus, EventConsumer, EventRouter, TaskContext, connect
from eventhub.config import Settings
from eventhub.events import AuthFailed, JobFinished, Publisher, UserCreated, WorkspaceCreated

log = logging.getLogger("eventhub")

LONG = "long-running-jobs"
QUICK = "async-processing"
EVENT_DRIVEN = "event-driven-jobs"
CACHE = "eventhub"


@dataclass
class Connections:
    """One client per role; separate pools even when the URLs are the same."""

    queues: aredis.Redis
    streams: aredis.Redis
    cache: aredis.Redis

    @classmethod
    def open(cls, settings: Settings) -> Connections:
        return cls(connect(settings.queue_url), connect(settings.streams_url), connect(settings.cache_url))

    async def ping(self) -> dict[str, str]:
        """Each role's state: ``ok`` or the error."""
        states = {}
        for role in ("queues", "streams", "cache"):
            try:
                await getattr(self, role).ping()
                states[role] = "ok"
            except Exception as exc:
                states[role] = f"{type(exc).__name__}: {exc}"
        return states

    async def aclose(self) -> None:
        for client in (self.queues, self.streams, self.cache):
            await client.aclose()


class Hub:
    def __init__(self, settings: Settings, connections: Connections) -> None:
        self.settings, self.redis = settings, connections
        self.app = Conveyor(connections.queues)
        self.bus = EventBus(connections.streams, settings.stream)
        self.publisher = Publisher(self.bus)
        cache = connections.cache
        long = self.app.queue(LONG, concurrency=2, lock_duration=settings.lock_duration)
        quick = self.app.queue(QUICK, concurrency=10)
        driven = self.app.queue(EVENT_DRIVEN, concurrency=5)

        @long.task(attempts=3, timeout=settings.max_job_duration, backoff=5.0)
        async def process_dataset(
            ctx: TaskContext, dataset_id: str, steps: int = 60, step_seconds: float = 10.0
        ) -> dict[str, Any]:
            """Works through ``steps`` steps (a stand-in for an hour-long import)."""
            checkpoint = f"{CACHE}:checkpoint:{ctx.id}"
            first = 0
            if settings.restart_policy == "resume":
                first = int(await cache.get(checkpoint) or 0)
            if first:
                log.info("%s resumes at step %d of %d", ctx.id, first, steps)
            for step in range(first, steps):
                await asyncio.sleep(step_seconds)  # the step's work
                await cache.rpush(f"{CACHE}:steps:{dataset_id}", step)
                await cache.set(checkpoint, step + 1, ex=7 * 86400)
                await ctx.progress("processing", 100 * (step + 1) / steps, f"step {step + 1} of {steps}")
            await cache.delete(checkpoint)
            await self.publisher.publish(JobFinished(queue=LONG, job_id=ctx.id, outcome="completed"))
            return {"dataset": dataset_id, "steps": steps, "resumedAt": first}

        @quick.task(attempts=5, backoff=1.0)
        async def send_welcome(ctx: TaskContext, user_id: str, email: str) -> dict[str, Any]:
            await cache.hset(f"{CACHE}:welcomed", user_id, email)
            return {"user": user_id}

        @driven.task(attempts=5, backoff=1.0)
        async def provision_workspace(ctx: TaskContext, workspace_id: str, owner_id: str) -> dict[str, Any]:
            await cache.hset(f"{CACHE}:workspaces", workspace_id, owner_id)
            await self.publisher.publish(JobFinished(queue=EVENT_DRIVEN, job_id=ctx.id, outcome="completed"))
            return {"workspace": workspace_id}

        self.process_dataset, self.send_welcome = process_dataset, send_welcome
        self.provision_workspace = provision_workspace
        self.router = self._routes()

    # -- the event processor ---------------------------------------------------

    def _routes(self) -> EventRouter:
        router = EventRouter()
        cache, delay = self.redis.cache, self.settings.handler_delay

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
        """One pass over the dead-letter stream. An event whose last failure
        was a passing fault (the consumer recorded it as ``transient``: a
        timeout, a lost connection, ``Retry``) is replayed, up to
        ``dlq_max_replays`` times. Any other (an invalid payload,
        ``Discard``, a bug, an event its consumers crashed on, one trimmed
        away) is removed and raised as an alert."""
        replayed = discarded = 0
        for letter in await self.bus.dead_letters(group=self.settings.group, count=500):
            # The bus counts an event's replays across its dead letters.
            if letter.reason == "transient" and letter.replays < self.settings.dlq_max_replays:
                (new_id,) = await self.bus.replay(letter.id)
                if new_id is not None:  # None: another processor replayed it first
                    replayed += 1
                continue
            await self.bus.remove_dead_letters(letter.id)
            await self.alert(
                {
                    "event": letter.origin_id,
                    "type": letter.type,
                    "reason": letter.reason or "unknown",
                    "error": letter.error,
                    "replays": letter.replays,
                    "at": time.time(),
                }
            )
            discarded += 1
        return {"replayed": replayed, "discarded": discarded}

    async def alert(self, alert: dict[str, Any]) -> None:
        """Logs the alert, keeps it (the last 1,000, on the cache
        connection), and posts it to ``alert_webhook`` when one is set."""
        log.error("dead letter discarded: %s", alert)
        async with self.redis.cache.pipeline(transaction=True) as pipe:
            pipe.lpush(f"{CACHE}:alerts", json.dumps(alert))
            pipe.ltrim(f"{CACHE}:alerts", 0, 999)
            await pipe.execute()
        if self.settings.alert_webhook:
            await self._post_alert(self.settings.alert_webhook, alert)

    async def _post_alert(self, url: str, alert: dict[str, Any]) -> None:
        """Three tries, 1 s then 2 s apart; a webhook that stays down is
        logged, and the alert is still in the kept list."""
        async with httpx.AsyncClient(timeout=self.settings.alert_timeout) as client:
            for attempt in range(3):
                try:
                    response = await client.post(url, json={"source": "eventhub", "alert": alert})
                    if response.status_code < 500:
                        if response.is_error:
                            log.error("alert webhook refused the alert: HTTP %d", response.status_code)
                        return
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if attempt < 2:
                    await asyncio.sleep(2**attempt)
            log.error("alert webhook unreachable (%s); the alert is kept in %s:alerts", problem, CACHE)

    async def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(a) for a in await self.redis.cache.lrange(f"{CACHE}:alerts", 0, -1)]

    async def run_dead_letter_processor(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.process_dead_letters()
            except Exception:
                log.exception("dead-letter pass failed; trying again")
            try:
                async with asyncio.timeout(self.settings.dlq_interval):
                    await stop.wait()
            except TimeoutError:
                pass
