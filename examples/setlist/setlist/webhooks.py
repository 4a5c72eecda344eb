"""Import events delivered to registered URLs, signed (seed 000's
PROGRESS_UPDATE and WEBHOOK queues):

- an import's phase changes, its completion and its failure are each
  announced once (``announce``, queue ``progress-update``): the job finds
  the webhooks subscribed to that event and queues one delivery per
  webhook, with a delivery id derived from both, so a re-run adds none;
- ``deliver`` (queue ``webhook``) POSTs the event as JSON, signed with the
  webhook's secret. A 2xx is delivered; 408, 429, 5xx and network errors
  are retried with backoff (a 429's Retry-After honoured); 410 Gone
  switches the webhook off; any other 4xx fails the delivery at once.

The signature, in ``X-Setlist-Signature``, is ``t=<unix seconds>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 of ``"<t>.<body>"`` with the secret; a
receiver recomputes it and refuses old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx
from fastapi import FastAPI, HTTPException, Response
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conveyor import Discard, Retry, TaskContext
from setlist.adapters.http import retry_after
from setlist.models import Webhook
from setlist.progress import Announce
from setlist.queues import QueueName

if TYPE_CHECKING:
    from setlist.pipeline import Pipeline

Event = Literal["import.progress", "import.completed", "import.failed"]
EVENTS: tuple[Event, ...] = ("import.progress", "import.completed", "import.failed")
#: What a webhook receives when it names no events.
DEFAULT_EVENTS: tuple[Event, ...] = ("import.completed", "import.failed")
#: Seconds a receiver has to answer a delivery.
DELIVERY_TIMEOUT = 10.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Setlist-Signature`` header of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(24)}"


class WebhookStore:
    """The ``webhooks`` table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def add(self, url: str, events: Sequence[str], secret: str) -> Webhook:
        async with self.sessions.begin() as session:
            hook = Webhook(url=url, events=list(events), secret=secret, active=True)
            session.add(hook)
        return hook

    async def all(self) -> list[Webhook]:
        async with self.sessions() as session:
            return list((await session.scalars(select(Webhook).order_by(Webhook.created_at))).all())

    async def get(self, webhook_id: str) -> Webhook | None:
        async with self.sessions() as session:
            return await session.get(Webhook, webhook_id)

    async def remove(self, webhook_id: str) -> bool:
        async with self.sessions.begin() as session:
            gone = await session.execute(delete(Webhook).where(Webhook.id == webhook_id))
        return bool(gone.rowcount)  # type: ignore[attr-defined]

    async def switch_off(self, webhook_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(Webhook).where(Webhook.id == webhook_id).values(active=False))

    async def subscribers(self, event: str) -> list[Webhook]:
        """The active webhooks that receive ``event``."""
        return [h for h in await self.all() if h.active and event in h.events]


class Webhooks:
    """The announce and deliver tasks, registered on ``pipeline``'s queues."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.services = pipeline.services
        self.store = WebhookStore(pipeline.services.store.sessions)
        q, opts = pipeline.queues, pipeline.task_options

        @q[QueueName.PROGRESS_UPDATE].task(**opts(QueueName.PROGRESS_UPDATE, attempts=5))
        async def announce(
            ctx: TaskContext, event: str, artist_id: str, data: dict[str, Any], at: str
        ) -> dict[str, Any]:
            """Queues the event's delivery to each webhook subscribed to it."""
            artist = await self.services.store.artist(artist_id)
            about = (
                {"id": artist_id, "name": artist.name, "slug": artist.slug} if artist else {"id": artist_id}
            )
            hooks = await self.store.subscribers(event)
            for hook in hooks:
                delivery = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ctx.id}/{hook.id}"))
                payload = {"id": delivery, "event": event, "createdAt": at, "artist": about, "data": data}
                await deliver.with_options(job_id=f"delivery-{delivery}").enqueue(hook.id, payload)
            return {"event": event, "webhooks": len(hooks)}

        @q[QueueName.WEBHOOK].task(**opts(QueueName.WEBHOOK, attempts=8))
        async def deliver(ctx: TaskContext, webhook_id: str, payload: dict[str, Any]) -> dict[str, Any]:
            """POSTs ``payload`` to the webhook, signed."""
            return await self.post(webhook_id, payload)

        self.announce, self.deliver = announce, deliver

    def announcer(self, ctx: TaskContext, artist_id: str) -> Announce:
        """What a job of an import calls to announce an event: one
        ``announce`` job per event and content (a retried job adds none)."""

        async def announce(event: str, data: dict[str, Any]) -> None:
            key = hashlib.sha256(json.dumps([event, data], sort_keys=True).encode()).hexdigest()[:16]
            at = datetime.now(UTC).isoformat()
            await self.announce.with_options(job_id=f"{ctx.id}-announce-{key}").enqueue(
                event, artist_id, data, at
            )

        return announce

    async def post(self, webhook_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        hook = await self.store.get(webhook_id)
        if hook is None or not hook.active:
            return {"skipped": "the webhook was removed or switched off"}
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "setlist-webhooks/1",
            "X-Setlist-Event": str(payload["event"]),
            "X-Setlist-Delivery": str(payload["id"]),
            "X-Setlist-Signature": sign(hook.secret, int(time.time()), body),
        }
        try:
            response = await self.services.http.post(
                hook.url, content=body, headers=headers, timeout=DELIVERY_TIMEOUT
            )
        except httpx.TransportError as exc:
            raise Retry(f"{hook.url}: {type(exc).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            return {"status": status}
        if status == 410:
            await self.store.switch_off(hook.id)
            raise Discard(f"{hook.url} answered 410 Gone: webhook switched off")
        if status == 429:
            raise Retry(f"{hook.url} answered 429", delay=retry_after(response, 0) or None)
        if status == 408 or status >= 500:
            raise Retry(f"{hook.url} answered {status}")
        raise Discard(f"{hook.url} refused the delivery ({status})")


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: AnyHttpUrl
    events: list[Event] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1)
    #: Made for you when not given (and then shown once, in the answer).
    secret: str | None = Field(default=None, min_length=16, max_length=100)


def _out(hook: Webhook, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "events": hook.events,
        "active": hook.active,
        "createdAt": hook.created_at.isoformat() if hook.created_at else None,
    }
    if secret:
        out["secret"] = hook.secret
    return out


def add_webhook_routes(api: FastAPI, hooks: Webhooks, admin: Sequence[Any]) -> None:
    """``/api/admin/webhooks``: register (POST), list (GET) and remove
    (DELETE ``/{id}``) the URLs import events are delivered to."""

    @api.post("/api/admin/webhooks", dependencies=admin, status_code=201, tags=["admin"])
    async def add_webhook(body: WebhookIn) -> dict[str, Any]:
        """Registers a URL; the answer carries its signing secret."""
        events = list(dict.fromkeys(body.events))
        hook = await hooks.store.add(str(body.url), events, body.secret or new_secret())
        return _out(hook, secret=True)

    @api.get("/api/admin/webhooks", dependencies=admin, tags=["admin"])
    async def list_webhooks() -> dict[str, Any]:
        return {"webhooks": [_out(h) for h in await hooks.store.all()]}

    @api.delete("/api/admin/webhooks/{webhook_id}", dependencies=admin, status_code=204, tags=["admin"])
    async def remove_webhook(webhook_id: str) -> Response:
        if not await hooks.store.remove(webhook_id):
            raise HTTPException(404, f"no webhook {webhook_id!r}")
        return Response(status_code=204)
