"""The API's answers that are cached in Redis, built in one place: by the
routes on a cache miss, and ahead of time by the cache-warm job for the
top trending artists."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from conveyor import ProgressBus
from setlist import trending_view
from setlist.images import stored_sizes
from setlist.models import Artist
from setlist.progress import subject
from setlist.services import Services
from setlist.store import Store

ARTIST_CACHE_SECONDS = 60
TRENDING_CACHE_SECONDS = 300


class StatusOut(BaseModel):
    stage: str
    progress: float
    message: str
    error: str | None = None
    updatedAt: datetime
    finished: bool


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def artist_out(artist: Artist) -> dict[str, Any]:
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
        "showsSyncedAt": iso(artist.shows_synced_at),
        "catalogSyncedAt": iso(artist.catalog_synced_at),
    }


async def status(bus: ProgressBus, store: Store, artist_id: str) -> StatusOut | None:
    """An import's status: live from the progress bus, else as stored."""
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


async def artist(services: Services, bus: ProgressBus, artist: Artist, *, shows: int = 100) -> str:
    """``GET /api/artists/{key}``'s answer (JSON): the artist, its resized
    pictures, counts, import status, shows by date and songs, most popular first."""
    store = services.store
    counts = await store.counts(artist.id)
    now = await status(bus, store, artist.id)
    pictures = await stored_sizes(store.sessions, artist.id)
    body = {
        "artist": artist_out(artist),
        "images": {
            size: {"url": f"/api/artists/{artist.id}/images/{size}", "width": w, "height": h}
            for size, (w, h) in pictures.items()
        },
        "counts": {
            "shows": counts.shows,
            "venues": counts.venues,
            "songs": counts.songs,
            "setlists": counts.setlists,
        },
        "status": now.model_dump(mode="json") if now else None,
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
    return json.dumps(body)


async def trending(store: Store, limit: int = 20) -> str:
    """``GET /api/trending``'s answer (JSON): the artists by score, each with
    its place on the leaderboard of the last trending run (``rank``,
    ``upcomingShows``, ``recentVotes``; null before the first run)."""
    artists = await store.artists(order="trending", limit=limit)
    board = await trending_view.read(store.sessions, [a.id for a in artists])
    out = []
    for artist in artists:
        row = board.get(artist.id, {})
        out.append(
            {
                **artist_out(artist),
                "rank": row.get("rank"),
                "upcomingShows": row.get("upcoming_shows"),
                "recentVotes": row.get("recent_votes"),
            }
        )
    return json.dumps({"artists": out})
