"""The HTTP API.

- ``POST /jobs/{queue} {name, data, jobId?, delay?, priority?}``: a job.
- ``POST /events {type, data}``: an event, checked against its model.
- ``POST /sessions {userId}``: a session (and an ``auth.login`` event);
  ``GET /sessions/{id}`` touches it; ``DELETE /sessions/{id}`` revokes it.
- ``POST /webhooks/airtable``: Airtable's webhook notifications, checked
  against the webhook's MAC, each starting a ``sync_airtable`` job.
- ``GET /health``: each Redis role's state (503 when one is down).
- ``GET /stats``: job counts per queue, the stream, dead letters, alerts;
  ``GET /alerts``: the newest alerts kept.
- ``/admin/queues``: Conveyor's dashboard and API (queues, and the event
  stream on its own Redis).

With ``EVENTHUB_API_TOKEN`` set, the writes and the dashboard need
``Authorization: Bearer <token>``; the writes also take ``Bearer
<session id>`` of a live session (and touch it).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor import InvalidJobOptions, JobState, PayloadError
from conveyor.server import create_app
from eventhub.airtable import MAC_HEADER, verify
from eventhub.dlq import ALERTS
from eventhub.events import EVENT_TYPES, AuthLogin
from eventhub.hub import Hub

WEBHOOKS = "eventhub:airtable:webhooks"


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)
    job_id: str | None = Field(None, alias="jobId", min_length=1, max_length=200)
    delay: float = Field(0.0, ge=0)
    priority: int = Field(0, ge=0, le=1000)


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    data: dict[str, Any]


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(alias="userId", min_length=1, max_length=200)


def _guard(hub: Hub) -> Any:
    """The API token, or a live session's id, as ``Bearer``."""
    token = hub.settings.api_token

    async def authorised(request: Request) -> None:
        if not token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            if secrets.compare_digest(given.encode(), token.encode()):
                return
            if await hub.sessions.touch(given) is not None:
                return
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return authorised


