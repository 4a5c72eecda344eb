"""The HTTP API. Every ``/api`` route needs ``Authorization: Bearer
<DISTRIBUTION_API_TOKEN>`` (compared in constant time) when a token is set.

- ``POST /api/connections {network, account}``: authorises an account and
  starts its daily token refresh.
- ``POST /api/posts {body}``; ``POST /api/posts/{id}/dispatch
  {connectionIds, customMessage?, requestAiAssets?, scheduledFor?}``: 202
  with the schedule and its jobs; a dispatch job per account now, or one
  scheduled-publish job at ``scheduledFor``. ``POST
  /api/admin/distribution/dispatch {postId, connectionIds, ...}``: the
  same, as the design's route.
- ``GET /api/schedules/{id}``: the schedule and each dispatch's outcome.
- ``POST /api/dispatches/{id}/retry``: replays a dead-lettered dispatch.
- ``GET /api/queue/health``: each queue's counts.
- ``/admin/queues``: Conveyor's dashboard (same token).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.server import bearer_guard, create_app
from distribution.fake import NETWORKS
from distribution.models import Dispatch
from distribution.network import NetworkError
from distribution.service import (
    QUEUE_NAMES,
    DispatchJobData,
    QueueService,
    ScheduledPublishJobData,
    TokenRefreshJobData,
    dispatch_job_id,
)
from distribution.store import NotFound


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NewConnection(_Body):
    network: str = Field(min_length=1, max_length=40)
    account: str = Field(min_length=1, max_length=200)


class NewPost(_Body):
    body: str = Field(min_length=1, max_length=5000)


class DispatchRequest(_Body):
    connection_ids: list[int] = Field(alias="connectionIds", min_length=1, max_length=50)
    custom_message: str | None = Field(None, alias="customMessage", max_length=5000)
    request_ai_assets: bool = Field(False, alias="requestAiAssets")
    scheduled_for: datetime | None = Field(None, alias="scheduledFor")

    @field_validator("scheduled_for")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("scheduledFor needs a time zone (e.g. 2026-12-01T09:00:00Z)")
        return value


class AdminDispatchRequest(DispatchRequest):
    post_id: int = Field(alias="postId")


def _dispatch(row: Dispatch) -> dict[str, Any]:
    return {
        "id": row.id,
        "connectionId": row.connection_id,
        "status": row.status,
        "externalId": row.external_id,
        "attempts": row.attempts,
        "error": row.error,
        "jobId": row.job_id,
    }


def create_api(service: QueueService, *, token: str | None = None) -> FastAPI:
    distribution = service.distribution
    store = distribution.services.store

    guarded = [Depends(bearer_guard(token))]
    api = FastAPI(title="Distribution", version="0.1.0")

    @api.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 404)

    @api.post("/api/connections", status_code=201, dependencies=guarded)
    async def add_connection(body: NewConnection) -> dict[str, Any]:
        if body.network not in NETWORKS:
            raise HTTPException(422, f"unknown network {body.network!r}; one of {', '.join(NETWORKS)}")
        try:
            tokens = await distribution.services.network.grant(body.network, body.account)
        except NetworkError as exc:
            raise HTTPException(502, f"the network refused the authorisation: {exc}") from None
        assert tokens.refresh_token is not None
        row = await store.add_connection(
            body.network, body.account, tokens.access_token, tokens.refresh_token, tokens.expires_at
        )
        await service.add_token_refresh_job(
            TokenRefreshJobData(connection_id=row.id), distribution.settings.token_refresh_every
        )
        return {"id": row.id, "network": row.network, "account": row.account}

    @api.post("/api/posts", status_code=201, dependencies=guarded)
    async def add_post(body: NewPost) -> dict[str, Any]:
        row = await store.add_post(body.body)
        return {"id": row.id}

    async def publish(post_id: int, body: DispatchRequest) -> dict[str, Any]:
        schedule, rows = await store.add_schedule(
            post_id,
            body.connection_ids,
            scheduled_for=body.scheduled_for,
            custom_message=body.custom_message,
            request_ai_assets=body.request_ai_assets,
            job_ids=None if body.scheduled_for else dispatch_job_id,
        )
        if body.scheduled_for is not None:
            job = await service.add_scheduled_publish_job(
                ScheduledPublishJobData(schedule_id=schedule.id), body.scheduled_for
            )
            jobs = [job.id]
        else:
            jobs = [
                (
                    await service.add_dispatch_job(
                        DispatchJobData(
                            schedule_id=schedule.id,
                            post_id=post_id,
                            target_id=row.connection_id,
                            request_ai_assets=body.request_ai_assets,
                            custom_message=body.custom_message,
                        )
                    )
                ).id
                for row in rows
            ]
        return {"scheduleId": schedule.id, "status": schedule.status, "jobs": jobs}

    @api.post("/api/posts/{post_id}/dispatch", status_code=202, dependencies=guarded)
    async def dispatch(post_id: int, body: DispatchRequest) -> dict[str, Any]:
        return await publish(post_id, body)

    @api.post("/api/admin/distribution/dispatch", status_code=202, dependencies=guarded)
    async def admin_dispatch(body: AdminDispatchRequest) -> dict[str, Any]:
        """The design's route: the post's id in the body."""
        return await publish(body.post_id, body)

    @api.get("/api/schedules/{schedule_id}", dependencies=guarded)
    async def schedule(schedule_id: int) -> dict[str, Any]:
        found = await store.schedule(schedule_id)
        if found is None:
            raise NotFound(f"no schedule {schedule_id}")
        row, dispatches = found
        return {
            "id": row.id,
            "postId": row.post_id,
            "status": row.status,
            "scheduledFor": row.scheduled_for.isoformat() if row.scheduled_for else None,
            "dispatches": [_dispatch(d) for d in dispatches],
        }

    @api.post("/api/dispatches/{dispatch_id}/retry", status_code=202, dependencies=guarded)
    async def retry(dispatch_id: int) -> dict[str, Any]:
        row = await store.dispatch_by_id(dispatch_id)
        if row is None:
            raise NotFound(f"no dispatch {dispatch_id}")
        if row.status != "failed":
            raise HTTPException(409, f"dispatch {dispatch_id} is {row.status}, not failed")
        job = await service.add_retry_job(dispatch_id)
        return {"jobId": job.id}

    @api.get("/api/queue/health", dependencies=guarded)
    async def health() -> JSONResponse:
        try:
            statuses = {name: await service.get_queue_status(name) for name in QUEUE_NAMES}
        except Exception as exc:  # Redis down: say so rather than a bare 500
            return JSONResponse({"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}, 503)
        return JSONResponse(
            {
                "status": "healthy",
                "queues": {
                    "dispatch": statuses["dispatch"].model_dump(),
                    "scheduled": statuses["scheduled"].model_dump(),
                    "tokenRefresh": statuses["token-refresh"].model_dump(),
                },
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )

    dashboard = create_app(service.app.redis, token=token, tasks=service.app)
    api.mount("/admin/queues", dashboard)
    return api
