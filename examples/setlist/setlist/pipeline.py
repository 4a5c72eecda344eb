"""The artist import as Conveyor jobs (seed 001's phases):

1. ``bootstrap`` (queue ``artist-import``): the attraction from
   Ticketmaster, the Spotify artist (its link, else a name search); then it
   adds the rest as a flow with ids derived from its own, so a re-run adds
   nothing twice:
2. ``sync_shows`` (``ticketmaster-sync``) and ``sync_catalog``
   (``spotify-catalog``), children running side by side;
3. ``wrap_up`` (``artist-import``), their parent: setlists pre-seeded
   from setlist.fm, caches dropped, the import marked complete, the
   artist's picture queued for processing and its trending score computed.

Every upstream request first takes a slot of a rate limiter shared by all
worker processes (Ticketmaster 5/s, setlist.fm 2/s) and runs under the
upstream's circuit breaker. An upstream asking for a long wait, or one
whose breaker is open, makes the job raise RateLimited: it goes back to
waiting and the queue holds, no worker sleeps. Progress goes to the
progress bus under ``artist:<id>`` (pushed to SSE readers) and, at each
phase change, to the ``import_status`` table (the polling fallback).

The other queues' jobs live in ``syncs`` (keeping imported artists fresh)
and ``upkeep`` (pictures, trending, cache warming, health, cleanup).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from conveyor import Conveyor, Discard, Exponential, Job, JobOptionsDict, KeepJobs, Priority, TaskContext
from conveyor.archive import JobArchive
from setlist.catalog import Track, dedupe, is_live_album, is_live_title, is_studio
from setlist.ingest import identity, is_add_on, show_row, track_from
from setlist.models import ARCHIVE
from setlist.progress import IDENTIFIERS, SETLISTS, SHOWS, SONGS, ImportProgress, failures_recorded, subject
from setlist.queues import CLASSES, QUEUES, QueueName, declare
from setlist.services import Services
from setlist.syncs import Syncs
from setlist.tracking import Tracking, sync_root
from setlist.upkeep import Upkeep
from setlist.votes import Votes
from setlist.webhooks import Webhooks

log = logging.getLogger("setlist.pipeline")

#: Seed 001's ``removeOnComplete: {age: 3600, count: 100}`` and
#: ``removeOnFail: {age: 86400}`` (with a count, so a day of failures cannot fill Redis).
KEEP_COMPLETED = KeepJobs(count=100, age=3600)
KEEP_FAILED = KeepJobs(count=10_000, age=86400)
#: An import whose status has not moved for this long is taken for dead
#: and may be started again.
STUCK_AFTER = timedelta(minutes=15)


def _children(ctx_id: str) -> dict[str, str]:
    return {part: f"{ctx_id}-{part}" for part in ("shows", "catalog", "wrap")}


class Pipeline:
    """The app's queues, tasks and schedules, registered on ``app``."""

    def __init__(self, app: Conveyor, services: Services) -> None:
        self.app = app
        self.services = services
        store = services.store
        self.tracking = Tracking(store.sessions)
        self.backoff = Exponential(services.settings.retry_backoff, max=120.0)
        self.queues = q = declare(app, services.settings)
        opts = self.task_options
        self.votes = Votes(services.redis, store.sessions)

        @q[QueueName.VOTES].task(**opts(QueueName.VOTES, attempts=5))
        async def persist_votes(ctx: TaskContext) -> dict[str, int]:
            """Writes the votes changed since the last run to the database."""
            return await self.votes.persist()

        @q[QueueName.ARTIST_IMPORT].task(**opts(QueueName.ARTIST_IMPORT, attempts=4))
        async def bootstrap(ctx: TaskContext, artist_id: str, deep: bool = False) -> dict[str, Any]:
            """Phase 1; ``deep``: a scheduled re-import, whose phases run at LOW priority."""
            return await self._phase(ctx, artist_id, "identity", lambda p: self._bootstrap(p, deep=deep))

        @q[QueueName.TICKETMASTER_SYNC].task(**opts(QueueName.TICKETMASTER_SYNC, attempts=5))
        async def sync_shows(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            return await self._phase(ctx, artist_id, "shows", self._sync_shows)

        @q[QueueName.SPOTIFY_CATALOG].task(**opts(QueueName.SPOTIFY_CATALOG, attempts=5))
        async def sync_catalog(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            return await self._phase(ctx, artist_id, "catalog", self._sync_catalog)

        @q[QueueName.ARTIST_IMPORT].task(**opts(QueueName.ARTIST_IMPORT, attempts=4, priority=Priority.HIGH))
        async def wrap_up(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            return await self._phase(ctx, artist_id, "wrap-up", self._wrap_up)

        self.persist_votes = persist_votes
        self.bootstrap, self.sync_shows, self.sync_catalog, self.wrap_up = (
            bootstrap,
            sync_shows,
            sync_catalog,
            wrap_up,
        )
        app.schedule("* * * * *", persist_votes, key="setlist-votes-sweep")  # what a lost run left
        self.webhooks = Webhooks(self)
        self.syncs = Syncs(self)
        self.upkeep = Upkeep(self)
        #: Every finished job of the app's queues in ``queue_jobs``, every
        #: schedule run in ``cron_logs`` and ``cron_metrics`` (seed 002).
        self.archive = JobArchive(services.engine, [app.queues[n].queue for n in QUEUES], tables=ARCHIVE)

    def task_options(self, queue: QueueName, **options: Unpack[JobOptionsDict]) -> JobOptionsDict:
        """Job options of a task on ``queue``: its class's priority, the
        settings' job timeout, exponential backoff and seed 001's retention
        (completed jobs kept an hour, 100 at most; failed ones a day), then
        ``options``. Every finished job stays in ``queue_jobs`` (the archive)."""
        defaults: JobOptionsDict = {
            "priority": CLASSES[queue].priority,
            "timeout": self.services.settings.job_timeout,
            "backoff": self.backoff,
            "remove_on_complete": KEEP_COMPLETED,
            "remove_on_fail": KEEP_FAILED,
        }
        return {**defaults, **options}

    # the schedules' work, for their tasks and for an external cron (``ops``)

    async def calculate_trending(self) -> dict[str, Any]:
        return await self.upkeep.calculate_trending()

    async def cleanup_imports(self, keep_days: int = 30) -> dict[str, Any]:
        return await self.upkeep.cleanup_imports(keep_days)

    async def stale_artist_ids(self) -> list[str]:
        return await self.syncs.stale_artist_ids()

    async def resync_artist(self, artist_id: str) -> dict[str, Any]:
        return await self.syncs.resync_artist(artist_id)

    # -- starting an import -------------------------------------------------

    async def start(self, tm_attraction_id: str, *, deep: bool = False) -> tuple[str, str, Job | None]:
        """Phase 1: the artist row (a placeholder when new) and the import
        job, CRITICAL (a user's) or, ``deep``, LOW (the daily deep sync's).
        Returns the artist id, its slug and the job (None when an import of
        the artist is already under way)."""
        artist, started = await self.services.store.start_import(tm_attraction_id, stuck_after=STUCK_AFTER)
        if not started:
            return artist.id, artist.slug, None
        await self.app.progress.report(subject(artist.id), "initializing", 0, "Import queued", restart=True)
        job = await self.bootstrap.with_options(
            job_id=f"import-{artist.id}-{int(time.time() * 1000)}",
            dedup_key=f"import-{artist.id}",
            priority=Priority.LOW if deep else CLASSES[QueueName.ARTIST_IMPORT].priority,
        ).enqueue(artist.id, deep=deep)
        await self.tracking.queued(job.id, artist.id)
        return artist.id, artist.slug, job

    # -- phases ------------------------------------------------------------

    async def _phase(
        self,
        ctx: TaskContext,
        artist_id: str,
        name: str,
        step: Callable[[ImportProgress], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Runs one phase of an artist's import, its failures recorded (in
        ``sync_progress`` too)."""
        progress = ImportProgress(
            ctx, self.services.store, artist_id, self.webhooks.announcer(ctx, artist_id)
        )
        async with (
            self.tracking.phase(sync_root(ctx.id, name), artist_id, name, ctx) as outcome,
            failures_recorded(progress, name),
        ):
            outcome.update(await step(progress))
        return outcome

    async def _bootstrap(self, progress: ImportProgress, *, deep: bool) -> dict[str, Any]:
        s = self.services
        artist = await s.store.artist(progress.artist_id)
        if artist is None:
            raise Discard(f"no artist {progress.artist_id}")
        await progress.report("initializing", 0.3, "Reading the artist from Ticketmaster", persist=True)
        attraction = await s.ticketmaster.attraction(artist.tm_attraction_id)
        if attraction is None:
            raise Discard(f"Ticketmaster knows no attraction {artist.tm_attraction_id}")
        who = identity(attraction)
        await progress.report(IDENTIFIERS, 0.6, f"Finding {who.name} on Spotify")
        found = await s.spotify.artist(who.spotify_id) if who.spotify_id else None
        if found is None:
            found = await s.spotify.search_artist(who.name)
        fields: dict[str, Any] = {
            "name": who.name,
            "image_url": who.image_url,
            "genres": who.genres,
            "mbid": who.mbid,
            "upcoming_events": who.upcoming_events,
            "import_status": "in_progress",
        }
        if found is not None:
            fields["spotify_id"] = found["id"]
            fields["genres"] = who.genres or list(found.get("genres") or [])
            fields["popularity"] = found.get("popularity")  # absent in development mode
            fields["followers"] = (found.get("followers") or {}).get("total")
            fields["image_url"] = who.image_url or next(
                (i["url"] for i in found.get("images") or [] if i.get("url")), None
            )
        updated = await s.store.set_identity(progress.artist_id, **fields)
        await progress.report(IDENTIFIERS, 1.0, f"Importing {who.name}", persist=True)
        ids = _children(progress.ctx.id)
        low: dict[str, Any] = {"priority": Priority.LOW} if deep else {}
        await self.app.add_flow(
            self.wrap_up.node(
                {"artist_id": progress.artist_id},
                job_id=ids["wrap"],
                children=[
                    self.sync_shows.node(
                        {"artist_id": progress.artist_id},
                        job_id=ids["shows"],
                        fail_parent_on_failure=True,
                        **low,
                    ),
                    self.sync_catalog.node(
                        {"artist_id": progress.artist_id},
                        job_id=ids["catalog"],
                        fail_parent_on_failure=True,
                        **low,
                    ),
                ],
                **low,
            )
        )
        return {"name": updated.name, "slug": updated.slug, "spotify_id": updated.spotify_id}

    async def fetch_shows(self, artist_id: str, progress: ImportProgress | None) -> dict[str, Any]:
        s = self.services
        artist = await s.store.artist(artist_id)
        if artist is None:
            raise Discard(f"no artist {artist_id}")
        expected = max(1, artist.upcoming_events)
        seen: set[str] = set()
        skipped: set[str] = set()
        before = s.ticketmaster.requests
        async for events in s.ticketmaster.events(artist.tm_attraction_id):
            page = []
            for event in events:
                if "id" not in event or event["id"] in seen or event["id"] in skipped:
                    continue
                if is_add_on(event):
                    skipped.add(event["id"])
                    continue
                seen.add(event["id"])
                page.append(show_row(event))
            await s.store.save_shows(artist_id, page)
            if progress is not None:
                await progress.report(SHOWS, len(seen) / expected, f"{len(seen)} shows stored")
        await s.store.update_artist(artist_id, shows_synced_at=datetime.now(UTC), upcoming_events=len(seen))
        requests = s.ticketmaster.requests - before
        return {"shows": len(seen), "add_ons_skipped": len(skipped), "requests": requests}

    async def _sync_shows(self, progress: ImportProgress) -> dict[str, Any]:
        await progress.report(SHOWS, 0.0, "Reading shows and venues from Ticketmaster", persist=True)
        result = await self.fetch_shows(progress.artist_id, progress)
        await progress.report(SHOWS, 1.0, f"{result['shows']} shows and their venues stored", persist=True)
        return result

    async def _sync_catalog(self, progress: ImportProgress) -> dict[str, Any]:
        s = self.services
        spotify = s.spotify
        artist = await s.store.artist(progress.artist_id)
        if artist is None:
            raise Discard(f"no artist {progress.artist_id}")
        if artist.spotify_id is None:
            await progress.report(SONGS, 1.0, "No Spotify artist found: catalog skipped", persist=True)
            return {"songs": 0, "skipped": "no Spotify artist"}
        before = spotify.requests
        await progress.report(SONGS, 0.0, "Listing albums and singles on Spotify", persist=True)
        albums = await spotify.albums(artist.spotify_id)
        albums = [a for a in albums if not is_live_album(str(a.get("name", "")))]
        listings = await self._album_listings(progress, albums)
        candidates: list[tuple[dict[str, Any], dict[str, Any]]] = [
            (simple, album)
            for album, listing in zip(albums, listings, strict=True)
            for simple in listing
            if simple.get("id") and not is_live_title(str(simple.get("name", "")))
        ]
        album_of = {simple["id"]: album for simple, album in candidates}
        full = await spotify.tracks(list(album_of))
        await progress.report(SONGS, 0.85, f"{len(full)} tracks read")
        liveness = await spotify.liveness([t["id"] for t in full])
        tracks: list[Track] = [
            track_from(t, album_of.get(t["id"], t.get("album") or {}), (liveness or {}).get(t["id"]))
            for t in full
        ]
        studio = dedupe(t for t in tracks if is_studio(t, use_liveness=liveness is not None))
        await s.store.save_catalog(progress.artist_id, studio)
        degraded = liveness is None
        await s.store.update_artist(
            progress.artist_id, catalog_synced_at=datetime.now(UTC), catalog_degraded=degraded
        )
        note = " (no audio features: live tracks found by title only)" if degraded else ""
        await progress.report(SONGS, 1.0, f"{len(studio)} studio songs stored{note}", persist=True)
        return {
            "albums": len(albums),
            "songs": len(studio),
            "degraded": degraded,
            "requests": spotify.requests - before,
        }

    async def _album_listings(
        self, progress: ImportProgress, albums: list[dict[str, Any]]
    ) -> list[list[dict[str, Any]]]:
        """Each album's track listing, ``album_parallelism`` albums read at
        once (seed 001's pLimit(10)), in the albums' order."""
        spotify, gate = self.services.spotify, asyncio.Semaphore(self.services.settings.album_parallelism)
        listings: list[list[dict[str, Any]]] = [[] for _ in albums]
        done = 0

        async def read(i: int, album: dict[str, Any]) -> None:
            nonlocal done
            async with gate:
                listings[i] = await spotify.album_tracks(album["id"])
            done += 1
            await progress.report(SONGS, 0.7 * done / len(albums), f"Album {done} of {len(albums)}")

        try:
            async with asyncio.TaskGroup() as group:
                for i, album in enumerate(albums):
                    group.create_task(read(i, album))
        except ExceptionGroup as failed:  # the first failure, as a sequential read raises it
            raise failed.exceptions[0] from None
        return listings

    async def _wrap_up(self, progress: ImportProgress) -> dict[str, Any]:
        s = self.services
        artist = await s.store.artist(progress.artist_id)
        if artist is None:
            raise Discard(f"no artist {progress.artist_id}")
        results = (await progress.ctx.children()).results
        shows, catalog = _result(results, "-shows"), _result(results, "-catalog")
        await progress.report(SETLISTS, 0.0, "Pre-seeding setlists from setlist.fm", persist=True)
        setlists = await self.syncs.fetch_setlists(artist.mbid)
        matched = await s.store.save_setlists(progress.artist_id, setlists)
        await s.drop_caches(progress.artist_id)
        await s.store.update_artist(progress.artist_id, import_status="complete")
        # the new artist's score now, not at the next hour (imports ending together share a run)
        await self.upkeep.compute_trending.with_options(dedup_key="trending-now", dedup_ttl=5.0).enqueue()
        await self.upkeep.queue_images(progress.artist_id, artist.image_url)
        summary = {
            "shows": shows.get("shows", 0),
            "songs": catalog.get("songs", 0),
            "setlists": len(setlists),
            "setlists_matched": matched,
            "degraded": bool(catalog.get("degraded")),
        }
        await progress.complete("Import complete", **summary)
        return summary


def _result(results: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The result of the child whose job id ends with ``suffix``."""
    found = [r for k, r in results.items() if k.endswith(suffix) and isinstance(r, dict)]
    return found[0] if found else {}
