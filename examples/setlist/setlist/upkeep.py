"""The background and housekeeping jobs: artist pictures resized
(``image-processing``), trending (``trending-calc``), warming the cached
answers of the top artists after it (``cache-warm``), the
``system_health`` snapshot and the weekly cleanup (``cleanup``)."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from conveyor import Discard, Job, JobState, TaskContext
from setlist import answers, trending, trending_view
from setlist.images import BadImage, Images
from setlist.models import SystemHealth
from setlist.queues import QUEUES, QueueName
from setlist.services import TRENDING_CACHE_KEY, artist_cache_key

if TYPE_CHECKING:
    from setlist.pipeline import Pipeline

log = logging.getLogger("setlist.upkeep")

#: How many of the top trending artists the cache-warm job prepares.
WARM_TOP = 10


class Upkeep:
    """The background and housekeeping tasks, registered on ``pipeline``'s queues."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.app, self.services = pipeline.app, pipeline.services
        opts = pipeline.task_options
        self.images = Images(self.services.store.sessions, self.services.http)

        @pipeline.queues[QueueName.IMAGE_PROCESSING].task(**opts(QueueName.IMAGE_PROCESSING, attempts=4))
        async def process_images(ctx: TaskContext, artist_id: str, url: str) -> dict[str, Any]:
            """The artist's picture at ``url``, stored resized (see ``images``)."""
            try:
                result = await self.images.process(artist_id, url)
            except BadImage as exc:  # another try would get the same answer
                raise Discard(str(exc)) from None
            await self.services.drop_caches(artist_id)
            return result

        @pipeline.queues[QueueName.TRENDING_CALC].task(**opts(QueueName.TRENDING_CALC, attempts=2))
        async def compute_trending(ctx: TaskContext) -> dict[str, Any]:
            """Trending scores, then the top artists' answers warmed."""
            result = await self.calculate_trending()
            await warm_cache.with_options(dedup_key="warm-after-trending", dedup_ttl=5.0).enqueue()
            return result

        @pipeline.queues[QueueName.CACHE_WARM].task(**opts(QueueName.CACHE_WARM, attempts=2))
        async def warm_cache(ctx: TaskContext, top: int = WARM_TOP) -> dict[str, Any]:
            """The trending answer and the top artists' pages, cached ahead of their readers."""
            return await self.warm(top)

        @pipeline.queues[QueueName.CLEANUP].task(**opts(QueueName.CLEANUP, attempts=2))
        async def record_health(ctx: TaskContext) -> dict[str, Any]:
            """A ``system_health`` row: Redis, the database, the queues, the workers."""
            row = await self.snapshot_health()
            return {"status": row.status, "workers": row.workers}

        @pipeline.queues[QueueName.CLEANUP].task(**opts(QueueName.CLEANUP, attempts=2))
        async def cleanup(ctx: TaskContext, keep_days: int = 30) -> dict[str, Any]:
            """Drops finished import statuses and finished jobs older than ``keep_days``."""
            return await self.cleanup_imports(keep_days)

        self.process_images = process_images
        self.compute_trending, self.warm_cache = compute_trending, warm_cache
        self.record_health, self.cleanup = record_health, cleanup
        self.app.schedule("0 * * * *", compute_trending, key="setlist-trending")
        self.app.schedule("0 4 * * 0", cleanup, key="setlist-cleanup")
        self.app.schedule("*/5 * * * *", record_health, key="setlist-health")

    async def queue_images(self, artist_id: str, url: str | None) -> Job[dict[str, Any]] | None:
        """Queues the processing of the artist's picture, unless there is
        none or its variants were made from this very URL already."""
        if url is None or await self.images.source(artist_id) == url:
            return None
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return await self.process_images.with_options(job_id=f"images-{artist_id}-{digest}").enqueue(
            artist_id, url
        )

    async def calculate_trending(self) -> dict[str, Any]:
        """Every imported artist's trending score over a day, a week and a
        month (seed 001's formula, see ``trending``), cached per window; the
        weekly one is stored as the artist's score."""
        now = datetime.now(UTC)
        s = self.services
        inputs = await trending.signals(s.store.sessions, now)
        for window in trending.WINDOWS:
            ranked = trending.rank({a: x.score(window, now) for a, x in inputs.items()})
            await trending.cache(s.redis, window, ranked)
        await s.store.set_trending({a: x.score(trending.MAIN, now) for a, x in inputs.items()})
        await trending_view.refresh(s.store.sessions, now)  # seed 002's refresh_trending_data()
        await s.redis.delete(TRENDING_CACHE_KEY)
        return {"artists": len(inputs)}

    async def warm(self, top: int = WARM_TOP) -> dict[str, Any]:
        """Writes ``/api/trending``'s answer and the pages of the ``top``
        trending artists whose import is complete into the cache, as the
        routes would on a miss."""
        s = self.services
        await s.redis.set(
            TRENDING_CACHE_KEY, await answers.trending(s.store), ex=answers.TRENDING_CACHE_SECONDS
        )
        warmed = []
        for artist in await s.store.artists(order="trending", limit=top):
            if artist.import_status != "complete":
                continue
            body = await answers.artist(s, self.app.progress, artist)
            await s.redis.set(artist_cache_key(artist.id), body, ex=answers.ARTIST_CACHE_SECONDS)
            warmed.append(artist.id)
        return {"artists": len(warmed)}

    async def cleanup_imports(self, keep_days: int = 30) -> dict[str, Any]:
        """Drops finished import statuses and finished jobs older than ``keep_days``."""
        statuses = await self.services.store.cleanup_statuses(timedelta(days=keep_days))
        jobs = 0
        for name in QUEUES:
            queue = self.app.queues[name].queue
            for state in (JobState.COMPLETED, JobState.FAILED):
                jobs += len(await queue.clean(state, grace=keep_days * 86400, limit=10_000))
        return {"statuses": statuses, "jobs": jobs}

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
        return await self.pipeline.tracking.record_health(
            status=status,
            redis_ok=redis_ok,
            redis_used_memory=memory,
            database_ok=True,
            workers=workers,
            queues=queues,
        )
