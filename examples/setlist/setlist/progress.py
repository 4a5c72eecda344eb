"""An import's progress: every step to the progress bus (pushed to SSE
readers) under ``artist:<id>``, phase changes to the ``import_status``
table too (the polling fallback); and what a phase's failure does to its job."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from conveyor import Discard, RateLimited, Retry, StaleLease, TaskContext
from setlist.adapters.http import Throttled, UpstreamError
from setlist.store import Store
from setlist.tracking import final_failure

log = logging.getLogger("setlist.pipeline")

#: What announces an import event to the webhooks: ``(event, data)``.
Announce = Callable[[str, dict[str, Any]], Awaitable[None]]

#: Seed 000's progress stages, in order: ``initializing`` and
#: ``syncing-identifiers`` (the bootstrap), ``importing-shows`` and
#: ``importing-songs`` (side by side), ``creating-setlists`` (the wrap-up),
#: then ``completed`` or ``failed``.
INITIALIZING, IDENTIFIERS = "initializing", "syncing-identifiers"
SHOWS, SONGS, SETLISTS = "importing-shows", "importing-songs", "creating-setlists"
#: Share of the progress bar each side-by-side stage fills (10 to 90 %),
#: and the key its fraction done is kept under in the status's extra.
PHASE_WEIGHTS = {SHOWS: 45.0, SONGS: 35.0}
DONE_KEY = {SHOWS: "shows_done", SONGS: "catalog_done"}


def subject(artist_id: str) -> str:
    """The progress bus subject of an artist's import."""
    return f"artist:{artist_id}"


class ImportProgress:
    """Reports an import's progress: every step to the bus, phase changes
    to the database too. Shows and catalog run side by side, so the bar is
    10 % plus each one's weighted share."""

    def __init__(
        self, ctx: TaskContext, store: Store, artist_id: str, announce: Announce | None = None
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.artist_id = artist_id
        self.reporter = ctx.reporter(subject(artist_id))
        self.announce = announce

    async def report(self, stage: str, fraction: float, message: str, *, persist: bool = False) -> float:
        fraction = max(0.0, min(1.0, fraction))
        if stage in PHASE_WEIGHTS:
            # Each side-by-side phase stores its own fraction (merged into
            # the status atomically) and the bar never moves back, whatever
            # order the two phases' reports land in.
            current = await self.ctx.app.progress.get(subject(self.artist_id))
            done = dict(current.extra) if current is not None and not current.finished else {}
            done[DONE_KEY[stage]] = fraction
            percent = 10 + sum(w * float(done.get(DONE_KEY[p], 0.0)) for p, w in PHASE_WEIGHTS.items())
            status = await self.reporter.report(
                stage, round(percent, 1), message, monotonic=True, merge=True, **{DONE_KEY[stage]: fraction}
            )
        elif stage in (INITIALIZING, IDENTIFIERS):
            status = await self.reporter.report(
                stage, round(10 * fraction, 1), message, monotonic=True, merge=True
            )
        else:  # creating-setlists
            status = await self.reporter.report(stage, round(90 + 9 * fraction, 1), message, monotonic=True)
        if persist:
            await self.store.set_status(
                self.artist_id, stage, int(status.percent), message, job_id=self.ctx.id
            )
            if self.announce is not None:
                await self.announce(
                    "import.progress", {"stage": stage, "progress": int(status.percent), "message": message}
                )
        return status.percent

    async def complete(self, message: str, **extra: Any) -> None:
        await self.reporter.report("completed", 100, message, **extra)
        await self.store.set_status(self.artist_id, "completed", 100, message, job_id=self.ctx.id)
        if self.announce is not None:
            await self.announce("import.completed", {"message": message, **extra})

    async def fail(self, reason: str) -> None:
        await self.store.update_artist(self.artist_id, import_status="failed")
        await self.store.set_status(self.artist_id, "failed", 0, reason, error=reason, job_id=self.ctx.id)
        await self.reporter.fail(reason)
        if self.announce is not None:
            await self.announce("import.failed", {"error": reason})


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
