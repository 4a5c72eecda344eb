"""The artist import as Conveyor jobs (seed 001's phases):

1. ``bootstrap`` (queue ``setlist-import``): the attraction from
   Ticketmaster, the Spotify artist (its link, else a name search); then it
   adds the rest as a flow with ids derived from its own, so a re-run adds
   nothing twice:
2. ``sync_shows`` (``setlist-ticketmaster``) and ``sync_catalog``
   (``setlist-spotify``), children running side by side;
3. ``wrap_up`` (``setlist-import``), their parent: setlists pre-seeded
   from setlist.fm, caches dropped, the import marked complete.

Every upstream request first takes a slot of a rate limiter shared by all
worker processes (Ticketmaster 5/s, setlist.fm 2/s). An upstream asking
for a long wait makes the job raise RateLimited: it goes back to waiting
and the queue holds, no worker sleeps. Progress goes to the progress bus
under ``artist:<id>`` (pushed to SSE readers) and, at each phase change,
to the ``import_status`` table (the polling fallback).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import redis.asyncio as aredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from conveyor import (
    Conveyor,
    Discard,
    Exponential,
    Job,
    JobState,
    Limiter,
    RateLimit,
    RateLimited,
    Retry,
    StaleLease,
    TaskContext,
)
from conveyor.archive import JobArchive
from setlist import trending
from setlist.adapters.clients import Upstreams
from setlist.adapters.http import Throttled, UpstreamError
from setlist.adapters.setlistfm import SetlistFmClient, event_date, songs_played
from setlist.adapters.spotify import SpotifyClient
from setlist.adapters.ticketmaster import TicketmasterClient
from setlist.catalog import Track, dedupe, is_live_album, is_live_title, is_studio
from setlist.config import Settings
from setlist.db import make_engine, sessions
from setlist.ingest import identity, is_add_on, show_row, track_from
from setlist.models import ARCHIVE, SystemHealth
from setlist.store import Store
from setlist.tracking import Tracking, final_failure, sync_root
from setlist.votes import VOTES_QUEUE, Votes

log = logging.getLogger("setlist.pipeline")

IMPORT_QUEUE = "setlist-import"
TICKETMASTER_QUEUE = "setlist-ticketmaster"
SPOTIFY_QUEUE = "setlist-spotify"
MAINTENANCE_QUEUE = "setlist-maintenance"
QUEUES = (IMPORT_QUEUE, TICKETMASTER_QUEUE, SPOTIFY_QUEUE, MAINTENANCE_QUEUE, VOTES_QUEUE)

#: Share of the progress bar each side-by-side phase fills (10 to 90 %);
#: each one's fraction done is kept in the status as ``<phase>_done``.
PHASE_WEIGHTS = {"shows": 45.0, "catalog": 35.0}
#: An import whose status has not moved for this long is taken for dead
#: and may be started again.
STUCK_AFTER = timedelta(minutes=15)
#: A shows sync younger than this is not redone by the 6-hourly resync.
RESYNC_FRESH = timedelta(hours=1)
CACHE_PREFIX = "setlist:cache"


def subject(artist_id: str) -> str:
    return f"artist:{artist_id}"


def artist_cache_key(artist_id: str) -> str:
    return f"{CACHE_PREFIX}:artist:{artist_id}"


TRENDING_CACHE_KEY = f"{CACHE_PREFIX}:trending"


@dataclass
class Services:
    """What the jobs and the API use: the store, the upstream clients (with
    their shared limiters) and a Redis client for caches."""

    settings: Settings
    store: Store
    redis: aredis.Redis
    http: httpx.AsyncClient
    ticketmaster: TicketmasterClient
    spotify: SpotifyClient
    setlistfm: SetlistFmClient
    engine: AsyncEngine
    owns_http: bool = True

    @classmethod
    def create(
        cls,
        redis: aredis.Redis,
        *,
        settings: Settings | None = None,
        database_url: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> Services:
        settings = settings or Settings()
        engine = make_engine(database_url)
        client = http or httpx.AsyncClient(timeout=settings.http_timeout)

        def limiter(name: str, rate: int) -> Limiter:
            # A slot is taken when a request leaves; the upstream counts it
            # when it arrives, and network jitter can bunch arrivals: 10 %
            # of margin keeps them inside the upstream's window.
            return Limiter(redis, f"setlist-{name}", RateLimit(rate, per=1.1), max_wait=5.0)

        upstreams = Upstreams.build(client, settings, gate=limiter)
        return cls(
            settings=settings,
            store=Store(sessions(engine)),
            redis=redis,
            http=client,
            ticketmaster=upstreams.ticketmaster,
            spotify=upstreams.spotify,
            setlistfm=upstreams.setlistfm,
            engine=engine,
            owns_http=http is None,
        )

    async def aclose(self) -> None:
        """Closes the database engine, and the HTTP client if it made it."""
        await self.engine.dispose()
        if self.owns_http:
            await self.http.aclose()

    async def drop_caches(self, artist_id: str) -> None:
        await self.redis.delete(artist_cache_key(artist_id), TRENDING_CACHE_KEY)


class ImportProgress:
    """Reports an import's progress: every step to the bus, phase changes
    to the database too. Shows and catalog run side by side, so the bar is
    10 % plus each one's weighted share."""

    def __init__(self, ctx: TaskContext, store: Store, artist_id: str) -> None:
        self.ctx = ctx
        self.store = store
        self.artist_id = artist_id
        self.reporter = ctx.reporter(subject(artist_id))

    async def report(self, stage: str, fraction: float, message: str, *, persist: bool = False) -> float:
        fraction = max(0.0, min(1.0, fraction))
        if stage in PHASE_WEIGHTS:
            # Each side-by-side phase stores its own fraction (merged into
            # the status atomically) and the bar never moves back, whatever
            # order the two phases' reports land in.
            current = await self.ctx.app.progress.get(subject(self.artist_id))
            done = dict(current.extra) if current is not None and not current.finished else {}
            done[f"{stage}_done"] = fraction
            percent = 10 + sum(w * float(done.get(f"{p}_done", 0.0)) for p, w in PHASE_WEIGHTS.items())
            status = await self.reporter.report(
                stage, round(percent, 1), message, monotonic=True, merge=True, **{f"{stage}_done": fraction}
            )
        elif stage == "initializing":
            status = await self.reporter.report(
                stage, round(10 * fraction, 1), message, monotonic=True, merge=True
            )
        else:  # wrap-up
            status = await self.reporter.report(stage, round(90 + 9 * fraction, 1), message, monotonic=True)
        if persist:
            await self.store.set_status(
                self.artist_id, stage, int(status.percent), message, job_id=self.ctx.id
            )
        return status.percent

    async def complete(self, message: str, **extra: Any) -> None:
        await self.reporter.report("completed", 100, message, **extra)
        await self.store.set_status(self.artist_id, "completed", 100, message, job_id=self.ctx.id)

    async def fail(self, reason: str) -> None:
        await self.store.update_artist(self.artist_id, import_status="failed")
        await self.store.set_status(self.artist_id, "failed", 0, reason, error=reason, job_id=self.ctx.id)
        await self.reporter.fail(reason)


