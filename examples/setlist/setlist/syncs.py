"""The data syncs that keep an imported artist fresh, each on its seed
queue:

- ``quick_sync`` (``artist-quick-sync``, HIGH): a user's refresh of an
  artist's upcoming shows only, in seconds;
- ``resync_shows`` (``ticketmaster-sync``): the same, for the 6-hourly resync;
- ``sync_spotify`` (``spotify-sync``): followers, popularity, genres and
  picture from Spotify; a new picture is processed again;
- ``sync_venues`` and ``sync_venue`` (``venue-sync``): every venue's
  details from Ticketmaster, on their own daily schedule, oldest first;
- ``setlists_due`` and ``sync_setlists`` (``setlist-sync``): the setlists
  of shows played in the last two weeks, as setlist.fm publishes them;
- ``resync_active`` and ``deep_sync_trending`` (``scheduled-sync``): the
  6-hourly resync of active artists and the daily re-import of the top
  trending ones (at LOW priority, behind any user's import).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from conveyor import Discard, Priority, RateLimited, TaskContext
from setlist.adapters.http import Throttled
from setlist.adapters.setlistfm import event_date, songs_played
from setlist.ingest import venue_row
from setlist.models import Artist, Show, Venue
from setlist.queues import QueueName

if TYPE_CHECKING:
    from setlist.pipeline import Pipeline

#: A shows sync younger than this is not redone by the 6-hourly resync.
RESYNC_FRESH = timedelta(hours=1)
#: A venue's details are refreshed once they are this old.
VENUE_FRESH = timedelta(days=7)
#: Shows played this recently whose setlist is not in yet are looked up daily.
SETLIST_WINDOW = timedelta(days=14)


class Syncs:
    """The sync tasks and their schedules, registered on ``pipeline``'s queues."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.app, self.services = pipeline.app, pipeline.services
        q, opts = pipeline.queues, pipeline.task_options

        @q[QueueName.ARTIST_QUICK_SYNC].task(**opts(QueueName.ARTIST_QUICK_SYNC, attempts=3))
        async def quick_sync(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            """An imported artist's upcoming shows, refreshed now."""
            return await self._shows(ctx, artist_id, "quick-sync")

        @q[QueueName.TICKETMASTER_SYNC].task(
            **opts(QueueName.TICKETMASTER_SYNC, attempts=3, priority=Priority.NORMAL)
        )
        async def resync_shows(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            """Shows only, for an artist already imported (the 6-hourly resync)."""
            return await self._shows(ctx, artist_id, "resync")

        @q[QueueName.SPOTIFY_SYNC].task(**opts(QueueName.SPOTIFY_SYNC, attempts=3))
        async def sync_spotify(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            """The artist's Spotify profile: followers, popularity, genres, picture."""
            return await self.spotify_profile(artist_id)

        @q[QueueName.VENUE_SYNC].task(**opts(QueueName.VENUE_SYNC, attempts=2))
        async def sync_venues(ctx: TaskContext, limit: int = 500) -> dict[str, Any]:
            """Queues a details sync of the ``limit`` venues synced longest ago."""
            ids, day = await self.stale_venue_ids(limit), date.today().isoformat()
            await sync_venue.enqueue_many(
                ({"tm_venue_id": venue}, {"job_id": f"venue-{venue}-{day}"}) for venue in ids
            )
            return {"queued": len(ids)}

        @q[QueueName.VENUE_SYNC].task(**opts(QueueName.VENUE_SYNC, attempts=3))
        async def sync_venue(ctx: TaskContext, tm_venue_id: str) -> dict[str, Any]:
            """One venue's details, from Ticketmaster."""
            return await self.venue_details(tm_venue_id)

        @q[QueueName.SETLIST_SYNC].task(**opts(QueueName.SETLIST_SYNC, attempts=2))
        async def setlists_due(ctx: TaskContext) -> dict[str, Any]:
            """Queues a setlist sync of each artist with a recent show whose setlist is not in."""
            ids, day = await self.artists_awaiting_setlists(), date.today().isoformat()
            await sync_setlists.enqueue_many(
                ({"artist_id": artist}, {"job_id": f"setlists-{artist}-{day}"}) for artist in ids
            )
            return {"queued": len(ids)}

        @q[QueueName.SETLIST_SYNC].task(**opts(QueueName.SETLIST_SYNC, attempts=4))
        async def sync_setlists(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            """The artist's latest setlists from setlist.fm, matched to its shows."""
            artist = await self.services.store.artist(artist_id)
            if artist is None:
                raise Discard(f"no artist {artist_id}")
            async with self.pipeline.tracking.phase(
                ctx.id, artist_id, "setlists", ctx, kind="setlists"
            ) as out:
                try:
                    setlists = await self.fetch_setlists(artist.mbid)
                except Throttled as exc:
                    raise RateLimited(exc.retry_after, str(exc)) from None
                matched = await self.services.store.save_setlists(artist_id, setlists)
                await self.services.drop_caches(artist_id)
                out.update({"setlists": len(setlists), "matched": matched})
            return out

        @q[QueueName.SCHEDULED_SYNC].task(**opts(QueueName.SCHEDULED_SYNC, attempts=2))
        async def resync_active(ctx: TaskContext) -> dict[str, Any]:
            """Queues a shows resync and a Spotify sync of each imported artist
            whose shows were not synced within the last hour (a fresh import
            needs neither)."""
            ids, slot = await self.stale_artist_ids(), int(time.time() // (6 * 3600))
            for task, prefix in ((resync_shows, "resync"), (sync_spotify, "spotify")):
                await task.enqueue_many(({"artist_id": a}, {"job_id": f"{prefix}-{a}-{slot}"}) for a in ids)
            return {"queued": len(ids)}

        @q[QueueName.SCHEDULED_SYNC].task(**opts(QueueName.SCHEDULED_SYNC, attempts=2, priority=Priority.LOW))
        async def deep_sync_trending(ctx: TaskContext, top: int = 20) -> dict[str, Any]:
            """Re-imports the most trending artists in full (the daily deep
            sync), behind any import a user starts."""
            started = []
            for artist in await self.services.store.artists(order="trending", limit=top):
                if (await pipeline.start(artist.tm_attraction_id, deep=True))[2] is not None:
                    started.append(artist.id)
            return {"started": len(started)}

        self.quick_sync, self.resync_shows, self.sync_spotify = quick_sync, resync_shows, sync_spotify
        self.sync_venues, self.sync_venue = sync_venues, sync_venue
        self.setlists_due, self.sync_setlists = setlists_due, sync_setlists
        self.resync_active, self.deep_sync_trending = resync_active, deep_sync_trending
        self.app.schedule("15 */6 * * *", resync_active, key="setlist-resync")
        self.app.schedule("30 3 * * *", deep_sync_trending, key="setlist-deep-sync")
        self.app.schedule("45 2 * * *", sync_venues, key="setlist-venue-sync")
        self.app.schedule("0 5 * * *", setlists_due, key="setlist-setlist-sync")

    # -- shows -----------------------------------------------------------------

    async def _shows(self, ctx: TaskContext, artist_id: str, kind: str) -> dict[str, Any]:
        async with self.pipeline.tracking.phase(ctx.id, artist_id, "shows", ctx, kind=kind) as outcome:
            try:
                outcome.update(await self.resync_artist(artist_id))
            except Throttled as exc:
                raise RateLimited(exc.retry_after, str(exc)) from None
        return outcome

    async def resync_artist(self, artist_id: str) -> dict[str, Any]:
        """An imported artist's shows fetched again; its page's cache dropped."""
        result = await self.pipeline.fetch_shows(artist_id, None)
        await self.services.drop_caches(artist_id)  # the artist page shows them
        return result

    async def stale_artist_ids(self) -> list[str]:
        """Imported artists whose shows were not synced within the last hour."""
        fresh = datetime.now(UTC) - RESYNC_FRESH
        return list(await self.services.store.artist_ids(status="complete", synced_before=fresh))

    # -- Spotify ---------------------------------------------------------------

    async def spotify_profile(self, artist_id: str) -> dict[str, Any]:
        """Refreshes what Spotify says of the artist; a picture the artist
        did not have is taken and processed."""
        s = self.services
        artist = await s.store.artist(artist_id)
        if artist is None:
            raise Discard(f"no artist {artist_id}")
        if artist.spotify_id is None:
            return {"skipped": "no Spotify artist"}
        try:
            found = await s.spotify.artist(artist.spotify_id)
        except Throttled as exc:
            raise RateLimited(exc.retry_after, str(exc)) from None
        if found is None:
            return {"skipped": "the Spotify artist is gone"}
        fields: dict[str, Any] = {
            "popularity": found.get("popularity", artist.popularity),  # absent in development mode
            "followers": (found.get("followers") or {}).get("total", artist.followers),
            "genres": artist.genres or list(found.get("genres") or []),
        }
        picture = next((i["url"] for i in found.get("images") or [] if i.get("url")), None)
        if artist.image_url is None and picture is not None:
            fields["image_url"] = picture
        await s.store.update_artist(artist_id, **fields)
        await s.drop_caches(artist_id)
        if "image_url" in fields:
            await self.pipeline.upkeep.queue_images(artist_id, picture)
        return {"followers": fields["followers"], "picture": "image_url" in fields}

    # -- venues ----------------------------------------------------------------

    async def stale_venue_ids(self, limit: int) -> list[str]:
        """Ticketmaster ids of venues never synced or synced a week ago, oldest first."""
        cutoff = datetime.now(UTC) - VENUE_FRESH
        query = (
            select(Venue.tm_venue_id)
            .where((Venue.synced_at.is_(None)) | (Venue.synced_at < cutoff))
            .order_by(Venue.synced_at.is_not(None), Venue.synced_at)
            .limit(limit)
        )
        async with self.services.store.sessions() as session:
            return list((await session.scalars(query)).all())

    async def venue_details(self, tm_venue_id: str) -> dict[str, Any]:
        """Updates the venue from Ticketmaster; a venue Ticketmaster no
        longer knows keeps its row, stamped so it is not asked every day."""
        try:
            found = await self.services.ticketmaster.venue(tm_venue_id)
        except Throttled as exc:
            raise RateLimited(exc.retry_after, str(exc)) from None
        now = datetime.now(UTC)
        values: dict[str, Any] = {"synced_at": now}
        if found is not None:
            row = venue_row(found)
            del row["tm_venue_id"]
            values.update(row, upcoming_events=(found.get("upcomingEvents") or {}).get("_total"))
        async with self.services.store.sessions.begin() as session:
            changed = await session.execute(
                update(Venue).where(Venue.tm_venue_id == tm_venue_id).values(**values)
            )
        return {"found": found is not None, "updated": changed.rowcount == 1}  # type: ignore[attr-defined]

    # -- setlists --------------------------------------------------------------

    async def artists_awaiting_setlists(self) -> list[str]:
        """Imported artists (with a MusicBrainz id) that played a show in
        the last two weeks whose setlist is not in yet."""
        today = datetime.now(UTC).date()
        query = (
            select(Show.artist_id)
            .join(Artist, Artist.id == Show.artist_id)
            .where(
                Artist.import_status == "complete",
                Artist.mbid.is_not(None),
                Show.setlist_ready.is_(False),
                Show.local_date >= today - SETLIST_WINDOW,
                Show.local_date < today,
            )
            .distinct()
        )
        async with self.services.store.sessions() as session:
            return list((await session.scalars(query)).all())

    async def fetch_setlists(self, mbid: str | None) -> list[dict[str, Any]]:
        """The artist's latest setlists (``setlist_pages`` pages of 20 at most)."""
        s = self.services
        setlists: list[dict[str, Any]] = []
        if not mbid:
            return setlists
        for page in range(1, s.settings.setlist_pages + 1):
            body = await s.setlistfm.setlists(mbid, page)
            items = body.get("setlist") or []
            setlists += [_setlist_row(item) for item in items if item.get("id") and item.get("eventDate")]
            per_page = int(body.get("itemsPerPage") or 20)
            if len(items) < per_page or page * per_page >= int(body.get("total") or 0):
                break
        return setlists


def _setlist_row(item: dict[str, Any]) -> dict[str, Any]:
    venue = item.get("venue") or {}
    day: date = event_date(str(item["eventDate"]))
    return {
        "setlistfm_id": str(item["id"]),
        "version_id": str(item.get("versionId") or ""),
        "event_date": day,
        "venue_name": (venue.get("name") or None),
        "city": ((venue.get("city") or {}).get("name") or None),
        "songs": songs_played(item),
    }
