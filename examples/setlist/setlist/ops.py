"""The operations routes the seeds name, beside the app's own API.

- ``GET /api/health``: Redis, the database and the workers; 503 when Redis
  or the database does not answer.
- ``GET /api/queues/stats``: each queue's counts.
- ``GET /api/import/active``: the imports under way, with their status;
  ``GET /api/import/progress``: every import's progress as server-sent
  events (``data: {artistId, stage, progress, message, at}``, unnamed).
- ``GET /api/admin/queues`` (statistics and health per queue) and ``POST
  /api/admin/queues {action, queueName, options}`` (``pause``, ``resume``,
  ``clean``, ``retry-failed``): behind the admin token.
- ``POST /api/workers/init``: writes the queues and schedules to Redis and
  reports the live workers; ``GET /api/admin/system-health``: the
  ``system_health`` snapshots; both behind the admin token.
- ``GET /api/artists/{key}/syncs``: the artist's ``sync_jobs`` with their
  ``sync_progress`` phases.
- ``GET|POST /api/cron/calculate-trending``, ``/api/cron/cleanup-imports``,
  ``/api/cron/run-artist-resync``: for an external cron, with ``Authorization:
  Bearer <CRON_SECRET>``; each does the work of its built-in schedule and
  answers once it is done, and its run is recorded in ``cron_logs``.
- ``GET /api/admin/cron``: per schedule and cron route, its ``cron_metrics``
  and latest ``cron_logs``; ``GET /api/admin/jobs/history``: finished jobs
  from ``queue_jobs`` (by ``queue`` and ``status``, newest first); both
  behind the admin token. Conveyor's archive writes these tables.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, text
from sse_starlette import EventSourceResponse, ServerSentEvent

from conveyor.server import bearer_guard
from setlist.adapters.http import Throttled
from setlist.answers import iso
from setlist.pipeline import Pipeline
from setlist.progress import subject
from setlist.queues import QUEUES
from setlist.webhooks import add_webhook_routes


class QueueAction(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    action: Literal["pause", "resume", "clean", "retry-failed"]
    queue_name: str = Field(alias="queueName", min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class CleanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["completed", "failed", "waiting", "delayed"] = "completed"
    grace: float = Field(default=0, ge=0)
    limit: int = Field(default=1000, ge=1, le=100_000)


def _bearer(secret: str | None, what: str) -> Callable[[Request], Awaitable[None]]:
    """Conveyor's ``bearer_guard`` for ``secret``, except that with no
    secret configured nothing passes (403), where the guard would let
    everything through."""
    guard = bearer_guard(secret)

    async def check(request: Request) -> None:
        if not secret:
            raise HTTPException(403, f"{what} is not configured")
        await guard(request)

    return check


def add_operations(
    api: FastAPI, pipeline: Pipeline, *, admin_token: str | None, cron_secret: str | None
) -> None:
    app, store = pipeline.app, pipeline.services.store
    admin = [Depends(_bearer(admin_token, "ADMIN_TOKEN"))]
    cron = [Depends(_bearer(cron_secret, "CRON_SECRET"))]
    add_webhook_routes(api, pipeline.webhooks, admin)
    router = APIRouter(tags=["operations"])

    async def queue_stats() -> dict[str, dict[str, int]]:
        out = await pipeline.upkeep.queue_counts()
        for name in QUEUES:
            out[name]["paused"] = int(await app.queues[name].queue.is_paused())
        return out

    @router.get("/api/health")
    async def health() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await pipeline.services.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"{type(exc).__name__}: {exc}"
        try:
            async with store.sessions() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"{type(exc).__name__}: {exc}"
        healthy = all(v == "ok" for v in checks.values())
        workers = len(await app.queues[QUEUES[0]].queue.workers()) if checks["redis"] == "ok" else 0
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "checks": checks,
            "workers": workers,
            "timestamp": datetime.now(UTC).isoformat(),
        }
        return JSONResponse(body, 200 if healthy else 503)

    @router.get("/api/queues/stats")
    async def stats() -> dict[str, Any]:
        return {"queues": await queue_stats(), "timestamp": datetime.now(UTC).isoformat()}

    @router.get("/api/import/active")
    async def active() -> dict[str, Any]:
        running = await store.artist_ids(status="in_progress")
        imports = []
        for artist_id in running:
            live = await app.progress.get(subject(artist_id))
            imports.append(
                {
                    "artistId": artist_id,
                    "stage": live.stage if live else "queued",
                    "progress": live.percent if live else 0,
                    "message": live.message if live else "",
                }
            )
        return {"imports": imports, "count": len(imports)}

    @router.get("/api/import/progress", response_class=EventSourceResponse)
    async def all_progress(request: Request) -> EventSourceResponse:
        async def events() -> AsyncIterator[ServerSentEvent]:
            async for status in app.progress.watch(subject("")):
                if await request.is_disconnected():
                    return
                payload = {
                    "artistId": status.subject.removeprefix(subject("")),
                    "stage": status.stage,
                    "progress": status.percent,
                    "message": status.message,
                    "at": status.updated_at.isoformat(),
                }
                yield ServerSentEvent(json.dumps(payload))

        return EventSourceResponse(events(), ping=15)

    @router.get("/api/admin/queues", dependencies=admin)
    async def admin_queues() -> dict[str, Any]:
        health = {}
        for name in QUEUES:
            workers = await app.queues[name].queue.workers()
            health[name] = {"workers": len(workers), "healthy": bool(workers)}
        return {
            "success": True,
            "health": health,
            "stats": await queue_stats(),
            "timestamp": datetime.now(UTC).isoformat(),
        }

    @router.post("/api/admin/queues", dependencies=admin)
    async def manage_queue(body: QueueAction) -> dict[str, Any]:
        if body.queue_name not in QUEUES:
            raise HTTPException(404, f"unknown queue {body.queue_name!r}; the queues are {', '.join(QUEUES)}")
        queue = app.queues[body.queue_name].queue
        result: dict[str, Any] = {}
        if body.action == "pause":
            await queue.pause()
        elif body.action == "resume":
            await queue.resume()
        elif body.action == "clean":
            try:
                options = CleanOptions.model_validate(body.options)
            except ValidationError as exc:
                raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
            result["cleaned"] = len(
                await queue.clean(options.state, grace=options.grace, limit=options.limit)
            )
        else:
            result["retried"] = await queue.retry_failed(limit=int(body.options.get("limit", 100)))
        return {"success": True, "action": body.action, "queueName": body.queue_name, **result}

    @router.get("/api/admin/cron", dependencies=admin)
    async def cron_runs(limit: int = 50) -> dict[str, Any]:
        """Each schedule's and cron route's totals, and the latest runs."""
        logs, metrics = pipeline.archive.tables.cron_logs, pipeline.archive.tables.cron_metrics
        async with pipeline.services.engine.connect() as db:
            totals = (await db.execute(select(metrics).order_by(metrics.c.job_name))).mappings().all()
            recent = (
                (await db.execute(select(logs).order_by(logs.c.completed_at.desc()).limit(_bounded(limit))))
                .mappings()
                .all()
            )
        return {"metrics": [_json_row(r) for r in totals], "recent": [_json_row(r) for r in recent]}

    @router.get("/api/admin/jobs/history", dependencies=admin)
    async def job_history(
        queue: str | None = None, status: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """Finished jobs, newest first, as the archive recorded them."""
        jobs = pipeline.archive.tables.jobs
        query = select(jobs).order_by(jobs.c.finished_at.desc(), jobs.c.id.desc()).limit(_bounded(limit))
        if queue is not None:
            query = query.where(jobs.c.queue == queue)
        if status is not None:
            query = query.where(jobs.c.status == status)
        async with pipeline.services.engine.connect() as db:
            rows = (await db.execute(query)).mappings().all()
        return {"jobs": [_json_row(r) for r in rows]}

    @router.get("/api/admin/system-health", dependencies=admin)
    async def system_health(limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``system_health`` snapshots (one every 5 minutes)."""
        rows = await pipeline.tracking.health(max(1, min(limit, 1000)))
        return [
            {
                "checkedAt": row.checked_at.isoformat(),
                "status": row.status,
                "redisOk": row.redis_ok,
                "redisUsedMemory": row.redis_used_memory,
                "databaseOk": row.database_ok,
                "workers": row.workers,
                "queues": row.queues,
            }
            for row in rows
        ]

    @router.get("/api/artists/{key}/syncs")
    async def syncs(key: str) -> list[dict[str, Any]]:
        """The artist's imports and resyncs, newest first, each with its phases."""
        artist = await store.artist(key)
        if artist is None:
            raise HTTPException(404, f"no artist {key!r}")
        return [
            {
                "id": job.id,
                "kind": job.kind,
                "status": job.status,
                "createdAt": iso(job.created_at),
                "startedAt": iso(job.started_at),
                "finishedAt": iso(job.finished_at),
                "error": job.error,
                "phases": [
                    {
                        "phase": p.phase,
                        "status": p.status,
                        "attempts": p.attempts,
                        "durationMs": p.duration_ms,
                        "error": p.error,
                    }
                    for p in phases
                ],
            }
            for job, phases in await pipeline.tracking.jobs(artist.id)
        ]

    @router.post("/api/workers/init", dependencies=admin)
    async def workers_init() -> dict[str, Any]:
        await app.setup()
        workers = {name: len(await app.queues[name].queue.workers()) for name in QUEUES}
        return {"success": True, "queues": list(QUEUES), "workers": workers}

    async def run(name: str, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """Awaits ``work`` and records the run in ``cron_logs`` and
        ``cron_metrics`` (seed 002's ``log_cron_run``)."""
        started = datetime.now(UTC)
        try:
            result = await work
        except Exception as exc:
            await pipeline.archive.log_cron_run(
                name, status="failed", started_at=started, error=f"{type(exc).__name__}: {exc}"
            )
            if isinstance(exc, Throttled):
                raise HTTPException(503, f"an upstream is throttling: {exc}") from None
            raise
        await pipeline.archive.log_cron_run(
            name, status="completed", started_at=started, details=json.dumps(result, default=str)
        )
        return {
            "success": True,
            "result": result,
            "durationMs": round((datetime.now(UTC) - started).total_seconds() * 1000),
        }

    @router.api_route("/api/cron/calculate-trending", methods=["GET", "POST"], dependencies=cron)
    async def cron_trending() -> dict[str, Any]:
        return await run("calculate-trending", pipeline.calculate_trending())

    @router.api_route("/api/cron/cleanup-imports", methods=["GET", "POST"], dependencies=cron)
    async def cron_cleanup() -> dict[str, Any]:
        return await run("cleanup-imports", pipeline.cleanup_imports())

    @router.api_route("/api/cron/run-artist-resync", methods=["GET", "POST"], dependencies=cron)
    async def cron_resync() -> dict[str, Any]:
        async def resync_all() -> dict[str, Any]:
            ids = await pipeline.stale_artist_ids()
            for artist_id in ids:
                await pipeline.resync_artist(artist_id)
            return {"resynced": len(ids)}

        return await run("run-artist-resync", resync_all())

    api.include_router(router)


def _bounded(limit: int) -> int:
    return max(1, min(limit, 1000))


def _json_row(row: Any) -> dict[str, Any]:
    """A row as JSON: times in ISO 8601, the rest as stored."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