@asynccontextmanager
async def failures_recorded(progress: ImportProgress, phase: str) -> AsyncIterator[None]:
    """Turns upstream errors into what the queue should do with the job,
    and records the import as failed (with the reason) once no attempt is
    left: a long upstream wait becomes RateLimited (back to waiting, no
    attempt used); a refusal that a retry cannot fix fails at once."""
    ctx = progress.ctx
    try:
        yield
    except Throttled as exc:
        raise RateLimited(exc.retry_after, str(exc)) from None
    except (RateLimited, Retry, StaleLease):
        raise
    except Exception as exc:
        final = final_failure(exc, ctx)
        retryable = not isinstance(exc, UpstreamError) or exc.retryable
        reason = f"{phase}: {exc}"
        if final or not retryable:
            await progress.fail(reason)
            if not retryable:
                raise Discard(reason) from None
        else:
            log.warning("artist %s %s failed (attempt %d): %s", progress.artist_id, phase, ctx.attempt, exc)
        raise


def _children(ctx_id: str) -> dict[str, str]:
    return {part: f"{ctx_id}-{part}" for part in ("shows", "catalog", "wrap")}


class Pipeline:
    """The app's queues, tasks and schedules, registered on ``app``."""

    def __init__(self, app: Conveyor, services: Services) -> None:
        self.app = app
        self.services = services
        store = services.store
        self.tracking = Tracking(store.sessions)
        backoff = Exponential(services.settings.retry_backoff, max=120.0)
        lock = services.settings.lock_duration
        imports = app.queue(IMPORT_QUEUE, concurrency=20, lock_duration=lock)
        tm_queue = app.queue(TICKETMASTER_QUEUE, concurrency=8, lock_duration=lock)
        sp_queue = app.queue(SPOTIFY_QUEUE, concurrency=8, lock_duration=lock)
        maintenance = app.queue(MAINTENANCE_QUEUE, concurrency=2, lock_duration=lock)
        self.imports, self.maintenance = imports, maintenance
        self.votes = Votes(services.redis, store.sessions)
        votes_queue = app.queue(VOTES_QUEUE, concurrency=1, lock_duration=lock)

        @votes_queue.task(attempts=5, backoff=backoff)
        async def persist_votes(ctx: TaskContext) -> dict[str, int]:
            """Writes the votes changed since the last run to the database."""
            return await self.votes.persist()

        self.persist_votes = persist_votes

        @imports.task(attempts=4, backoff=backoff)
        async def bootstrap(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            return await self._phase(ctx, artist_id, "identity", self._bootstrap)

        @tm_queue.task(attempts=5, backoff=backoff)
        async def sync_shows(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            return await self._phase(ctx, artist_id, "shows", self._sync_shows)

        @sp_queue.task(attempts=5, backoff=backoff)
        async def sync_catalog(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            return await self._phase(ctx, artist_id, "catalog", self._sync_catalog)

        @imports.task(attempts=4, backoff=backoff)
        async def wrap_up(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            return await self._phase(ctx, artist_id, "wrap-up", self._wrap_up)

        @tm_queue.task(name="resync_shows", attempts=3, backoff=backoff)
        async def resync_shows(ctx: TaskContext, artist_id: str) -> dict[str, Any]:
            """Shows only, for an artist already imported (the 6-hourly resync)."""
            async with self.tracking.phase(ctx.id, artist_id, "shows", ctx, kind="resync") as outcome:
                try:
                    outcome.update(await self.resync_artist(artist_id))
                except Throttled as exc:
                    raise RateLimited(exc.retry_after, str(exc)) from None
            return outcome

        @maintenance.task(attempts=2)
        async def compute_trending(ctx: TaskContext) -> dict[str, Any]:
            return await self._compute_trending()

        @maintenance.task(attempts=2)
        async def resync_active(ctx: TaskContext) -> dict[str, Any]:
            """Queues a shows resync of each imported artist whose shows were
            not synced within the last hour (a fresh import needs none)."""
            ids = await self.stale_artist_ids()
            slot = int(time.time() // (6 * 3600))
            for artist_id in ids:
                await resync_shows.with_options(job_id=f"resync-{artist_id}-{slot}").enqueue(artist_id)
            return {"queued": len(ids)}

        @maintenance.task(attempts=2)
        async def deep_sync_trending(ctx: TaskContext, top: int = 20) -> dict[str, Any]:
            """Re-imports the most trending artists in full (the daily deep sync)."""
            started = []
            for artist in await store.artists(order="trending", limit=top):
                if (await self.start(artist.tm_attraction_id))[2] is not None:
                    started.append(artist.id)
            return {"started": len(started)}

        @maintenance.task(attempts=2)
        async def record_health(ctx: TaskContext) -> dict[str, Any]:
            """A ``system_health`` row: Redis, the database, the queues, the workers."""
            row = await self.snapshot_health()
            return {"status": row.status, "workers": row.workers}

        @maintenance.task(attempts=2)
        async def cleanup(ctx: TaskContext, keep_days: int = 30) -> dict[str, Any]:
            """Drops finished import statuses and finished jobs older than ``keep_days``."""
            return await self.cleanup_imports(keep_days)

        self.bootstrap, self.sync_shows, self.sync_catalog, self.wrap_up = (
            bootstrap,
            sync_shows,
            sync_catalog,
            wrap_up,
        )
        self.resync_shows, self.compute_trending = resync_shows, compute_trending
        self.resync_active = resync_active
        self.deep_sync_trending, self.cleanup = deep_sync_trending, cleanup
        self.record_health = record_health

        app.schedule("0 * * * *", compute_trending, key="setlist-trending")
        app.schedule("15 */6 * * *", resync_active, key="setlist-resync")
        app.schedule("30 3 * * *", deep_sync_trending, key="setlist-deep-sync")
        app.schedule("0 4 * * 0", cleanup, key="setlist-cleanup")
        app.schedule("*/5 * * * *", record_health, key="setlist-health")
        app.schedule("* * * * *", persist_votes, key="setlist-votes-sweep")  # what a lost run left
        #: Every finished job of the app's queues in ``queue_jobs``, every
        #: schedule run in ``cron_logs`` and ``cron_metrics`` (seed 002).
        self.archive = JobArchive(services.engine, [app.queues[n].queue for n in QUEUES], tables=ARCHIVE)

    # -- the schedules' work, for their tasks and for an external cron --------

    async def resync_artist(self, artist_id: str) -> dict[str, Any]:
        """An imported artist's shows fetched again; its page's cache dropped."""
        result = await self._fetch_shows(artist_id, None)
        await self.services.drop_caches(artist_id)  # the artist page shows them
        return result

    async def stale_artist_ids(self) -> list[str]:
        """Imported artists whose shows were not synced within the last hour."""
        fresh = datetime.now(UTC) - RESYNC_FRESH
        return list(await self.services.store.artist_ids(status="complete", synced_before=fresh))

    async def cleanup_imports(self, keep_days: int = 30) -> dict[str, Any]:
        """Drops finished import statuses and finished jobs older than ``keep_days``."""
        statuses = await self.services.store.cleanup_statuses(timedelta(days=keep_days))
        jobs = 0
        for name in QUEUES:
            queue = self.app.queues[name].queue
            for state in (JobState.COMPLETED, JobState.FAILED):
                jobs += len(await queue.clean(state, grace=keep_days * 86400, limit=10_000))
        return {"statuses": statuses, "jobs": jobs}

    async def calculate_trending(self) -> dict[str, Any]:
        """The trending scores, computed now."""
        return await self._compute_trending()

    async def queue_counts(self) -> dict[str, dict[str, int]]:
        """Each of the app's queues: its jobs by state."""
        out = {}
        for name in QUEUES:
            counts = await self.app.queues[name].queue.counts()
            out[name] = {state.value: counts[state] for state in JobState}
        return out

    async def snapshot_health(self) -> SystemHealth:
        """Writes and returns a ``system_health`` row."""
        redis_ok, memory, queues, workers = True, None, {}, 0
        try:
            memory = int((await self.services.redis.info("memory")).get("used_memory", 0))
            queues = await self.queue_counts()
            workers = len(await self.app.queues[QUEUES[0]].queue.workers())
        except Exception:
            redis_ok = False
        try:
            async with self.services.store.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # nowhere to write the row: said in the log instead
            log.error("system health: the database does not answer (redis ok: %s): %s", redis_ok, exc)
            raise
        # no live worker: the app answers, but imports would wait
        status = "unhealthy" if not redis_ok else "healthy" if workers else "degraded"
        return await self.tracking.record_health(
            status=status,
            redis_ok=redis_ok,
            redis_used_memory=memory,
            database_ok=True,
            workers=workers,
            queues=queues,
        )

    # -- starting an import -------------------------------------------------

    async def start(self, tm_attraction_id: str) -> tuple[str, str, Job | None]:
        """Phase 1: the artist row (a placeholder when new) and the import
        job. Returns the artist id, its slug and the job (None when an
        import of the artist is already under way)."""
        artist, started = await self.services.store.start_import(tm_attraction_id, stuck_after=STUCK_AFTER)
        if not started:
            return artist.id, artist.slug, None
        await self.app.progress.report(subject(artist.id), "initializing", 0, "Import queued", restart=True)
        job = await self.bootstrap.with_options(
            job_id=f"import-{artist.id}-{int(time.time() * 1000)}", dedup_key=f"import-{artist.id}"
        ).enqueue(artist.id)
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
        progress = ImportProgress(ctx, self.services.store, artist_id)
        async with (
            self.tracking.phase(sync_root(ctx.id, name), artist_id, name, ctx) as outcome,
            failures_recorded(progress, name),
        ):
            outcome.update(await step(progress))
        return outcome

    async def _bootstrap(self, progress: ImportProgress) -> dict[str, Any]:
        s = self.services
        artist = await s.store.artist(progress.artist_id)
        if artist is None:
            raise Discard(f"no artist {progress.artist_id}")
        await progress.report("initializing", 0.3, "Reading the artist from Ticketmaster", persist=True)
        attraction = await s.ticketmaster.attraction(artist.tm_attraction_id)
        if attraction is None:
            raise Discard(f"Ticketmaster knows no attraction {artist.tm_attraction_id}")
        who = identity(attraction)
        await progress.report("initializing", 0.6, f"Finding {who.name} on Spotify")
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
        await progress.report("initializing", 1.0, f"Importing {who.name}", persist=True)
        ids = _children(progress.ctx.id)
        await self.app.add_flow(
            self.wrap_up.node(
                {"artist_id": progress.artist_id},
                job_id=ids["wrap"],
                children=[
                    self.sync_shows.node(
                        {"artist_id": progress.artist_id}, job_id=ids["shows"], fail_parent_on_failure=True
                    ),
                    self.sync_catalog.node(
                        {"artist_id": progress.artist_id}, job_id=ids["catalog"], fail_parent_on_failure=True
                    ),
                ],
            )
        )
        return {"name": updated.name, "slug": updated.slug, "spotify_id": updated.spotify_id}

    async def _fetch_shows(self, artist_id: str, progress: ImportProgress | None) -> dict[str, Any]:
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
                await progress.report("shows", len(seen) / expected, f"{len(seen)} shows stored")
        await s.store.update_artist(artist_id, shows_synced_at=datetime.now(UTC), upcoming_events=len(seen))
        requests = s.ticketmaster.requests - before
        return {"shows": len(seen), "add_ons_skipped": len(skipped), "requests": requests}

    async def _sync_shows(self, progress: ImportProgress) -> dict[str, Any]:
        await progress.report("shows", 0.0, "Reading shows and venues from Ticketmaster", persist=True)
        result = await self._fetch_shows(progress.artist_id, progress)
        await progress.report("shows", 1.0, f"{result['shows']} shows and their venues stored", persist=True)
        return result

    async def _sync_catalog(self, progress: ImportProgress) -> dict[str, Any]:
        s = self.services
        spotify = s.spotify
        artist = await s.store.artist(progress.artist_id)
        if artist is None:
            raise Discard(f"no artist {progress.artist_id}")
        if artist.spotify_id is None:
            await progress.report("catalog", 1.0, "No Spotify artist found: catalog skipped", persist=True)
            return {"songs": 0, "skipped": "no Spotify artist"}
        before = spotify.requests
        await progress.report("catalog", 0.0, "Listing albums and singles on Spotify", persist=True)
        albums = await spotify.albums(artist.spotify_id)
        albums = [a for a in albums if not is_live_album(str(a.get("name", "")))]
        candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for n, album in enumerate(albums, 1):
            for simple in await spotify.album_tracks(album["id"]):
                if simple.get("id") and not is_live_title(str(simple.get("name", ""))):
                    candidates.append((simple, album))
            await progress.report("catalog", 0.7 * n / max(1, len(albums)), f"Album {n} of {len(albums)}")
        album_of = {simple["id"]: album for simple, album in candidates}
        full = await spotify.tracks(list(album_of))
        await progress.report("catalog", 0.85, f"{len(full)} tracks read")
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
        await progress.report("catalog", 1.0, f"{len(studio)} studio songs stored{note}", persist=True)
        return {
            "albums": len(albums),
            "songs": len(studio),
            "degraded": degraded,
            "requests": spotify.requests - before,
        }

    async def _wrap_up(self, progress: ImportProgress) -> dict[str, Any]:
        s = self.services
        artist = await s.store.artist(progress.artist_id)
        if artist is None:
            raise Discard(f"no artist {progress.artist_id}")
        results = (await progress.ctx.children()).results
        shows, catalog = _result(results, "-shows"), _result(results, "-catalog")
        await progress.report("wrap-up", 0.0, "Pre-seeding setlists from setlist.fm", persist=True)
        setlists: list[dict[str, Any]] = []
        if artist.mbid:
            for page in range(1, s.settings.setlist_pages + 1):
                body = await s.setlistfm.setlists(artist.mbid, page)
                items = body.get("setlist") or []
                setlists += [_setlist_row(item) for item in items if item.get("id") and item.get("eventDate")]
                per_page = int(body.get("itemsPerPage") or 20)
                if len(items) < per_page or page * per_page >= int(body.get("total") or 0):
                    break
        matched = await s.store.save_setlists(progress.artist_id, setlists)
        await s.drop_caches(progress.artist_id)
        await s.store.update_artist(progress.artist_id, import_status="complete")
        # the new artist's score now, not at the next hour (imports ending together share a run)
        await self.compute_trending.with_options(dedup_key="trending-now", dedup_ttl=5.0).enqueue()
        summary = {
            "shows": shows.get("shows", 0),
            "songs": catalog.get("songs", 0),
            "setlists": len(setlists),
            "setlists_matched": matched,
            "degraded": bool(catalog.get("degraded")),
        }
        await progress.complete("Import complete", **summary)
        return summary

    # -- maintenance -----------------------------------------------------------

    async def _compute_trending(self) -> dict[str, Any]:
        """Every imported artist's trending score over a day, a week and a
        month (seed 001's formula, see ``trending``), cached per window; the
        weekly one is stored as the artist's score."""
        now = datetime.now(UTC)
        inputs = await trending.signals(self.services.store.sessions, now)
        for window in trending.WINDOWS:
            ranked = trending.rank({a: s.score(window, now) for a, s in inputs.items()})
            await trending.cache(self.services.redis, window, ranked)
        await self.services.store.set_trending({a: s.score(trending.MAIN, now) for a, s in inputs.items()})
        await self.services.redis.delete(TRENDING_CACHE_KEY)
        return {"artists": len(inputs)}


def _result(results: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The result of the child whose job id ends with ``suffix``."""
    found = [r for k, r in results.items() if k.endswith(suffix) and isinstance(r, dict)]
    return found[0] if found else {}


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
