"""Seed 002's tracking tables, written by the running system:
``sync_jobs`` (each import and resync), ``sync_progress`` (each of its
phases: started, retried, waiting on a rate limit, completed or failed,
with its result or error and duration) and ``system_health`` (a snapshot
every 5 minutes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conveyor import Discard, RateLimited, Retry, StaleLease, TaskContext
from setlist.models import SyncJob, SyncProgress, SystemHealth, utcnow
from setlist.store import _aware, _insert

#: The phase that ends each kind of sync: its completion completes the sync job.
LAST_PHASE = {"import": "wrap-up", "resync": "shows", "quick-sync": "shows", "setlists": "setlists"}


def final_failure(exc: BaseException, ctx: TaskContext) -> bool:
    """No attempt of the job follows this failure: a ``Discard``, or its last attempt."""
    return isinstance(exc, Discard) or ctx.attempt >= ctx.attempts


def sync_root(job_id: str, phase: str) -> str:
    """The sync job of a phase's job: the import's first job (its children's
    ids are ``<first>-shows``, ``-catalog``, ``-wrap``)."""
    return job_id if phase == "identity" else job_id.rsplit("-", 1)[0]


class Tracking:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def queued(self, sync_id: str, artist_id: str, kind: str = "import") -> None:
        async with self.sessions.begin() as session:
            await _add_job(session, sync_id, artist_id, kind, "queued")

    async def phase_started(
        self, sync_id: str, artist_id: str, phase: str, attempt: int, kind: str = "import"
    ) -> None:
        now = utcnow()
        async with self.sessions.begin() as session:
            await _add_job(session, sync_id, artist_id, kind, "running")
            await session.execute(
                update(SyncJob)
                .where(SyncJob.id == sync_id, SyncJob.status.in_(("queued", "running")))
                .values(status="running", started_at=func.coalesce(SyncJob.started_at, now))
            )
            row = {
                "sync_job_id": sync_id,
                "phase": phase,
                "status": "running",
                "attempts": attempt,
                "started_at": now,
            }
            stmt = _insert(session, SyncProgress).values(row)
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["sync_job_id", "phase"],
                    set_={"status": "running", "attempts": attempt, "error": None, "finished_at": None},
                )
            )

    @asynccontextmanager
    async def phase(
        self, sync_id: str, artist_id: str, phase: str, ctx: TaskContext, kind: str = "import"
    ) -> AsyncIterator[dict[str, Any]]:
        """Records a run of ``phase`` by the job ``ctx``: started, then how it
        ended: completed (with what the block put in the dict it gets),
        waiting (handed back without using an attempt), retrying or failed."""
        await self.phase_started(sync_id, artist_id, phase, ctx.attempt, kind)
        outcome: dict[str, Any] = {}
        try:
            yield outcome
        except (RateLimited, Retry, StaleLease) as exc:
            await self.phase_ended(sync_id, phase, "waiting", error=str(exc), kind=kind)
            raise
        except Exception as exc:
            status = "failed" if final_failure(exc, ctx) else "retrying"
            await self.phase_ended(sync_id, phase, status, error=str(exc), kind=kind)
            raise
        await self.phase_ended(sync_id, phase, "completed", detail=outcome, kind=kind)

    async def phase_ended(
        self,
        sync_id: str,
        phase: str,
        status: str,
        *,
        detail: dict[str, Any] | None = None,
        error: str | None = None,
        kind: str = "import",
    ) -> None:
        """``status``: completed, failed (for good: the sync job fails too),
        retrying or waiting (another attempt follows)."""
        now = utcnow()
        async with self.sessions.begin() as session:
            row = await session.get(SyncProgress, (sync_id, phase))
            if row is not None:
                row.status, row.error, row.detail = status, error, detail
                if status in ("completed", "failed"):
                    row.finished_at = now
                    row.duration_ms = round((now - _aware(row.started_at)).total_seconds() * 1000)
            job_status = {"failed": "failed", "completed": "completed" if phase == LAST_PHASE[kind] else None}
            final = job_status.get(status)
            if final is not None:
                await session.execute(
                    update(SyncJob)
                    .where(SyncJob.id == sync_id, SyncJob.status != "failed")
                    .values(status=final, finished_at=now, error=error)
                )

    async def jobs(self, artist_id: str) -> list[tuple[SyncJob, list[SyncProgress]]]:
        """An artist's sync jobs, newest first, each with its phases."""
        async with self.sessions() as session:
            jobs = (
                await session.execute(
                    select(SyncJob).where(SyncJob.artist_id == artist_id).order_by(SyncJob.created_at.desc())
                )
            ).scalars()
            out = []
            for job in jobs:
                phases = (
                    await session.execute(
                        select(SyncProgress)
                        .where(SyncProgress.sync_job_id == job.id)
                        .order_by(SyncProgress.started_at)
                    )
                ).scalars()
                out.append((job, list(phases)))
            return out

    async def record_health(self, **snapshot: Any) -> SystemHealth:
        async with self.sessions.begin() as session:
            row = SystemHealth(**snapshot)
            session.add(row)
        return row

    async def health(self, limit: int = 100) -> list[SystemHealth]:
        async with self.sessions() as session:
            query = select(SystemHealth).order_by(SystemHealth.checked_at.desc()).limit(limit)
            return list((await session.execute(query)).scalars())


async def _add_job(session: AsyncSession, sync_id: str, artist_id: str, kind: str, status: str) -> None:
    """The sync job's row, unless it is there already."""
    row = {"id": sync_id, "artist_id": artist_id, "kind": kind, "status": status, "created_at": utcnow()}
    await session.execute(_insert(session, SyncJob).values(row).on_conflict_do_nothing())
