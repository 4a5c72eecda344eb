"""The HTTP API: ``POST /jobs/{queue}`` submits a job, ``POST /events``
publishes an event, ``/health`` and ``/stats`` report, and Conveyor's
dashboard is mounted at ``/admin/queues``. With ``EVENTHUB_API_TOKEN`` set,
the two POST routes and the dashboard need ``Authorization: Bearer``."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor import InvalidJobOptions, JobState, PayloadError
from conveyor.server import bearer_guard, create_app
from eventhub.events import EVENT_TYPES
from eventhub.hub import Hub


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


def create_api(hub: Hub) -> FastAPI:
    token = hub.settings.api_token

    authorised = bearer_guard(token)

    api = FastAPI(title="Event hub", version="0.1.0")

    @api.post("/jobs/{queue}", status_code=202, dependencies=[Depends(authorised)])
    async def submit(queue: str, body: JobRequest) -> dict[str, Any]:
        declared = hub.app.queues.get(queue)
        if declared is None:
            raise HTTPException(404, f"unknown queue {queue!r}; the queues are {', '.join(hub.app.queues)}")
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

    @api.post("/events", status_code=202, dependencies=[Depends(authorised)])
    async def publish(body: EventRequest) -> dict[str, Any]:
        model = EVENT_TYPES.get(body.type)
        if model is None:
            raise HTTPException(422, f"unknown event type {body.type!r}; one of {', '.join(EVENT_TYPES)}")
        try:
            event = model.model_validate(body.data)
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
        return {"id": await hub.publisher.publish(event), "type": body.type}

    @api.get("/health")
    async def health() -> JSONResponse:
        roles = await hub.redis.ping()
        healthy = all(state == "ok" for state in roles.values())
        return JSONResponse(
            {"status": "healthy" if healthy else "unhealthy", "redis": roles}, 200 if healthy else 503
        )

    @api.get("/stats")
    async def stats() -> dict[str, Any]:
        queues = {}
        for name, declared in hub.app.queues.items():
            counts = await declared.queue.counts()
            queues[name] = {state.value: counts[state] for state in JobState}
        info = await hub.bus.info()
        cache = hub.redis.cache
        return {
            "queues": queues,
            "stream": {
                "name": hub.settings.stream,
                "length": info.length,
                "deadLetters": info.dead_letters,
                "groups": {g.name: {"pending": g.pending, "lag": g.lag} for g in info.groups},
            },
            "alerts": await cache.llen("eventhub:alerts"),
        }

    api.mount("/admin/queues", create_app(hub.redis.queues, token=token))
    return api