def create_api(hub: Hub) -> FastAPI:
    settings = hub.settings
    guarded = [Depends(_guard(hub))]
    api = FastAPI(title="Event hub", version="0.1.0")

    @api.post("/jobs/{queue}", status_code=202, dependencies=guarded)
    async def submit(queue: str, body: JobRequest) -> dict[str, Any]:
        declared = hub.app.queues.get(queue)
        if declared is None or queue == settings.dlq_queue:
            raise HTTPException(404, f"unknown queue {queue!r}; the queues are {', '.join(hub.job_queues)}")
        if queue not in hub.job_queues:
            raise HTTPException(
                503, f"queue {queue!r} is turned off (QUEUE_ENABLED, LONG_RUNNING_JOBS_ENABLED)"
            )
        task = declared.tasks.get(body.name)
        if task is None:
            raise HTTPException(
                422, f"queue {queue!r} has no task {body.name!r}; it has {', '.join(declared.tasks)}"
            )
        options: dict[str, Any] = {"delay": body.delay, "priority": body.priority}
        if body.job_id:
            options["job_id"] = body.job_id
        try:
            job = await task.with_options(**options).enqueue(**body.data)
        except (InvalidJobOptions, PayloadError) as exc:
            raise HTTPException(422, str(exc)) from None
        return {"jobId": job.id, "queue": queue, "state": job.state.value}

    @api.post("/events", status_code=202, dependencies=guarded)
    async def publish(body: EventRequest) -> dict[str, Any]:
        if not settings.event_bus_enabled:
            raise HTTPException(503, "the event bus is turned off (EVENT_BUS_ENABLED)")
        model = EVENT_TYPES.get(body.type)
        if model is None:
            raise HTTPException(422, f"unknown event type {body.type!r}; one of {', '.join(EVENT_TYPES)}")
        try:
            event = model.model_validate(body.data)
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
        return {"id": await hub.publisher.publish(event), "type": body.type}

    @api.post("/sessions", status_code=201, dependencies=guarded)
    async def new_session(body: SessionRequest, request: Request) -> dict[str, Any]:
        session = await hub.sessions.create(body.user_id)
        ip = request.client.host if request.client else "unknown"
        await hub.publish(AuthLogin(user_id=body.user_id, ip=ip))
        return session.to_json()

    @api.get("/sessions/{session_id}")
    async def touch_session(session_id: str) -> dict[str, Any]:
        session = await hub.sessions.touch(session_id)
        if session is None:
            raise HTTPException(404, "no such session (expired or revoked)")
        return session.to_json()

    @api.delete("/sessions/{session_id}", status_code=204)
    async def revoke_session(session_id: str) -> Response:
        if not await hub.sessions.revoke(session_id):
            raise HTTPException(404, "no such session (expired or revoked)")
        return Response(status_code=204)

    @api.post("/webhooks/airtable", status_code=200)
    async def airtable_webhook(request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            ping = json.loads(body)
            base_id, webhook_id = str(ping["base"]["id"]), str(ping["webhook"]["id"])
        except (ValueError, KeyError, TypeError):
            raise HTTPException(400, "not an Airtable webhook notification") from None
        kept = await hub.redis.master.hget(WEBHOOKS, webhook_id)
        secret = kept.decode() if kept is not None else settings.airtable_webhook_secret
        if secret is None:
            raise HTTPException(404, f"unknown webhook {webhook_id!r}")
        if not verify(secret, body, request.headers.get(MAC_HEADER)):
            raise HTTPException(401, "the notification's MAC does not match")
        if not settings.queue_enabled:
            raise HTTPException(503, "the queues are turned off (QUEUE_ENABLED)")
        job = await hub.sync_airtable.with_options(dedup_key=f"airtable-{webhook_id}").enqueue(
            base_id=base_id, webhook_id=webhook_id
        )
        return {"jobId": job.id}

    @api.get("/alerts")
    async def alerts(count: int = 100) -> list[dict[str, Any]]:
        """The newest alerts kept (live ones: the master's channel ``eventhub:alerts``)."""
        return (await hub.alerts())[: max(0, min(count, 1000))]

    @api.get("/health")
    async def health() -> JSONResponse:
        roles = await hub.redis.ping()
        healthy = all(state == "ok" for state in roles.values())
        return JSONResponse(
            {"status": "healthy" if healthy else "unhealthy", "process": "api", "redis": roles},
            200 if healthy else 503,
        )

    @api.get("/stats")
    async def stats() -> dict[str, Any]:
        queues = {}
        for name, declared in hub.app.queues.items():
            counts = await declared.queue.counts()
            queues[name] = {state.value: counts[state] for state in JobState}
        info = await hub.bus.info()
        return {
            "queues": queues,
            "stream": {
                "name": settings.stream,
                "length": info.length,
                "deadLetters": info.dead_letters,
                "groups": {g.name: {"pending": g.pending, "lag": g.lag} for g in info.groups},
            },
            "alerts": await hub.redis.master.llen(ALERTS),
        }

    api.mount(
        "/admin/queues",
        create_app(hub.redis.queues, token=settings.api_token, tasks=hub.app, events_redis=hub.redis.streams),
    )
    return api


async def register_airtable_webhook(hub: Hub, base_id: str, notification_url: str, http: Any) -> str:
    """Creates a webhook on ``base_id`` (``http``: a client of the Airtable
    API) and keeps its MAC secret on the master; its id."""
    specification = {
        "options": {
            "filters": {"dataTypes": ["tableData"]},
            "includes": {"includeCellValuesInFieldIds": "all"},  # an update carries every cell
        }
    }
    response = await http.post(
        f"/v0/bases/{base_id}/webhooks",
        json={"notificationUrl": notification_url, "specification": specification},
    )
    response.raise_for_status()
    created = response.json()
    await hub.redis.master.hset(WEBHOOKS, created["id"], created["macSecretBase64"])
    return str(created["id"])
