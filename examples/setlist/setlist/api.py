"""The HTTP API and pages (FastAPI). No import work runs in a request:
``POST /api/artists/import`` writes the artist row (phase 1) and enqueues
the import jobs, and every read is side-effect free."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from conveyor import CircuitOpen, ProgressBus
from conveyor.server import ProgressHub
from setlist import answers
from setlist.adapters.http import Throttled, UpstreamError
from setlist.answers import StatusOut
from setlist.images import SIZES
from setlist.models import Artist
from setlist.ops import add_operations
from setlist.pipeline import Pipeline
from setlist.progress import subject
from setlist.services import TRENDING_CACHE_KEY, artist_cache_key
from setlist.shows import add_shows

WEB = FilePath(__file__).with_name("web")
SIZE_PATTERN = "^(" + "|".join(SIZES) + ")$"


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: Missing or empty: 400, as the seed's route answers.
    tm_attraction_id: str | None = Field(None, alias="tmAttractionId", pattern=r"^([A-Za-z0-9_-]{1,40})?$")


class ImportStarted(BaseModel):
    artistId: str
    slug: str
    jobId: str | None
    started: bool


def create_api(
    pipeline: Pipeline,
    *,
    dashboard: Any | None = None,
    admin_token: str | None = None,
    cron_secret: str | None = None,
) -> FastAPI:
    """The app's API and pages; ``dashboard`` (an ASGI app, Conveyor's) is
    mounted at ``/conveyor`` when given. The operations routes (``ops``)
    take ``admin_token`` and ``cron_secret``; without them, theirs answer 403."""
    services = pipeline.services
    store = services.store
    bus: ProgressBus = pipeline.app.progress
    hub = ProgressHub(bus)

    api = FastAPI(title="Setlist", version="0.1.0")

    async def find(key: str) -> Artist:
        artist = await store.artist(key)
        if artist is None:
            raise HTTPException(404, f"no artist {key!r}")
        return artist

    async def current_status(artist_id: str) -> StatusOut | None:
        return await answers.status(bus, store, artist_id)

    @api.post(
        "/api/artists/import",
        response_model=ImportStarted,
        tags=["artists"],
        responses={400: {"description": "no tmAttractionId"}},
    )
    async def import_artist(body: ImportRequest | None = None) -> ImportStarted | JSONResponse:
        """Phase 1: the artist row at once, the import queued (or the one
        under way reported). 400 without a ``tmAttractionId``."""
        if body is None or not body.tm_attraction_id:
            return JSONResponse({"error": "tmAttractionId required"}, 400)
        artist_id, slug, job = await pipeline.start(body.tm_attraction_id)
        return ImportStarted(
            artistId=artist_id, slug=slug, jobId=job.id if job else None, started=job is not None
        )

    @api.post(
        "/api/artists/{key}/quick-sync",
        status_code=202,
        tags=["artists"],
        responses={404: {"description": "no such artist"}, 409: {"description": "not imported yet"}},
    )
    async def quick_sync(key: str) -> dict[str, Any]:
        """Refreshes an imported artist's upcoming shows now (queue
        ``artist-quick-sync``); a refresh already queued is reported, not
        doubled. 409 while the artist has no complete import."""
        artist = await find(key)
        if artist.import_status != "complete":
            raise HTTPException(409, f"{artist.name} is not imported yet: import it first")
        ahead = await pipeline.syncs.quick_sync.with_options(
            job_id=f"quick-sync-{artist.id}-{time.time_ns()}", dedup_key=f"quick-sync-{artist.id}"
        ).enqueue(artist.id)
        return {"artistId": artist.id, "jobId": ahead.id}

    @api.get(
        "/api/artists/{key}/images/{size}",
        response_class=Response,
        tags=["artists"],
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such artist or picture"}},
    )
    async def artist_image(key: str, size: Annotated[str, Path(pattern=SIZE_PATTERN)]) -> Response:
        """The artist's picture resized (``image-processing``): ``thumb``
        (64 px wide), ``small`` (160), ``medium`` (320) or ``large`` (640)."""
        artist = await find(key)
        found = await pipeline.upkeep.images.get(artist.id, size)
        if found is None:
            raise HTTPException(404, f"no {size} picture of {artist.name} yet")
        headers = {
            "Cache-Control": "public, max-age=86400",
            "ETag": f'"{found.created_at.timestamp():.0f}-{size}"',
        }
        return Response(found.data, media_type=found.content_type, headers=headers)

    @api.get("/api/artists/{key}/status", response_model=StatusOut, tags=["artists"])
    async def artist_status(key: str) -> StatusOut | JSONResponse:
        """The import's latest status (the polling fallback of ``/stream``);
        ``{stage: "unknown", progress: 0, message: "No status"}`` for an
        artist with none, or none at all."""
        artist = await store.artist(key)
        status = await current_status(artist.id) if artist is not None else None
        if status is None:
            return JSONResponse({"stage": "unknown", "progress": 0, "message": "No status"})
        return status

    @api.get("/api/artists/{key}/stream", response_class=EventSourceResponse, tags=["artists"])
    async def artist_stream(key: str, request: Request) -> EventSourceResponse:
        """Server-sent progress: ``data: {stage, progress, message, at}``,
        unnamed, so an ``EventSource``'s ``onmessage`` receives it; the
        current status first; the stream ends when the import does."""
        artist = await find(key)

        def event(stage: str, progress: float, message: str, at: datetime) -> ServerSentEvent:
            payload = {"stage": stage, "progress": progress, "message": message, "at": at.isoformat()}
            return ServerSentEvent(json.dumps(payload))

        # every page of this process follows its import through one pub/sub connection
        follower, live = await hub.open(subject(artist.id))

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
                if live is None:
                    # the live status has expired: the stored one, once
                    stored = await current_status(artist.id)
                    if stored is not None:
                        yield event(stored.stage, stored.progress, stored.message, stored.updatedAt)
                        if stored.finished:
                            return
                else:
                    yield event(live.stage, live.percent, live.message, live.updated_at)
                    if live.finished:
                        return
                async for status in follower:
                    if await request.is_disconnected():
                        return
                    if live is not None and status.updated_at == live.updated_at:
                        continue  # the status read on opening, published just before
                    yield event(status.stage, status.percent, status.message, status.updated_at)
                    if status.finished:
                        return
            finally:
                await hub.close(subject(artist.id), follower)

        return EventSourceResponse(events(), ping=15)

    @api.get("/api/artists/by-slug/{slug}", tags=["artists"])
    async def artist_by_slug(slug: str, shows: Annotated[int, Query(ge=0, le=5000)] = 100) -> Response:
        """The artist page's answer found by slug, under seed 001's path."""
        return await artist_page(slug, shows)

    @api.get("/api/artists/{key}", tags=["artists"])
    async def artist_page(key: str, shows: Annotated[int, Query(ge=0, le=5000)] = 100) -> Response:
        """An artist with its shows (by date), songs (most popular first),
        counts and import status."""
        artist = await find(key)
        cacheable = artist.import_status == "complete" and shows == 100
        if cacheable and (cached := await services.redis.get(artist_cache_key(artist.id))) is not None:
            return Response(cached, media_type="application/json", headers={"x-cache": "hit"})
        text = await answers.artist(services, bus, artist, shows=shows)
        if cacheable:
            await services.redis.set(artist_cache_key(artist.id), text, ex=answers.ARTIST_CACHE_SECONDS)
        return Response(text, media_type="application/json", headers={"x-cache": "miss"})

    @api.get("/api/trending", tags=["artists"])
    async def trending(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
        """Imported artists by trending score (computed hourly)."""
        if limit == 20 and (cached := await services.redis.get(TRENDING_CACHE_KEY)) is not None:
            return Response(cached, media_type="application/json")
        text = await answers.trending(store, limit)
        if limit == 20:
            await services.redis.set(TRENDING_CACHE_KEY, text, ex=answers.TRENDING_CACHE_SECONDS)
        return Response(text, media_type="application/json")

    @api.get("/api/search", tags=["artists"])
    async def search(q: Annotated[str, Query(min_length=1, max_length=100)]) -> dict[str, Any]:
        """Ticketmaster attractions matching ``q``, each with the local
        artist when already imported. Reads only."""
        try:
            found = await services.ticketmaster.search_attractions(q.strip())
        except Throttled as exc:
            raise HTTPException(
                503,
                "Ticketmaster is rate limiting; try again",
                headers={"Retry-After": f"{exc.retry_after:.0f}"},
            ) from None
        except CircuitOpen as exc:  # Ticketmaster kept failing: not asked again for a while
            raise HTTPException(
                503,
                "Ticketmaster is unavailable; try again later",
                headers={"Retry-After": f"{max(1.0, exc.retry_after):.0f}"},
            ) from None
        except UpstreamError as exc:
            raise HTTPException(502, f"upstream error: {exc}") from None
        results = []
        for attraction in found:
            local = await store.artist(f"tm-{attraction['id']}")
            results.append(
                {
                    "tmAttractionId": attraction["id"],
                    "name": attraction.get("name"),
                    "upcomingEvents": (attraction.get("upcomingEvents") or {}).get("_total", 0),
                    "artistId": local.id if local else None,
                    "slug": local.slug if local else None,
                }
            )
        return {"query": q, "results": results}

    # -- pages -------------------------------------------------------------------

    def page(name: str) -> HTMLResponse:
        return HTMLResponse((WEB / name).read_text(encoding="utf-8"))

    @api.get("/", include_in_schema=False)
    async def trending_page() -> HTMLResponse:
        return page("trending.html")

    @api.get("/artists/{key}", include_in_schema=False)
    async def artist_html(key: str) -> HTMLResponse:
        artist = await find(key)
        await store.count_view(artist.id)
        return page("artist.html")

    @api.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        path = WEB / name
        if path.parent != WEB or not path.is_file() or path.suffix not in (".js", ".css"):
            raise HTTPException(404)
        media = "text/javascript" if path.suffix == ".js" else "text/css"
        return Response(path.read_text(encoding="utf-8"), media_type=media)

    add_operations(api, pipeline, admin_token=admin_token, cron_secret=cron_secret)
    add_shows(api, pipeline)
    api.router.on_shutdown.append(hub.aclose)
    if dashboard is not None:
        api.mount("/conveyor", dashboard)
    return api
