"""The HTTP API and pages (FastAPI). No import work runs in a request:
``POST /api/artists/import`` writes the artist row (phase 1) and enqueues
the import jobs, and every read is side-effect free."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from conveyor import ProgressBus
from conveyor.server import ProgressHub
from setlist.adapters.http import Throttled, UpstreamError
from setlist.models import Artist
from setlist.ops import add_operations
from setlist.pipeline import TRENDING_CACHE_KEY, Pipeline, artist_cache_key, subject
from setlist.shows import add_shows

WEB = Path(__file__).with_name("web")
ARTIST_CACHE_SECONDS = 60
TRENDING_CACHE_SECONDS = 300


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: Missing or empty: 400, as the seed's route answers.
    tm_attraction_id: str | None = Field(None, alias="tmAttractionId", pattern=r"^([A-Za-z0-9_-]{1,40})?$")


class ImportStarted(BaseModel):
    artistId: str
    slug: str
    jobId: str | None
    started: bool


class StatusOut(BaseModel):
    stage: str
    progress: float
    message: str
    error: str | None = None
    updatedAt: datetime
    finished: bool


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _artist_out(artist: Artist) -> dict[str, Any]:
    return {
        "id": artist.id,
        "name": artist.name,
        "slug": artist.slug,
        "tmAttractionId": artist.tm_attraction_id,
        "spotifyId": artist.spotify_id,
        "imageUrl": artist.image_url,
        "genres": artist.genres,
        "popularity": artist.popularity,
        "followers": artist.followers,
        "importStatus": artist.import_status,
        "catalogDegraded": artist.catalog_degraded,
        "trendingScore": artist.trending_score,
        "showsSyncedAt": _iso(artist.shows_synced_at),
        "catalogSyncedAt": _iso(artist.catalog_synced_at),
    }


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
        live = await bus.get(subject(artist_id))
        if live is not None:
            error = live.message if live.stage == "failed" else None
            return StatusOut(
                stage=live.stage,
                progress=live.percent,
                message=live.message,
                error=error,
                updatedAt=live.updated_at,
                finished=live.finished,
            )
        stored = await store.status(artist_id)
        if stored is None:
            return None
        return StatusOut(
            stage=stored.stage,
            progress=stored.progress,
            message=stored.message or "",
            error=stored.error,
            updatedAt=stored.updated_at,
            finished=stored.stage in ("completed", "failed"),
        )

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

    @api.get("/api/artists/{key}", tags=["artists"])
    async def artist_page(key: str, shows: Annotated[int, Query(ge=0, le=5000)] = 100) -> Response:
        """An artist with its shows (by date), songs (most popular first),
        counts and import status."""
        artist = await find(key)
        cacheable = artist.import_status == "complete" and shows == 100
        if cacheable and (cached := await services.redis.get(artist_cache_key(artist.id))) is not None:
            return Response(cached, media_type="application/json", headers={"x-cache": "hit"})
        counts = await store.counts(artist.id)
        status = await current_status(artist.id)
        body = {
            "artist": _artist_out(artist),
            "counts": {
                "shows": counts.shows,
                "venues": counts.venues,
                "songs": counts.songs,
                "setlists": counts.setlists,
            },
            "status": status.model_dump(mode="json") if status else None,
            "shows": [
                {
                    "id": show.id,
                    "tmEventId": show.tm_event_id,
                    "name": show.name,
                    "date": show.local_date.isoformat() if show.local_date else None,
                    "time": show.local_time,
                    "status": show.status,
                    "setlistReady": show.setlist_ready,
                    "url": show.url,
                    "venue": {"name": venue.name, "city": venue.city, "country": venue.country_code}
                    if venue
                    else None,
                }
                for show, venue in await store.shows(artist.id, limit=shows)
            ],
            "songs": [
                {
                    "id": song.id,
                    "name": song.name,
                    "album": song.album_name,
                    "popularity": song.popularity,
                    "isrc": song.isrc,
                    "durationMs": song.duration_ms,
                    "isLive": song.is_live,
                }
                for song in await store.songs(artist.id)
            ],
        }
        text = json.dumps(body)
        if cacheable:
            await services.redis.set(artist_cache_key(artist.id), text, ex=ARTIST_CACHE_SECONDS)
        return Response(text, media_type="application/json", headers={"x-cache": "miss"})

    @api.get("/api/trending", tags=["artists"])
    async def trending(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
        """Imported artists by trending score (computed hourly)."""
        if limit == 20 and (cached := await services.redis.get(TRENDING_CACHE_KEY)) is not None:
            return Response(cached, media_type="application/json")
        text = json.dumps(
            {"artists": [_artist_out(a) for a in await store.artists(order="trending", limit=limit)]}
        )
        if limit == 20:
            await services.redis.set(TRENDING_CACHE_KEY, text, ex=TRENDING_CACHE_SECONDS)
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
